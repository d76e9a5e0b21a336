"""Driver selection and the mount executor on the real kernel: refusals with reasons, overlay's layer limits."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from barque.errors import FailedPrecondition, InvalidArgument
from barque.linux.mountinfo import mounts as read_mounts
from barque.snapshot import OVERLAY_MAX_LOWERS, Mount, get_snapshotter, mount_all, mounted, unmount
from barque.snapshot import mount as mount_mod

pytestmark = [
    pytest.mark.root,
    pytest.mark.usefixtures("no_leaked_mounts"),
    pytest.mark.skipif(os.geteuid() != 0, reason="mounts filesystems: needs root"),
]


@pytest.mark.parametrize("driver, words", [
    ("devicemapper", ["devicemapper", "device-mapper"]),
    ("aufs", ["AUFS is not in mainline", "overlay"]),
])
def test_unavailable_drivers_say_why(tmp_path: Path, driver: str, words: list[str]) -> None:
    with pytest.raises(FailedPrecondition) as exc:
        get_snapshotter(driver, tmp_path / driver)
    for w in words:
        assert w in str(exc.value)
    assert not (tmp_path / driver).exists()


def test_unknown_driver_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument) as exc:
        get_snapshotter("bogus", tmp_path / "bogus")
    for name in ("overlay", "btrfs", "vfs"):
        assert name in str(exc.value)


def test_docker_and_containerd_names_are_accepted(tmp_path: Path) -> None:
    with get_snapshotter("overlay2", tmp_path / "o") as s:
        assert s.name == "overlay"
    with get_snapshotter("native", tmp_path / "n") as s:
        assert s.name == "vfs"


def test_btrfs_on_a_non_btrfs_root(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition) as exc:
        get_snapshotter("btrfs", tmp_path / "snapshots" / "btrfs")
    assert "not btrfs" in str(exc.value)
    assert not (tmp_path / "snapshots").exists()


def test_overlay_on_a_filesystem_overlay_cannot_use(tmp_path: Path) -> None:
    """An overlay mount cannot be the upper layer of another overlay: the probe mount must catch that."""
    for d in ("l1", "l2", "up", "work"):
        (tmp_path / d).mkdir()
    plan = Mount("overlay", "overlay", (f"lowerdir={tmp_path / 'l2'}:{tmp_path / 'l1'}",
                                        f"upperdir={tmp_path / 'up'}", f"workdir={tmp_path / 'work'}"))
    with mounted([plan]) as m:
        with pytest.raises(FailedPrecondition) as exc:
            get_snapshotter("overlay", m / "barque" / "snapshots" / "overlay")
        assert "overlay is not available" in str(exc.value) and "overlay" in str(exc.value)
        assert not (m / "barque" / "snapshots" / "overlay").exists()


def _lowers(base: Path, n: int) -> list[str]:
    out = []
    for i in range(n):
        d = base / f"layer-with-a-long-name-to-fill-the-page-{i:04d}"
        d.mkdir()
        (d / f"f{i}").write_text(str(i))
        out.append(str(d))
    return list(reversed(out))


@pytest.mark.parametrize("new_api", [True, False], ids=["lowerdir+", "short-links"])
def test_overlay_max_lowers(tmp_path: Path, monkeypatch, new_api: bool) -> None:
    if new_api and not mount_mod.overlay_supports_lowerdir_plus():
        pytest.skip("kernel without lowerdir+")
    monkeypatch.setattr(mount_mod, "overlay_supports_lowerdir_plus", lambda: new_api)
    lowers = _lowers(tmp_path, OVERLAY_MAX_LOWERS + 1)
    full = Mount("overlay", "overlay", ("index=off", "lowerdir=" + ":".join(lowers[1:])))
    with mounted([full]) as m:
        assert len(os.listdir(m)) == OVERLAY_MAX_LOWERS
        with pytest.raises(OSError) as exc:
            (m / "x").write_text("read-only: no upper")
        assert exc.value.errno == errno.EROFS
    too_deep = Mount("overlay", "overlay", ("index=off", "lowerdir=" + ":".join(lowers)))
    with pytest.raises(InvalidArgument) as exc2:
        with mounted([too_deep]):
            pass
    assert "at most 500" in str(exc2.value)


def test_overlay_snapshotter_refuses_chains_past_the_kernel_limit(tmp_path: Path) -> None:
    with get_snapshotter("overlay", tmp_path / "o") as s:
        parent = None
        for i in range(OVERLAY_MAX_LOWERS + 1):
            s.prepare(f"k{i}", parent)
            s.commit(f"L{i}", f"k{i}")
            parent = f"L{i}"
        s.view("deepest-ok", f"L{OVERLAY_MAX_LOWERS - 1}")        # 500 lowers
        with pytest.raises(FailedPrecondition) as exc:
            s.prepare("too-deep", f"L{OVERLAY_MAX_LOWERS}")       # 501
        assert "at most 500" in str(exc.value)
        assert not s.exists("too-deep")


def test_mount_failure_is_reported_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    with pytest.raises(FailedPrecondition) as exc:
        mount_all([Mount("bind", str(tmp_path / "missing"), ("ro", "rbind"))], target)
    assert isinstance(exc.value.__cause__, OSError)
    assert not any(m.mount_point == str(target) for m in read_mounts())


def test_mount_all_stacks_and_unmount_removes_all(tmp_path: Path) -> None:
    a, b, target = tmp_path / "a", tmp_path / "b", tmp_path / "t"
    for d in (a, b, target):
        d.mkdir()
    (a / "from-a").touch()
    (b / "from-b").touch()
    mount_all([Mount("bind", str(a), ("rw", "rbind")), Mount("bind", str(b), ("ro", "rbind"))], target)
    try:
        assert os.listdir(target) == ["from-b"]
    finally:
        unmount(target)
    assert os.listdir(target) == []
    unmount(target)                      # not mounted: nothing to do
    unmount(tmp_path / "does-not-exist")


def test_unmount_busy_target_detaches(tmp_path: Path) -> None:
    src, target = tmp_path / "src", tmp_path / "t"
    src.mkdir()
    target.mkdir()
    (src / "f").write_text("x")
    mount_all([Mount("bind", str(src), ("rw", "rbind"))], target)
    fd = os.open(target / "f", os.O_RDONLY)   # keeps the mount busy
    try:
        unmount(target)
        assert not any(m.mount_point == str(target) for m in read_mounts())
    finally:
        os.close(fd)
