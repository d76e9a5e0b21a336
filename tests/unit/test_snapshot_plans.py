"""Mount plans and on-disk layout of the drivers, without mounting anything (no root needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import barque.snapshot as snapshot
from barque.errors import FailedPrecondition, InvalidArgument
from barque.snapshot._driver import disk_usage
from barque.snapshot.base import Kind, Usage
from barque.snapshot.metadata import Record
from barque.snapshot.overlay import OverlaySnapshotter, default_mount_options
from barque.snapshot.vfs import VfsSnapshotter


def test_public_surface() -> None:
    for name in snapshot.__all__:
        assert hasattr(snapshot, name), name
    assert {"Mount", "Kind", "Info", "Usage", "Snapshotter", "get_snapshotter", "mount_all", "unmount",
            "mounted"} <= set(snapshot.__all__)


@pytest.fixture
def overlay(tmp_path: Path):
    s = OverlaySnapshotter(tmp_path / "overlay", probe=False)
    yield s
    s.close()


def test_overlay_plans(overlay: OverlaySnapshotter) -> None:
    root = overlay.root / "snapshots"
    [m] = overlay.prepare("base")
    assert (m.type, m.source, m.options) == ("bind", f"{root}/1/fs", ("rw", "rbind"))
    overlay.commit("L1", "base")
    [m] = overlay.view("v1", "L1")
    assert (m.type, m.source, m.options) == ("bind", f"{root}/1/fs", ("ro", "rbind"))   # one layer: a ro bind
    [m] = overlay.prepare("c", "L1")
    assert m.type == "overlay"
    assert m.option("lowerdir") == f"{root}/1/fs"
    assert m.option("upperdir") == f"{root}/3/fs" and m.option("workdir") == f"{root}/3/work"
    assert "index=off" in m.options
    assert not any(o.startswith(("redirect_dir=on", "metacopy=on")) for o in m.options)
    overlay.commit("L2", "c")
    [m] = overlay.view("v2", "L2")
    assert m.option("lowerdir") == f"{root}/3/fs:{root}/1/fs" and m.option("upperdir") is None
    [m] = overlay.view("empty")
    assert (m.type, m.options) == ("bind", ("ro", "rbind"))
    assert sorted(os.listdir(root / "3")) == ["fs", "work"] and os.listdir(root / "4") == ["fs"]
    assert overlay.describe("L2") == {"UpperDir": f"{root}/3/fs", "WorkDir": f"{root}/3/work",
                                      "LowerDir": f"{root}/1/fs"}
    assert overlay.describe("L1") == {"UpperDir": f"{root}/1/fs", "WorkDir": f"{root}/1/work"}


def test_overlay_default_options_follow_module_defaults(tmp_path: Path) -> None:
    (tmp_path / "redirect_dir").write_text("Y\n")
    (tmp_path / "metacopy").write_text("N\n")
    assert default_mount_options(tmp_path) == ("index=off", "redirect_dir=off")
    assert default_mount_options(tmp_path / "missing") == ("index=off",)


def test_overlay_depth_limit() -> None:
    s = OverlaySnapshotter.__new__(OverlaySnapshotter)
    ok = Record(id=1, name="p", kind=Kind.COMMITTED, parent=None, parent_ids=tuple(range(499)), created=0.0)
    s._check_new(Kind.ACTIVE, ok)    # 500 lowers
    too_deep = Record(id=1, name="p", kind=Kind.COMMITTED, parent=None, parent_ids=tuple(range(500)), created=0.0)
    with pytest.raises(FailedPrecondition):
        s._check_new(Kind.VIEW, too_deep)


def test_overlay_root_with_separator_characters(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        OverlaySnapshotter(tmp_path / "a:b", probe=False)
    assert not (tmp_path / "a:b").exists()


def test_vfs_copies_the_parent_and_views_bind_it(tmp_path: Path) -> None:
    with VfsSnapshotter(tmp_path / "vfs") as s:
        root = s.root / "snapshots"
        s.prepare("a")
        with s.apply_target("a") as (d, mode, lowers):
            (d / "f").write_text("1")
            os.link(d / "f", d / "hard")
            os.symlink("f", d / "sym")
            os.utime(d / "f", (1_000_000, 1_000_000))
        s.commit("A", "a")
        [m] = s.prepare("b", "A")
        assert (m.type, m.source, m.options) == ("bind", f"{root}/2", ("rw", "rbind"))
        b = root / "2"
        assert (b / "f").read_text() == "1" and os.readlink(b / "sym") == "f"
        assert os.stat(b / "f").st_ino == os.stat(b / "hard").st_ino      # hard links preserved
        assert os.stat(b / "f").st_mtime == 1_000_000                      # times preserved
        [m] = s.view("v", "A")
        assert (m.source, m.options) == (f"{root}/1", ("ro", "rbind"))     # a view is the parent itself, ro
        assert s.diff_source("b") == ("dirs", root / "1", b)
        assert s.describe("A") is None      # Docker's vfs shows GraphDriver.Data null


def test_disk_usage_counts_hard_links_once(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(os.urandom(64 * 1024))
    os.link(tmp_path / "f", tmp_path / "g")
    u = disk_usage(tmp_path)
    assert u.inodes == 2 and u.size >= 64 * 1024
    assert disk_usage(tmp_path / "missing") == Usage(0, 0)


def test_closed_snapshotter_refuses(tmp_path: Path) -> None:
    s = VfsSnapshotter(tmp_path / "vfs")
    s.close()
    with pytest.raises(FailedPrecondition):
        s.prepare("a")
    s.close()   # idempotent
