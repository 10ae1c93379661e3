#!/usr/bin/env bash
# What the usage group's alert check costs per event (BENCHMARKS.md,
# "Alerts (issue 26)"), before and after a change, side by side: the
# BenchmarkCheckAlerts and BenchmarkCheckQuotaAlerts cases of
# processors/usage, as CPU time per check rather than wall time, which a
# shared machine's load inflates: (task-clock of N checks - task-clock of 2)
# / (N-2), GOMAXPROCS=1, from perf stat. ROUNDS rounds, the order of the two
# trees reversed every other round; prints each measure, then the medians.
#
# Environment: BEFORE [main] (a git revision; its cases that exist are run),
# ROUNDS [7], BASE [/tmp/alert-check-cpu].
set -euo pipefail
ROOT=$(cd "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/.." && pwd)
BEFORE=${BEFORE:-main} ROUNDS=${ROUNDS:-7} BASE=${BASE:-/tmp/alert-check-cpu}
command -v perf >/dev/null || { echo "perf is needed (Debian: apt-get install linux-perf)" >&2; exit 1; }
case $BASE in /tmp/?*) ;; *) echo "BASE must be under /tmp (it is wiped)" >&2; exit 1 ;; esac
rm -rf "$BASE" && mkdir -p "$BASE/before-src"
git -C "$ROOT" archive "$BEFORE" | tar -x -C "$BASE/before-src"
(cd "$BASE/before-src" && go test -c -o "$BASE/before.test" ./processors/usage/)
(cd "$ROOT" && go test -c -o "$BASE/after.test" ./processors/usage/)
# Checks per measure, by case: about a second of CPU each.
declare -A N=(
	['BenchmarkCheckAlerts/rules=none$']=40000000
	['BenchmarkCheckAlerts/rules=other-clients$']=20000000
	['BenchmarkCheckAlerts/rules=every-client$']=10000000
	['BenchmarkCheckQuotaAlerts/policy=default$']=10000000
	['BenchmarkCheckQuotaAlerts/policy=own-of-10000$']=10000000
	['BenchmarkCheckQuotaAlerts/policy=changed-mid-window-past-thresholds$']=4000000
)
CASES=('BenchmarkCheckAlerts/rules=none$' 'BenchmarkCheckAlerts/rules=other-clients$' 'BenchmarkCheckAlerts/rules=every-client$'
	'BenchmarkCheckQuotaAlerts/policy=default$' 'BenchmarkCheckQuotaAlerts/policy=own-of-10000$'
	'BenchmarkCheckQuotaAlerts/policy=changed-mid-window-past-thresholds$')
clock() { perf stat -e task-clock -x, "$@" 2>&1 >/dev/null | awk -F, '/task-clock/{print $1}'; }
out=$BASE/results.txt
: >"$out"
for r in $(seq 1 "$ROUNDS"); do
	order="before after"
	[ $((r % 2)) -eq 0 ] && order="after before"
	for tree in $order; do
		bin=$BASE/$tree.test
		for c in "${CASES[@]}"; do
			"$bin" -test.list "${c%%/*}" | grep -q . || continue
			n=${N[$c]}
			two=$(clock "$bin" -test.run XXX -test.bench "$c" -test.benchtime 2x -test.cpu 1)
			many=$(clock "$bin" -test.run XXX -test.bench "$c" -test.benchtime "${n}x" -test.cpu 1)
			ns=$(awk -v a="$many" -v b="$two" -v n="$n" 'BEGIN{printf "%.2f", (a-b)*1e6/(n-2)}')
			echo "$tree ${c%\$} $ns load=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$out"
		done
	done
done
echo "medians, ns of CPU per check:"
awk '{k=$2" "$1; v[k]=v[k]" "$3} END{for (k in v) print k, v[k]}' "$out" | sort | while read -r c tree vals; do
	echo "$c $tree $(echo "$vals" | tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')"
done
