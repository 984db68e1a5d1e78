#!/usr/bin/env bash
# The test command (README, CI): install dependencies, build, run every test.
#
#   scripts/test.sh           setup.sh, then
#                               build/       RelWithDebInfo          ctest
#                               build-asan/  -DCX_SANITIZE=ON (gcc)  ctest
#                               build-fuzz/  -DCX_FUZZ=ON (clang)    ctest -L fuzz
#   scripts/test.sh --quick   build/ only (no ASan, no fuzzing)
#
# Environment: FUZZ_SECONDS (default 30) per fuzz target; JOBS (build jobs,
# default nproc). Exits non-zero on any failure. The last line is
# "N passed, N failed": ctest results summed over the runs (a configure or
# build step that fails counts as one failed).
set -uo pipefail

usage() {
	sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
}

QUICK=0
for a in "$@"; do
	case "$a" in
	--quick) QUICK=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "test.sh: unknown option: $a" >&2
		usage >&2
		exit 2
		;;
	esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd) || exit 1
cd "$ROOT" || exit 1

export FUZZ_SECONDS=${FUZZ_SECONDS:-30}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/cx-test.XXXXXX") || exit 1
trap 'rm -rf "$LOGDIR"' EXIT

PASSED=0
FAILED=0
FAILED_STEPS=()

step() { echo; echo "==> $*"; }
step_failed() {
	FAILED=$((FAILED + 1))
	FAILED_STEPS+=("$1")
	echo "FAILED: $1"
}

# ctest_run NAME DIR ARGS...: run ctest in DIR, add its counts to the totals.
ctest_run() {
	local name=$1 dir=$2 log="$LOGDIR/$1.log" rc line total failed
	shift 2
	step "ctest ($name): ctest $*"
	(cd "$dir" && ctest "$@") 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	# "100% tests passed, 0 tests failed out of 12"
	line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
	if [ -n "$line" ]; then
		total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
		failed=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")
		PASSED=$((PASSED + total - failed))
		FAILED=$((FAILED + failed))
		[ "$failed" -gt 0 ] && FAILED_STEPS+=("ctest $name ($failed)")
		if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
			step_failed "ctest $name (exit $rc)"
		fi
	elif grep -q 'No tests were found' "$log"; then
		echo "(no tests in $name)"
		[ "$rc" -eq 0 ] || step_failed "ctest $name (exit $rc)"
	else
		step_failed "ctest $name (exit $rc, no summary)"
	fi
}

# build NAME DIR CMAKE-ARGS...: configure and build DIR; 0 on success.
build() {
	local name=$1 dir=$2
	shift 2
	step "configure $name: cmake -S . -B $dir $*"
	if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"; then
		step_failed "configure $name"
		return 1
	fi
	step "build $name"
	if ! cmake --build "$dir" -j "$JOBS"; then
		step_failed "build $name"
		return 1
	fi
}

step "setup: scripts/setup.sh"
if ! bash scripts/setup.sh; then
	step_failed "setup.sh"
	echo "$PASSED passed, $FAILED failed"
	exit 1
fi

if build normal build; then
	ctest_run normal build --output-on-failure -j2
fi

if [ "$QUICK" -eq 0 ]; then
	if build asan build-asan -DCX_SANITIZE=ON; then
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
			UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
			ctest_run asan build-asan --output-on-failure -j2
	fi
	if CC=clang build fuzz build-fuzz -DCX_FUZZ=ON -DCMAKE_C_COMPILER=clang; then
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
			UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
			ctest_run fuzz build-fuzz -L fuzz --output-on-failure -j2
	fi
fi

echo
if [ ${#FAILED_STEPS[@]} -gt 0 ]; then
	echo "failed: ${FAILED_STEPS[*]}"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
