#!/bin/sh
# Installs every Debian package e2b-ci needs to build, run its kernels and run
# its tests. Idempotent: when everything is present it only runs dpkg-query and
# returns in well under a second. Used by `make run`, `make test`, CI and the
# E2B template image alike, so all of them get the very same set.
#
# Usage: template/install-deps.sh [--runtime-only]
set -eu

BUILD="build-essential pkg-config libmicrohttpd-dev libjansson-dev libzmq3-dev
uuid-dev libsystemd-dev"
RUNTIME="libmicrohttpd12 libjansson4 libzmq5 libuuid1 libsystemd0
python3-ipykernel python3-jupyter-client python3-matplotlib python3-pandas
python3-numpy python3-pil systemd sudo curl iproute2
r-cran-irkernel fonts-wqy-microhei"
TEST="python3-pytest python3-jupyter-kernel-test curl clang libclang-rt-14-dev valgrind"

PKGS="$RUNTIME"
if [ "${1:-}" != "--runtime-only" ]; then
	PKGS="$PKGS $BUILD $TEST"
fi

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done

# The machine image ships its own Node.js (with npm); Debian's nodejs conflicts
# with it, so Debian's is only installed where no node is present at all.
if [ "${1:-}" != "--runtime-only" ] && ! command -v node >/dev/null 2>&1; then
	missing="$missing nodejs npm"
fi

if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "install-deps: missing packages:$missing (run as root)" >&2
		exit 1
	fi
	echo "install-deps: installing$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# Our own kernels install what they need (npm packages, a JDK) themselves.
here=$(cd "$(dirname "$0")" && pwd)
for k in "$here"/../kernels/*/install.sh; do
	[ -x "$k" ] && "$k" "${1:-}"
done

# E2B sandboxes run code in /home/user; contexts default to it.
[ -d /home/user ] || mkdir -p /home/user
exit 0
