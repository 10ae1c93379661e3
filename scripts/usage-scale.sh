#!/usr/bin/env bash
# Measures the API at a large table, two API binaries side by side (e.g. before
# and after a change), for BENCHMARKS.md ("GET /usage at 1M clients").
#
#   scripts/usage-scale.sh CLIENTS ROUNDS NAME=BINARY [NAME=BINARY ...]
#
# One all-in-one `inarious` (the first binary; embedded broker + worker) holds
# the table; `inarious-bench fill` puts CLIENTS clients in it. Each measured
# API is a separate `inarious api` process on that broker with its own data
# dir, run one at a time, ROUNDS rounds, the order alternating. Per round:
# cold start to ready, idle CPU (no dashboard, then one SSE subscriber; 30 s
# each from /proc/PID/stat), GET /usage?limit=50 (1 connection; 32
# connections with GET /usage/{client} at 200/s beside it), GET
# /usage/{client} at 1,000/s, RSS and peak RSS, warm start to ready.
# Needs inarious-bench and inarious-load built ($IBENCH, $LOAD). Ports
# (KPORT, BPORT, APORT), the data dir (BASE) and the idle window (IDLE, s)
# can be set. Output: one line per figure in $OUT (default /tmp/usage-scale.txt).
set -euo pipefail
CLIENTS=$1 ROUNDS=$2
shift 2
OUT=${OUT:-/tmp/usage-scale.txt}
KPORT=${KPORT:-29192} BPORT=${BPORT:-18191} APORT=${APORT:-18190}
BASE=${BASE:-/tmp/usage-scale-data}
IDLE=${IDLE:-30}
LOAD=${LOAD:-/tmp/inarious-load} IBENCH=${IBENCH:-/tmp/inarious-bench}
T=http://127.0.0.1:$APORT
first=${1#*=}

case $BASE in /tmp/?*) ;; *) echo "BASE must be under /tmp (it is wiped)" >&2; exit 1 ;; esac
rm -rf "$BASE" && mkdir -p "$BASE"
: >"$OUT"
say() { echo "$*" | tee -a "$OUT"; }
ms_now() { date +%s%3N; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/{print $2}' "/proc/$1/status"; }
free_port() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $KPORT $BPORT $APORT; do free_port $p || { echo "port $p is in use" >&2; exit 1; }; done
wait_ready() { # url pid
	until curl -sf -o /dev/null "$1/readyz"; do
		kill -0 "$2" 2>/dev/null || { echo "process $2 died" >&2; exit 1; }
		sleep 0.02
	done
}

"$first" --data-dir "$BASE/backend" --embedded-kafka-port "$KPORT" --listen 127.0.0.1:$BPORT \
	--log-level warn >"$BASE/backend.log" 2>&1 &
backend=$!
trap 'kill $backend 2>/dev/null; [ -n "${api:-}" ] && kill $api 2>/dev/null; true' EXIT
wait_ready http://127.0.0.1:$BPORT $backend
say "backend pid $backend; filling $CLIENTS clients"
"$IBENCH" fill -clients "$CLIENTS" -brokers 127.0.0.1:$KPORT | tee -a "$OUT"
until n=$(curl -sf "http://127.0.0.1:$BPORT/usage?limit=1" | sed -n 's/.*"total_clients":\([0-9]*\).*/\1/p') &&
	[ "${n:-0}" -ge "$CLIENTS" ]; do sleep 2; done
say "backend view holds $n clients"

start_api() { # name bin -> sets api (pid) and took (ms to ready)
	local t0
	t0=$(ms_now)
	"$2" api --brokers 127.0.0.1:$KPORT --data-dir "$BASE/api-$1" --listen 127.0.0.1:$APORT \
		--trusted-proxies 127.0.0.1 --log-level warn >>"$BASE/api-$1.log" 2>&1 &
	api=$!
	wait_ready "$T" $api
	took=$(($(ms_now) - t0))
}
stop_api() { kill -TERM $api; wait $api || true; api=; }
idle_cpu() { # percent of one core over $IDLE s
	local a b
	a=$(cpu_ticks $api); sleep "$IDLE"; b=$(cpu_ticks $api)
	awk -v d=$((b - a)) -v s="$IDLE" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", 100*d/hz/s}'
}
load() { # name label args...
	local name=$1 label=$2
	shift 2
	"$LOAD" --target $T --probe-every 0 --timeout 120s "$@" --json >"$BASE/load-$name-$label-$round.json"
	python3 - "$BASE/load-$name-$label-$round.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
l, st = r["latency"], r["status"]
print("req/s %.0f p50 %.2f p99 %.2f max %.1f ms n %d non2xx %d errors %d" % (r["throughput_rps"], l["p50_ms"], l["p99_ms"], l["max_ms"], r["requests"], st["4xx"] + st["5xx"], st["errors"]))
EOF
}

pairs=("$@")
for round in $(seq 1 "$ROUNDS"); do
	order=("${pairs[@]}")
	if ((round % 2 == 0)); then # alternate who goes first
		order=()
		for ((i = ${#pairs[@]} - 1; i >= 0; i--)); do order+=("${pairs[i]}"); done
	fi
	for pair in "${order[@]}"; do
		name=${pair%%=*} bin=${pair#*=}
		rm -rf "$BASE/api-$name"
		start_api "$name" "$bin"
		say "round $round $name cold_start_ms $took"
		sleep 5 # let the start settle
		say "round $round $name idle_cpu_pct $(idle_cpu)"
		say "round $round $name rss_idle_mib $(($(rss_kib $api) / 1024))"
		curl -sN "$T/dashboard/events" >/dev/null &
		sse=$!
		sleep 2
		say "round $round $name idle_cpu_sse_pct $(idle_cpu)"
		kill $sse; wait $sse 2>/dev/null || true
		say "round $round $name list_1conn $(load "$name" list1 --mix usage-list --connections 1 --duration 20s --warmup=false)"
		load "$name" get-beside --mix usage-get --connections 4 --rate 200 --duration 20s >"$BASE/beside.txt" &
		bl=$!
		say "round $round $name list_32conn $(load "$name" list32 --mix usage-list --connections 32 --duration 20s --warmup=false)"
		wait $bl
		say "round $round $name get_beside_32list $(cat "$BASE/beside.txt")"
		say "round $round $name get_1000rps $(load "$name" get --mix usage-get --connections 16 --rate 1000 --duration 20s)"
		say "round $round $name rss_after_mib $(($(rss_kib $api) / 1024)) peak_rss_mib $(($(hwm_kib $api) / 1024))"
		stop_api
		start_api "$name" "$bin"
		say "round $round $name warm_start_ms $took"
		stop_api
	done
done

# Medians over the rounds, per binary and figure.
python3 - "$OUT" <<'PY' | tee -a "$OUT"
import re, statistics, sys
vals = {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) < 5 or f[0] != "round":
        continue
    name, metric, rest = f[2], f[3], f[4:]
    pairs = re.findall(r"(\S+) ([0-9.]+)", " ".join(rest))
    if re.fullmatch(r"[0-9.]+", rest[0]):
        pairs = [("", rest[0])] + re.findall(r"(\S+) ([0-9.]+)", " ".join(rest[1:]))
    for k, v in pairs:
        if re.fullmatch(r"[0-9.]+", v):
            vals.setdefault((name, metric), {}).setdefault(k, []).append(float(v))
for (name, metric), fields in sorted(vals.items()):
    print("median", name, metric, " ".join(f"{k} {statistics.median(v):g}".strip() for k, v in fields.items()))
PY
