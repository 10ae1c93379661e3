#!/usr/bin/env bash
# Cost per request of the API, side by side in one run (BENCHMARKS.md, "Cost
# per request"): a bare gorilla/mux server, `inarious api` on Apache Kafka and
# the one-command `inarious`, each pinned to core 0, wrk pinned to core 1.
#
#   scripts/api-cost.sh [NAME=BINARY ...]      (default: current=<built from this tree>)
#
# Each named inarious binary is measured as `api` (when API_COST_BROKERS is set,
# e.g. 127.0.0.1:29092 from `KAFKA_PORT=29092 KAFKA_CONTROLLER_PORT=29093
# scripts/kafka.sh start`) and as the one-command run (embedded broker, worker,
# view in one process), on /healthz, GET /usage/{client} and POST /users (a new
# user per request, scripts/post-users.lua; embedded bbolt store); the bare
# router on /healthz. RUNS rounds (default 3), the order of the servers reversed every
# other round; each server starts fresh (own data dir) for its round. Per
# measurement: wrk's req/s and the server's CPU per request (utime+stime from
# /proc during the wrk run). Prints the medians at the end; raw lines in $OUT.
#
# Environment: RUNS [3], DURATION [8s], CONNECTIONS [32], WARMUP [2s],
# MODES [api,all: which runs of each binary], PATHS [/healthz,/usage/127.0.0.1,POST /users:
# what each of them is measured on; the bare router is always measured on /healthz],
# SERVER_CPU [0], LOADER_CPU [1], PORT [18180], EMBEDDED_PORT [29292],
# API_COST_BROKERS [unset: skip `inarious api`], KAFKA_PID [unset: the broker's
# pid, pinned to the loader's core so it takes nothing from the server's],
# IBENCH [built from this tree],
# OUT [/tmp/api-cost.txt], BASE [/tmp/api-cost-data].
set -euo pipefail
ROOT=$(cd "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/.." && pwd)
RUNS=${RUNS:-3} DURATION=${DURATION:-8s} CONNECTIONS=${CONNECTIONS:-32} WARMUP=${WARMUP:-2s}
SERVER_CPU=${SERVER_CPU:-0} LOADER_CPU=${LOADER_CPU:-1}
PORT=${PORT:-18180} EMBEDDED_PORT=${EMBEDDED_PORT:-29292}
BROKERS=${API_COST_BROKERS:-}
MODES=${MODES:-api,all} PATHS=${PATHS:-/healthz,/usage/127.0.0.1,POST /users}
IFS=, read -ra paths <<<"$PATHS"
OUT=${OUT:-/tmp/api-cost.txt} BASE=${BASE:-/tmp/api-cost-data}
T=http://127.0.0.1:$PORT
HZ=$(getconf CLK_TCK)

command -v wrk >/dev/null || { echo "wrk is needed (Debian: apt-get install wrk)" >&2; exit 1; }
case $BASE in /tmp/?*) ;; *) echo "BASE must be under /tmp (it is wiped)" >&2; exit 1 ;; esac
if [ -z "${IBENCH:-}" ]; then
	IBENCH=$BASE.bin/inarious-bench
	(cd "$ROOT" && go build -o "$IBENCH" ./cmd/inarious-bench)
