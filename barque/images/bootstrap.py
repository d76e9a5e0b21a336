"""Base images made offline from the host's own packages: busybox (Debian's busybox-static) and a debootstrap
minbase Debian. They are ordinary one-layer images, as `import` makes, and reproducible: the same host binaries
give the same image ID."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from barque.errors import FailedPrecondition, InvalidArgument
from barque.images.importer import image_config
from barque.images.register import NewImage, Registered, oci_manifest, register
from barque.images.unpack import LayerRef
from barque.oci import mediatypes as mt
from barque.oci.reference import Reference

log = logging.getLogger(__name__)

BUSYBOX = Path("/bin/busybox")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
www-data:x:33:
users:x:100:
nogroup:x:65534:
"""
HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def _epoch(default: float) -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value:
        if not value.isdigit():
            raise InvalidArgument(f"SOURCE_DATE_EPOCH must be a number of seconds, not {value!r}")
        return int(value)
    return int(default)


def _image_from_tree(engine, tree: Path, ref: Reference, created_by: str, epoch: int, cmd: list[str],
                     comment: str) -> Registered:
    from barque.oci.times import rfc3339
    from barque.layers import pack_dir

    with engine.lock.shared():
        with engine.content.writer() as w:
            packed = pack_dir(tree, w, compression="", source_date_epoch=epoch)
            layer = w.commit()
        created = rfc3339(epoch)
        config = image_config(
            [str(packed.diff_id)], {"Env": [PATH_ENV], "Cmd": cmd},
            [{"created": created, "created_by": created_by, "comment": comment}], created,
        )
        config_info = engine.content.add(json.dumps(config, separators=(",", ":")).encode())
        manifest = oci_manifest(config_info.digest, config_info.size, [(mt.OCI_LAYER, layer.digest, layer.size)])
        manifest_info = engine.content.add(manifest)
        return register(engine, [NewImage(
            manifest_digest=manifest_info.digest, manifest_media_type=mt.OCI_MANIFEST,
            manifest_size=manifest_info.size, config_digest=config_info.digest, config=config,
            layers=[LayerRef(layer.digest, mt.OCI_LAYER, packed.diff_id)], names=[ref],
        )])[0]


def _scratch(engine) -> Path:
    base = engine.root / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="bootstrap-", dir=base))


def _busybox_listing(busybox_path: Path) -> str:
    if not busybox_path.is_file():
        raise FailedPrecondition(f"{busybox_path} not found: install Debian's busybox-static package")
    listing = subprocess.run([str(busybox_path), "--list-full"], capture_output=True, text=True)
    if listing.returncode != 0 or not listing.stdout.strip():
        raise FailedPrecondition(f"{busybox_path} --list-full failed: is it the static busybox?")
    return listing.stdout


def make_busybox_tree(dest: Path, busybox_path: Path = BUSYBOX, listing: str | None = None) -> None:
    """A busybox root filesystem at `dest` (created if missing): the static binary, a symlink per applet, the usual
    directories and a minimal /etc — what `bootstrap busybox` packs as its one layer, and what runtime tests use
    as a bundle's rootfs."""
    listing = listing if listing is not None else _busybox_listing(busybox_path)
    tree = Path(dest)
    for d, mode in [("bin", 0o755), ("sbin", 0o755), ("usr/bin", 0o755), ("usr/sbin", 0o755), ("etc", 0o755),
                    ("dev", 0o755), ("proc", 0o555), ("sys", 0o555), ("tmp", 0o1777), ("root", 0o700),
                    ("home", 0o755), ("var", 0o755), ("var/tmp", 0o1777), ("var/www", 0o755), ("run", 0o755)]:
        (tree / d).mkdir(parents=True, exist_ok=True)
        os.chmod(tree / d, mode)
    shutil.copyfile(busybox_path, tree / "bin/busybox")
    os.chmod(tree / "bin/busybox", 0o755)
    for applet in sorted(set(listing.split())):
        applet = applet.strip("/")
        if applet == "bin/busybox" or ".." in applet.split("/"):
            continue
        target = tree / applet
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() and not target.is_symlink():
            os.symlink("/bin/busybox", target)
    for name, text in (("passwd", PASSWD), ("group", GROUP), ("hosts", HOSTS)):
        (tree / "etc" / name).write_text(text)
        os.chmod(tree / "etc" / name, 0o644)


