#!/usr/bin/env bash
# Idle CPU of the one-command run (embedded broker + worker + API), several
# binaries side by side, for BENCHMARKS.md ("Quiet when idle").
#
#   scripts/idle-cpu.sh NAME=BINARY [NAME=BINARY ...]
#   TEMPLATE=/tmp/one-million ROUNDS=3 scripts/idle-cpu.sh before=/tmp/a/inarious after=/tmp/b/inarious
#
# Per round and binary (the order alternating between rounds): a fresh data
# dir (empty, or a copy of TEMPLATE, the --data-dir of a run that filled a
# table), start, wait for /readyz, let it settle SETTLE seconds (default 15;
# longer with a large TEMPLATE, whose windowed buckets may close at start),
# then utime+stime from /proc/PID/stat over WINDOW seconds (default 60),
# printed as % of one core. Nothing sends requests meanwhile. The last lines
# are the medians. PORT (HTTP, default 18280) and KPORT (embedded broker,
# default 29280) can be set; TASKSET (e.g. "taskset -c 1") pins the server.
set -euo pipefail
ROUNDS=${ROUNDS:-3} SETTLE=${SETTLE:-15} WINDOW=${WINDOW:-60}
PORT=${PORT:-18280} KPORT=${KPORT:-29280}
TEMPLATE=${TEMPLATE:-} TASKSET=${TASKSET:-}
[ $# -ge 1 ] || { sed -n '2,16p' "$0" >&2; exit 2; }

work=$(mktemp -d /tmp/idle-cpu.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
free_port() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $PORT $KPORT; do free_port "$p" || { echo "port $p is in use" >&2; exit 1; }; done

declare -A results
names=()
for arg in "$@"; do names+=("${arg%%=*}"); done

run() { # name binary
	local dir=$work/data t0 c0 t1 c1 pct
	rm -rf "$dir"
	if [ -n "$TEMPLATE" ]; then cp -a "$TEMPLATE" "$dir"; else mkdir -p "$dir"; fi
	$TASKSET "$2" --data-dir "$dir" --embedded-kafka-port "$KPORT" --listen "127.0.0.1:$PORT" \
		--log-level warn >"$work/$1.log" 2>&1 &
	pid=$!
	until curl -sf -o /dev/null "http://127.0.0.1:$PORT/readyz"; do
		kill -0 "$pid" 2>/dev/null || { echo "$1 died:" >&2; cat "$work/$1.log" >&2; exit 1; }
		sleep 0.1
	done
	sleep "$SETTLE"
	t0=$(date +%s.%N) c0=$(ticks "$pid")
	sleep "$WINDOW"
	t1=$(date +%s.%N) c1=$(ticks "$pid")
	pct=$(echo "scale=3; 100 * ($c1 - $c0) / $hz / ($t1 - $t0)" | bc)
	echo "$1 round $r: $pct % of a core ($((c1 - c0)) ticks in $(printf %.1f "$(echo "$t1 - $t0" | bc)") s, load $(cut -d' ' -f1 /proc/loadavg))"
	results[$1]+="$pct "
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	pid=
	until free_port "$PORT" && free_port "$KPORT"; do sleep 0.2; done
}

for ((r = 1; r <= ROUNDS; r++)); do
	order=("$@")
	if ((r % 2 == 0)); then
		order=()
		for ((i = $# - 1; i >= 0; i--)); do order+=("${@:i+1:1}"); done
	fi
	for arg in "${order[@]}"; do run "${arg%%=*}" "${arg#*=}"; done
done
for n in "${names[@]}"; do
	# shellcheck disable=SC2086
	echo "$n median: $(printf '%s\n' ${results[$n]} | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}') % of a core"
done
