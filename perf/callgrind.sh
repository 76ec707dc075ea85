#!/bin/sh
# Instruction counts of the forwarding path (perf/bench_forward) under
# valgrind --tool=callgrind: only timed_forward (the switch) and
# timed_floor (libsrtp unprotect + K protects) are collected, so set-up
# (certificates, ICE, DTLS, pre-protecting packets) is excluded.
#
# Usage: perf/callgrind.sh [build dir] [output dir]
#   build dir:  where perf/bench_forward was built (default: build)
#   output dir: callgrind.out files and the profile (default: /tmp/cg-forward)
# Env: FORWARDED (egress packets per case, default 2000), KS ("1 10 50"),
#      PROFILE (bench_forward --profile value, default: the node's choice).
# Prints a table of instructions per forwarded packet, then the top
# functions by inclusive instructions of the video K=10 forwarding loop.
set -eu

build=${1:-build}
out=${2:-/tmp/cg-forward}
forwarded=${FORWARDED:-2000}
ks=${KS:-"1 10 50"}
bench="$build/perf/bench_forward"
profile_arg=""
if [ -n "${PROFILE:-}" ]; then
	profile_arg="--profile $PROFILE"
fi

if ! command -v valgrind >/dev/null 2>&1; then
	echo "callgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2
	exit 2
fi
if [ ! -x "$bench" ]; then
	echo "callgrind.sh: $bench missing: ninja -C $build perf/bench_forward" >&2
	exit 2
fi
mkdir -p "$out"

# Inclusive Ir of one function in a callgrind output file.
inclusive() {
	callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null |
		awk -v fn=":$2 " 'index($0, fn) && $1 ~ /^[0-9,]+$/ {
			gsub(",", "", $1); print $1; exit }'
}

printf '%-6s %3s %7s %12s %12s %6s\n' kind K fwd_pkts fwd_Ir/pkt floor_Ir/pkt ratio
for kind in audio video; do
	for k in $ks; do
		iters=$((forwarded / k))
		[ "$iters" -ge 1 ] || iters=1
		f="$out/callgrind.out.$kind.$k"
		# shellcheck disable=SC2086
		valgrind --tool=callgrind --callgrind-out-file="$f" \
			--toggle-collect=timed_forward \
			--toggle-collect=timed_floor \
			"$bench" --kind "$kind" --k "$k" --iters "$iters" \
			--runs 1 $profile_arg >"$f.log" 2>&1 || {
			echo "callgrind.sh: $kind K=$k failed, see $f.log" >&2
			exit 1
		}
		fwd=$(inclusive "$f" timed_forward)
		flo=$(inclusive "$f" timed_floor)
		n=$((iters * k))
		awk -v kind="$kind" -v k="$k" -v n="$n" -v a="$fwd" -v b="$flo" \
			'BEGIN { printf "%-6s %3d %7d %12.0f %12.0f %6.2f\n",
				kind, k, n, a / n, b / n, a / b }'
	done
done

# Where the forwarding loop's instructions go: video, K = 10, the switch
# alone (timed_forward only).
f="$out/callgrind.out.profile.video.10"
iters=$((forwarded / 10))
# shellcheck disable=SC2086
valgrind --tool=callgrind --callgrind-out-file="$f" \
	--toggle-collect=timed_forward \
	"$bench" --kind video --k 10 --iters "$iters" --runs 1 \
	$profile_arg >"$f.log" 2>&1
echo
echo "video K=10, timed_forward only: top functions by inclusive Ir" \
	"($((iters * 10)) forwarded packets)"
callgrind_annotate --inclusive=yes --threshold=99.9 "$f" 2>/dev/null |
	awk '/file:function/ { on = 1; next } on && NF == 0 { exit }
	     on {
		sub(/ \[[^]]*\]$/, "")          # the object file
		fn = $NF; sub(/^.*:/, "", fn)     # function name
		if (fn ~ /^(cv_loop_run|cv_loop_run_once|on_wakeup|worker_main)$/)
			next                      # the harness around the loop
		if (fn == "timed_forward") keep = 1
		if (!keep || seen[fn]++) next
		gsub(/[^ ]*\.\.\//, "")         # build-dir relative paths
		print
	     }' | head -40
