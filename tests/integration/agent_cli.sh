#!/usr/bin/env bash
# conex-agent as a user meets it: daemon start-up and its environment lines,
# the socket's directory and mode, `conex agent` commands against a SoftHSM
# token, lock/unlock, -k, start-up errors reported by the daemonising parent,
# systemd socket activation, another uid refused, `gdb -p` refused, and the
# audit chain checked with `conex agent audit`.  The signing paths, policy,
# frames and concurrency are in tests/unit/test_agent.c.
#
# Environment (ctest sets them): CX_BUILD_DIR, CX_SOURCE_DIR, CONEX.

# pass/fail always return 0, so "test && pass || fail" is an if-then-else here.
# shellcheck disable=SC2015
set -uo pipefail

BUILD=${CX_BUILD_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}
CONEX=${CONEX:-$BUILD/conex}
AGENT=$BUILD/conex-agent
MODULE=${CX_SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
for b in "$CONEX" "$AGENT"; do
	if [ ! -x "$b" ]; then
		echo "FAIL: $b not built"
		exit 1
	fi
done
if [ ! -r "$MODULE" ] || ! command -v softhsm2-util >/dev/null; then
	echo "SKIP: SoftHSM2 not installed"
	exit 0
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/cx-agent-cli.XXXXXX") || exit 1
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	[ -n "${CONEX_AGENT_PID:-}" ] && kill "$CONEX_AGENT_PID" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
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
		fail "$d: exit $rc, want $want"
		sed 's/^/    /' "$OUT" | head -20
	fi
}
alive() { kill -0 "$1" 2>/dev/null; }
# wait_gone PID: up to 10 s
wait_gone() {
	local i
	for i in $(seq 100); do
		alive "$1" || return 0
		sleep 0.1
	done
	return 1
}

# a private SoftHSM token
mkdir -p "$W/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$W" >"$W/softhsm2.conf"
export SOFTHSM2_CONF=$W/softhsm2.conf
softhsm2-util --init-token --free --label cli --so-pin 12345678 --pin 1234 >/dev/null || {
	echo "FAIL: softhsm2-util --init-token"
	exit 1
}
SERIAL=$(softhsm2-util --show-slots | awk '/Serial number:/ {s=$3} /Label:/ && $2 == "cli" {print s; exit}')
echo 1234 >"$W/pin"
echo sesame >"$W/pw"

# --- daemon start-up: prints the environment, forks away, socket 0600 ---
mkdir -m 700 "$W/a"
"$AGENT" -a "$W/a/sock" --audit "$W/audit.log" -P "$MODULE" -m "$MODULE" >"$W/env" 2>"$W/err"
rc=$?
[ $rc -eq 0 ] && pass "daemon starts" || { fail "daemon start: exit $rc"; cat "$W/err"; }
grep -q "^CONEX_AGENT_SOCK=$W/a/sock; export CONEX_AGENT_SOCK;\$" "$W/env" &&
	grep -q '^CONEX_AGENT_PID=[0-9]*; export CONEX_AGENT_PID;$' "$W/env" &&
	pass "environment lines" || { fail "environment lines"; cat "$W/env"; }
eval "$(cat "$W/env")" >/dev/null
alive "$CONEX_AGENT_PID" && pass "daemon running" || fail "daemon not running"
ppid=$(awk '{print $4}' "/proc/$CONEX_AGENT_PID/stat" 2>/dev/null)
sid=$(awk '{print $6}' "/proc/$CONEX_AGENT_PID/stat" 2>/dev/null)
[ "$sid" = "$CONEX_AGENT_PID" ] && pass "daemon leads its own session (ppid $ppid)" ||
	fail "daemon session $sid"
[ "$(stat -c %a "$W/a/sock")" = 600 ] && pass "socket mode 0600" || fail "socket mode $(stat -c %a "$W/a/sock")"
# dumpable 0 shows as a root-owned /proc/PID directory... only for other uids; check the flag itself
grep -q . "/proc/$CONEX_AGENT_PID/status" && pass "status readable"

# --- conex agent commands ---
expect 0 "login" "$CONEX" agent login "$SERIAL" --pin-file "$W/pin"
expect 0 "generate ed25519" "$CONEX" agent generate "$SERIAL" m1 --alg ed25519
expect 0 "generate rsa2048" "$CONEX" agent generate "$SERIAL" r1 --alg rsa2048
expect 0 "list" "$CONEX" agent list
grep -q "	m1	ed25519	hardware	$SERIAL" "$OUT" && grep -q "	r1	rsa	" "$OUT" &&
	pass "list shows both keys" || { fail "list"; cat "$OUT"; }
