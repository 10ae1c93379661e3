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
  "$work/inarious" worker --brokers "$SOAK_BROKERS" --data-dir "$work/worker" "${common[@]}" &
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

rss() { awk '/^VmRSS:/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
sample() {
  local extra=""
  [ -n "$worker" ] && extra="  worker rss $(rss "$worker") MiB"
  curl -s "127.0.0.1:$port/metrics" | awk -v t="$1" -v extra="$extra" '
    /^process_resident_memory_bytes / {rss=$2}
    /^go_goroutines / {g=$2}
    /^go_memstats_heap_inuse_bytes / {heap=$2}
    END {printf "%-6s api rss %6.1f MiB  heap %6.1f MiB  goroutines %4d%s\n", t, rss/1048576, heap/1048576, g, extra}'
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
