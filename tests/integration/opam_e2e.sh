#!/usr/bin/env bash
# opam end-to-end test: a real opam (Debian 12: opam 2.1.2) runs our
# verifier as its repository-validation-command, over the three repository
# backends: a local directory (rsync), a local git repository (git+file://)
# and HTTP (python3 -m http.server on 127.0.0.1).
#
# Environment:
#   CX_HOOK     the verifier command line (split on blanks; no quoting), run as
#               CX_HOOK --quorum Q --trust-anchors A --dir=D            (full)
#               CX_HOOK --quorum Q --trust-anchors A --repository=R \
#                       --patch=P --incremental                         (incremental)
#               Default: "$CONEX verify". CX_HOOK=stub uses a fake verifier
#               built in (rejects content carrying the tamper marker); it
#               checks this script's mechanics only.
#   CONEX       the conex binary (ctest sets it); default $CX_BUILD_DIR/conex.
#   CX_TESTREPO the signed test repository (default ../shared/vectors/testrepo).
#   CX_HOOK_PROBE=0  do not SKIP when CX_HOOK accepts an unknown option.
#
# Everything lives in one mktemp -d directory (OPAMROOT, HOME, TMPDIR, the
# repositories); the only network use is 127.0.0.1. See docs/opam-integration.md.
set -uo pipefail

if ! command -v opam >/dev/null 2>&1; then
	echo "SKIP: opam is not installed (apt-get install opam, or run scripts/setup.sh)"
	exit 0
fi

SRC=${CX_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TESTREPO=${CX_TESTREPO:-$SRC/../shared/vectors/testrepo}
ANCHOR=sha256=3aedc7043e771efc42a3c3e6b60fa6baeb2c26c2d57f994c632bae98a09af701
QUORUM=1
MARK_V2="cx-e2e-v2"
MARK_BAD="cx-e2e-tampered"

if [ ! -d "$TESTREPO" ]; then
	echo "SKIP: test repository $TESTREPO not found"
	exit 0
fi

CONEX=${CONEX:-${CX_BUILD_DIR:-$SRC/build}/conex}
CX_HOOK=${CX_HOOK:-"$CONEX verify"}
if [ "$CX_HOOK" != stub ]; then
	read -r -a HOOK <<<"$CX_HOOK"
	if ! command -v "${HOOK[0]}" >/dev/null 2>&1; then
		echo "SKIP: verifier ${HOOK[0]} not found (build first, or set CX_HOOK)"
		exit 0
	fi
	# A real command line rejects an unknown option. The skeleton conex
	# (main() { return 0; }) accepts anything: it cannot be tested yet.
	if [ "${CX_HOOK_PROBE:-1}" != 0 ] &&
		"${HOOK[@]}" --cx-e2e-no-such-option >/dev/null 2>&1; then
		echo "SKIP: '$CX_HOOK' accepts any argument (conex verify not implemented yet?)"
		exit 0
	fi
fi

# --- isolation -------------------------------------------------------------
for v in $(compgen -e); do
	case "$v" in
	OPAM*) unset "$v" ;; # e.g. a developer's OPAMNOCHECKSUMS would skip the hook
	esac
done
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost

