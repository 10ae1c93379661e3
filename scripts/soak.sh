#!/usr/bin/env bash
# Soak: one all-in-one Inarious under a steady mixed load for a bounded time,
# sampling resident memory and goroutines from /metrics. Loopback only.
#   scripts/soak.sh [duration=10m] [rate=500]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10m}
rate=${2:-500}
port=${SOAK_PORT:-18099}
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/inarious" ./cmd/inarious
go build -o "$work/inarious-load" ./cmd/inarious-load
"$work/inarious" --data-dir "$work/data" --embedded-kafka-port 0 --listen "127.0.0.1:$port" \
  --trusted-proxies 127.0.0.1 --log-level warn &
server=$!
for _ in $(seq 1 300); do curl -sf "127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done

sample() {
  curl -s "127.0.0.1:$port/metrics" | awk -v t="$1" '
    /^process_resident_memory_bytes / {rss=$2}
    /^go_goroutines / {g=$2}
    /^go_memstats_heap_inuse_bytes / {heap=$2}
    END {printf "%-8s rss %7.1f MiB  heap %7.1f MiB  goroutines %5d\n", t, rss/1048576, heap/1048576, g}'
}

sample start
"$work/inarious-load" --target "http://127.0.0.1:$port" --mix mixed --clients 2000 --connections 16 \
  --rate "$rate" --duration "$duration" --probe-every 100 > "$work/load.txt" &
load=$!
elapsed=0
while kill -0 $load 2>/dev/null; do
  sleep 30; elapsed=$((elapsed + 30))
  sample "${elapsed}s"
done
wait $load
cat "$work/load.txt"
# Let in-flight events drain, then the final sample.
sleep 2
sample end
