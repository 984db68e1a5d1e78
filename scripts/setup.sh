#!/usr/bin/env bash
# Install every Debian 12 package the project needs. Idempotent and
# non-interactive: "apt-get update" and "apt-get install" run only when a
# package is missing. Run as root (or as a user with sudo).
set -euo pipefail

PACKAGES=(
	# build and test
	build-essential cmake pkg-config libssl-dev libsodium-dev check
	zlib1g-dev libdeflate-dev clang libclang-rt-14-dev
	# tools used by the scripts and integration tests
	git python3 opam patch diffutils tar gzip
	# PKCS#11 / smart-card work (agent, pkcs11/)
	softhsm2 opensc p11-kit libp11-kit-dev pcscd libpcsclite-dev
)

export DEBIAN_FRONTEND=noninteractive

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=(sudo -E)
	else
		echo "setup.sh: not root and sudo is not available" >&2
		exit 1
	fi
fi

missing=()
for p in "${PACKAGES[@]}"; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	"install ok installed") ;;
	*) missing+=("$p") ;;
	esac
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "setup.sh: all ${#PACKAGES[@]} packages already installed"
	exit 0
fi

echo "setup.sh: installing: ${missing[*]}"
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
	"${missing[@]}"
