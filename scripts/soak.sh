#!/usr/bin/env bash
# Soak: Inarious under a steady mixed load for a bounded time, sampling
# resident memory and goroutines from /metrics. Loopback only.
#   scripts/soak.sh [duration=10m] [rate=500]
# With SOAK_BROKERS=host:port the API and a worker run as separate processes
# on that Kafka (their memory is then Inarious' alone); without it, one
# all-in-one process whose embedded broker keeps every record in memory.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10m}
rate=${2:-500}
port=${SOAK_PORT:-18099}
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/inarious" ./cmd/inarious
go build -o "$work/inarious-load" ./cmd/inarious-load
common=(--log-level warn --partitions 8)
if [ -n "${SOAK_BROKERS:-}" ]; then
  "$work/inarious" worker --brokers "$SOAK_BROKERS" --data-dir "$work/worker" \
    --metrics-listen "127.0.0.1:$((port + 1))" "${common[@]}" &
  pids+=($!); worker=$!
  "$work/inarious" api --brokers "$SOAK_BROKERS" --data-dir "$work/api" --listen "127.0.0.1:$port" \
    --trusted-proxies 127.0.0.1 "${common[@]}" &
  pids+=($!)
else
  "$work/inarious" --data-dir "$work/data" --embedded-kafka-port 0 --listen "127.0.0.1:$port" \
    --trusted-proxies 127.0.0.1 "${common[@]}" &
  pids+=($!); worker=""
fi
for _ in $(seq 1 600); do curl -sf "127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done

# One process's line: RSS, live heap after the last GC, goroutines.
probe() {
  curl -s "$1/metrics" | awk -v name="$2" '
    /^process_resident_memory_bytes / {rss=$2}
    /^go_gc_heap_live_bytes / {live=$2}
    /^go_goroutines / {g=$2}
    END {printf "  %s rss %6.1f MiB live heap %5.1f MiB goroutines %4d", name, rss/1048576, live/1048576, g}'
}
sample() {
  printf '%-6s' "$1"
  probe "http://127.0.0.1:$port" api
  [ -n "$worker" ] && probe "http://127.0.0.1:$((port + 1))" worker
  echo
}

sample start
"$work/inarious-load" --target "http://127.0.0.1:$port" --mix mixed --clients 2000 --connections 16 \
  --rate "$rate" --duration "$duration" --probe-every 100 > "$work/load.txt" &
load=$!
SECONDS=0
while kill -0 $load 2>/dev/null; do
  sleep 30; elapsed=$SECONDS
  sample "${elapsed}s"
done
wait $load
cat "$work/load.txt"
sample end
