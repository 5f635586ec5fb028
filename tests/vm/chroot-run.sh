#!/bin/sh
# Runs one command in the VM tier's root file system (tests/vm/build.py) the
# way a template's RUN step runs in E2B's builder: as USER, in WORKDIR, with
# /proc, /sys, /dev, a fresh /run and /tmp, and the host's DNS.
#
#   tests/vm/chroot-run.sh ROOT USER WORKDIR COMMAND [NAME=VALUE...]
#
# Every mount lives in a private mount namespace that dies with the command,
# so nothing is left mounted on the host, whatever happens. The host's CA
# bundle is offered at /run/e2b-ci-vm/ca.crt (npm reaches the registry
# through a TLS-inspecting proxy here; the file is on the /run tmpfs, so it
# never lands in the image), and NODE_EXTRA_CA_CERTS / npm_config_cafile
# point at it. NAME=VALUE pairs are the step's environment (ENV steps).
set -eu
[ "$#" -ge 4 ] || { echo "usage: $0 ROOT USER WORKDIR COMMAND [NAME=VALUE...]" >&2; exit 2; }

exec unshare --mount --propagation private -- /bin/sh -eu -c '
root=$1 user=$2 dir=$3 cmd=$4
shift 4
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mkdir -p "$root/run/e2b-ci-vm"
ca=/etc/ssl/certs/ca-certificates.crt
if [ -f "$ca" ]; then
	cp "$ca" "$root/run/e2b-ci-vm/ca.crt"
	set -- NODE_EXTRA_CA_CERTS=/run/e2b-ci-vm/ca.crt \
		npm_config_cafile=/run/e2b-ci-vm/ca.crt "$@"
fi
# The image keeps its own resolv.conf (mmdebstrap leaves the host'"'"'s copy);
# the build sees the host'"'"'s for as long as the step runs.
if [ -f /etc/resolv.conf ] && [ -f "$root/etc/resolv.conf" ] &&
	[ ! -L "$root/etc/resolv.conf" ]; then
	mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
fi
uid=$(chroot "$root" id -u "$user")
gid=$(chroot "$root" id -g "$user")
home=$(chroot "$root" getent passwd "$user" | cut -d: -f6)
exec chroot --userspec="$uid:$gid" "$root" /usr/bin/env -i \
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME="$home" USER="$user" LOGNAME="$user" LANG=C.UTF-8 "$@" \
	/bin/bash -c "cd \"\$1\" && eval \"\$2\"" step "$dir" "$cmd"
' chroot-run "$@"
