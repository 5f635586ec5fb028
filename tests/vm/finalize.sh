# tests/vm/finalize.sh: run by tests/vm/build.py as root in the image, after
# the template's steps. Not executable on its own: build.py hands its text to
# tests/vm/chroot-run.sh, with VM_SSH_PUBKEY in the environment.
set -eu

# --- E2B: what its builder does to every template after the template's own
# steps (e2b-dev/infra, the template build's configure script), in its order.
# User "user" (uid 1000, the first user), passwordless sudo, its home, and
# /usr/local and /code made writable by everyone.
if ! id -u user >/dev/null 2>&1; then
	useradd -m -s /bin/bash user
fi
if [ -d /etc/skel ]; then
	(cd /etc/skel && find . -type f | while IFS= read -r f; do
		[ -e "/home/user/$f" ] || {
			mkdir -p "/home/user/$(dirname "$f")"
			cp -a "$f" "/home/user/$f"
		}
	done)
fi
usermod -aG sudo user
passwd -d user >/dev/null
echo "user ALL=(ALL:ALL) NOPASSWD: ALL" >>/etc/sudoers
mkdir -p /home/user
chown -R user:user /home/user
chmod 777 -R /usr/local
mkdir -p /code
chmod 777 -R /code

# envd's unit turns on a 128 MiB swapfile with swappiness 0 at boot; this
# unit does the same here (the file is made at first boot: an image made by
# mkfs.ext4 -d would store it sparse, which swapon refuses).
cat >/etc/systemd/system/e2b-ci-vm-swap.service <<'EOF'
[Unit]
Description=128 MiB swapfile, swappiness 0 (as E2B's envd sets up)
DefaultDependencies=no
After=local-fs.target
Before=multi-user.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -ec 'mkdir -p /swap; if [ ! -s /swap/swapfile ]; then dd if=/dev/zero of=/swap/swapfile bs=1M count=128 status=none; chmod 600 /swap/swapfile; mkswap /swap/swapfile >/dev/null; fi; echo 0 >/proc/sys/vm/swappiness; swapon /swap/swapfile'

[Install]
WantedBy=multi-user.target
EOF
systemctl enable e2b-ci-vm-swap.service

# --- The VM tier's harness, nothing E2B does.
echo e2b-ci-vm >/etc/hostname
echo "/dev/vda / ext4 defaults 0 1" >/etc/fstab
# The guest's only NIC is QEMU's user-mode network with restrict=on: it
# reaches nothing; the host reaches :49999 and :22 through hostfwd.
mkdir -p /etc/systemd/network
cat >/etc/systemd/network/10-vm.network <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
EOF
systemctl enable systemd-networkd.service
# Root logs in with the tier's key only.
mkdir -p /root/.ssh
chmod 700 /root/.ssh
printf '%s\n' "$VM_SSH_PUBKEY" >/root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
printf 'PasswordAuthentication no\nUseDNS no\n' >/etc/ssh/sshd_config.d/e2b-ci-vm.conf
# QEMU without KVM (TCG) runs code 17-24 times slower than the host: the
# lazily started kernels (R, Java) get 5 minutes instead of 60 s to answer
# kernel_info, each kernel's memory.max is 300 MiB so that the memory hog
# check runs into it, and its pids.max 128 for the process-limit check.
cat >>/etc/default/e2b-ci <<'EOF'

# Set by the VM tier (tests/vm/finalize.sh):
E2B_CI_KERNEL_START_TIMEOUT_MS=300000
E2B_CI_KERNEL_MEMORY_MAX=300M
E2B_CI_KERNEL_TASKS_MAX=128
EOF
# No stale journal or apt lists of the build in the image.
rm -rf /var/log/journal/* /var/tmp/*
