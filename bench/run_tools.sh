#!/usr/bin/env bash
# Signing-tools benchmark (docs/benchmarks.md, "Signing tools").
#
#   bench/run_tools.sh    build (if needed), then in one run on the real
#                         opam-repository (33,033 releases), keys on a SoftHSM
#                         token behind conex-agent:
#
#   1. the hashing floor: walk packages/ and SHA-256 every file (bench_tools floor);
#   2. all releases: `conex targets compute m1` + `conex targets sign m1`, one
#      maintainer key on the token, against the floor (bar: <= 1 s beyond it);
#   3. an author release: a new version of one package, `conex release`
#      (compute + sign + snapshot + timestamp: 3 signatures), against the
#      token's own signing time measured directly (bar: <= 100 ms beyond it).
#
# Environment:
#   BENCH_DIR   reuses BENCH_DIR/src/opam-repository when bench/run.sh left it
#               there; otherwise the input is extracted into a temporary directory
#   BUILD_DIR   build directory (default build-bench/, CMAKE_BUILD_TYPE=Release)
#   SHARED_DIR  the read-only input (default ../shared from the project root)
#   BENCH_REPS  timed runs per case (default 5; the median is shown)
#   BENCH_ALG   key algorithm of the maintainer and the author (ed25519, rsa2048,
#               rsa4096; default ed25519)
#
# A benchmark, not a test: it prints numbers and never fails on them.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED_DIR:-$ROOT/../shared}
DATA=$SHARED/data/opam-repository-2025-01-01.tar.gz
BUILD=${BUILD_DIR:-$ROOT/build-bench}
REPS=${BENCH_REPS:-5}
ALG=${BENCH_ALG:-ed25519}
MODULE=${CX_SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
NOW=2025-01-02T00:00:00Z

if [ ! -f "$DATA" ]; then
	echo "bench: SKIPPED: the benchmark input is absent ($DATA)"
	exit 0
fi
if [ ! -r "$MODULE" ] || ! command -v softhsm2-util > /dev/null; then
	echo "bench: SKIPPED: SoftHSM2 is not installed (scripts/setup.sh installs it)"
	exit 0
fi

# Configure every time (cheap with a cache): a build directory from before
# bench_tools existed has no rule for it.
if [ -f "$BUILD/CMakeCache.txt" ]; then
	cmake -S "$ROOT" -B "$BUILD" > /dev/null
else
	cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release > /dev/null
fi
W=$(mktemp -d "${TMPDIR:-/tmp}/conex-bench-tools.XXXXXX")
AGENT_PID=
cleanup() {
	[ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2> /dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT
make -C "$BUILD" -j"$(nproc)" conex conex-agent bench_tools > "$W/build.log" 2>&1 || {
	tail -30 "$W/build.log" >&2
	echo "bench: build failed" >&2
	exit 2
}
CONEX=$BUILD/conex
TOOLS=$BUILD/bench/bench_tools

SRC=${BENCH_DIR:+$BENCH_DIR/src/opam-repository}
if [ -z "$SRC" ] || [ ! -d "$SRC/packages" ]; then
	echo "bench: extracting the input"
	tar xzf "$DATA" -C "$W"
	SRC=$W/opam-repository
fi
R=$W/repo
mkdir -p "$R"
cp -a "$SRC/packages" "$R/"
cp "$SRC/repo" "$R/" 2> /dev/null || true

# One SoftHSM token, one agent, the keys generated on the token.
mkdir "$W/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$W" > "$W/softhsm2.conf"
export SOFTHSM2_CONF=$W/softhsm2.conf
softhsm2-util --init-token --free --label bench --so-pin 12345678 --pin 123456 > /dev/null
SERIAL=$(softhsm2-util --show-slots | awk '/Serial number:/ {s=$3} /Label:/ && $2 == "bench" {print s; exit}')
printf '123456\n' > "$W/pin"
eval "$("$BUILD/conex-agent" -a "$W/agent/sock" -P "$MODULE" -m "$MODULE" --audit "$W/audit")" > /dev/null
AGENT_PID=$CONEX_AGENT_PID
"$CONEX" agent login --pin-file "$W/pin" "$SERIAL" > /dev/null
for id in root snap timestamp; do
	"$CONEX" key generate "$id" --token "$SERIAL" > /dev/null
done
for id in m1 alice; do
	"$CONEX" key generate "$id" --token "$SERIAL" --alg "$ALG" > /dev/null
done

cx() { "$CONEX" "$@" -r "$R" --now "$NOW" -q; }
cx root create
cx root add-key root
cx targets create m1
cx targets create alice
cx root add-to-role maintainer m1
cx root set-role snapshot snap
cx root set-role timestamp timestamp
cx root sign

calc() { awk "BEGIN {printf \"%.4f\\n\", $1}"; }
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
# t CMD...: wall seconds of one run
t() {
	local s e
	s=$(date +%s.%N)
	"$@"
	e=$(date +%s.%N)
	awk -v a="$e" -v b="$s" 'BEGIN {printf "%.4f\n", a - b}'
}

echo "conex signing-tools benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2> /dev/null || echo '?')"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "keys: maintainer and author $ALG on SoftHSM $(softhsm2-util --version), through conex-agent; $REPS runs per case, medians"
echo

# 1 and 2, interleaved so that both see the same machine.
: > "$W/floor" && : > "$W/all"
EDIT=$(find "$R/packages" -name opam -print -quit)
for i in $(seq 0 "$REPS"); do
	f=$("$TOOLS" floor "$R" 1 | awk '{print $2}')
	# Every run is a real proposal: one opam file changed, so compute writes
	# keys/m1 anew (counter + 1) and sign makes a signature.
	printf '# run %s\n' "$i" >> "$EDIT"
	a=$(t bash -c "'$CONEX' targets compute m1 -r '$R' --now $NOW -q && '$CONEX' targets sign m1 -r '$R' --now $NOW -q")
	if [ "$i" -gt 0 ]; then # run 0 warms the page cache
		echo "$f" >> "$W/floor"
		echo "$a" >> "$W/all"
	fi
done
NT=$(grep -c 'filename' "$R/keys/m1" || true)
FLOOR=$(median < "$W/floor")
ALL=$(median < "$W/all")
printf '%-58s %8.3f s\n' "hashing floor (walk + SHA-256 of packages/, 2 threads)" "$FLOOR"
printf '%-58s %8.3f s\n' "targets compute + sign, all releases ($NT targets)" "$ALL"
printf '%-58s %8.3f s   (bar: <= 1 s)\n' "  beyond the floor" "$(calc "$ALL - $FLOOR")"
echo

# 3. An author release: alice owns packages/0install (m1 delegates it).
cx targets delegate m1 packages/0install alice
cx targets sign m1
cx snapshot
cx timestamp
TOK=$("$TOOLS" tokensign "$MODULE" bench 123456 alice 200 | awk '{print $2}')
: > "$W/rel"
for i in $(seq 0 "$REPS"); do
	d=$R/packages/0install/0install.99.$i
	mkdir -p "$d"
	printf 'opam-version: "2.0"\nversion: "99.%s"\n' "$i" > "$d/opam"
	r=$(t "$CONEX" release alice 0install -r "$R" --now "$NOW" -q)
	[ "$i" -gt 0 ] && echo "$r" >> "$W/rel"
done
REL=$(median < "$W/rel")
printf '%-58s %8.1f ms\n' "token's own signing time ($ALG, direct PKCS#11, p50)" "$(calc "$TOK / 1000")"
printf '%-58s %8.1f ms\n' "conex release (compute + sign + snapshot + timestamp)" "$(calc "$REL * 1000")"
printf '%-58s %8.1f ms   (bar: <= 100 ms)\n' "  beyond 3 token signatures" "$(calc "$REL * 1000 - 3 * $TOK / 1000")"

# The result still verifies.
if "$CONEX" verify --no-state -q -t "$("$CONEX" key show root | awk '{print $5; exit}')" --now "$NOW" --dir "$R"; then
	echo "conex verify --dir: accepted"
else
	echo "conex verify --dir: REJECTED (the benchmark's repository is wrong)"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