KID=$(awk -F'\t' '$2 == "m1" {print $1}' "$OUT")
expect 0 "set-policy" "$CONEX" agent set-policy "$KID" --types targets --max-sigs 5
expect 0 "list again" "$CONEX" agent list
grep "	m1	" "$OUT" | grep -q "types=targets" && pass "policy shown" || { fail "policy"; cat "$OUT"; }
expect 1 "remove-key of a token key refused" "$CONEX" agent remove-key "$KID"
# a module outside the allow-list, even a copy of an allowed one
cp "$MODULE" "$W/copy.so"
expect 1 "add-token from outside the allow-list" "$CONEX" agent add-token "$W/copy.so"
grep -qi "allow-list" "$OUT" && pass "says allow-list" || { fail "allow-list message"; cat "$OUT"; }
expect 1 "login to an unknown token" "$CONEX" agent login 0000000000000000 --pin-file "$W/pin"

# --- lock ---
expect 0 "lock" "$CONEX" agent lock --password-file "$W/pw"
expect 1 "list while locked" "$CONEX" agent list
echo wrong >"$W/wrong"
expect 1 "unlock with the wrong password" "$CONEX" agent unlock --password-file "$W/wrong"
sleep 1.2
expect 0 "unlock" "$CONEX" agent unlock --password-file "$W/pw"
expect 0 "list after unlock" "$CONEX" agent list

# --- another uid: the socket's directory keeps it out ---
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
	chmod 711 "$W"
	expect 3 "nobody cannot reach the socket" runuser -u nobody -- "$CONEX" agent -s "$W/a/sock" list
	# loosened on purpose: the agent itself refuses (SO_PEERCRED)
	chmod 711 "$W/a"
	chmod 666 "$W/a/sock"
	runuser -u nobody -- "$CONEX" agent -s "$W/a/sock" list >"$OUT" 2>&1
	rc=$?
	[ $rc -ne 0 ] && pass "nobody refused by the agent (exit $rc)" || fail "nobody was served"
	chmod 600 "$W/a/sock"
	chmod 700 "$W/a"
	expect 0 "root still served" "$CONEX" agent list
fi

# --- audit chain ---
expect 0 "audit chain verifies" "$CONEX" agent audit "$W/audit.log"
cp "$W/audit.log" "$W/edited.log"
sed -i '2s/"op":"generate"/"op":"generat3"/' "$W/edited.log"
expect 1 "edited audit line detected" "$CONEX" agent audit "$W/edited.log"

# --- -k: SIGTERM, socket removed ---
pid=$CONEX_AGENT_PID
"$AGENT" -k >"$W/kill" 2>&1 && grep -q "unset CONEX_AGENT_SOCK;" "$W/kill" && pass "-k" || fail "-k"
wait_gone "$pid" && pass "agent gone after -k" || fail "agent still running"
[ ! -e "$W/a/sock" ] && pass "socket removed" || fail "socket left behind"
unset CONEX_AGENT_PID CONEX_AGENT_SOCK

# --- a crash took the audit log's last lines: the journal gives them back at start ---
cp "$W/audit.log" "$W/whole.log"
n=$(wc -l <"$W/whole.log")
head -n $((n - 2)) "$W/whole.log" >"$W/cut.log" && cat "$W/cut.log" >"$W/audit.log" # same inode
"$AGENT" -f -a "$W/a/s6" --audit "$W/audit.log" >/dev/null 2>"$W/err6" &
PIDS+=($!)
for _ in $(seq 50); do [ -S "$W/a/s6" ] && break; sleep 0.1; done
kill "${PIDS[-1]}"
wait_gone "${PIDS[-1]}"
grep -q "2 line(s) lost in a crash were restored" "$W/err6" && pass "journal replay reported" ||
	{ fail "journal replay message"; cat "$W/err6"; }
head -n "$n" "$W/audit.log" | cmp -s - "$W/whole.log" && pass "lost lines restored byte for byte" ||
	fail "restored lines differ"
expect 0 "audit chain verifies after the replay" "$CONEX" agent audit "$W/audit.log"

# --- ADD_TOKEN by pkcs11: URI and by serial, REMOVE_TOKEN ---
"$AGENT" -f -a "$W/a/s5" --audit "$W/audit5.log" -P "$MODULE" >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -S "$W/a/s5" ] && break; sleep 0.1; done
export CONEX_AGENT_SOCK=$W/a/s5
expect 1 "add-token for a token that is not there" "$CONEX" agent add-token "$MODULE" "pkcs11:token=nosuch"
expect 0 "add-token by pkcs11: URI" "$CONEX" agent add-token "$MODULE" "pkcs11:token=cli"
expect 0 "login" "$CONEX" agent login "$SERIAL" --pin-file "$W/pin"
expect 0 "list" "$CONEX" agent list
grep -q "	m1	" "$OUT" && grep -q "	r1	" "$OUT" && pass "the token's keys are back after login" ||
	{ fail "keys after add-token"; cat "$OUT"; }
