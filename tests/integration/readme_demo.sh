#!/usr/bin/env bash
# The README's main job, scripts/demo.sh, run as a test against this build:
# it must exit 0 having seen every step behave as expected.
#
# Environment (ctest sets them): CX_BUILD_DIR, CX_SOURCE_DIR.
set -uo pipefail
BUILD=${CX_BUILD_DIR:?CX_BUILD_DIR not set}
SRC=${CX_SOURCE_DIR:?CX_SOURCE_DIR not set}

out=$(BUILD_DIR=$BUILD bash "$SRC/scripts/demo.sh" 2>&1)
rc=$?
printf '%s\n' "$out" | tail -n 60
if [ "$rc" -eq 0 ] && grep -Eq '^demo: all [0-9]+ checks behaved as expected' <<<"$out" &&
	! grep -q 'UNEXPECTED' <<<"$out"; then
	echo "1 passed, 0 failed"
	exit 0
fi
echo "FAIL: scripts/demo.sh exited $rc"
echo "0 passed, 1 failed"
exit 1