fi
if [ $# -eq 0 ]; then
	(cd "$ROOT" && go build -o "$BASE.bin/inarious" ./cmd/inarious)
	set -- "current=$BASE.bin/inarious"
fi
declare -A BIN
targets=(bare)
for nb in "$@"; do
	BIN[${nb%%=*}]=${nb#*=}
	[ -n "$BROKERS" ] && [[ ,$MODES, == *,api,* ]] && targets+=("api:${nb%%=*}")
	[[ ,$MODES, == *,all,* ]] && targets+=("all:${nb%%=*}")
done

: >"$OUT"
say() { echo "$*" | tee -a "$OUT"; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; true' EXIT
wait_url() { # url: until it answers 200, or the server died
	until curl -sf -o /dev/null "$1"; do
		kill -0 "$pid" 2>/dev/null || { echo "server died, see $BASE/*.log" >&2; exit 1; }
		sleep 0.05
	done
}

# The API's view must hold 127.0.0.1 for GET /usage/127.0.0.1 to answer 200.
# `inarious api` runs no worker, so one is run once beforehand to count a call.
seed_usage() {
	local name=$1 d=$BASE/seed w
	rm -rf "$d"
	"${BIN[$name]}" worker --brokers "$BROKERS" --data-dir "$d/worker" --log-level warn >"$d.worker.log" 2>&1 &
	w=$!
	"${BIN[$name]}" api --brokers "$BROKERS" --data-dir "$d/api" --listen 127.0.0.1:$PORT --log-level warn >"$d.api.log" 2>&1 &
	pid=$!
	wait_url "$T/readyz"
	curl -sf -o /dev/null "$T/healthz"
	wait_url "$T/usage/127.0.0.1"
	kill -TERM "$pid" "$w"
	wait "$pid" "$w" || true
	pid=
}

start() { # target round
	local kind=${1%%:*} name=${1#*:} d=$BASE/$2-${1/:/-}
	rm -rf "$d" && mkdir -p "$d"
	case $kind in
	bare) taskset -c "$SERVER_CPU" "$IBENCH" bare-router -listen 127.0.0.1:$PORT >"$d.log" 2>&1 & ;;
	api) taskset -c "$SERVER_CPU" "${BIN[$name]}" api --brokers "$BROKERS" --data-dir "$d" \
		--listen 127.0.0.1:$PORT --log-level warn >"$d.log" 2>&1 & ;;
	all) taskset -c "$SERVER_CPU" "${BIN[$name]}" --embedded-kafka-port "$EMBEDDED_PORT" --data-dir "$d" \
		--listen 127.0.0.1:$PORT --log-level warn >"$d.log" 2>&1 & ;;
	esac
	pid=$!
	wait_url "$T/healthz"
	if [ "$kind" != bare ]; then
		wait_url "$T/readyz"
		if [[ ,$PATHS, == *,/usage/127.0.0.1,* ]]; then
			wait_url "$T/usage/127.0.0.1" # counted: the healthz calls above are this client's
		fi
	fi
}

measure() { # target round path ("POST /users": new users from scripts/post-users.lua)
	local a b out rps reqs url=$T$3 script=()
	if [ "$3" = "POST /users" ]; then url=$T script=(-s "$ROOT/scripts/post-users.lua"); fi
	taskset -c "$LOADER_CPU" wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" "${script[@]}" "$url" >/dev/null
	a=$(cpu_ticks "$pid") ka=$([ -n "${KAFKA_PID:-}" ] && cpu_ticks "$KAFKA_PID" || echo 0)
	out=$(taskset -c "$LOADER_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "${script[@]}" "$url")
	b=$(cpu_ticks "$pid") kb=$([ -n "${KAFKA_PID:-}" ] && cpu_ticks "$KAFKA_PID" || echo 0)
	rps=$(awk '/^Requests\/sec/{print $2}' <<<"$out")
	reqs=$(awk '/requests in/{print $1}' <<<"$out")
	if grep -q 'Non-2xx' <<<"$out"; then echo "non-2xx answers from $1 $3: $out" >&2; exit 1; fi
	say "$(printf '%s\t%s\t%s\t%.0f\t%.1f\t%.1f\tload=%s' "$2" "$1" "$3" "$rps" \
		"$(awk -v t=$((b - a)) -v n="$reqs" -v hz="$HZ" 'BEGIN{print 1e6*t/hz/n}')" \
		"$(awk -v t=$((kb - ka)) -v n="$reqs" -v hz="$HZ" 'BEGIN{print 1e6*t/hz/n}')" \
		"$(cut -d' ' -f1 /proc/loadavg)")"
}

stop() {
	kill -TERM "$pid"
	wait "$pid" || true
	pid=
}

rm -rf "$BASE" && mkdir -p "$BASE"
if [ -n "${KAFKA_PID:-}" ]; then taskset -a -p -c "$LOADER_CPU" "$KAFKA_PID" >/dev/null; fi
if [ -n "$BROKERS" ] && [[ ,$PATHS, == *,/usage/127.0.0.1,* ]]; then
	for nb in "$@"; do seed_usage "${nb%%=*}"; done
fi
say "# round	target	path	req/s	server CPU µs/req	broker CPU µs/req (KAFKA_PID)	1-min load"
for round in $(seq 1 "$RUNS"); do
	order=("${targets[@]}")
	if ((round % 2 == 0)); then
		order=()
		for ((i = ${#targets[@]} - 1; i >= 0; i--)); do order+=("${targets[i]}"); done
	fi
	for t in "${order[@]}"; do
		start "$t" "$round"
		if [ "$t" = bare ]; then
			measure "$t" "$round" /healthz
		else
			for path in "${paths[@]}"; do measure "$t" "$round" "$path"; done
		fi
		stop
	done
done

echo "# medians of $RUNS rounds"
python3 - "$OUT" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    if line.startswith("#"):
        continue
    rnd, target, path, rps, cpu, kcpu, _ = line.rstrip("\n").split("\t")
    rows.setdefault((target, path), {})[rnd] = (float(rps), float(cpu), float(kcpu))
bare = rows.get(("bare", "/healthz"), {})
bare_rps = statistics.median(r for r, _, _ in bare.values()) if bare else 0
bare_cpu = statistics.median(c for _, c, _ in bare.values()) if bare else 0
print("target\tpath\treq/s\treq/s vs bare /healthz\tbare's CPU/req ÷ this one's\tper-round req/s vs bare: median (min-max)\tserver CPU µs/req\tbroker CPU µs/req")
for (target, path), byround in rows.items():
    v = byround.values()
    rps = statistics.median(r for r, _, _ in v)
    cpu = statistics.median(c for _, c, _ in v)
    kcpu = statistics.median(k for _, _, k in v)
    ratio = f"{rps / bare_rps:.2f}\t" if bare_rps else "-\t"
    ratio += f"{bare_cpu / cpu:.2f}" if bare_cpu and cpu else "-"
    # The machine's speed drifts between rounds; a ratio within one round is steadier.
    per = [r[0] / bare[k][0] for k, r in byround.items() if k in bare]
    ratio += f"\t{statistics.median(per):.3f} ({min(per):.3f}-{max(per):.3f})" if per else "\t-"
    print(f"{target}\t{path}\t{rps:.0f}\t{ratio}\t{cpu:.1f}\t{kcpu:.1f}")
EOF