expect 0 "remove-token" "$CONEX" agent remove-token "$SERIAL"
expect 0 "list after remove-token" "$CONEX" agent list
grep -q "	m1	" "$OUT" && fail "keys still listed after remove-token" || pass "keys forgotten"
sleep 2.5 # a rescan must not attach it again
expect 1 "login after remove-token" "$CONEX" agent login "$SERIAL" --pin-file "$W/pin"
expect 0 "add-token by serial" "$CONEX" agent add-token "$MODULE" "$SERIAL"
expect 0 "login again" "$CONEX" agent login "$SERIAL" --pin-file "$W/pin"
kill "${PIDS[-1]}"
wait_gone "${PIDS[-1]}"
unset CONEX_AGENT_SOCK

# --- start-up errors reach the terminal through the daemonising parent ---
expect 1 "bad module reported" "$AGENT" -a "$W/a/sock2" --audit "$W/audit.log" -m /nonexistent/module.so
grep -q "module" "$OUT" && pass "says what failed" || { fail "message"; cat "$OUT"; }
[ ! -e "$W/a/sock2" ] && pass "no socket left by a failed start" || fail "socket left by a failed start"
# one audit chain, one writer
"$AGENT" -f -a "$W/a/s3" --audit "$W/audit.log" >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -S "$W/a/s3" ] && break; sleep 0.1; done
expect 1 "second agent on the same audit log refused" "$AGENT" -f -a "$W/a/s4" --audit "$W/audit.log"
kill "${PIDS[-1]}"
wait_gone "${PIDS[-1]}"

# --- the default socket: \$XDG_RUNTIME_DIR/conex-agent, 0700 and ours ---
mkdir -m 700 "$W/run"
XDG_RUNTIME_DIR=$W/run "$AGENT" --audit "$W/audit.log" >"$W/env2" 2>&1
eval "$(cat "$W/env2")" >/dev/null
[ "${CONEX_AGENT_SOCK:-}" = "$W/run/conex-agent/agent.sock" ] && [ -S "$CONEX_AGENT_SOCK" ] &&
	[ "$(stat -c %a "$W/run/conex-agent")" = 700 ] && pass "default socket" ||
	{ fail "default socket"; cat "$W/env2"; }
"$AGENT" -k >/dev/null 2>&1
wait_gone "${CONEX_AGENT_PID:-0}"
unset CONEX_AGENT_PID CONEX_AGENT_SOCK
chmod 755 "$W/run/conex-agent"
XDG_RUNTIME_DIR=$W/run "$AGENT" --audit "$W/audit.log" >"$OUT" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q "accessible to others" "$OUT" && pass "refuses a loose socket directory" ||
	{ fail "loose socket directory: exit $rc"; cat "$OUT"; }

# --- systemd socket activation: fd 3, never unlinked ---
if command -v systemd-socket-activate >/dev/null; then
	systemd-socket-activate -l "$W/act.sock" "$AGENT" -d --audit "$W/act.log" >"$W/act.out" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 50); do [ -S "$W/act.sock" ] && break; sleep 0.1; done
	expect 0 "socket-activated agent answers" "$CONEX" agent -s "$W/act.sock" list
	grep -q "listening on $W/act.sock" "$W/act.out" && pass "uses the passed socket" ||
		{ fail "activation"; cat "$W/act.out"; }
	kill "${PIDS[-1]}"
	wait_gone "${PIDS[-1]}"
	[ -S "$W/act.sock" ] && pass "activated socket not unlinked" || fail "activated socket unlinked"
fi

# --- gdb -p against an agent of nobody, by nobody ---
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1 && command -v gdb >/dev/null; then
	mkdir -m 700 "$W/nb" && chown nobody "$W/nb"
	runuser -u nobody -- "$AGENT" -a "$W/nb/sock" --audit "$W/nb/audit.log" >"$W/nbenv" 2>&1
	npid=$(sed -n 's/^CONEX_AGENT_PID=\([0-9]*\);.*/\1/p' "$W/nbenv")
	PIDS+=("$npid")
	runuser -u nobody -- sleep 30 >/dev/null 2>&1 &
	PIDS+=($!)
	sleep 0.3
	spid=$(pgrep -u nobody -n -x sleep)
	PIDS+=("$spid")
	runuser -u nobody -- gdb -p "$spid" -batch >"$OUT" 2>&1
	grep -q "Operation not permitted" "$OUT" && fail "control: nobody cannot attach to its own sleep" ||
		pass "control: nobody attaches to its own process"
	runuser -u nobody -- gdb -p "$npid" -batch >"$OUT" 2>&1
	grep -q "ptrace: Operation not permitted" "$OUT" && pass "gdb -p on the agent refused" ||
		{ fail "gdb attached to the agent"; cat "$OUT"; }
	alive "$npid" && pass "agent alive after the attempt" || fail "agent died"
	CONEX_AGENT_PID=$npid "$AGENT" -k >/dev/null
	wait_gone "$npid"
	unset CONEX_AGENT_PID
fi

echo "$NPASS passed, $NFAIL failed"
[ "$NFAIL" -eq 0 ]