T=$(mktemp -d "${TMPDIR:-/tmp}/cx-opam-e2e.XXXXXX") || exit 1
HTTP_PID=
cleanup() {
	if [ -n "$HTTP_PID" ]; then
		kill "$HTTP_PID" 2>/dev/null
		wait "$HTTP_PID" 2>/dev/null
	fi
	chmod -R u+w "$T" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$T/home" "$T/tmp" "$T/bin" "$T/www"
export HOME="$T/home" TMPDIR="$T/tmp"
export OPAMROOT="$T/opamroot" OPAMYES=1 OPAMROOTISOK=1 OPAMNODEPEXTS=1
export OPAMCOLOR=never OPAMSTATUSLINE=never OPAMUTF=0 OPAMDOWNLOADJOBS=1
export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=cx GIT_AUTHOR_EMAIL=cx@localhost \
	GIT_COMMITTER_NAME=cx GIT_COMMITTER_EMAIL=cx@localhost
OPAM_TIMEOUT=60

NPASS=0
NFAIL=0
pass() { echo "PASS: $*"; NPASS=$((NPASS + 1)); }
fail() { echo "FAIL: $*"; NFAIL=$((NFAIL + 1)); }
check() { # check DESCRIPTION COMMAND...
	local d=$1
	shift
	if "$@"; then pass "$d"; else fail "$d"; fi
}

# --- repository content ------------------------------------------------------
# The lead replaces these three with calls to the signing tool. Each works on a
# working tree DIR; publish_* makes the tree visible to opam afterwards.

# make_repo_v1 DIR: a fresh, validly signed repository.
make_repo_v1() {
	rm -rf "$1"
	cp -R "$TESTREPO" "$1"
	chmod -R u+w "$1"
	rm -rf "$1/priv" # test private keys: not part of a published repository
}

# make_repo_v2 DIR: a signed update of DIR (one package changed).
make_repo_v2() {
	printf '# %s\n' "$MARK_V2" >>"$1/packages/baz/opam"
}

# tamper DIR: change a package file without signing it.
tamper() {
	printf '# %s\n' "$MARK_BAD" >>"$1/packages/foo/foo.1.0.0/opam"
}

# --- the hook ------------------------------------------------------------------
# opam runs $T/bin/cx-hook: it records the call in $T/hook.log (mode, argv, and
# whether --dir/--patch/--repository existed at call time), then execs CX_HOOK.
if [ "$CX_HOOK" = stub ]; then
	cat >"$T/bin/stub-verify" <<EOF
#!/usr/bin/env bash
# Fake verifier: checks the arguments and rejects the tamper marker.
q= a= d= p= r= inc=0
while [ \$# -gt 0 ]; do
	case "\$1" in
	--quorum) q=\$2; shift ;;
	--trust-anchors) a=\$2; shift ;;
	--dir=*) d=\${1#--dir=} ;;
	--patch=*) p=\${1#--patch=} ;;
	--repository=*) r=\${1#--repository=} ;;
	--incremental) inc=1 ;;
	*) echo "stub-verify: bad argument \$1" >&2; exit 124 ;;
	esac
	shift
done
[ "\$q" = "$QUORUM" ] && [ "\$a" = "$ANCHOR" ] || exit 124
if [ \$inc = 1 ]; then
	[ -f "\$p" ] && [ -d "\$r" ] || exit 124
	! grep -q '^+.*$MARK_BAD' "\$p" || exit 124
else
	[ -d "\$d" ] && [ -f "\$d/root" ] || exit 124
	! grep -rq '$MARK_BAD' "\$d/packages" || exit 124
fi
exit 0
EOF
	chmod +x "$T/bin/stub-verify"
	HOOK=("$T/bin/stub-verify")
fi
{
	echo '#!/usr/bin/env bash'
	echo "log=$(printf %q "$T/hook.log")"
	cat <<'EOF'
mode=full
for a in "$@"; do [ "$a" = --incremental ] && mode=incremental; done
ex=
for a in "$@"; do
	case "$a" in
	--dir=*) [ -d "${a#--dir=}" ] && ex="$ex dir-exists" ;;
	--patch=*) [ -f "${a#--patch=}" ] && ex="$ex patch-exists" ;;
	--repository=*) [ -d "${a#--repository=}" ] && ex="$ex repo-exists" ;;
	esac
done
printf '%s%s |%s\n' "$mode" "$ex" "$(printf ' %q' "$@")" >>"$log"
EOF
	printf 'exec'
	printf ' %q' "${HOOK[@]}"
	printf ' "$@"\n'
} >"$T/bin/cx-hook"
chmod +x "$T/bin/cx-hook"
: >"$T/hook.log"

hook_calls() { wc -l <"$T/hook.log"; }
last_hook() { tail -n 1 "$T/hook.log"; }
hook_called() { # hook_called N GLOB: exactly one call since N calls, matching GLOB
	# shellcheck disable=SC2053 # $2 is a glob pattern
	[ "$(hook_calls)" -eq $(($1 + 1)) ] && [[ "$(last_hook)" == $2 ]]
}
not_registered() { ! grep -qF "\"$1\"" "$OPAMROOT/repo/repos-config"; }

