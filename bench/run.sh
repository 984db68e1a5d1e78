#!/usr/bin/env bash
# Verification benchmark on the real opam-repository (docs/benchmarks.md).
#
#   bench/run.sh              build (if needed), sign (cached), time, print the table
#
# Environment:
#   BENCH_DIR     work directory, reused between runs: the extracted input, the
#                 signed repositories and updates (signing takes minutes, timing
#                 reuses them), results.txt and incremental.csv.  Default: a
#                 fresh temporary directory, deleted at the end.
#   BUILD_DIR     build directory (default build-bench/, CMAKE_BUILD_TYPE=Release)
#   BENCH_CMAKE_ARGS  extra arguments for the first cmake configure of BUILD_DIR
#   SHARED_DIR    the read-only input (default ../shared from the project root)
#   BENCH_REPS    timed runs per case (default 3; a warm-up run comes first)
#   BENCH_INCR=0  skip the 2 x 100 incremental updates
#   BENCH_INCR_REPS  timed runs per update (default 1; the smallest and the
#                 largest update always get a warm-up and BENCH_REPS runs)
#   BENCH_RESIGN=1  sign again even if BENCH_DIR holds a signed copy
#
# A benchmark, not a test: it prints numbers and never fails on them.  It
# exits 0 without doing anything when the input data is absent.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED_DIR:-$ROOT/../shared}
DATA=$SHARED/data/opam-repository-2025-01-01.tar.gz
PATCHES=$SHARED/data/opam-repository-2025-01-patches.tar.gz
BUILD=${BUILD_DIR:-$ROOT/build-bench}
# Bump when the way the signed copy is made changes: a cached copy is re-made.
PREP_VERSION=1

if [ ! -f "$DATA" ] || [ ! -f "$PATCHES" ]; then
	echo "bench: SKIPPED: the benchmark input is absent ($DATA, $PATCHES);" \
		"it lives in ../shared/data next to the project."
	exit 0
fi
for tool in patch diff tar cp cmake make; do
	command -v "$tool" > /dev/null || {
		echo "bench: $tool is required" >&2
		exit 2
	}
done

TEMP_DIR=0
if [ -z "${BENCH_DIR:-}" ]; then
	TEMP_DIR=1
	BENCH_DIR=$(mktemp -d "${TMPDIR:-/tmp}/conex-bench.XXXXXX")
	trap 'rm -rf "$BENCH_DIR"' EXIT
	echo "bench: work directory $BENCH_DIR (temporary; set BENCH_DIR to keep the signed copy)"
fi
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)

# Build (a no-op when up to date).
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
	# shellcheck disable=SC2086 # BENCH_CMAKE_ARGS is a list of words
	cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release ${BENCH_CMAKE_ARGS:-} > /dev/null
fi
make -C "$BUILD" -j"$(nproc)" bench_verify conex > "$BENCH_DIR/build.log" 2>&1 || {
	tail -30 "$BENCH_DIR/build.log" >&2
	echo "bench: build failed (log: $BENCH_DIR/build.log)" >&2
	exit 2
}
BENCH=$BUILD/bench/bench_verify
CONEX=$BUILD/conex

# The cache key: the input tarballs and PREP_VERSION.
KEY="v$PREP_VERSION $(cksum < "$DATA") $(cksum < "$PATCHES")"

# Extract once.
if [ ! -f "$BENCH_DIR/src/.done" ] || [ "$(cat "$BENCH_DIR/src/.done")" != "$KEY" ]; then
	echo "bench: extracting the input into $BENCH_DIR/src"
	rm -rf "$BENCH_DIR/src" "$BENCH_DIR/signed"
	mkdir -p "$BENCH_DIR/src"
	tar xzf "$DATA" -C "$BENCH_DIR/src"
	tar xzf "$PATCHES" -C "$BENCH_DIR/src"
	echo "$KEY" > "$BENCH_DIR/src/.done"
fi
SRC=$BENCH_DIR/src/opam-repository
PDIR=$(find "$BENCH_DIR/src" -maxdepth 2 -name '001-*.patch' -printf '%h\n' | head -1)
[ -n "$PDIR" ] || {
	echo "bench: no NNN-<commit>.patch files in $PATCHES" >&2
	exit 2
}

# Sign once (both models, 100 updates each), unless cached.
if [ "${BENCH_RESIGN:-0}" = 1 ] || [ ! -f "$BENCH_DIR/signed/.done" ]; then
	echo "bench: signing (single maintainer and author model, base and every update)..."
	start=$(date +%s)
	"$BENCH" prepare "$SRC" "$PDIR" "$BENCH_DIR/signed"
	echo "bench: signing took $(($(date +%s) - start)) s (cached in $BENCH_DIR/signed)"
fi

{
	echo "conex verification benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2> /dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2> /dev/null || echo ' (+ uncommitted changes)')"
	echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), $(uname -sr)"
	echo "load average before: $(cut -d" " -f1-3 /proc/loadavg) (other work on the machine skews the medians; best-of-N less so)"
	echo "build: $BUILD ($(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD/CMakeCache.txt"))"
	echo
	"$BENCH" run "$BENCH_DIR/signed" "$CONEX"
	echo "load average after: $(cut -d" " -f1-3 /proc/loadavg)"
} 2>&1 | tee "$BENCH_DIR/results.txt"
cp "$BENCH_DIR/signed/incremental.csv" "$BENCH_DIR/" 2> /dev/null || true
if [ "$TEMP_DIR" = 0 ]; then
	echo "bench: results in $BENCH_DIR/results.txt and $BENCH_DIR/incremental.csv"
fi
