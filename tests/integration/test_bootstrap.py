"""Base images made offline: busybox from busybox-static (debootstrap Debian is in test_bootstrap_debian.py)."""

from __future__ import annotations

import json
import os

from tests.conftest import Barque, _cleanup_root
from tests.integration.imagetree import image_rootfs


def test_busybox_image_contents(barque):
    out = barque("bootstrap", "busybox", "--tag", "bb:1").stdout.splitlines()
    assert out[0] == "Loaded image: bb:1" and out[1].startswith("sha256:")
    inspect = json.loads(barque("image", "inspect", "bb:1").stdout)[0]
    assert inspect["Config"]["Cmd"] == ["sh"]
    assert any(e.startswith("PATH=") for e in inspect["Config"]["Env"])
    assert inspect["Os"] == "linux" and len(inspect["RootFS"]["Layers"]) == 1
    with image_rootfs(barque.engine(), "bb:1") as root:
        assert os.access(root / "bin/busybox", os.X_OK)
        assert os.readlink(root / "bin/sh") == "/bin/busybox"
        assert (root / "usr/bin/wc").is_symlink()
        assert (root / "etc/passwd").read_text().startswith("root:x:0:0:")
        assert "nogroup:x:65534:" in (root / "etc/group").read_text()
        assert oct((root / "tmp").stat().st_mode & 0o7777) == "0o1777"


def test_busybox_is_reproducible(barque, tmp_path):
    """Two roots, two runs, different days' mtimes on the scratch tree: the same image ID."""
    first = barque("bootstrap", "busybox").stdout.splitlines()[1]
    other = Barque(tmp_path / "root-b", tmp_path / "run-b")
    try:
        second = other("bootstrap", "busybox", env={"TZ": "Asia/Tokyo"}).stdout.splitlines()[1]
        assert first == second
        pinned = other("bootstrap", "busybox", "--tag", "bb:pinned", env={"SOURCE_DATE_EPOCH": "1000000000"})
        pinned_id = pinned.stdout.splitlines()[1]
        assert pinned_id != first
        created = json.loads(other("image", "inspect", "bb:pinned").stdout)[0]["Created"]
        assert created == "2001-09-09T01:46:40Z"
    finally:
        other.close()
        _cleanup_root(tmp_path / "root-b")


def test_bootstrap_leaves_no_scratch(barque):
    barque("bootstrap", "busybox")
    assert list((barque.root / "tmp").iterdir()) == []
