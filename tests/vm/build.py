#!/usr/bin/python3
"""Builds the VM tier's disk image: E2B's template, replayed here.

The image is what E2B would build from template/template.mjs, made without
Docker or E2B:

1. base: Debian 12 from Debian's mirror with mmdebstrap (minbase, i.e. what
   `debian:bookworm` holds), plus what E2B's builder or this tier adds for
   a VM: systemd as init, sudo, curl, a kernel with its initramfs, sshd,
   dbus.
2. the template's own steps, read from the SDK's rendering of
   template/template.mjs (tests/vm/plan.mjs): USER, WORKDIR, ENV, COPY (the
   very files the SDK would upload) and RUN (in a chroot, as that user, in
   that directory; tests/vm/chroot-run.sh), in order.
3. E2B's finalize steps after a template (e2b-dev/infra's configure
   script) and the tier's own harness (tests/vm/finalize.sh).
4. an ext4 file system image of the result (mkfs.ext4 -d, no loop mount),
   with the kernel and initramfs next to it.

Caching, so that a re-run is quick: the base is a tarball keyed by its
recipe; after each RUN step that took long (apt, npm) and has a COPY
after it, the root is saved as a tarball keyed by the chain of steps up to
it (the SDK's own hash of the files each COPY uploads included), so a
change in server/ restarts from the state after install-deps.sh; the
finished image is kept with the key
of everything that went into it and reused as is when nothing changed
(qemu boots it with -snapshot, so it stays pristine). All of it lives in
build/vm (VM_DIR to move it); `make clean` removes it.

Needs root (chroot, mounts in a private namespace), mmdebstrap, node and
the network (Debian's mirror, the npm registry).

    tests/vm/build.py [--dir DIR] [--keep-root]

Prints one line per stage with its time, and at the end the image build
time and the sizes of the root file system; writes them to
DIR/image.json too.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "tests" / "vm"

# Version this when the base recipe changes in a way the fields below do
# not show.
BASE = {
    "recipe": 3,
    "suite": "bookworm",
    "variant": "minbase",
    "sources": [
        "deb http://deb.debian.org/debian bookworm main",
        "deb http://deb.debian.org/debian bookworm-updates main",
        "deb http://deb.debian.org/debian-security bookworm-security main",
    ],
    # systemd as PID 1 and sudo: E2B's builder puts them in every image.
    # The kernel, initramfs-tools, openssh-server and dbus: this tier's
    # (a VM to boot, a way in, logind for ssh sessions).
    "include": ["systemd", "systemd-sysv", "udev", "dbus", "sudo",
                "ca-certificates", "curl", "openssh-server",
                "linux-image-amd64", "initramfs-tools"],
    # apt's settings in the debian:bookworm image (debuerreotype's), which
    # the template's apt-get runs under on E2B.
    "apt_conf": {
        "docker-autoremove-suggests":
            'Apt::AutoRemove::SuggestsImportant "false";',
        "docker-clean": 'Dir::Cache::pkgcache "";\n'
                        'Dir::Cache::srcpkgcache "";',
        "docker-gzip-indexes": 'Acquire::GzipIndexes "true";',
        "docker-no-languages": 'Acquire::Languages "none";',
    },
}

# A RUN step slower than this, with a COPY after it, leaves a snapshot of
# the root behind.
SNAPSHOT_AFTER_S = 20
TAR_FLAGS = ["--numeric-owner", "--xattrs", "--xattrs-include=*"]


def log(msg):
    print(f"[vm-build] {msg}", flush=True)


def die(msg):
    print(f"[vm-build] error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def sha(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()


def run(cmd, logf=None, **kw):
    """Runs cmd; its output goes to logf (the build log) when given."""
    if logf is None:
        return subprocess.run(cmd, check=True, **kw)
    logf.write(f"\n$ {' '.join(map(str, cmd))[:400]}\n")
    logf.flush()
    return subprocess.run(cmd, check=True, stdout=logf,
                          stderr=subprocess.STDOUT, **kw)


def need_tools():
    if os.geteuid() != 0:
        die("needs root (chroot, mounts): run it with sudo")
    missing = [t for t in ("mmdebstrap", "node", "npm", "mkfs.ext4",
                           "unshare", "chroot", "tar", "ssh-keygen")
               if shutil.which(t) is None]
    if missing:
        die(f"missing tools: {' '.join(missing)} (README: VM tier)")


def render_plan():
    """The template's build request with each COPY step's files."""
    tdir = ROOT / "template"
    if not (tdir / "node_modules" / "e2b").is_dir():
        log("template: npm ci (the E2B SDK, pinned by package-lock.json)")
        run(["npm", "ci", "--no-audit", "--no-fund"], cwd=tdir,
            stdout=subprocess.DEVNULL)
    code = (HERE / "plan.mjs").read_text()
    out = subprocess.run(["node", "--input-type=module", "-e", code],
                         cwd=tdir, check=True, capture_output=True,
                         text=True).stdout
    plan = json.loads(out)
    if plan.get("fromImage") != "debian:bookworm":
        die(f"the template starts from {plan.get('fromImage')!r}; this tier "
            "builds debian:bookworm only")
    return plan


def tree_unchanged(plan, upto=None):
    """The keys hash the files each COPY uploads as they were when the
    build began; what steps[:upto] copied must be the same."""
    again = render_plan()
    return [s.get("filesHash") for s in again["steps"][:upto]] == \
        [s.get("filesHash") for s in plan["steps"][:upto]]


def build_base(cache, logf):
    """The base tarball (cached by recipe) and its key."""
    key = sha(json.dumps(BASE, sort_keys=True))[:16]
    tar = cache / f"base-{key}.tar"
    if tar.exists():
        log(f"base: cached {tar.name}")
        return tar, key
    for old in cache.glob("base-*.tar"):
        old.unlink()
    tmp = tar.with_suffix(".tmp")
    t0 = time.monotonic()
    log("base: mmdebstrap " + BASE["suite"] + " (about a minute)")
    hooks = [f"--customize-hook=printf '%s\\n' '{text}' "
             f">\"$1/etc/apt/apt.conf.d/{name}\""
             for name, text in BASE["apt_conf"].items()]
    # With those, mmdebstrap's clean-up no longer finds apt's binary caches.
    hooks.append("--customize-hook=rm -f \"$1\"/var/cache/apt/*.bin")
    run(["mmdebstrap", f"--variant={BASE['variant']}",
         "--include=" + ",".join(BASE["include"]), "--format=tar", *hooks,
         BASE["suite"], str(tmp), *BASE["sources"]], logf)
    tmp.rename(tar)
    log(f"base: built in {time.monotonic() - t0:.0f} s")
    return tar, key


def step_keys(plan, base_key):
    """keys[i]: the state after steps[0..i], as a chain of hashes."""
    keys, k = [], base_key
    for s in plan["steps"]:
        k = sha(k, json.dumps([s["type"], s["args"], s.get("filesHash")]))
        keys.append(k[:16])
    return keys


def extract(tar, root, logf):
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    run(["tar", *TAR_FLAGS, "-C", str(root), "-xf", str(tar)], logf)


def snapshot(root, cache, i, key, logf):
    for old in cache.glob(f"step{i:02d}-*.tar"):
        old.unlink()
    tar = cache / f"step{i:02d}-{key}.tar"
    tmp = tar.with_suffix(".tmp")
    run(["tar", *TAR_FLAGS, "-C", str(root), "-cf", str(tmp), "."], logf)
    tmp.rename(tar)


def inside(root, path):
    """path (absolute, in the image) under root, refusing to leave it."""
    p = (root / path.lstrip("/")).resolve()
    if p != root and root not in p.parents:
        die(f"{path} leaves the image")
    return p


def do_copy(step, state, root):
    """A COPY step with Docker's semantics: a directory's contents go into
    dest; a file goes to dest, or into it when dest ends with '/'."""
    src, dest, user, mode = (step["args"] + ["", ""])[:4]
    src = src.rstrip("/") or "."
    if not dest.startswith("/"):
        dest = os.path.join(state["workdir"], dest)
    owner = user or state["user"]
    made = []
    for f in step["files"]:
        rel = f["path"]
        if rel == src and f["kind"] == "file":
            target = dest + os.path.basename(rel) if dest.endswith("/") \
                else dest
        elif rel == src:
            target = dest
        else:
            below = rel if src == "." else rel[len(src) + 1:]
            target = os.path.join(dest, below)
        t = inside(root, target) if f["kind"] != "symlink" else \
            inside(root, os.path.dirname(target)) / os.path.basename(target)
        s = ROOT / rel
        if f["kind"] == "dir":
            t.mkdir(parents=True, exist_ok=True)
            os.chmod(t, s.stat().st_mode & 0o7777)
        elif f["kind"] == "symlink":
            t.parent.mkdir(parents=True, exist_ok=True)
            if t.is_symlink() or t.exists():
                t.unlink()
            os.symlink(os.readlink(s), t)
        else:
            t.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, t, follow_symlinks=False)
        made.append(target)
    if not made:
        die(f"COPY {src}: no files")
    # Ownership and mode as E2B applies them, inside the image's users.
    chown = f"chown -h {owner}: " if owner != "root" else ""
    chmod = f"chmod {mode} " if mode else ""
    if chown or chmod:
        quoted = " ".join("'" + m.replace("'", "'\\''") + "'" for m in made)
        cmd = (chown + quoted + ";" if chown else "") + \
              (chmod + quoted if chmod else "")
        return cmd
    return None


def chroot_run(root, user, workdir, cmd, env, logf):
    args = [str(HERE / "chroot-run.sh"), str(root), user, workdir, cmd]
    args += [f"{k}={v}" for k, v in env.items()]
    logf.write(f"\n# RUN as {user} in {workdir}: {cmd[:300]}\n")
    logf.flush()
    r = subprocess.run(args, stdout=logf, stderr=subprocess.STDOUT)
    return r.returncode


def replay(plan, root, cache, keys, start, logf):
    """Runs steps[start:], snapshotting after slow RUN steps."""
    state = {"user": "root", "workdir": "/", "env": {}}
    steps = plan["steps"]
    # USER, WORKDIR and ENV before `start` still set the scene.
    for s in steps[:start]:
        apply_scene(s, state)
    for i in range(start, len(steps)):
        s = steps[i]
        t0 = time.monotonic()
        label = f"step {i + 1}/{len(steps)} {s['type']} " + \
            " ".join(a for a in s["args"] if a)[:90]
        if s["type"] in ("USER", "WORKDIR", "ENV"):
            apply_scene(s, state)
            if s["type"] == "WORKDIR":
                inside(root, state["workdir"]).mkdir(parents=True,
                                                     exist_ok=True)
            continue
        if s["type"] == "COPY":
            fix = do_copy(s, state, root)
            if fix and chroot_run(root, "root", "/", fix, {}, logf) != 0:
                die(f"{label}: chown/chmod failed (see {logf.name})")
        elif s["type"] == "RUN":
            user = s["args"][1] if len(s["args"]) > 1 and s["args"][1] \
                else state["user"]
            rc = chroot_run(root, user, state["workdir"], s["args"][0],
                            state["env"], logf)
            if rc != 0:
                die(f"{label}: exit status {rc} (log: {logf.name})")
        else:
            die(f"{label}: step type {s['type']} is not replayed by this "
                "tier (tests/vm/build.py)")
        dt = time.monotonic() - t0
        log(f"{label}: {dt:.0f} s")
        # After the last COPY every step's key changes with the tree (this
        # tier's files are part of it), as the image's does: no snapshot.
        later_copy = any(t["type"] == "COPY" for t in steps[i + 1:])
        if s["type"] == "RUN" and dt >= SNAPSHOT_AFTER_S and later_copy:
            if not tree_unchanged(plan, i + 1):
                die("the tree changed during the build; run it again")
            snapshot(root, cache, i, keys[i], logf)


def apply_scene(s, state):
    if s["type"] == "USER":
        state["user"] = s["args"][0]
    elif s["type"] == "WORKDIR":
        state["workdir"] = os.path.join(state["workdir"], s["args"][0])
    elif s["type"] == "ENV":
        a = s["args"]
        state["env"].update(dict(zip(a[0::2], a[1::2])))


def best_start(plan, cache, keys, base_tar):
    """The newest snapshot that matches, as (tar, index of next step)."""
    for i in range(len(plan["steps"]) - 1, -1, -1):
        tar = cache / f"step{i:02d}-{keys[i]}.tar"
        if tar.exists():
            return tar, i + 1
    return base_tar, 0


def du(root):
    out = subprocess.run(["du", "-sx", "--block-size=1M", str(root)],
                         check=True, capture_output=True, text=True).stdout
    return int(out.split()[0])


def ssh_key(vmdir):
    key = vmdir / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                        "e2b-ci-vm-tier", "-f", str(key)], check=True)
    return key.with_suffix(".pub").read_text().strip()


def finalize(root, pubkey, logf):
    script = (HERE / "finalize.sh").read_text()
    rc = chroot_run(root, "root", "/", script,
                    {"VM_SSH_PUBKEY": pubkey}, logf)
    if rc != 0:
        die(f"finalize.sh: exit status {rc} (log: {logf.name})")


def make_fs(root, vmdir, logf):
    """ext4 image of root, with room to spare, plus kernel and initrd."""
    used = du(root)
    size = used + max(2048, used // 2)
    img, tmp = vmdir / "e2b-ci.img", vmdir / "e2b-ci.img.tmp"
    if tmp.exists():
        tmp.unlink()
    run(["mkfs.ext4", "-q", "-F", "-L", "e2b-ci-vm", "-d", str(root),
         str(tmp), f"{size}M"], logf)
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        die("no kernel in the image's /boot")
    ver = kernels[-1].name[len("vmlinuz-"):]
    shutil.copyfile(kernels[-1], vmdir / "vmlinuz")
    shutil.copyfile(root / "boot" / f"initrd.img-{ver}", vmdir / "initrd.img")
    tmp.rename(img)
    return used, size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=os.environ.get("VM_DIR",
                                                    str(ROOT / "build/vm")))
    ap.add_argument("--keep-root", action="store_true",
                    help="keep the unpacked root file system (DIR/root)")
    args = ap.parse_args()
    need_tools()
    vmdir = Path(args.dir).resolve()
    cache = vmdir / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    root = vmdir / "root"
    t_start = time.monotonic()
    pubkey = ssh_key(vmdir)
    plan = render_plan()
    with open(vmdir / "build.log", "w") as logf:
        base_tar, base_key = build_base(cache, logf)
        keys = step_keys(plan, base_key)
        final_key = sha(keys[-1] if keys else base_key,
                        (HERE / "finalize.sh").read_bytes(), pubkey,
                        (HERE / "chroot-run.sh").read_bytes(),
                        Path(__file__).read_bytes())[:16]
        info_f = vmdir / "image.json"
        if (vmdir / "e2b-ci.img").exists() and info_f.exists():
            info = json.loads(info_f.read_text())
            if info.get("key") == final_key:
                log(f"image: cached ({vmdir / 'e2b-ci.img'}, built in "
                    f"{info['build_s']:.0f} s)")
                return
        tar, start = best_start(plan, cache, keys, base_tar)
        log(f"root: from {tar.name}, replaying steps {start + 1}.."
            f"{len(plan['steps'])} of template/template.mjs")
        extract(tar, root, logf)
        size_base = du(root) if start == 0 else None
        if size_base is None and info_f.exists():
            size_base = json.loads(info_f.read_text()).get(
                "size_mib", {}).get("base")
        replay(plan, root, cache, keys, start, logf)
        size_template = du(root)
        t0 = time.monotonic()
        finalize(root, pubkey, logf)
        log(f"finalize (E2B's configure steps, tier harness): "
            f"{time.monotonic() - t0:.0f} s")
        t0 = time.monotonic()
        used, size = make_fs(root, vmdir, logf)
        log(f"ext4 image, {used} MiB used of {size} MiB: "
            f"{time.monotonic() - t0:.0f} s")
        if not args.keep_root:
            shutil.rmtree(root)
    if not tree_unchanged(plan):
        (vmdir / "e2b-ci.img").unlink()
        die("the tree changed during the build; run it again")
    build_s = time.monotonic() - t_start
    info = {"key": final_key, "build_s": round(build_s, 1),
            "from": tar.name, "size_mib": {"base": size_base,
                                           "after_template": size_template,
                                           "final": used}}
    info_f.write_text(json.dumps(info, indent=1) + "\n")
    log(f"image built in {build_s:.0f} s; root file system after the "
        f"template's steps: {size_template} MiB"
        + (f" (base {size_base} MiB)" if size_base else ""))


if __name__ == "__main__":
    main()
