#!/bin/bash
# Builds and runs every test Conclave has, the way CI does:
#   1. clang-format check of every C file
#   2. a -Werror build and all its meson tests (unit, vectors, fuzz-replay,
#      integration with real Chromium)
#   3. an AddressSanitizer + UBSan build and the same tests
#   4. every libFuzzer target for FUZZ_SECONDS (60) under ASan
# and ends with one line "N passed, N failed".
# Environment: FUZZ_SECONDS (default 60), SKIP_ASAN=1, SKIP_FUZZ=1 for
# quicker local runs (CI runs everything).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# The browser tests fail, rather than skip, when their npm packages are missing.
export CONCLAVE_REQUIRE_BROWSER=1
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
passed=0
failed=0
failures=()

step() { printf '\n=== %s\n' "$*"; }
ok() { passed=$((passed + 1)); }
ko() { failed=$((failed + 1)); failures+=("$1"); echo "FAILED: $1"; }

step "dependencies"
if ! sh scripts/install-deps.sh --test; then
	echo "dependency installation failed"
	echo "0 passed, 1 failed"
	exit 1
fi
# The browser tests' npm packages (playwright-core drives Debian's chromium).
if ! npm ci --prefix tests/integration/browser --no-audit --no-fund \
	--loglevel=error >/dev/null; then
	ko "npm ci"
fi

step "format"
fmt_bad=$(git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror 2>&1 | grep -c 'error:' || true)
if [ "$fmt_bad" = 0 ]; then ok; else
	git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror 2>&1 | grep 'error:' | head -20
	ko "clang-format ($fmt_bad findings)"
fi

# Runs the meson tests of build dir $1 and adds its results to the totals.
run_meson_tests() {
	local dir=$1 label=$2
	shift 2
	meson test -C "$dir" --print-errorlogs --num-processes 2 "$@"
	local json="$dir/meson-logs/testlog.json"
	if [ ! -s "$json" ]; then
		ko "$label: no test log"
		return
	fi
	local counts
	counts=$(python3 - "$json" "$label" <<'PY'
import json, sys
p = f = 0
for line in open(sys.argv[1]):
    t = json.loads(line)
    if t["result"] in ("OK", "EXPECTEDFAIL"):
        p += 1
    else:
        f += 1
        print(f"FAILED: {sys.argv[2]}: {t['name']} ({t['result']})", file=sys.stderr)
print(p, f)
PY
)
	local p=${counts% *} f=${counts#* }
	passed=$((passed + p))
	failed=$((failed + f))
	[ "$f" = 0 ] || failures+=("$label: $f meson tests")
}

build() {
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >/dev/null || return 1
	else
		meson configure "$dir" "$@" >/dev/null || return 1
	fi
	ninja -C "$dir" -j2
}

step "build (-Werror)"
if build build --buildtype=debugoptimized -Dwerror=true; then
	ok
	step "tests"
	run_meson_tests build "build"
else
	ko "build"
fi

# The README's run command: builds (already done above) and starts the node
# in --dev mode; the demo page must answer at the URL it prints.
step "run command (scripts/run.sh)"
check_run_command() {
	local out ports
	out=$(mktemp)
	# Free ports: two TCP (client, admin) and a UDP pair (two workers).
	ports=$(python3 - <<'PY'
import socket
def tcp():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); return s, s.getsockname()[1]
a, pa = tcp(); b, pb = tcp()
while True:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 0))
    pu = u.getsockname()[1]
    v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        v.bind(("0.0.0.0", pu + 1)); break
    except OSError:
        u.close(); v.close()
print(pa, pb, pu)
PY
)
	set -- $ports
	setsid ./scripts/run.sh --listen.port="$1" --admin.port="$2" \
		--media.port_base="$3" --node.workers=2 >"$out" 2>&1 &
	local pid=$! url=""
	for _ in $(seq 1 600); do # up to 60 s, returning as soon as it prints
		url=$(sed -n 's/^conclave: listening on \(http[^ ]*\)$/\1/p' "$out")
		[ -n "$url" ] && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	local rc=1
	if [ -n "$url" ] && curl -fsS "$url" | grep -q '<title>'; then rc=0; fi
	kill -TERM -- -$pid 2>/dev/null
	wait $pid 2>/dev/null
	[ $rc = 0 ] || cat "$out"
	rm -f "$out"
	return $rc
}
if check_run_command; then ok; echo "run command: demo page answers"; else ko "run command"; fi

# Issue 4, done-when 3: a test-only node build that tampers with every perc
# packet it forwards; perc receivers must reject and count each one. The
# default build must not contain that code at all.
step "faulty node (-Dperc_faulty_node=true, tests only)"
if nm build/src/node/conclave | grep -q 'perc_fault'; then
	ko "the default node build contains the faulty-node code"
else
	ok
	echo "default build: no faulty-node code"
fi
if { [ -f build-faulty/build.ninja ] ||
	meson setup build-faulty --buildtype=debugoptimized -Dwerror=true \
		-Dperc_faulty_node=true >/dev/null; } &&
	ninja -C build-faulty -j2 src/node/conclave; then
	if python3 tests/integration/perc/perc_faulty.py \
		build-faulty/src/node/conclave build/client/conclave-client \
		build/kms/conclave-kms build/tests/integration/kms/kd_node; then
		ok
	else
		ko "perc_faulty"
	fi
else
	ko "faulty node build"
fi

if [ "${SKIP_ASAN:-0}" != 1 ]; then
	step "build (ASan + UBSan)"
	if build build-asan --buildtype=debug -Dwerror=true \
		-Db_sanitize=address,undefined -Db_lundef=false; then
		ok
		step "tests under ASan + UBSan"
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
			UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
			run_meson_tests build-asan "asan"
	else
		ko "asan build"
	fi
fi

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
	step "fuzzers (${FUZZ_SECONDS}s each, ASan + UBSan)"
	# Only the fuzz targets (and what they link): the rest of the tree is
	# built and tested twice already.
	targets=$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')
	if { [ -f build-fuzz/build.ninja ] ||
		CC=clang meson setup build-fuzz --buildtype=debugoptimized \
			-Dwerror=true -Dfuzzing=true \
			-Db_sanitize=address,undefined -Db_lundef=false >/dev/null; } &&
		ninja -C build-fuzz -j2 $(printf 'tests/fuzz/%s ' $targets); then
		run_fuzzer() {
			local t=$1 scratch
			scratch=$(mktemp -d)
			mkdir -p build-fuzz/artifacts
			"build-fuzz/tests/fuzz/$t" -max_total_time="$FUZZ_SECONDS" \
				-artifact_prefix="build-fuzz/artifacts/$t-" \
				-print_final_stats=1 "$scratch" \
				"tests/fuzz/corpus/${t#fuzz_}" >"build-fuzz/$t.log" 2>&1
			local rc=$?
			rm -rf "$scratch"
			return $rc
		}
		# Two at a time: the machine has two cores.
		set -- $targets
		while [ $# -gt 0 ]; do
			a=$1; shift
			b=${1:-}; [ $# -gt 0 ] && shift
			run_fuzzer "$a" & pa=$!
			[ -n "$b" ] && { run_fuzzer "$b" & pb=$!; }
			if wait $pa; then ok; echo "fuzz $a: no finding"; else
				tail -30 "build-fuzz/$a.log"; ko "fuzz $a"; fi
			if [ -n "$b" ]; then
				if wait $pb; then ok; echo "fuzz $b: no finding"; else
					tail -30 "build-fuzz/$b.log"; ko "fuzz $b"; fi
			fi
		done
	else
		ko "fuzz build"
	fi
fi

step "summary"
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
