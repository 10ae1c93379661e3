-- wrk script: POST /users with a new, distinct user on every request
-- (scripts/api-cost.sh; e.g. wrk -t1 -c32 -d8s -s scripts/post-users.lua http://127.0.0.1:18180).
-- The run's random prefix keeps emails unique across runs on one store.
local prefix = string.format("%x%x", os.time(), math.random(1, 2 ^ 30))
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  return wrk.format(nil, "/users", nil,
    string.format('{"name":"User %d","email":"u%d-%s@example.com"}', n, n, prefix))
end
