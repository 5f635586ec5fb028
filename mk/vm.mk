# mk/vm.mk: the VM tier (tests/vm/, README "VM tier"), included by the top
# Makefile. Not part of `make test`: the first run builds a Debian 12 image
# from nothing (a few minutes, the network needed), and every run boots it
# under QEMU, on TCG where KVM cannot boot it (about 2 minutes of checks).
# Needs root.
#
#   make vm-test     vm-deps, vm-image, then the checks (tests/vm/check.py)
#                    in a network namespace of their own
#   make vm-image    the image only (tests/vm/build.py), into $(VM_DIR)
#   make vm-deps     the host's tools: qemu, mmdebstrap (apt, when missing)
#   make vm-clean    removes $(VM_DIR), caches included
#
# VM_DIR (default $(BUILD)/vm) holds the image, its caches (about 6 GB) and
# the last run's console.log; VM_ACCEL=kvm|tcg skips the KVM probe.

VM_DIR ?= $(BUILD)/vm
# command:package pairs for vm-deps.
VM_TOOLS := qemu-system-x86_64:qemu-system-x86 mmdebstrap:mmdebstrap \
	    ssh:openssh-client ssh-keygen:openssh-client mkfs.ext4:e2fsprogs \
	    unshare:util-linux node:nodejs npm:npm

.PHONY: vm-test vm-image vm-deps vm-clean

vm-deps:
	@missing=; for t in $(VM_TOOLS); do \
		command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "vm-deps: apt-get install$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $$missing >/dev/null; \
	fi

vm-image: vm-deps
	$(PY) tests/vm/build.py --dir $(VM_DIR)

vm-test: vm-image
	unshare -n sh -c 'ip link set lo up && exec $(PY) tests/vm/check.py --dir $(VM_DIR)'

vm-clean:
	rm -rf $(VM_DIR)
