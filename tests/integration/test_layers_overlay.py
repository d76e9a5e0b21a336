"""Layers and the real overlayfs: what apply_layer writes into an upper directory must read back correctly through
a mount, and overlay_changes must turn a mounted container's edits into a layer that reproduces them."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from barque.layers import apply_layer, overlay_changes, write_layer
from tests.unit.test_layers_apply import TarBuilder
from tests.unit.test_layers_tar import tree_state

pytestmark = [
    pytest.mark.root,
    pytest.mark.usefixtures("no_leaked_mounts"),
    pytest.mark.skipif(os.geteuid() != 0, reason="mounts overlayfs: needs root"),
]

# how barque mounts overlay: no redirects, no metacopy, no index (so layers stay plain directories)
OVERLAY_OPTS = "index=off,redirect_dir=off,metacopy=off"


@contextlib.contextmanager
def overlay(target: Path, lowers: Sequence[Path], upper: Path | None = None, work: Path | None = None) -> Iterator[Path]:
    """Mount overlayfs at ``target`` (lowers top-most first); unmounted on exit, whatever happens."""
    target.mkdir(exist_ok=True)
    opts = "lowerdir=" + ":".join(str(p) for p in lowers)
    if upper is not None:
        assert work is not None
        work.mkdir(exist_ok=True)
        opts += f",upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"{opts},{OVERLAY_OPTS}", str(target)],
                   check=True, capture_output=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def make_lower(d: Path) -> Path:
    d.mkdir()
    (d / "etc").mkdir()
    (d / "etc/passwd").write_text("root:x:0:0\n")
    (d / "etc/hosts").write_text("127.0.0.1\n")
    (d / "var/cache/b").mkdir(parents=True)
    (d / "var/cache/a").write_text("a")
    (d / "var/cache/b/c").write_text("c")
    (d / "keep").mkdir()
    (d / "keep/x").write_text("x")
    (d / "tmp").mkdir()
    os.chmod(d / "tmp", 0o1777)
    os.chown(d / "tmp", 0, 5)
    return d


def test_apply_into_upper_then_mount_shows_the_layer(tmp_path: Path) -> None:
    lower = make_lower(tmp_path / "lower")
    upper = tmp_path / "upper"
    upper.mkdir()
    layer = (TarBuilder()
             .dir("etc").whiteout("etc/hosts").whiteout("etc/not-there")
             .hardlink("etc/passwd-link", "etc/passwd")  # target only in the lower: copied up first
             .dir("var/cache").opaque("var/cache").file("var/cache/new", b"new")
             .file("tmp/newfile", b"t")  # parent not in the tar: must keep the lower's 1777
             .whiteout("keep/x").whiteout("missing-parent/y")
             .bytes())
    apply_layer(io.BytesIO(layer), upper, whiteouts="overlay", lowers=[lower])

    st = (upper / "etc/hosts").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert not os.path.lexists(upper / "etc/not-there")  # nothing below to hide: no whiteout
    assert not os.path.lexists(upper / "missing-parent")
    assert os.getxattr(upper / "var/cache", "trusted.overlay.opaque") == b"y"
    assert stat.S_IMODE((upper / "tmp").stat().st_mode) == 0o1777 and (upper / "tmp").stat().st_gid == 5

    with overlay(tmp_path / "merged", [lower], upper, tmp_path / "work") as merged:
        assert not (merged / "etc/hosts").exists()
        assert (merged / "etc/passwd").read_text() == "root:x:0:0\n"
        assert (merged / "etc/passwd").stat().st_nlink == 2
        assert (merged / "etc/passwd").stat().st_ino == (merged / "etc/passwd-link").stat().st_ino
        assert sorted(os.listdir(merged / "var/cache")) == ["new"]
        assert stat.S_IMODE((merged / "tmp").stat().st_mode) == 0o1777
        assert (merged / "tmp/newfile").read_text() == "t"
        assert os.listdir(merged / "keep") == []
    assert (lower / "etc/hosts").exists() and (lower / "var/cache/a").exists()  # lowers untouched
    assert (lower / "etc/passwd").stat().st_nlink == 1


def test_overlay_changes_of_a_mounted_container_make_a_layer_that_reproduces_it(tmp_path: Path) -> None:
    lower = make_lower(tmp_path / "lower")
    upper = tmp_path / "upper"
    upper.mkdir()
    with overlay(tmp_path / "merged", [lower], upper, tmp_path / "work") as merged:
        # what a container might do
        (merged / "etc/hosts").unlink()
        shutil.rmtree(merged / "var/cache")
        (merged / "var/cache").mkdir()  # becomes an opaque directory in the upper
        (merged / "var/cache/fresh").write_text("f")
        with open(merged / "etc/passwd", "a") as f:
            f.write("app:x:1000:1000\n")
        (merged / "opt/app").mkdir(parents=True)
        (merged / "opt/app/bin").write_text("#!/bin/sh\n")
        os.link(merged / "opt/app/bin", merged / "opt/app/bin2")
        os.symlink("/opt/app/bin", merged / "opt/run")
        os.chmod(merged / "keep", 0o700)
        expected = tree_state(merged)

    changes = list(overlay_changes(upper, [lower]))
    summary = {(c.kind, c.path, c.opaque) for c in changes}
    assert ("delete", "etc/hosts", False) in summary
    assert ("modify", "var/cache", True) in summary
    assert ("add", "var/cache/fresh", False) in summary
    assert ("modify", "etc/passwd", False) in summary
    assert ("add", "opt", False) in summary and ("add", "opt/run", False) in summary
    assert ("modify", "keep", False) in summary
    assert not any(c.path.startswith("var/cache/") and c.kind == "delete" for c in changes)

    out = io.BytesIO()
    write_layer(changes, out)
    layer = out.getvalue()
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:") as tf:
        members = {m.name: m for m in tf.getmembers()}
    assert "etc/.wh.hosts" in members and "var/cache/.wh..wh..opq" in members
    assert members["opt/app/bin2"].islnk()
    assert not any("trusted.overlay" in k for m in members.values() for k in m.pax_headers)

    # applied the Docker way (a copy of the lower plus the layer) it gives the container's view…
    flat = tmp_path / "flat"
    subprocess.run(["cp", "-a", str(lower), str(flat)], check=True)
    apply_layer(io.BytesIO(layer), flat)
    assert tree_state(flat) == expected

    # …and applied as an upper directory, mounted, too
    upper2 = tmp_path / "upper2"
    upper2.mkdir()
    apply_layer(io.BytesIO(layer), upper2, whiteouts="overlay", lowers=[lower])
    with overlay(tmp_path / "merged2", [lower], upper2, tmp_path / "work2") as merged2:
        assert tree_state(merged2) == expected
