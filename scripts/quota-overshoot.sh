#!/usr/bin/env bash
# How far past its limit a client gets through several API replicas
# (BENCHMARKS.md, "Quotas (issue 26)"): the one-command inarious (embedded
# broker, worker, API replica 1) and REPLICAS-1 more `inarious api` on its
# broker (or, with BROKERS set, all of them on that Apache Kafka), every replica with --quotas, nothing exempt, and QUOTA_REPLICAS as
# --quota-replicas; a default policy of LIMIT calls per minute; one client
# (inarious-load, one identity) sending RATE_FACTOR times its limit per
# minute on GET /healthz, spread evenly over the replicas (one open-loop
# inarious-load per replica), for MINUTES whole minutes. The served calls
# (2xx) and refused ones (429: 4xx) of each minute are then read from the
# usage table's minute buckets, which count every call by status class.
#
# Environment: REPLICAS [4], QUOTA_REPLICAS [1], LIMIT [1000], RATE_FACTOR
# [20], MINUTES [3], QUOTA_LAG [250ms], QUOTA_REFRESH [100ms], PORT [18580: replica i
# on PORT+i], EMBEDDED_PORT [29692], BROKERS [unset: the embedded broker], BASE [/tmp/quota-overshoot],
# BIN and LOAD [built from this tree].
set -euo pipefail
ROOT=$(cd "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/.." && pwd)
REPLICAS=${REPLICAS:-4} QUOTA_REPLICAS=${QUOTA_REPLICAS:-1} LIMIT=${LIMIT:-1000} RATE_FACTOR=${RATE_FACTOR:-20}
MINUTES=${MINUTES:-3} QUOTA_LAG=${QUOTA_LAG:-250ms} QUOTA_REFRESH=${QUOTA_REFRESH:-100ms}
PORT=${PORT:-18580} EMBEDDED_PORT=${EMBEDDED_PORT:-29692} BASE=${BASE:-/tmp/quota-overshoot} BROKERS=${BROKERS:-}
case $BASE in /tmp/?*) ;; *) echo "BASE must be under /tmp (it is wiped)" >&2; exit 1 ;; esac
rm -rf "$BASE" && mkdir -p "$BASE"
if [ -z "${BIN:-}" ] || [ -z "${LOAD:-}" ]; then
	BIN=$BASE/inarious LOAD=$BASE/inarious-load
	(cd "$ROOT" && go build -o "$BIN" ./cmd/inarious && go build -o "$LOAD" ./cmd/inarious-load)
fi
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; true' EXIT
quota=(--quotas --quota-exempt= --quota-replicas "$QUOTA_REPLICAS" --quota-lag "$QUOTA_LAG" --quota-refresh "$QUOTA_REFRESH"
	--trusted-proxies 127.0.0.1 --log-level warn)
wait_ready() {
	until curl -sf -o /dev/null "$1/readyz"; do sleep 0.1; done
}
if [ -n "$BROKERS" ]; then
	kafka=(--brokers "$BROKERS")
else
	kafka=(--embedded-kafka-port "$EMBEDDED_PORT") BROKERS=127.0.0.1:$EMBEDDED_PORT
fi
"$BIN" --data-dir "$BASE/r0" --listen 127.0.0.1:$PORT "${kafka[@]}" "${quota[@]}" >"$BASE/r0.log" 2>&1 &
pids+=($!)
wait_ready "http://127.0.0.1:$PORT"
for ((i = 1; i < REPLICAS; i++)); do
	"$BIN" api --brokers "$BROKERS" --data-dir "$BASE/r$i" --listen 127.0.0.1:$((PORT + i)) "${quota[@]}" >"$BASE/r$i.log" 2>&1 &
	pids+=($!)
done
for ((i = 1; i < REPLICAS; i++)); do wait_ready "http://127.0.0.1:$((PORT + i))"; done
curl -sf -o /dev/null -XPUT "http://127.0.0.1:$PORT/quotas/%2A" -H 'Content-Type: application/json' \
	-d "{\"limits\":[{\"window\":\"1m\",\"limit\":$LIMIT}]}"

# From a second into a minute to a second before its last one ends.
sleep $(( (61 - $(date +%s) % 60) % 60 ))
rate=$(awk -v l="$LIMIT" -v f="$RATE_FACTOR" -v n="$REPLICAS" 'BEGIN {printf "%.3f", l*f/60/n}')
echo "$REPLICAS replicas on $BROKERS (--quota-replicas $QUOTA_REPLICAS), limit $LIMIT/min, $RATE_FACTOR x: $rate req/s on each replica for $MINUTES min"
loads=()
for ((i = 0; i < REPLICAS; i++)); do
	"$LOAD" -target "http://127.0.0.1:$((PORT + i))" -mix healthz -clients 1 -seed 1 -connections 8 -rate "$rate" \
		-duration $((MINUTES * 60 - 2))s -probe-every 0 -warmup=false >"$BASE/load$i.txt" 2>&1 &
	loads+=($!)
done
for p in "${loads[@]}"; do wait "$p"; done
sleep 3 # the table takes the last calls
client=$(curl -sf "http://127.0.0.1:$PORT/usage?limit=5" | python3 -c '
import json, sys
rows = [c for c in json.load(sys.stdin)["clients"] if c["client"] != "127.0.0.1"]
print(rows[0]["client"])')
curl -sf "http://127.0.0.1:$PORT/usage/$client/series?step=1m&from=-$((MINUTES + 3))m" | python3 -c '
import json, sys
limit = int(sys.argv[1])
for b in json.load(sys.stdin)["buckets"]:
    st = b.get("endpoint_status", {}).get("GET /healthz", {})
    ok, refused = st.get("2xx", 0), st.get("4xx", 0)
    over = ok - limit
    print("%s  served %6d  refused %6d  over the limit %+5d (%+.2f %%)" % (b["start"], ok, refused, over, over / limit * 100))
' "$LIMIT" | tee "$BASE/buckets.txt"
grep -h '^codes' "$BASE"/load*.txt || true
