#!/usr/bin/env bash
# Refreshes cmd/inarious/default.pgo, the CPU profile `go build` uses for
# profile-guided optimization of the inarious binary (BENCHMARKS.md, "Third
# pass"). The profile merges what the binary spends its time on in every role:
#
#   1. `inarious api` on Apache Kafka with a worker beside it, under wrk:
#      /healthz, GET /usage/{client} and POST /users, 12 s each;
#   2. the worker draining Users (inarious-bench drain), Zipf and uniform;
#   3. the one-command run (embedded broker) under inarious-load's mixed load.
#
#   KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093 scripts/kafka.sh start
#   BROKERS=127.0.0.1:19092 scripts/pgo-profile.sh
#
# Environment: BROKERS (required), PORT [18190], WORK [/tmp/inarious-pgo].
# Takes about two minutes. Re-run it after large changes to the hot paths; a
# stale profile still builds, it only optimizes less.
set -euo pipefail
ROOT=$(cd "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/.." && pwd)
: "${BROKERS:?set BROKERS to an Apache Kafka, e.g. 127.0.0.1:19092 from scripts/kafka.sh}"
PORT=${PORT:-18190} WORK=${WORK:-/tmp/inarious-pgo}
command -v wrk >/dev/null || { echo "wrk is needed (Debian: apt-get install wrk)" >&2; exit 1; }
case $WORK in /tmp/?*) ;; *) echo "WORK must be under /tmp (it is wiped)" >&2; exit 1 ;; esac
rm -rf "$WORK" && mkdir -p "$WORK"
cd "$ROOT"
# Built without a profile, so the new one does not describe its own inlining.
go build -pgo=off -o "$WORK/inarious" ./cmd/inarious
go build -pgo=off -o "$WORK/inarious-bench" ./cmd/inarious-bench
go build -pgo=off -o "$WORK/inarious-load" ./cmd/inarious-load

pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
wait_url() { until curl -sf -o /dev/null "$1"; do sleep 0.1; done; }
T=http://127.0.0.1:$PORT

echo "pgo: api and worker under wrk" >&2
"$WORK/inarious" api --brokers "$BROKERS" --data-dir "$WORK/api" --listen 127.0.0.1:$PORT \
	--log-level warn --debug-pages >"$WORK/api.log" 2>&1 &
pids+=($!)
"$WORK/inarious" worker --brokers "$BROKERS" --data-dir "$WORK/worker" --log-level warn >"$WORK/worker.log" 2>&1 &
pids+=($!)
wait_url "$T/readyz"
curl -sf -o /dev/null "$T/healthz"
wait_url "$T/usage/127.0.0.1"
curl -sf -o "$WORK/api.prof" "$T/debug/pprof/profile?seconds=36" &
prof=$!
wrk -t1 -c32 -d12s "$T/healthz" >/dev/null
wrk -t1 -c32 -d12s "$T/usage/127.0.0.1" >/dev/null
wrk -t1 -c32 -d12s -s scripts/post-users.lua "$T" >/dev/null
wait "$prof"
kill "${pids[@]}" && wait "${pids[@]}" 2>/dev/null || true
pids=()

echo "pgo: worker drains" >&2
"$WORK/inarious-bench" drain -brokers "$BROKERS" -events 1000000 -clients 10000 -runs 2 -zipf 1.1 \
	-baseline=false -cpuprofile "$WORK/drain-zipf.prof" >"$WORK/drain-zipf.txt"
"$WORK/inarious-bench" drain -brokers "$BROKERS" -events 1000000 -clients 100000 -runs 2 \
	-baseline=false -cpuprofile "$WORK/drain-uniform.prof" >"$WORK/drain-uniform.txt"

echo "pgo: one command under mixed load" >&2
"$WORK/inarious" --embedded-kafka-port 0 --data-dir "$WORK/one" --listen 127.0.0.1:$PORT \
	--log-level warn --debug-pages --trusted-proxies 127.0.0.1 >"$WORK/one.log" 2>&1 &
pids+=($!)
wait_url "$T/readyz"
curl -sf -o "$WORK/one.prof" "$T/debug/pprof/profile?seconds=20" &
prof=$!
"$WORK/inarious-load" --target "$T" --mix mixed --clients 1000 --connections 16 --rate 3000 --duration 19s >"$WORK/load.txt"
wait "$prof"

go tool pprof -proto "$WORK/api.prof" "$WORK/drain-zipf.prof" "$WORK/drain-uniform.prof" "$WORK/one.prof" \
	>cmd/inarious/default.pgo
echo "pgo: wrote cmd/inarious/default.pgo ($(wc -c <cmd/inarious/default.pgo) bytes)" >&2
