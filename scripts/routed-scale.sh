#!/bin/bash
# The API's cost of the usage table, view mode against workers mode, side by
# side on one Apache Kafka (scripts/kafka.sh on 19092, started fresh):
# two workers with --query-listen, one `inarious api --usage-source view` and
# one `--usage-source workers`, filled with CLIENTS clients by inarious-bench
# fill. Prints each API's RSS and local disk once both list every client,
# then ROUNDS alternated latency runs of GET /usage/{client} and
# GET /usage?limit=50 against each (inarious-load, closed loop) and medians.
#   scripts/routed-scale.sh                      100k clients
#   CLIENTS=1000000 scripts/routed-scale.sh      1M
# Builds the binaries into a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-100000} ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-8s}
export KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093
B=127.0.0.1:$KAFKA_PORT
d=$(mktemp -d)
pids=()
cleanup() {
	kill -TERM "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$d"
}
trap cleanup EXIT
KAFKA_FRESH=1 scripts/kafka.sh start >/dev/null
go build -o "$d/inarious" ./cmd/inarious
go build -o "$d/inarious-bench" ./cmd/inarious-bench
go build -o "$d/inarious-load" ./cmd/inarious-load

for i in 1 2; do
	"$d/inarious" worker --brokers "$B" --data-dir "$d/w$i" --metrics-listen "127.0.0.1:1829$i" \
		--query-listen "127.0.0.1:1828$i" --log-level warn &
	pids+=($!)
done
"$d/inarious" api --brokers "$B" --data-dir "$d/view" --listen 127.0.0.1:18270 --usage-source view --trusted-proxies 127.0.0.1 --log-level warn &
VIEW=$!
"$d/inarious" api --brokers "$B" --data-dir "$d/workers" --listen 127.0.0.1:18271 --usage-source workers --trusted-proxies 127.0.0.1 --log-level warn &
WORKERS=$!
pids+=("$VIEW" "$WORKERS")
for port in 18270 18271; do
	until curl -sf "127.0.0.1:$port/readyz" >/dev/null; do sleep 0.5; done
done

"$d/inarious-bench" fill -brokers "$B" -clients "$CLIENTS"
listed() { curl -s "127.0.0.1:$1/usage?limit=1" | python3 -c 'import sys,json; print(json.load(sys.stdin).get("total_clients",0))' 2>/dev/null || echo 0; }
for port in 18270 18271; do
	until [ "$(listed $port)" -ge "$CLIENTS" ]; do sleep 1; done
done
echo "clients=$CLIENTS: both APIs list every client"
mem() { awk '/VmRSS|VmHWM/{printf "%s %.1f MiB  ", $1, $2/1024}' "/proc/$1/status"; }
echo "view    API: $(mem $VIEW) disk $(du -sh "$d/view" | cut -f1)"
echo "workers API: $(mem $WORKERS) disk $(du -sh "$d/workers" | cut -f1)"
for i in 1 2; do echo "worker $i: $(mem "${pids[$((i - 1))]}" || echo gone) disk $(du -sh "$d/w$i" | cut -f1)"; done

run() { # port mix -> "rps p50 p99"
	"$d/inarious-load" -target "http://127.0.0.1:$1" -mix "$2" -clients 1000 -connections 16 \
		-duration "$DURATION" -probe-every 0 -json 2>>"$d/load.err" |
		python3 -c 'import sys,json; r=json.load(sys.stdin); bad=r["status"]["5xx"]+r["status"]["errors"]; print("%.0f %.2f %.2f %d" % (r["throughput_rps"], r["latency"]["p50_ms"], r["latency"]["p99_ms"], bad))'
}
for mix in usage-get usage-list; do
	: >"$d/$mix.view"
	: >"$d/$mix.workers"
	for r in $(seq "$ROUNDS"); do
		echo "$mix round $r view    (req/s p50 p99 5xx): $(run 18270 $mix | tee -a "$d/$mix.view")"
		echo "$mix round $r workers (req/s p50 p99 5xx): $(run 18271 $mix | tee -a "$d/$mix.workers")"
	done
	for mode in view workers; do
		python3 - "$d/$mix.$mode" "$mix" "$mode" <<'EOF'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
med = [statistics.median(c) for c in zip(*rows)]
print("median %-10s %-7s %.0f req/s  p50 %.2f ms  p99 %.2f ms  5xx %d" % (sys.argv[2], sys.argv[3], *med))
EOF
	done
done
[ -s "$d/load.err" ] && { echo "inarious-load stderr:"; tail -5 "$d/load.err"; }
echo "after the runs: view $(mem $VIEW) / workers $(mem $WORKERS)"
