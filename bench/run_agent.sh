#!/usr/bin/env bash
# conex-agent signing benchmark (docs/benchmarks.md, "Agent").
#
#   bench/run_agent.sh        build (if needed), run bench_agent, print the tables
#
# On SoftHSM tokens in a temporary directory: sign latency (p50/p99) and
# throughput of RSA-2048 PSS, ECDSA P-256 and Ed25519, direct PKCS#11 against
# conex-agent; two clients on two tokens against one; the agent's memory with
# 1,000 idle connections.  See bench/bench_agent.c.
#
# Run 1 keeps the agent's audit log next to the tokens (TMPDIR, on disk as a
# real audit log is).  Run 2, when /dev/shm is there, puts it on tmpfs: the
# agent releases a signature only once its audit intent line is durable (an
# fdatasync that runs while the token signs), and the difference between the
# two runs is what of that sync the token's work does not hide.
#
# Environment:
#   BUILD_DIR        build directory (default build-bench/, CMAKE_BUILD_TYPE=Release)
#   BENCH_CMAKE_ARGS extra arguments for the first cmake configure of BUILD_DIR
#   BENCH_N          signatures per case (default 2000); BENCH_N_RSA for RSA (default BENCH_N)
#   BENCH_CONNS      idle connections (default 1000)
#   BENCH_REPS       runs of each parallel case, the median is shown (default 3)
#   BENCH_TMPFS=0    skip run 2
#   BENCH_PERF=1     a third run with the agent under `perf record` (call graphs),
#                    then the agent's hottest functions (its VmRSS is then perf's)
#   BENCH_OUT        also write the output to this file
#
# A benchmark, not a test: it prints numbers and never fails on them.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-bench}
N=${BENCH_N:-2000}
NRSA=${BENCH_N_RSA:-$N}
CONNS=${BENCH_CONNS:-1000}
REPS=${BENCH_REPS:-3}
MODULE=${CX_SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

if [ ! -r "$MODULE" ] || ! command -v softhsm2-util > /dev/null; then
	echo "bench: SKIPPED: SoftHSM2 is not installed (scripts/setup.sh installs it)"
	exit 0
fi
for tool in cmake make; do
	command -v "$tool" > /dev/null || {
		echo "bench: $tool is required" >&2
		exit 2
	}
done

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
	# shellcheck disable=SC2086 # BENCH_CMAKE_ARGS is a list of words
	cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release ${BENCH_CMAKE_ARGS:-} > /dev/null
fi
LOG=$(mktemp "${TMPDIR:-/tmp}/cx-bench-agent-build.XXXXXX")
if ! make -C "$BUILD" -j"$(nproc)" bench_agent conex conex-agent > "$LOG" 2>&1; then
	tail -30 "$LOG" >&2
	echo "bench: build failed (log: $LOG)" >&2
	exit 2
fi
rm -f "$LOG"
BENCH=$BUILD/bench/bench_agent
ARGS=(-n "$N" --n-rsa "$NRSA" --conns "$CONNS" --reps "$REPS" --agent "$BUILD/conex-agent"
	--module "$MODULE")
TMP=${TMPDIR:-/tmp}
# made here, not in main: main may run in a pipeline's subshell
SHM=
PERFDIR=
cleanup() {
	[ -n "$SHM" ] && rm -rf "$SHM"
	[ -n "$PERFDIR" ] && rm -rf "$PERFDIR"
	return 0
}
trap cleanup EXIT
if [ "${BENCH_TMPFS:-1}" != 0 ] && [ -d /dev/shm ]; then
	SHM=$(mktemp -d /dev/shm/cx-bench-agent.XXXXXX)
fi
if [ "${BENCH_PERF:-0}" = 1 ]; then
	PERFDIR=$(mktemp -d "$TMP/cx-bench-agent-perf.XXXXXX")
fi

run() {
	echo
	echo "bench: load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "\$ $*"
	"$@"
	echo "bench: load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

main() {
	echo "conex-agent signing benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2> /dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2> /dev/null || echo ' (+ uncommitted changes)')"
	echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), $(uname -sr)"
	echo "SoftHSM $(softhsm2-util --version 2> /dev/null || echo '?') ($MODULE, file object store), $(openssl version 2> /dev/null || echo 'OpenSSL ?')"
	bt=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD/CMakeCache.txt")
	echo "build: $BUILD (${bt:-RelWithDebInfo, the CMakeLists.txt default})"
	echo "tokens and audit log (run 1) in $TMP: $(df -T "$TMP" | awk 'NR == 2 {print $2 " on " $1}')"
	echo "other work on the machine skews these numbers: see the load averages"

	echo
	echo "== run 1: the audit log on disk"
	run "$BENCH" "${ARGS[@]}"

	if [ -n "$SHM" ]; then
		echo
		echo "== run 2: the audit log on tmpfs ($SHM): the same without the cost of its sync"
		run "$BENCH" "${ARGS[@]}" --audit-dir "$SHM"
	fi

	if [ -n "$PERFDIR" ]; then
		command -v perf > /dev/null || {
			echo "bench: BENCH_PERF=1 needs perf (linux-perf)" >&2
			return 0
		}
		printf '#!/bin/sh\nexec perf record -q --call-graph dwarf,16384 -F 2000 -o %s/agent.perf -- %s "$@"\n' \
			"$PERFDIR" "$BUILD/conex-agent" > "$PERFDIR/agent.sh"
		chmod +x "$PERFDIR/agent.sh"
		echo
		echo "== run 3: the agent under perf record (timings inflated by perf)"
		run "$BENCH" -n "$N" --n-rsa "$NRSA" --conns 10 --reps 1 --agent "$PERFDIR/agent.sh" \
			--module "$MODULE"
		sleep 1
		echo
		echo "the agent's hottest functions (children: share of the agent's samples under each):"
		perf report -i "$PERFDIR/agent.perf" --children --sort sym --stdio -g none 2> /dev/null |
			grep -v '^#' | grep -v '^$' | grep -v ' 0x0000' | head -40 || true
	fi
}

if [ -n "${BENCH_OUT:-}" ]; then
	main 2>&1 | tee "$BENCH_OUT"
else
	main
fi
