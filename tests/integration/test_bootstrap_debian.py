"""`bootstrap debian`: a minbase Debian made with debootstrap from the configured mirror (about a minute)."""

from __future__ import annotations

import json
import os

from tests.integration.imagetree import image_rootfs


def test_debian_minbase(barque):
    # debootstrap fetches from the configured mirror: this one command runs in the machine's own network namespace
    # (the suite's has no way out, see tests/conftest.py); it runs no container
    from tests.conftest import machine_netns_prefix

    barque.prefix = machine_netns_prefix()
    out = barque("bootstrap", "debian", "--suite", "bookworm", timeout=1200).stdout.splitlines()
    assert out[0] == "Loaded image: debian:bookworm"
    inspect = json.loads(barque("image", "inspect", "debian:bookworm").stdout)[0]
    assert inspect["Config"]["Cmd"] == ["bash"]
    assert inspect["Size"] > 50_000_000
    with image_rootfs(barque.engine(), "debian:bookworm") as root:
        assert (root / "etc/debian_version").read_text().startswith("12")
        assert os.access(root / "usr/bin/bash", os.X_OK) or os.access(root / "bin/bash", os.X_OK)
        assert "Package: dpkg" in (root / "var/lib/dpkg/status").read_text()
        assert os.listdir(root / "dev") == [], "device nodes come from the runtime, not the image"
        assert not (root / "etc/resolv.conf").exists()
        assert [p for p in os.listdir(root / "var/cache/apt/archives") if p.endswith(".deb")] == []
    assert list((barque.root / "tmp").iterdir()) == []
