#!/bin/sh
# Installs the Debian packages e2b-ci needs, then runs each kernel's own
# install step (kernels/*/install.sh: npm packages, a JDK). Idempotent: when
# everything is present it only runs dpkg-query and returns in well under a
# second. Used by `make run`, `make test`, CI and the E2B template image alike,
# so all of them get the very same sets.
#
# Usage: template/install-deps.sh [MODE]
#   (no MODE)            run, build and test: a development machine, CI
#   --runtime-only       run only: a machine that gets built binaries
#   --no-tests           run and build, not the test toolchain (clang, llvm,
#                        valgrind, pytest); remembers which build packages it
#                        installed, in /var/lib/e2b-ci/build-deps, so that
#   --remove-build-deps  removes exactly those again (with what only they
#                        pulled in, apt's cache and package lists) once
#                        `make install` is done: the E2B template runs
#                        --no-tests, make install, then this, so its image
#                        holds what runs and not what builds or tests.
# Every mode installs Debian's nodejs where no node is present: the JavaScript
# and TypeScript kernels run on it. npm comes with it, for
# kernels/node/install.sh, and stays in the image: sandbox users install the
# packages their JavaScript imports with it (`npm i lodash`).
set -eu

BUILD="build-essential pkg-config libmicrohttpd-dev libjansson-dev libzmq3-dev
uuid-dev libsystemd-dev"
RUNTIME="libmicrohttpd12 libjansson4 libzmq5 libuuid1 libsystemd0
python3-ipykernel python3-jupyter-client python3-matplotlib python3-pandas
python3-numpy python3-pil systemd sudo curl iproute2
r-cran-irkernel fonts-wqy-microhei"
TEST="python3-pytest python3-jupyter-kernel-test curl clang libclang-rt-14-dev valgrind"
# Where --no-tests lists what --remove-build-deps removes (tests move it).
RECORD=${E2BCI_BUILD_DEPS_RECORD:-/var/lib/e2b-ci/build-deps}

mode=${1:-}
case "$mode" in
"") PKGS="$RUNTIME $BUILD $TEST" ;;
--runtime-only) PKGS="$RUNTIME" ;;
--no-tests) PKGS="$RUNTIME $BUILD" ;;
--remove-build-deps)
	if [ ! -s "$RECORD" ]; then
		echo "install-deps: $RECORD lists nothing to remove" >&2
		exit 0
	fi
	pkgs=$(cat "$RECORD")
	echo "install-deps: removing build packages:" $pkgs >&2
	export DEBIAN_FRONTEND=noninteractive
	# Marked as installed automatically, they go with everything only they
	# pulled in; a package something at run time depends on stays.
	# shellcheck disable=SC2086
	apt-mark auto $pkgs >/dev/null
	apt-get autoremove --purge -y -qq >/dev/null
	apt-get clean
	rm -rf /var/lib/apt/lists/* "$RECORD"
	rmdir "${RECORD%/*}" 2>/dev/null || true
	exit 0
	;;
*)
	echo "usage: $0 [--runtime-only | --no-tests | --remove-build-deps]" >&2
	exit 2
	;;
esac

installed() {
	case "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" in
	*" installed") return 0 ;;
	esac
	return 1
}

missing=""
for p in $PKGS; do
	installed "$p" || missing="$missing $p"
done

# The machine image ships its own Node.js (with npm); Debian's nodejs conflicts
# with it, so Debian's is only installed where no node is present at all.
if ! command -v node >/dev/null 2>&1; then
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
	if [ "$mode" = --no-tests ]; then
		mkdir -p "${RECORD%/*}"
		for p in $missing; do
			case " $(echo $BUILD) " in
			*" $p "*) echo "$p" >>"$RECORD" ;;
			esac
		done
	fi
fi

# Our own kernels install what they need (npm packages, a JDK) themselves;
# they know one option, --runtime-only (no test tools of their own).
kmode=
[ "$mode" = "" ] || kmode=--runtime-only
here=$(cd "$(dirname "$0")" && pwd)
for k in "$here"/../kernels/*/install.sh; do
	[ -x "$k" ] && "$k" $kmode
done

# E2B sandboxes run code in /home/user; contexts default to it.
[ -d /home/user ] || mkdir -p /home/user
exit 0
