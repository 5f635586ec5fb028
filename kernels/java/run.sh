#!/bin/sh
# Starts the Java runner of the e2b-kernel host (../RUNNER-PROTOCOL.md) for
# kernels/java/kernel.json. It finds the compiled runner, first of:
#   $E2BCI_JAVA_DIR                        explicit override
#   <kernels>/../build/java                the build tree (make all)
#   <kernels>/../build-asan/java           the build tree (make asan)
#   <prefix>/lib/e2b-ci/java               an install, where this script is
#                                          <prefix>/share/e2b-ci/kernels/java/
# then moves the host's request pipe from fd 0 to fd 4, so that user code and
# its children read /dev/null, and execs the JVM in place: the host's pid,
# process group and cwd (hence user.dir) are the JVM's. $E2BCI_JAVA overrides
# the java binary (default /usr/bin/java). `run.sh --check` starts nothing:
# it finds the runner and java the same way, prints the runner's dir and
# exits 0, or says what is missing and exits 127 (for `e2b-ci --check`).
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd -P)
dir=
for d in "${E2BCI_JAVA_DIR:-}" "$here/../../build/java" "$here/../../build-asan/java" \
	"$here/../../../../lib/e2b-ci/java"; do
	if [ -n "$d" ] && [ -f "$d/e2bci/E2bJavaRunner.class" ]; then
		dir=$d
		break
	fi
done
if [ -z "$dir" ]; then
	echo "e2b java runner: compiled runner not found (run make; or set E2BCI_JAVA_DIR)" >&2
	exit 127
fi
java=${E2BCI_JAVA:-/usr/bin/java}
[ -x "$java" ] || java=java
if [ "${1:-}" = --check ]; then
	if ! command -v "$java" >/dev/null 2>&1; then
		echo "e2b java runner: $java not found (kernels/java/install.sh installs a JDK)" >&2
		exit 127
	fi
	echo "$dir"
	exit 0
fi
# The runner reopens fd 3 by path; it must be the host's pipe, never a file
# the JVM opened itself because the host left fd 3 closed.
if ! { true >&3; } 2>/dev/null; then
	echo "e2b java runner: fd 3 (the events pipe) is not open" >&2
	exit 2
fi

# Measured on 2 cores (README.md): serial GC, C1 only and a 16 MiB initial
# heap give about 0.45 s to "ready" and 100 MiB idle RSS (default flags:
# 0.6 s, 195 MiB); the heap may grow to half the machine (or of a cgroup
# memory limit; the default is a quarter). UTF-8 whatever the locale.
mem=-XX:MaxRAMPercentage=50
# Under an address-space limit (RLIMIT_AS) the JVM's default reservations
# (a heap sized from the machine's RAM, 1 GiB of class space, 240 MiB of code
# cache, a malloc arena per thread) do not fit: it needs about 700 MiB
# besides the heap, which gets the rest.
# shellcheck disable=SC3045 # dash and bash have ulimit -v
as=$(ulimit -v 2>/dev/null)
case $as in
'' | unlimited) ;;
*)
	mx=$((as / 1024 - 700))
	[ "$mx" -ge 64 ] || mx=64
	mem="-Xmx${mx}m -XX:CompressedClassSpaceSize=128m -XX:ReservedCodeCacheSize=64m"
	export MALLOC_ARENA_MAX=2
	;;
esac
# Under a data limit (RLIMIT_DATA, what the daemon sets for
# --kernel-memory-max without a memory cgroup) reservations are free but the
# committed heap counts: a heap allowed to outgrow the limit makes the JVM
# die on a failed commit instead of throwing OutOfMemoryError. The runner
# needs about 50 MiB besides the heap (threads, metaspace, code cache, CDS),
# more as cells compile: the heap gets the limit minus a quarter of it, at
# least 128 MiB of room.
# shellcheck disable=SC3045 # dash and bash have ulimit -d
data=$(ulimit -d 2>/dev/null)
case $data in
'' | unlimited) ;;
*)
	room=$((data / 1024 / 4))
	[ "$room" -ge 128 ] || room=128
	mx=$((data / 1024 - room))
	[ "$mx" -ge 64 ] || mx=64
	# An address-space limit (above) is the tighter one when both are set.
	case $as in '' | unlimited) mem="-Xmx${mx}m" ;; esac
	;;
esac
exec 4<&0 </dev/null
# shellcheck disable=SC2086 # $mem is several words
exec "$java" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xms16m $mem \
	-Dfile.encoding=UTF-8 \
	--add-opens java.base/java.lang=ALL-UNNAMED \
	--add-opens java.base/java.util=ALL-UNNAMED \
	--add-opens jdk.jshell/jdk.jshell=ALL-UNNAMED \
	-cp "$dir" e2bci.E2bJavaRunner --requests-fd 4
