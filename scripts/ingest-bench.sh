#!/usr/bin/env bash
# Ingest throughput of `inarious api` on Apache Kafka, side by side in one run
# (BENCHMARKS.md, "Ingest (issue 24)"): the API pinned to one core, the load
# generator (and the broker, with KAFKA_PID) on the other. Per round and named
# binary, a fresh API is measured on GET /healthz (req/s, for scale), POST
# /v1/traces (512 server spans per export, protobuf, plain and gzipped) and
# POST /events (100 JSON events per batch); the order of the binaries
# reverses every other round. Per measurement: req/s, spans or events taken
# per second, 429s, and the API's CPU per item and share of its core
# (utime+stime from /proc over the run). Medians at the end, with items per
# second of API CPU (what a core of its own would take, whoever else uses
# the machine); raw lines in $OUT.
#
#   INGEST_BROKERS=127.0.0.1:59092 KAFKA_PID=$(cat .cache/kafka/kafka.pid) \
#     scripts/ingest-bench.sh [NAME=BINARY ...]   (default: current=<built from this tree>)
#
# Environment: RUNS [3], DURATION [8s], CONNECTIONS [16], MIXES
# [healthz,otlp,otlp-gzip,events], SERVER_CPU [1], LOADER_CPU [0], PORT [18497],
# INGEST_BROKERS (required), KAFKA_PID [unset: the broker is not pinned],
# LOAD [built from this tree: inarious-load], OUT [/tmp/ingest-bench.txt],
# BASE [/tmp/ingest-bench-data].
set -euo pipefail
ROOT=$(cd "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/.." && pwd)
RUNS=${RUNS:-3} DURATION=${DURATION:-8s} CONNECTIONS=${CONNECTIONS:-16}
MIXES=${MIXES:-healthz,otlp,otlp-gzip,events}
SERVER_CPU=${SERVER_CPU:-1} LOADER_CPU=${LOADER_CPU:-0} PORT=${PORT:-18497}
BROKERS=${INGEST_BROKERS:?set INGEST_BROKERS to an Apache Kafka broker, e.g. 127.0.0.1:59092}
OUT=${OUT:-/tmp/ingest-bench.txt} BASE=${BASE:-/tmp/ingest-bench-data}
T=http://127.0.0.1:$PORT
HZ=$(getconf CLK_TCK)
IFS=, read -ra mixes <<<"$MIXES"

case $BASE in /tmp/?*) ;; *) echo "BASE must be under /tmp (it is wiped)" >&2; exit 1 ;; esac
rm -rf "$BASE" && mkdir -p "$BASE"
if [ -z "${LOAD:-}" ]; then
	LOAD=$BASE.bin/inarious-load
	(cd "$ROOT" && go build -o "$LOAD" ./cmd/inarious-load)
fi
if [ $# -eq 0 ]; then
	(cd "$ROOT" && go build -o "$BASE.bin/inarious" ./cmd/inarious)
	set -- "current=$BASE.bin/inarious"
fi
declare -A BIN
names=()
for nb in "$@"; do
	BIN[${nb%%=*}]=${nb#*=}
	names+=("${nb%%=*}")
done

: >"$OUT"
say() { echo "$*" | tee -a "$OUT"; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; true' EXIT

start() { # name round
	local d=$BASE/$2-$1
	# 1 MiB bodies: an SDK's uncompressed batch of 512 spans is about 160 KiB.
	taskset -c "$SERVER_CPU" "${BIN[$1]}" api --brokers "$BROKERS" --data-dir "$d" --listen 127.0.0.1:$PORT \
		--trusted-proxies 127.0.0.1 --max-body-bytes 1048576 --log-level error >"$d.log" 2>&1 &
	pid=$!
	until curl -sf -o /dev/null "$T/readyz"; do
		kill -0 "$pid" 2>/dev/null || { echo "api died, see $d.log" >&2; exit 1; }
		sleep 0.05
	done
}

measure() { # name round mix
	local args=(--mix "${3%-gzip}") a b out json
	[[ $3 == *-gzip ]] && args+=(--gzip)
	taskset -c "$LOADER_CPU" "$LOAD" --target "$T" "${args[@]}" --connections "$CONNECTIONS" --duration 2s \
		--probe-every 0 --warmup=false >/dev/null
	a=$(cpu_ticks "$pid")
	json=$(taskset -c "$LOADER_CPU" "$LOAD" --target "$T" "${args[@]}" --connections "$CONNECTIONS" --duration "$DURATION" \
		--probe-every 0 --warmup=false --json)
	b=$(cpu_ticks "$pid")
	out=$(python3 -c '
import json, sys
r = json.loads(sys.argv[1]); ticks, hz = int(sys.argv[2]), int(sys.argv[3])
n = r.get("items") or r["requests"]
cpu = ticks / hz
print("%.0f\t%.0f\t%d\t%d\t%.2f\t%.0f" % (r["throughput_rps"], r.get("items_per_s", 0), r["codes"].get("429", 0),
    r["requests"] - r["status"]["2xx"], 1e6 * cpu / n if n else 0, 100 * cpu / r["elapsed_s"]))
' "$json" "$((b - a))" "$HZ")
	say "$(printf '%s\t%s\t%s\t%s\tload=%s' "$2" "$1" "$3" "$out" "$(cut -d' ' -f1 /proc/loadavg)")"
}

if [ -n "${KAFKA_PID:-}" ]; then taskset -a -p -c "$LOADER_CPU" "$KAFKA_PID" >/dev/null; fi
say "# round	binary	mix	req/s	items/s	429s	non-2xx	API CPU µs per item (per request for healthz)	API CPU % of its core	1-min load"
for round in $(seq 1 "$RUNS"); do
	order=("${names[@]}")
	if ((round % 2 == 0)); then
		order=()
		for ((i = ${#names[@]} - 1; i >= 0; i--)); do order+=("${names[i]}"); done
	fi
	for name in "${order[@]}"; do
		start "$name" "$round"
		for mix in "${mixes[@]}"; do measure "$name" "$round" "$mix"; done
		kill -TERM "$pid"
		wait "$pid" || true
		pid=
	done
done

echo "# medians of $RUNS rounds"
python3 - "$OUT" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    if line.startswith("#"):
        continue
    rnd, name, mix, rps, items, r429, non2xx, cpu, util, _ = line.rstrip("\n").split("\t")
    rows.setdefault((name, mix), []).append((float(rps), float(items), int(r429), int(non2xx), float(cpu), float(util)))
# Per API CPU second: what the API does with a core of its own, whoever else shares the machine.
print("binary\tmix\treq/s\titems/s\t429s\tnon-2xx\tAPI CPU µs/item\tAPI CPU %\titems (requests) per API CPU second")
for (name, mix), v in rows.items():
    med = lambda i: statistics.median(x[i] for x in v)
    print(f"{name}\t{mix}\t{med(0):.0f}\t{med(1):.0f}\t{med(2):.0f}\t{med(3):.0f}\t{med(4):.2f}\t{med(5):.0f}\t{1e6 / med(4):.0f}")
EOF
