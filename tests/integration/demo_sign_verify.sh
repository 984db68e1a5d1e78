#!/usr/bin/env bash
# Sign with cx-testsign, verify with conex verify: the demo's step (b) with
# assertions (scripts/demo.sh), plus quorum, anchor, root re-signing, rollback
# and exit-code checks.
#
# Environment (ctest sets them): CX_BUILD_DIR, CX_SOURCE_DIR, CONEX.
# cx-testsign is $CX_BUILD_DIR/tests/tools/cx-testsign.

# pass/fail always return 0, so "test && pass || fail" is an if-then-else here.
# shellcheck disable=SC2015
set -uo pipefail

BUILD=${CX_BUILD_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}
CONEX=${CONEX:-$BUILD/conex}
TESTSIGN=${CX_TESTSIGN:-$BUILD/tests/tools/cx-testsign}
for b in "$CONEX" "$TESTSIGN"; do
	if [ ! -x "$b" ]; then
		echo "FAIL: $b not built"
		exit 1
	fi
done

W=$(mktemp -d "${TMPDIR:-/tmp}/cx-demo-test.XXXXXX") || exit 1
trap 'chmod -R u+w "$W" 2>/dev/null; rm -rf "$W"' EXIT
cd "$W" || exit 1

NPASS=0
NFAIL=0
pass() { echo "PASS: $*"; NPASS=$((NPASS + 1)); }
fail() { echo "FAIL: $*"; NFAIL=$((NFAIL + 1)); }
OUT=$W/out
# expect CODE DESCRIPTION COMMAND...: exit code CODE exactly
expect() {
	local want=$1 d=$2 rc
	shift 2
	"$@" >"$OUT" 2>&1
	rc=$?
	if [ "$rc" -eq "$want" ]; then
		pass "$d (exit $rc)"
	else
		fail "$d: exit $rc, expected $want"
		sed 's/^/  | /' "$OUT"
	fi
}
# verify ARGS...: conex verify with this test's state directory
verify() { "$CONEX" verify --state "$W/state" "$@"; }
# mkpatch OLD NEW PATCH: opam's local/HTTP dialect (diff -ruaN), exit 1 = differences
mkpatch() { diff -ruaN "$1" "$2" >"$3"; [ $? -le 1 ]; }

# --- one maintainer, as in the demo -------------------------------------------
if ANCHOR=$("$TESTSIGN" init demo keys) && [[ "$ANCHOR" =~ ^sha256=[0-9a-f]{64}$ ]]; then
	pass "cx-testsign init prints the anchor $ANCHOR"
else
	fail "cx-testsign init: '$ANCHOR'"
	echo "0 passed, 1 failed"
	exit 1
fi
[ "$("$TESTSIGN" anchor keys)" = "$ANCHOR" ] && pass "cx-testsign anchor = init's anchor" ||
	fail "cx-testsign anchor differs"
