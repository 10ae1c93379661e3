#!/usr/bin/env bash
# What quota enforcement costs per request (BENCHMARKS.md, "Quotas (issue
# 26)"): the one-command inarious (embedded broker, worker, API) pinned to
# SERVER_CPU, wrk pinned to LOADER_CPU, on GET /healthz, quotas off against
# quotas on (--quotas --quota-exempt= and a default policy of two limits no
# call reaches, so every call is decided and answered with RateLimit
# headers), side by side: RUNS rounds, the order reversed every other round,
# each server on fresh data. Prints per run wrk's req/s and the server's CPU
# per request (utime+stime from /proc over the wrk run, which a busy machine
# disturbs less than req/s), and the medians.
#
# Environment: RUNS [5], DURATION [10s], WARMUP [5s], CONNECTIONS [32],
# SERVER_CPU [1], LOADER_CPU [0], PORT [18480], EMBEDDED_PORT [29592],
# BIN [built from this tree], BASE [/tmp/quota-overhead].
set -euo pipefail
ROOT=$(cd "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/.." && pwd)
RUNS=${RUNS:-5} DURATION=${DURATION:-10s} WARMUP=${WARMUP:-5s} CONNECTIONS=${CONNECTIONS:-32}
SERVER_CPU=${SERVER_CPU:-1} LOADER_CPU=${LOADER_CPU:-0} PORT=${PORT:-18480} EMBEDDED_PORT=${EMBEDDED_PORT:-29592}
BASE=${BASE:-/tmp/quota-overhead}
T=http://127.0.0.1:$PORT
command -v wrk >/dev/null || { echo "wrk is needed (Debian: apt-get install wrk)" >&2; exit 1; }
case $BASE in /tmp/?*) ;; *) echo "BASE must be under /tmp (it is wiped)" >&2; exit 1 ;; esac
rm -rf "$BASE" && mkdir -p "$BASE"
if [ -z "${BIN:-}" ]; then
	BIN=$BASE/inarious
	(cd "$ROOT" && go build -o "$BIN" ./cmd/inarious)
fi
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; true' EXIT

HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

run() { # mode round: one measurement, req/s in rps and CPU µs per request in us (not in a subshell, so the EXIT trap stops a server left running)
	local mode=$1 round=$2 args=()
	[ "$mode" = on ] && args=(--quotas --quota-exempt=)
	if curl -s -o /dev/null "$T/healthz"; then echo "port $PORT is taken" >&2; exit 1; fi
	taskset -c "$SERVER_CPU" "$BIN" --data-dir "$BASE/$mode-$round" --listen 127.0.0.1:$PORT \
		--embedded-kafka-port "$EMBEDDED_PORT" --log-level warn "${args[@]}" >"$BASE/$mode-$round.log" 2>&1 &
	pid=$!
	until curl -sf -o /dev/null "$T/readyz"; do
		kill -0 "$pid" 2>/dev/null || { echo "server died, see $BASE/$mode-$round.log" >&2; exit 1; }
		sleep 0.05
	done
	if [ "$mode" = on ]; then
		curl -sf -o /dev/null -XPUT "$T/quotas/%2A" -H 'Content-Type: application/json' \
			-d '{"limits":[{"window":"1m","limit":1000000000000000},{"window":"1d","limit":1000000000000000}]}'
		for ((i = 0; ; i++)); do # a client's policy is read again within --quota-refresh
			curl -s -D - -o /dev/null "$T/healthz" | grep -qi '^ratelimit:' && break
			((i < 50)) || { echo "quotas on, but /healthz has no RateLimit header" >&2; exit 1; }
			sleep 0.1
		done
	fi
	taskset -c "$LOADER_CPU" wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" "$T/healthz" >/dev/null
	local t0 out
	t0=$(cpu_ticks "$pid")
	out=$(taskset -c "$LOADER_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "$T/healthz")
	rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
	us=$(awk -v t="$(($(cpu_ticks "$pid") - t0))" -v hz="$HZ" '/requests in/ {printf "%.2f", t/hz*1e6/$1}' <<<"$out")
	kill -TERM "$pid"
	wait "$pid" 2>/dev/null || true
	pid=
}

declare -A results cpu
for ((r = 1; r <= RUNS; r++)); do
	order=(off on)
	((r % 2 == 0)) && order=(on off)
	for mode in "${order[@]}"; do
		run "$mode" "$r"
		echo "round $r quotas $mode: $rps req/s, $us µs CPU per request"
		results[$mode]+="$rps "
		cpu[$mode]+="$us "
	done
done
median() { tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
off=$(echo "${results[off]}" | median) on=$(echo "${results[on]}" | median)
echo "median req/s: quotas off $off, quotas on $on ($(awk -v a="$off" -v b="$on" 'BEGIN {printf "%+.1f %%", (b-a)/a*100}'))"
off=$(echo "${cpu[off]}" | median) on=$(echo "${cpu[on]}" | median)
echo "median CPU per request: quotas off $off µs, quotas on $on µs ($(awk -v a="$off" -v b="$on" 'BEGIN {printf "%+.1f %%", (b-a)/a*100}'))"