OUT="$T/opam.out"
run_opam() { # run_opam ARGS...: output in $OUT, returns opam's exit code
	timeout "$OPAM_TIMEOUT" opam "$@" >"$OUT" 2>&1
}

# stored_tree NAME DEST: opam's stored copy of repository NAME, extracted
# (opam 2.1 keeps $OPAMROOT/repo/NAME.tar.gz; 2.0 a directory).
stored_tree() {
	rm -rf "$2"
	mkdir -p "$2"
	if [ -f "$OPAMROOT/repo/$1.tar.gz" ]; then
		tar xzf "$OPAMROOT/repo/$1.tar.gz" -C "$2" --strip-components=1
	elif [ -d "$OPAMROOT/repo/$1" ]; then
		cp -R "$OPAMROOT/repo/$1/." "$2"
	else
		return 1
	fi
	rm -rf "$2/.git"
}
stored_has() { # stored_has NAME MARKER
	stored_tree "$1" "$T/stored" && grep -rqF "$2" "$T/stored/packages"
}

echo "opam e2e: hook = ${HOOK[*]}, work dir $T"

# --- opam root -------------------------------------------------------------------
mkdir -p "$T/bootstrap/packages"
printf 'opam-version: "2.0"\n' >"$T/bootstrap/repo"
if ! run_opam init --bare --no-setup --disable-sandboxing --no-opamrc bootstrap "$T/bootstrap" ||
	! run_opam repository remove bootstrap --all; then
	cat "$OUT"
	echo "FAIL: opam init in $OPAMROOT"
	echo "0 passed, 1 failed"
	exit 1
fi
HOOKCFG="[\"$T/bin/cx-hook\" \"--quorum\" \"%{quorum}%\" \"--trust-anchors\" \"%{anchors}%\""
HOOKCFG+=" \"--repository=%{repo}%\" {incremental} \"--dir=%{dir}%\" {!incremental}"
HOOKCFG+=" \"--patch=%{patch}%\" {incremental} \"--incremental\" {incremental}]"
run_opam option --global "repository-validation-command=$HOOKCFG"
check "opam $(opam --version): repository-validation-command set in \$OPAMROOT/config" \
	grep -q "cx-hook" "$OPAMROOT/config"

# --- HTTP server -------------------------------------------------------------------
start_http() {
	local py
	# the interpreter itself (not a pyenv-style shim), so that $! is the server
	py=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || return 1
	"$py" -u -m http.server --bind 127.0.0.1 --directory "$T/www" 0 \
		>"$T/http.log" 2>&1 &
	HTTP_PID=$!
	for _ in $(seq 50); do
		HTTP_PORT=$(sed -n 's/^Serving HTTP on .* port \([0-9][0-9]*\).*/\1/p' "$T/http.log")
		[ -n "$HTTP_PORT" ] && return 0
		kill -0 "$HTTP_PID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# --- backends --------------------------------------------------------------------
# publish KIND DIR: make the working tree DIR visible under url KIND DIR.
publish() {
	case "$1" in
	local) ;;
	git)
		git -C "$2" init -q 2>/dev/null
		git -C "$2" add -A && git -C "$2" commit -q --allow-empty -m update
		;;
	http)
		# opam's HTTP backend fetches only URL/index.tar.gz. "opam admin index"
		# packs just packages/, repo and version: the conex metadata must be
		# added, so the index is made by hand.
		local w f list=()
		w="$T/www/$(basename "$2")"
		mkdir -p "$w"
		for f in repo version root snap timestamp keys packages; do
			[ -e "$2/$f" ] && list+=("$f")
		done
		tar czf "$w/index.tar.gz.tmp" -C "$2" "${list[@]}" &&
			mv "$w/index.tar.gz.tmp" "$w/index.tar.gz"
		;;
	esac
}
url_of() {
	case "$1" in
	local) echo "file://$2" ;; # file:// forces the local backend even over a git checkout
	git) echo "git+file://$2" ;;
	http) echo "http://127.0.0.1:$HTTP_PORT/$(basename "$2")" ;;
	esac
}

