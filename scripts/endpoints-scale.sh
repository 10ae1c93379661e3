#!/usr/bin/env bash
# Measures the endpoints table's reads at scale, for BENCHMARKS.md
# ("Endpoints: query latency"):
#
#   scripts/endpoints-scale.sh CLIENTS ENDPOINTS ROUNDS [BINARY]
#
# One all-in-one `inarious` (embedded broker, worker with both groups, API)
# gets CLIENTS events from `inarious-bench fill`, one per client, spread
# uniformly over ENDPOINTS synthetic endpoints. Once the endpoints table
# holds them all, each round measures GET /endpoints/{endpoint} at 1,000/s
# (16 connections, open loop), GET /endpoints?order=p99&limit=50 on one
# connection, and the process's idle CPU (IDLE s, from /proc/PID/stat).
# Needs inarious-bench and inarious-load built ($IBENCH, $LOAD). Output:
# one line per figure in $OUT (default /tmp/endpoints-scale.txt).
set -euo pipefail
CLIENTS=$1 ENDPOINTS=$2 ROUNDS=$3 BIN=${4:-/tmp/inarious}
OUT=${OUT:-/tmp/endpoints-scale.txt}
KPORT=${KPORT:-29292} APORT=${APORT:-18290}
BASE=${BASE:-/tmp/endpoints-scale-data}
IDLE=${IDLE:-30}
LOAD=${LOAD:-/tmp/inarious-load} IBENCH=${IBENCH:-/tmp/inarious-bench}
T=http://127.0.0.1:$APORT

case $BASE in /tmp/?*) ;; *) echo "BASE must be under /tmp (it is wiped)" >&2; exit 1 ;; esac
rm -rf "$BASE" && mkdir -p "$BASE"
: >"$OUT"
say() { echo "$*" | tee -a "$OUT"; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

"$BIN" --data-dir "$BASE/data" --embedded-kafka-port "$KPORT" --listen 127.0.0.1:$APORT \
	--trusted-proxies 127.0.0.1 --log-level warn >"$BASE/inarious.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; true' EXIT
until curl -sf -o /dev/null "$T/readyz"; do kill -0 $pid || exit 1; sleep 0.05; done
say "inarious pid $pid; filling $CLIENTS clients over $ENDPOINTS endpoints"
"$IBENCH" fill -clients "$CLIENTS" -endpoints "$ENDPOINTS" -brokers 127.0.0.1:$KPORT | tee -a "$OUT"
t0=$(date +%s)
# The table holds every endpoint and every call.
until python3 - "$T" "$CLIENTS" "$ENDPOINTS" <<'PY'
import json, sys, urllib.request
base, calls, eps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
total, n, cursor = 0, 0, ""
while True:
    page = json.load(urllib.request.urlopen(f"{base}/endpoints?order=calls&limit=1000&cursor={cursor}"))
    for e in page["endpoints"]:
        if e["endpoint"].startswith("GET /bench/"):
            total += e["calls"]; n += 1
    cursor = page.get("next_cursor") or ""
    if not cursor:
        break
sys.exit(0 if (n, total) == (eps, calls) else 1)
PY
do sleep 2; done
say "endpoints table holds $ENDPOINTS endpoints and $CLIENTS calls $(( $(date +%s) - t0 )) s after the fill"

load() { # label args...
	local label=$1
	shift
	"$LOAD" --target $T --probe-every 0 --timeout 120s --warmup=false --endpoints "$ENDPOINTS" "$@" --json >"$BASE/load-$label-$round.json"
	python3 - "$BASE/load-$label-$round.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
l, st = r["latency"], r["status"]
print("req/s %.0f p50 %.2f p99 %.2f max %.1f ms n %d non2xx %d errors %d" % (r["throughput_rps"], l["p50_ms"], l["p99_ms"], l["max_ms"], r["requests"], st["4xx"] + st["5xx"], st["errors"]))
PY
}
for round in $(seq 1 "$ROUNDS"); do
	say "round $round endpoint_get_1000rps $(load get --mix endpoint-get --connections 16 --rate 1000 --duration 20s)"
	say "round $round endpoint_list_1conn $(load list --mix endpoint-list --connections 1 --duration 20s)"
	a=$(cpu_ticks $pid); sleep "$IDLE"; b=$(cpu_ticks $pid)
	say "round $round idle_cpu_pct $(awk -v d=$((b - a)) -v s="$IDLE" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", 100*d/hz/s}')"
done
say "rss_mib $(($(awk '/^VmRSS/{print $2}' /proc/$pid/status) / 1024))"