def busybox(engine, ref: Reference, busybox_path: Path = BUSYBOX) -> Registered:
    listing = _busybox_listing(busybox_path)
    epoch = _epoch(busybox_path.stat().st_mtime)
    work = _scratch(engine)
    try:
        tree = work / "rootfs"
        make_busybox_tree(tree, busybox_path, listing)
        version = listing_version(busybox_path)
        return _image_from_tree(engine, tree, ref, f"barque bootstrap busybox ({version})", epoch, ["sh"],
                                "busybox from the host's busybox-static")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def listing_version(busybox_path: Path) -> str:
    out = subprocess.run([str(busybox_path)], capture_output=True, text=True).stdout
    m = re.search(r"BusyBox (v[\w.\-]+)", out)
    return m.group(1) if m else "unknown version"


def debian_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt is configured with (deb822 .sources or one-line sources.list)."""
    candidates = sorted((sources_dir / "sources.list.d").glob("*.sources")) if (sources_dir / "sources.list.d").is_dir() else []
    for path in candidates:
        text = path.read_text()
        for stanza in text.split("\n\n"):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
            if "security" in fields.get("URIs", "") or "deb" not in fields.get("Types", "").split():
                continue
            if fields.get("URIs"):
                return fields["URIs"].split()[0]
    lists = [sources_dir / "sources.list"]
    if (sources_dir / "sources.list.d").is_dir():
        lists += sorted((sources_dir / "sources.list.d").glob("*.list"))
    for path in lists:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            m = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m and "security" not in m.group(1):
                return m.group(1)
    raise FailedPrecondition("no Debian mirror is configured in /etc/apt: cannot run debootstrap")


def debian(engine, ref: Reference, suite: str = "bookworm", mirror: str | None = None,
           variant: str = "minbase") -> Registered:
    if shutil.which("debootstrap") is None:
        raise FailedPrecondition("debootstrap not found: install Debian's debootstrap package")
    mirror = mirror or debian_mirror()
    epoch = _epoch(time.time())
    work = _scratch(engine)
    try:
        tree = work / "rootfs"
        # downloaded .debs are kept host-wide, like apt's own cache, so a second bootstrap does not fetch again
        cache = Path(os.environ.get("BARQUE_DEBOOTSTRAP_CACHE", "/var/cache/barque/debootstrap"))
        cache.mkdir(parents=True, exist_ok=True)
        cmd = ["debootstrap", f"--variant={variant}", f"--cache-dir={cache}", suite, str(tree), mirror]
        log.info("running %s", " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise FailedPrecondition(f"debootstrap {suite} from {mirror} failed (exit {proc.returncode}):\n{tail}")
        _tidy_debian(tree)
        return _image_from_tree(engine, tree, ref, f"debootstrap --variant={variant} {suite} {mirror}", epoch,
                                ["bash"], f"Debian {suite} {variant}")
    finally:
        _remove_tree(work)


def _tidy_debian(tree: Path) -> None:
    """What Docker's Debian images leave out: device nodes (the runtime makes /dev), apt caches and lists,
    the host's resolv.conf and hostname, logs."""
    for sub in ("dev", "var/cache/apt/archives", "var/lib/apt/lists", "var/log", "tmp", "run"):
        p = tree / sub
        if p.is_dir():
            for child in p.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                elif child.name not in ("lock", "partial"):
                    child.unlink(missing_ok=True)
    for f in ("etc/resolv.conf", "etc/hostname"):
        (tree / f).unlink(missing_ok=True)
    (tree / "etc/hostname").write_text("localhost\n")


def _remove_tree(path: Path) -> None:
    """debootstrap may leave proc/sys mounted inside the tree on failure: unmount before deleting."""
    from barque.linux.mountinfo import mounted_under

    for mp in sorted(mounted_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)
