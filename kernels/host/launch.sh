#!/bin/sh
# Starts e2b-kernel, the kernel host (kernels/host/README.md), for a
# kernelspec whose argv is ["/bin/sh", "{resource_dir}/../host/launch.sh",
# ...]. The binary is looked up relative to this script, so one kernel.json
# serves the build tree and an install:
#   $E2B_KERNEL_BIN                      explicit override (e.g. an ASan build)
#   <kernels>/../build/e2b-kernel        the build tree (make all)
#   <kernels>/../build-asan/e2b-kernel   the build tree (make asan)
#   <prefix>/lib/e2b-ci/e2b-kernel       an install, where this script is
#                                        <prefix>/share/e2b-ci/kernels/host/
# exec keeps the pid: the process the daemon started (and signals) is the
# host itself.
#
# `launch.sh --check [FILE...]` starts nothing: it finds the binary the same
# way and checks that every FILE exists (the runner's interpreter and
# files), then prints the binary and exits 0, or says what is missing on
# stderr and exits 127. `e2b-ci --check` runs it, as the kernelspecs' metadata
# ("e2b-ci": {"check": ...}) asks.
here=$(dirname "$0")
check=
if [ "${1:-}" = --check ]; then
	check=1
	shift
fi
for bin in "${E2B_KERNEL_BIN:-}" "$here/../../build/e2b-kernel" \
	"$here/../../build-asan/e2b-kernel" "$here/../../../../lib/e2b-ci/e2b-kernel"; do
	if [ -n "$bin" ] && [ -x "$bin" ]; then
		[ -n "$check" ] || exec "$bin" "$@"
		for f in "$@"; do
			if [ ! -e "$f" ]; then
				echo "launch.sh: $f not found" >&2
				exit 127
			fi
		done
		echo "$bin"
		exit 0
	fi
done
echo "launch.sh: e2b-kernel not found next to $here (set E2B_KERNEL_BIN)" >&2
exit 127
