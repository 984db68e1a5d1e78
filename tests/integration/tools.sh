#!/usr/bin/env bash
# The signing tools (docs/tools.md) end to end, every signature through
# conex-agent: keys on a SoftHSM token (and, in a second run, software keys
# imported from PEM files) build a repository with a 2-of-3 maintainer root,
# an author delegated packages/foo, releases, snapshot and timestamp; `conex
# verify` accepts each step in full or incremental mode.  Late signers,
# revocation, rotation, fast-forward recovery and a 2-of-2 root keep working.
#
# Environment (ctest sets them): CX_BUILD_DIR, CONEX.  CX_UPSTREAM_VERIFY: an
# upstream conex_verify_openssl v1.0.0 (not built here) that must accept every
# repository `conex verify` accepts.

# shellcheck disable=SC2015
set -uo pipefail

BUILD=${CX_BUILD_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}
CONEX=${CONEX:-$BUILD/conex}
AGENT=$BUILD/conex-agent
MODULE=${CX_SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
for b in "$CONEX" "$AGENT"; do
	[ -x "$b" ] || { echo "FAIL: $b not built"; exit 1; }
done
HSM=1
if [ ! -r "$MODULE" ] || ! command -v softhsm2-util >/dev/null; then
	echo "NOTE: SoftHSM2 not installed: software keys only"
	HSM=0
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/cx-tools.XXXXXX") || exit 1
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	done
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
expect() {
	local want=$1 d=$2 rc
	shift 2
	"$@" >"$OUT" 2>&1
	rc=$?
	if [ "$rc" -eq "$want" ]; then
		pass "$d (exit $rc)"
	else
		fail "$d: exit $rc, expected $want"
		sed 's/^/  | /' "$OUT" | head -30
	fi
}
out_has() { grep -Eq "$1" "$OUT" && pass "$2" || { fail "$2: output does not match /$1/"; sed 's/^/  | /' "$OUT" | head -10; }; }
abort() { fail "$*"; echo "$NPASS passed, $NFAIL failed"; exit 1; }
# mkpatch OLD NEW PATCH: OLD and NEW in the same directory, so that -p1 names match
mkpatch() { (cd "$(dirname "$1")" && diff -ruaN "$(basename "$1")" "$(basename "$2")") >"$3"; [ $? -le 1 ]; }

start_agent() { # start_agent NAME [module]: sets CONEX_AGENT_SOCK
	local out
	if [ -n "${2:-}" ]; then
		out=$("$AGENT" -a "$W/$1/agent.sock" -P "$2" -m "$2" --audit "$W/$1.audit" 2>&1)
	else
		out=$("$AGENT" -a "$W/$1/agent.sock" --audit "$W/$1.audit" 2>&1)
	fi || abort "conex-agent did not start: $out"
	eval "$out" >/dev/null
	PIDS+=("$CONEX_AGENT_PID")
	pass "conex-agent $1 started"
}

# keyid ID: the agent's key id of ID
keyid() { "$CONEX" key show "$1" | awk '{print $5; exit}'; }

# newkey ID: one more key labelled ID in the current agent: on the token (hw), or a
# PEM key made by openssl and imported (soft).  Prints the key's show line.
newkey() {
	if [ "$M" = hw ]; then
		"$CONEX" key generate "$1" --token "$SERIAL"
	else
		openssl genpkey -algorithm ed25519 -out "$W/$M/$1.$RANDOM.pem" 2>/dev/null &&
			"$CONEX" key import "$1" "$(ls -t "$W/$M/$1".*.pem | head -1)" 2>/dev/null
	fi
}

# scenario MODE: the acceptance scenario with the keys of the current agent, on a token
# (hw) or imported from PEM files (soft).
scenario() {
	local M=$1 R=$1/repo T1=2026-11-25T10:00:00Z T2=2026-11-25T11:00:00Z T3=2026-11-25T12:00:00Z
	local T4=2026-11-25T13:00:00Z T5=2026-11-25T14:00:00Z T6=2026-11-25T15:00:00Z
	local T7=2026-11-25T16:00:00Z T8=2026-11-25T17:00:00Z ANCHOR
	mkdir -p "$R"
	cx() { "$CONEX" "$@" -r "$R"; }
	verify_full() {
		"$CONEX" verify --no-state -t "$ANCHOR" --now "$1" --dir "$R" || return
		upstream --dir "$R"
	}
	verify_inc() { # verify_inc NOW OLD: OLD -> R as a diff -ruaN patch
		mkpatch "$2" "$R" "$2.patch" || return 9
		"$CONEX" verify --no-state -t "$ANCHOR" --now "$1" --incremental --repository "$2" --patch "$2.patch" || return
		upstream --incremental --repository "$2" --patch "$2.patch"
	}
	# What we accept, upstream's verifier must accept too (when CX_UPSTREAM_VERIFY names
	# one: conex_verify_openssl v1.0.0). It has no --now and only rejects timestamps from
	# the future, hence the large --expiry for this test's fixed dates.
	upstream() {
		[ -n "${CX_UPSTREAM_VERIFY:-}" ] || return 0
		"$CX_UPSTREAM_VERIFY" --quorum 1 -t "$ANCHOR" --expiry 100000000 "$@" >"$W/upstream.out" 2>&1 && return 0
		echo "upstream conex_verify_openssl rejects what conex verify accepted:"
		cat "$W/upstream.out"
		return 8
	}
	snap_ts() { cx snapshot --now "$1" && cx timestamp --now "$1"; }

	# --- the root, the maintainers, the author ---
	expect 0 "$M: root create" cx root create --now $T1
	expect 1 "$M: root create refuses to overwrite" cx root create --now $T1
	expect 0 "$M: root add-key r1" cx root add-key r1 --now $T1
	expect 0 "$M: root add-key r1 again" cx root add-key r1 --now $T2
	out_has 'root: unchanged' "$M: ... changes nothing"
	for m in m1 m2 m3 author; do
		expect 0 "$M: targets create $m" cx targets create $m --now $T1
	done
	expect 0 "$M: add-to-role maintainer m1" cx root add-to-role maintainer m1 --now $T1
	expect 0 "$M: add-to-role maintainer m2" cx root add-to-role maintainer m2 --now $T1
	expect 0 "$M: add-to-role maintainer m3 --quorum 2" cx root add-to-role maintainer m3 --quorum 2 --now $T1
	expect 0 "$M: set-role snapshot snap" cx root set-role snapshot snap --now $T1
	expect 0 "$M: set-role timestamp ts" cx root set-role timestamp ts --now $T1
	grep -q 'maintainer' "$R/root" && grep -Eq '\(2 ' "$R/root" && pass "$M: root has the 2-of-3 maintainer role" ||
		fail "$M: maintainer role: $(cat "$R/root")"
	expect 0 "$M: root sign" cx root sign --now $T1
	out_has 'signed by r1' "$M: ... r1 signed"
	out_has 'valid quorum met' "$M: ... the root's quorum is met"
	expect 0 "$M: root sign again: already signed" cx root sign --now $T1
	out_has 'already signed' "$M: ... says already signed"
	ANCHOR=$(keyid r1)
	for m in m1 m2; do
		expect 0 "$M: $m delegates packages/foo to author" cx targets delegate $m packages/foo author --now $T1
		expect 0 "$M: $m signs" cx targets sign $m --now $T1
	done
	expect 0 "$M: m3 signs (no delegation yet)" cx targets sign m3 --now $T1
	mkdir -p "$R/packages/foo/foo.1.0.0/files"
	printf 'opam-version: "2.0"\nname: "foo"\n' >"$R/packages/foo/foo.1.0.0/opam"
	printf 'a patch\n' >"$R/packages/foo/foo.1.0.0/files/fix.patch"
	expect 0 "$M: release author foo (1.0.0)" cx release author foo --now $T1
	[ "$(grep -c '^wrote ' "$OUT")" -eq 3 ] && pass "$M: release wrote 3 files (keys/author, snap, ts)" ||
		{ fail "$M: release output"; sed 's/^/  | /' "$OUT"; }
	grep -q 'packages/foo/foo.1.0.0/files/fix.patch' "$R/keys/author" && pass "$M: files/ are targets" ||
		fail "$M: files/fix.patch not in keys/author"
	expect 0 "$M: full verification of release 1.0.0" verify_full $T1
	expect 0 "$M: root show (parses back)" cx root show
	expect 0 "$M: targets show author (parses back)" cx targets show author
	out_has 'valid quorum met' "$M: ... author's quorum is met"

	# --- release 1.1.0, incremental ---
	cp -a "$R" "$M/v1"
	mkdir -p "$R/packages/foo/foo.1.1.0"
	printf 'opam-version: "2.0"\nname: "foo"\nversion: "1.1.0"\n' >"$R/packages/foo/foo.1.1.0/opam"
	expect 0 "$M: release author foo (1.1.0)" cx release author foo --now $T2
	expect 0 "$M: incremental: release 1.1.0" verify_inc $T2 "$M/v1"
	expect 0 "$M: release again with nothing new writes nothing" cx release author foo --now $T2
	[ ! -s "$OUT" ] && pass "$M: ... and prints nothing" || fail "$M: release printed: $(cat "$OUT")"
	# nothing is written when a release cannot be signed
	cp "$R/keys/author" "$M/author.before"
	printf 'x\n' >"$R/packages/foo/foo.1.1.0/url"
	expect 1 "$M: release refuses a file that is neither opam nor files/F" cx release author foo --now $T2
	out_has 'packages/foo/foo.1.1.0/url' "$M: ... and names it"
	rm "$R/packages/foo/foo.1.1.0/url"
	mkdir -p "$R/packages/foo/foo.1.2.0"
	printf 'opam-version: "2.0"\n' >"$R/packages/foo/foo.1.2.0/opam"
	expect 0 "$M: the agent may sign only snapshots with the author's key" \
		"$CONEX" agent set-policy "$(keyid author)" --types snapshot
	expect 1 "$M: release: the agent refuses to sign" cx release author foo --now $T2
	out_has 'refused' "$M: ... the refusal is reported"
	cmp -s "$R/keys/author" "$M/author.before" && pass "$M: keys/author untouched after both failures" ||
		fail "$M: keys/author changed by a failed release"
	find "$R/keys" -name '.*.tmp.*' | grep -q . && fail "$M: a temporary file is left in keys/" || pass "$M: no temporary file left"
	expect 0 "$M: policy back to all types" "$CONEX" agent set-policy "$(keyid author)" --types all
	rm -r "$R/packages/foo/foo.1.2.0"

	# --- m3's late signature does not invalidate m1's and m2's ---
	cp -a "$R" "$M/v2"
	expect 0 "$M: m3 delegates packages/foo to author" cx targets delegate m3 packages/foo author --now $T3
	expect 0 "$M: m3 signs" cx targets sign m3 --now $T3
	cmp -s "$R/keys/m1" "$M/v2/keys/m1" && cmp -s "$R/keys/m2" "$M/v2/keys/m2" &&
		pass "$M: keys/m1 and keys/m2 untouched" || fail "$M: m3's signing changed m1 or m2"
	expect 0 "$M: snapshot + timestamp" snap_ts $T3
	expect 0 "$M: incremental: m3's late delegation" verify_inc $T3 "$M/v2"
	expect 0 "$M: full: m1, m2, m3 all count" verify_full $T3
	expect 0 "$M: targets show m1: still signed" cx targets show m1
	out_has 'valid quorum met' "$M: ... m1's signature still verifies"

	# --- revoke the author, delegate to author2 ---
	cp -a "$R" "$M/v3"
	expect 0 "$M: targets create author2" cx targets create author2 --now $T4
	for m in m1 m2 m3; do
		expect 0 "$M: $m undelegates author" cx targets undelegate $m packages/foo author --now $T4
		out_has 'signatures dropped' "$M: ... the proposal drops $m's old signature"
		expect 0 "$M: $m delegates to author2" cx targets delegate $m packages/foo author2 --now $T4
		expect 0 "$M: $m signs" cx targets sign $m --now $T4
	done
	expect 0 "$M: release author2 foo" cx release author2 foo --now $T4
	expect 0 "$M: incremental: author revoked, author2 delegated" verify_inc $T4 "$M/v3"
	cp -a "$R" "$M/v3b"
	mkdir -p "$R/packages/foo/foo.2.0.0"
	printf 'opam-version: "2.0"\n' >"$R/packages/foo/foo.2.0.0/opam"
	expect 0 "$M: the revoked author signs a release" cx release author foo --now $T4
	expect 1 "$M: incremental: the revoked author's release is rejected" verify_inc $T4 "$M/v3b"
	rm -rf "$R" && cp -a "$M/v3b" "$R"

	# --- rotate author2 to a new key ---
	cp -a "$R" "$M/v4"
	NEWKEY=$(newkey author2 | awk '{print $5}')
	[[ "$NEWKEY" =~ ^sha256= ]] && pass "$M: a second key labelled author2" || fail "$M: a second author2 key: $NEWKEY"
	expect 0 "$M: rotate author2 to a new key" cx targets rotate author2 --keyid "$NEWKEY" --now $T5
	grep -q 'epoch 0x1' "$R/keys/author2" && pass "$M: author2 at epoch 1" || fail "$M: author2 epoch: $(grep epoch "$R/keys/author2")"
	expect 0 "$M: author2 signs with the new key" cx targets sign author2 --now $T5
	out_has "sha256=${NEWKEY#sha256=}" "$M: ... with the new key"
	for m in m1 m2; do
		expect 0 "$M: $m re-delegates to the rotated author2" cx targets delegate $m packages/foo author2 --now $T5
		expect 0 "$M: $m signs" cx targets sign $m --now $T5
	done
	expect 0 "$M: snapshot + timestamp" snap_ts $T5
	expect 0 "$M: incremental: rotation of author2 (epoch + 1, counter 0)" verify_inc $T5 "$M/v4"

	# --- fast-forward: an attacker-made counter is rejected; an epoch bump recovers ---
	cp -a "$R" "$M/v5"
	cp -a "$R" "$M/att"
	sed -i 's/counter 0x[0-9A-F]*/counter 0xFFFFFFFFFFFFFFFF/' "$M/att/keys/author2"
	mkpatch "$M/v5" "$M/att" "$M/att.patch"
	expect 1 "$M: incremental: an attacker-made counter 0xFF..FF is rejected" \
		"$CONEX" verify --no-state -t "$ANCHOR" --now $T5 --incremental --repository "$M/v5" --patch "$M/att.patch"
	# the author was tricked into signing the maximum counter
	sed -i 's/counter 0x[0-9A-F]*/counter 0xFFFFFFFFFFFFFFFF/' "$R/keys/author2"
	sed -i '/^signatures:/,$d' "$R/keys/author2"
	expect 0 "$M: author2 signs the fast-forwarded counter" cx targets sign author2 --now $T6
	expect 0 "$M: snapshot + timestamp" snap_ts $T6
	expect 0 "$M: incremental: the fast-forwarded author2 verifies" verify_inc $T6 "$M/v5"
	cp -a "$R" "$M/v6"
	mkdir -p "$R/packages/foo/foo.3.0.0"
	printf 'opam-version: "2.0"\n' >"$R/packages/foo/foo.3.0.0/opam"
	expect 1 "$M: a release at the maximum counter is refused" cx release author2 foo --now $T7
	out_has 'maximum' "$M: ... and says the counter is at its maximum"
	expect 0 "$M: rotate author2 (same key, epoch + 1)" cx targets rotate author2 --now $T7
	expect 0 "$M: release author2 foo (3.0.0)" cx release author2 foo --now $T7
	for m in m1 m2; do
		expect 0 "$M: $m re-delegates" cx targets delegate $m packages/foo author2 --now $T7
		expect 0 "$M: $m signs" cx targets sign $m --now $T7
	done
	expect 0 "$M: snapshot + timestamp" snap_ts $T7
	expect 0 "$M: incremental: recovered by the epoch bump" verify_inc $T7 "$M/v6"

	# --- a 2-of-2 root: propose once, sign many ---
	cp -a "$R" "$M/v7"
	expect 0 "$M: root add-key r2 --quorum 2" cx root add-key r2 --quorum 2 --now $T8
	out_has 'signatures dropped.*r1' "$M: ... the proposal names r1's dropped signature"
	expect 0 "$M: r1 signs" cx root sign --as r1 --now $T8
	out_has 'needs 1 more signature, from: r2' "$M: ... 1 more needed, from r2"
	cp "$R/root" "$M/root.r1"
	expect 0 "$M: r2 signs later" cx root sign --as r2 --now $T8
	out_has 'valid quorum met \(signed by r1, r2\)' "$M: ... both signatures verify"
	expect 0 "$M: snapshot + timestamp" snap_ts $T8
	R2=$(keyid r2)
	expect 0 "$M: incremental: the 2-of-2 root (-t r1,r2 --quorum 2)" \
		bash -c "cd '$M' && diff -ruaN v7 repo >v7.patch; '$CONEX' verify --no-state -t '$ANCHOR,$R2' --quorum 2 --now $T8 --incremental --repository v7 --patch v7.patch"
	expect 0 "$M: full: the 2-of-2 root" "$CONEX" verify --no-state -t "$ANCHOR,$R2" --quorum 2 --now $T8 --dir "$R"
	cp "$R/root" "$M/root.r12"
	# r1's signature goes stale by a hand edit: r2 refuses to sign over it
	cp "$M/root.r1" "$R/root"
	sed -i 's/"packages"/"pkgs"/' "$R/root"
	grep -q '"pkgs"' "$R/root" || fail "$M: editing the root by hand"
	expect 1 "$M: r2 refuses to sign over r1's stale signature" cx root sign --as r2 --now $T8
	out_has 'r1 no longer verifies' "$M: ... naming r1"
	out_has 'reset' "$M: ... and pointing at --reset"
	expect 0 "$M: root sign --as r2 --reset re-proposes" cx root sign --as r2 --reset --now $T8
	out_has 'needs 1 more signature, from: r1' "$M: ... r1 must sign again"

	# --- removing a root key and a maintainer; a second key for m3 ---
	cp "$M/root.r12" "$R/root"
	snap_ts $T8 >/dev/null || fail "$M: snapshot + timestamp"
	cp -a "$R" "$M/v8"
	local T9=2026-11-25T18:00:00Z
	expect 0 "$M: root remove-key r2" cx root remove-key r2 --now $T9
	expect 0 "$M: root remove-from-role maintainer m3" cx root remove-from-role maintainer m3 --now $T9
	grep -Eq '^ +m3$' "$M/v8/root" || fail "$M: m3 was not in the maintainer role"
	grep -Eq '^ +m3$' "$R/root" && fail "$M: m3 still in the maintainer role" || pass "$M: m3 left the maintainer role"
	expect 0 "$M: root sign (r1 alone again)" cx root sign --now $T9
	out_has 'valid quorum met \(signed by r1\)' "$M: ... r1's signature is enough"
	expect 0 "$M: new key m3b" newkey m3b
	expect 0 "$M: targets add-key m3 --keyid m3b" cx targets add-key m3 --keyid "$(keyid m3b)" --now $T9
	out_has 'key hash now' "$M: ... says the key hash changed"
	expect 0 "$M: m3 signs with m3b only" cx targets sign m3 --as m3b --now $T9
	out_has 'valid quorum met \(signed by m3b\)' "$M: ... one of two keys is m3's quorum"
	expect 0 "$M: targets remove-key m3 m3b" cx targets remove-key m3 m3b --now $T9
	expect 0 "$M: m3 signs" cx targets sign m3 --now $T9
	expect 0 "$M: snapshot + timestamp" snap_ts $T9
	expect 0 "$M: incremental: r2 and maintainer m3 removed" verify_inc $T9 "$M/v8"
	expect 0 "$M: full, anchored by r1 alone" verify_full $T9

	# --- a 2-of-2 identity signed by both keys at the same time: no signature is lost ---
	for k in k1 k2; do
		expect 0 "$M: new key $k" newkey $k
	done
	expect 0 "$M: targets create multi --key k1 --key k2" cx targets create multi --key k1 --key "$(keyid k2)" --now $T9
	grep -Eq '\(2 \[' "$R/keys/multi" && pass "$M: keys/multi: valid (2 [k1 k2])" || fail "$M: keys/multi: $(cat "$R/keys/multi")"
	cx targets sign multi --as k1 --now $T9 >"$M/s1.out" 2>&1 &
	local p1=$!
	cx targets sign multi --as k2 --now $T9 >"$M/s2.out" 2>&1 &
	local p2=$!
	wait $p1 && wait $p2 && pass "$M: k1 and k2 sign concurrently" || fail "$M: concurrent signing: $(cat "$M/s1.out" "$M/s2.out")"
	expect 0 "$M: targets show multi" cx targets show multi
	grep -E 'keys/multi: ' "$OUT" | tail -1 >"$M/multi.state"
	grep -Eq 'valid quorum met \(signed by (k1, k2|k2, k1)\)' "$M/multi.state" &&
		pass "$M: ... both signatures are there" || fail "$M: keys/multi: $(cat "$M/multi.state" "$M/s1.out" "$M/s2.out")"
}

# --- hardware keys: one SoftHSM token behind one agent -----------------------------------
if [ "$HSM" = 1 ]; then
	mkdir tokens
	printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$W" >softhsm2.conf
	export SOFTHSM2_CONF=$W/softhsm2.conf
	softhsm2-util --init-token --free --label tools --so-pin 12345678 --pin 123456 >/dev/null ||
		abort "softhsm2-util --init-token"
	SERIAL=$(softhsm2-util --show-slots | awk '/Serial number:/ {s=$3} /Label:/ && $2 == "tools" {print s; exit}')
	[ -n "$SERIAL" ] || abort "no serial for the token"
	printf '123456\n' >pin
	start_agent hw "$MODULE"
	expect 0 "conex agent login" "$CONEX" agent login --pin-file pin "$SERIAL"
	for id in r1 r2 m1 m3 snap ts author author2; do
		expect 0 "key generate $id" "$CONEX" key generate "$id" --token "$SERIAL"
	done
	expect 0 "key generate m2 --alg rsa2048" "$CONEX" key generate m2 --token "$SERIAL" --alg rsa2048
	out_has '^rsa key m2 keyid sha256=[0-9a-f]{64} hardware token tools' "... m2 is an RSA key on the token"
	expect 0 "key list" "$CONEX" key list
	[ "$(grep -c ' hardware token ' "$OUT")" -eq 9 ] && pass "9 hardware keys listed" || fail "key list: $(cat "$OUT")"
	expect 0 "key show m1 --entry" "$CONEX" key show m1 --entry --now 2026-11-25T10:00:00Z
	out_has '^\[m1 "2026-11-25T10:00:00Z" "ed25519=' "... prints the key entry"
	expect 1 "key show of an unknown id fails" "$CONEX" key show nobody
	mkdir hw
	scenario hw
	expect 0 "conex agent audit: the chain is intact" "$CONEX" agent audit "$W/hw.audit"
fi

# --- software keys imported from PEM files ------------------------------------------------
start_agent sw
mkdir soft
for id in r1 r2 m1 m3 snap ts author author2; do
	openssl genpkey -algorithm ed25519 -out "soft/$id.pem" 2>/dev/null || abort "openssl genpkey"
done
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out soft/m2.pem 2>/dev/null || abort "openssl genpkey rsa"
for id in r1 r2 m1 m2 m3 snap ts author author2; do
	expect 0 "key import $id" "$CONEX" key import "$id" "soft/$id.pem"
done
out_has 'software key' "... import warns that the key is not hardware-held"
expect 0 "key list (software)" "$CONEX" key list
[ "$(grep -c ' software$' "$OUT")" -eq 9 ] && pass "9 software keys listed" || fail "key list: $(cat "$OUT")"
scenario soft

# --- a resource larger than any other agent request: 2,500 releases in one SIGN ---------
R=soft/v3 # the scenario's state after m3's late signature: author owns packages/foo
for i in $(seq 1 2500); do
	mkdir -p "$R/packages/foo/foo.9.$i"
	printf 'opam-version: "2.0"\nversion: "9.%s"\n' "$i" >"$R/packages/foo/foo.9.$i/opam"
done
expect 0 "release author foo with 2,500 more releases" "$CONEX" release author foo -r "$R" --now 2026-11-25T18:00:00Z
size=$(wc -c <"$R/keys/author")
[ "$size" -gt 262144 ] && pass "keys/author is $size bytes, over the 256 KiB of other requests" ||
	fail "keys/author is only $size bytes"
expect 0 "full verification of the large release" "$CONEX" verify --no-state -t "$("$CONEX" key show r1 | awk '{print $5; exit}')" --now 2026-11-25T18:00:00Z --dir "$R"

echo "$NPASS passed, $NFAIL failed"
[ "$NFAIL" -eq 0 ]
