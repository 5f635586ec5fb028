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
here=$(dirname "$0")
for bin in "${E2B_KERNEL_BIN:-}" "$here/../../build/e2b-kernel" \
	"$here/../../build-asan/e2b-kernel" "$here/../../../../lib/e2b-ci/e2b-kernel"; do
	if [ -n "$bin" ] && [ -x "$bin" ]; then
		exec "$bin" "$@"
	fi
done
echo "launch.sh: e2b-kernel not found next to $here (set E2B_KERNEL_BIN)" >&2
exit 127
