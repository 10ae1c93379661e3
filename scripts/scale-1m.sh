#!/bin/bash
# A large table on Apache Kafka (scripts/kafka.sh on 19092): `inarious worker`
# and `inarious api` as separate processes, filled by inarious-bench fill;
# prints RSS and local disk of each once the worker has counted every event.
#   scripts/scale-1m.sh                                         1M clients, one event each
#   CLIENTS=1000000 PER_CLIENT=3 SPAN=168h scripts/scale-1m.sh  3 calls each over a week: windowed buckets
# Builds the binaries into a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-1000000} PER_CLIENT=${PER_CLIENT:-1} SPAN=${SPAN:-0s}
export KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093
KAFKA_FRESH=1 scripts/kafka.sh start >/dev/null
d=$(mktemp -d)
trap 'kill -TERM $W $A 2>/dev/null; wait; rm -rf "$d"' EXIT
go build -o "$d/inarious" ./cmd/inarious && go build -o "$d/inarious-bench" ./cmd/inarious-bench
"$d/inarious" worker --brokers 127.0.0.1:19092 --data-dir "$d/w" --metrics-listen 127.0.0.1:18191 --log-level warn & W=$!
"$d/inarious" api --brokers 127.0.0.1:19092 --data-dir "$d/a" --listen 127.0.0.1:18190 --log-level warn & A=$!
until curl -sf 127.0.0.1:18190/readyz >/dev/null; do sleep 0.5; done
t0=$(date +%s.%N)
"$d/inarious-bench" fill -brokers 127.0.0.1:19092 -clients "$CLIENTS" -per-client "$PER_CLIENT" -span "$SPAN"
events=$((CLIENTS * PER_CLIENT))
counted() { curl -s 127.0.0.1:18191/metrics | awk '/^inarious_usage_events_processed_total /{print int($2)}'; }
until [ "$(counted)" -ge "$events" ]; do sleep 1; done
echo "worker counted $events events $(echo "$(date +%s.%N) - $t0" | bc) s after the fill began"
until [ "$(curl -s '127.0.0.1:18190/usage?limit=1' | python3 -c 'import sys,json; print(json.load(sys.stdin)["total_clients"])')" -ge "$CLIENTS" ]; do sleep 1; done
sleep 10 # the API's windowed views follow the worker's closes
curl -s 127.0.0.1:18191/metrics | grep -E '^inarious_usage_(windows_emitted|late_events_dropped)_total'
for p in $W $A; do echo "pid $p $(grep -E 'VmRSS|VmHWM' /proc/$p/status | tr -s ' \n' ' ')"; done
du -sh "$d/w" "$d/a"
curl -s -o /dev/null -w 'GET /usage/{client}/series 1h of minutes: %{time_total}s\n' "127.0.0.1:18190/usage/10.0.0.1/series?step=1m&from=-1h"