test_backend() {
	local kind=$1 name="cx-$1" src="$T/src-$1" bad="$T/bad-$1" url n

	# 1. A tampered repository is refused by "opam repository add".
	make_repo_v1 "$bad"
	tamper "$bad"
	publish "$kind" "$bad"
	n=$(hook_calls)
	if run_opam repository add "$name-bad" "$(url_of "$kind" "$bad")" "$QUORUM" "$ANCHOR" \
		--dont-select; then
		fail "$kind: add of a tampered repository was accepted"
	elif [ "$(hook_calls)" -ne $((n + 1)) ]; then
		fail "$kind: add of a tampered repository failed, but not in the hook"
		sed 's/^/  | /' "$OUT"
	else
		pass "$kind: add of a tampered repository refused (hook: $(last_hook | cut -d'|' -f1 | sed 's/ *$//'))"
	fi
	check "$kind: refused repository is not registered" not_registered "$name-bad"

	# 2. Add v1: full validation of the fetched tree.
	make_repo_v1 "$src"
	publish "$kind" "$src"
	url=$(url_of "$kind" "$src")
	n=$(hook_calls)
	if run_opam repository add "$name" "$url" "$QUORUM" "$ANCHOR" --dont-select; then
		pass "$kind: opam repository add $name (v1) accepted"
	else
		fail "$kind: opam repository add $name (v1) refused"
		sed 's/^/  | /' "$OUT"
		return
	fi
	check "$kind: add ran the hook once, in full mode with an existing --dir" \
		hook_called "$n" "full dir-exists |*"
	check "$kind: hook got --quorum $QUORUM --trust-anchors <anchor>" \
		hook_called "$n" "*| --quorum $QUORUM --trust-anchors $ANCHOR *"

	# 3. No change: no validation.
	n=$(hook_calls)
	run_opam update "$name"
	check "$kind: empty update runs no hook" test "$(hook_calls)" -eq "$n"

	# 4. Signed update v2: incremental validation.
	make_repo_v2 "$src"
	publish "$kind" "$src"
	n=$(hook_calls)
	if run_opam update "$name" && stored_has "$name" "$MARK_V2"; then
		pass "$kind: update to v2 accepted and applied"
	else
		fail "$kind: update to v2 refused or not applied"
		sed 's/^/  | /' "$OUT"
	fi
	check "$kind: update ran the hook once, incremental, with --repository and --patch" \
		hook_called "$n" "incremental repo-exists patch-exists |*"

	# 5. Tampered update: refused, stored state unchanged.
	stored_tree "$name" "$T/before"
	tamper "$src"
	publish "$kind" "$src"
	n=$(hook_calls)
	if run_opam update "$name"; then
		fail "$kind: tampered update accepted"
	elif ! grep -q "Invalid repository signatures" "$OUT"; then
		fail "$kind: tampered update failed, but not in validation"
		sed 's/^/  | /' "$OUT"
	else
		pass "$kind: tampered update refused (exit code nonzero, 'Invalid repository signatures')"
	fi
	check "$kind: tampered update ran the hook in incremental mode" \
		hook_called "$n" "incremental *"
	stored_tree "$name" "$T/after"
	check "$kind: stored repository unchanged after the refused update" \
		diff -r "$T/before" "$T/after"

	# 6. OPAMNOCHECKSUMS=1 bypasses the hook (documented opam behaviour).
	n=$(hook_calls)
	if OPAMNOCHECKSUMS=1 run_opam update "$name" && [ "$(hook_calls)" -eq "$n" ] &&
		stored_has "$name" "$MARK_BAD"; then
		pass "$kind: OPAMNOCHECKSUMS=1 skips the hook (tampered tree applied)"
	else
		fail "$kind: OPAMNOCHECKSUMS=1 did not behave as documented"
	fi
	run_opam repository remove "$name" --all
}

test_backend local
if command -v git >/dev/null 2>&1; then
	test_backend git
else
	echo "SKIP: git backend (git not installed)"
fi
if ! command -v curl >/dev/null 2>&1 && ! command -v wget >/dev/null 2>&1; then
	echo "SKIP: http backend (neither curl nor wget installed)"
elif start_http; then
	test_backend http
else
	fail "http: could not start python3 -m http.server on 127.0.0.1"
	cat "$T/http.log" 2>/dev/null
fi

echo "$NPASS passed, $NFAIL failed"
[ "$NFAIL" -eq 0 ]