n=0
for f in keys/*; do
	[[ "${f#keys/}" =~ ^[a-z0-9]+\.sha256=[0-9a-f]{64}\.private$ ]] && n=$((n + 1))
done
[ "$n" -eq 4 ] && pass "4 private keys named <id>.sha256=<hex>.private" || fail "$n key files"
expect 2 "cx-testsign: unknown subcommand is a usage error" "$TESTSIGN" frobnicate
expect 1 "cx-testsign init over an existing repository fails" "$TESTSIGN" init demo keys2

mkdir -p demo/packages/demo/demo.1.0.0
printf 'opam-version: "2.0"\nsynopsis: "demo"\n' >demo/packages/demo/demo.1.0.0/opam
expect 0 "cx-testsign sign (v1)" "$TESTSIGN" sign demo keys
expect 0 "full verification of v1" verify -t "$ANCHOR" --quorum 1 --dir demo
expect 1 "full verification with a foreign anchor is rejected" \
	verify -t sha256=3aedc7043e771efc42a3c3e6b60fa6baeb2c26c2d57f994c632bae98a09af701 --dir demo
expect 2 "no anchor is a usage error" verify --dir demo
cp -a demo v1

# v2: a new release, incremental
cp -a demo v2
mkdir -p v2/packages/demo/demo.1.1.0
printf 'opam-version: "2.0"\nsynopsis: "demo 1.1"\n' >v2/packages/demo/demo.1.1.0/opam
expect 0 "cx-testsign sign (v2)" "$TESTSIGN" sign v2 keys
grep -q 'counter 0x1' v2/keys/m1 && pass "maintainer counter incremented" ||
	fail "keys/m1 counter not 1"
mkpatch demo v2 v2.patch && pass "diff -ruaN v1 v2" || fail "diff -ruaN v1 v2"
cp -a demo demo.before
expect 0 "incremental verification of v1 -> v2 (diff -ruaN)" \
	verify -t "$ANCHOR" --quorum 1 --incremental --repository demo --patch v2.patch
diff -r demo demo.before >/dev/null && pass "--repository left unmodified" ||
	fail "conex verify modified --repository"
patch -s -p1 -d demo <v2.patch && diff -r demo v2 >/dev/null &&
	pass "patch -p1 reproduces v2 (as opam applies it)" || fail "patch -p1 did not give v2"

# a git-style patch (opam's git backend: git diff -R, b/ a/ prefixes)
if command -v git >/dev/null 2>&1; then
	cp -a v2 v3
	mkdir -p v3/packages/demo/demo.1.2.0
	printf 'opam-version: "2.0"\nsynopsis: "demo 1.2"\n' >v3/packages/demo/demo.1.2.0/opam
	"$TESTSIGN" sign v3 keys
	(
		export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@localhost \
			GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@localhost
		cd v3 && git init -q && git add -A && git commit -qm v3 &&
			git -C ../demo init -q && git -C ../demo add -A && git -C ../demo commit -qm v2 &&
			git -C ../demo fetch -q ../v3 +HEAD:refs/remotes/opam-ref &&
			git -C ../demo -c diff.noprefix=false diff --text --no-ext-diff -R -p \
				refs/remotes/opam-ref -- >../v3.patch
	) || fail "git diff -R"
	rm -rf v3/.git demo/.git
	grep -q '^diff --git b/packages/demo/demo.1.2.0/opam a/packages/demo/demo.1.2.0/opam' v3.patch &&
		pass "git diff -R patch has swapped b/ a/ prefixes" || fail "unexpected git patch"
	expect 0 "incremental verification of v2 -> v3 (git diff -R)" \
		verify -t "$ANCHOR" --incremental --repository demo --patch v3.patch
	cp -a v3/. demo/
else
	echo "SKIP: git-style patch (git not installed)"
fi

# tampering
cp -a demo bad
printf 'build: ["sh" "-c" "echo pwned"]\n' >>bad/packages/demo/demo.1.0.0/opam
mkpatch demo bad bad.patch
expect 1 "incremental: a tampered package file is rejected" \
	verify -t "$ANCHOR" --incremental --repository demo --patch bad.patch
expect 1 "full: a tampered package file is rejected" verify -t "$ANCHOR" --dir bad
rm -rf bad && cp -a demo bad
mkdir -p bad/packages/evil/evil.1
printf 'opam-version: "2.0"\n' >bad/packages/evil/evil.1/opam
expect 1 "full: an unsigned new package is rejected" verify -t "$ANCHOR" --dir bad

# rollback protection across full fetches (the state file)
expect 1 "full fetch of older v1 after v2/v3 were accepted: rollback rejected" \
	verify -t "$ANCHOR" --dir v1
expect 0 "the same with --no-state is accepted (no memory)" \
	"$CONEX" verify --no-state -t "$ANCHOR" --dir v1

# root re-signed (counter + 1) in an update
cp -a demo r2
"$TESTSIGN" sign r2 keys --root
grep -q 'counter 0x1' r2/root && pass "sign --root increments the root counter" ||
	fail "root counter not 1"
mkpatch demo r2 r2.patch
expect 0 "incremental: update re-signing the root" \
	verify -t "$ANCHOR" --incremental --repository demo --patch r2.patch

# --- two maintainers, quorum 2 ----------------------------------------------------
if A2=$("$TESTSIGN" init q2 keys-q2 --maintainers 2 --quorum 2); then
	pass "cx-testsign init --maintainers 2 --quorum 2"
else
	fail "cx-testsign init --maintainers 2 --quorum 2"
fi
mkdir -p q2/packages/p/p.1
printf 'opam-version: "2.0"\n' >q2/packages/p/p.1/opam
"$TESTSIGN" sign q2 keys-q2 --only m1
expect 1 "quorum 2, only m1 signed: rejected" "$CONEX" verify --no-state -t "$A2" --dir q2
"$TESTSIGN" sign q2 keys-q2 --only m2
expect 0 "quorum 2, m1 and m2 signed: accepted" "$CONEX" verify --no-state -t "$A2" --dir q2
expect 1 "cx-testsign sign --only with a non-maintainer fails" \
	"$TESTSIGN" sign q2 keys-q2 --only m9

echo "$NPASS passed, $NFAIL failed"
[ "$NFAIL" -eq 0 ]
