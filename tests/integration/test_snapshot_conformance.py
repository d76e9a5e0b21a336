"""One conformance suite for every snapshotter (containerd's SnapshotterSuite is the model), on the real kernel.

overlay and vfs run on pytest's tmp_path; btrfs on a loop-mounted btrfs image shared by the session. Every mount a
test makes goes through `mounted()`, which unmounts even when the test fails; an autouse check then asserts that
nothing is left mounted under the test's roots.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from barque.errors import AlreadyExists, Conflict, FailedPrecondition, NotFound
from barque.snapshot import Kind, Mount, Snapshotter, get_snapshotter, mounted
from barque.snapshot import mount as mount_mod


pytestmark = [
    pytest.mark.root,
    pytest.mark.usefixtures("no_leaked_mounts"),
    pytest.mark.skipif(os.geteuid() != 0, reason="snapshotter integration tests mount filesystems: need root"),
]

DRIVERS = ["overlay", "vfs", "btrfs"]
MiB = 1024 * 1024


# -- fixtures ---------------------------------------------------------------------------------------------------
@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def base_dir(driver: str, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """Where this test's barque root lives: tmp_path, or a fresh directory on the shared btrfs."""
    if driver == "btrfs":
        d = request.getfixturevalue("btrfs_mount") / uuid.uuid4().hex[:12]
        d.mkdir()
        return d
    return tmp_path


@pytest.fixture
def root(base_dir: Path, driver: str) -> Path:
    return base_dir / "barque" / "snapshots" / driver


@pytest.fixture
def snap(driver: str, root: Path) -> Iterator[Snapshotter]:
    s = get_snapshotter(driver, root)
    try:
        yield s
    finally:
        s.close()


# -- helpers ----------------------------------------------------------------------------------------------------
def write_layer(s: Snapshotter, key: str, parent: str | None, files: dict[str, bytes | None], name: str) -> None:
    """Prepare `key` on `parent`, change files through a real mount (None deletes), commit as `name`."""
    mounts = s.prepare(key, parent)
    with mounted(mounts) as m:
        for rel, data in files.items():
            p = m / rel
            if data is None:
                p.unlink()
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
    s.commit(name, key)


def tree(path: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = Path(dirpath, f)
            out[str(p.relative_to(path))] = p.read_bytes()
    return out


def snapshot_dirs(root: Path) -> list[str]:
    return sorted(os.listdir(root / "snapshots"))


# -- the suite --------------------------------------------------------------------------------------------------
def test_prepare_mount_write_commit(snap: Snapshotter) -> None:
    mounts = snap.prepare("work-1")
    assert mounts and all(isinstance(m, Mount) for m in mounts)
    info = snap.stat("work-1")
    assert (info.name, info.kind, info.parent) == ("work-1", Kind.ACTIVE, None)
    with mounted(mounts) as m:
        (m / "hello").write_text("world")
        (m / "dir").mkdir()
        (m / "dir" / "f").write_bytes(b"x" * 10)
    assert snap.mounts("work-1") == mounts

    snap.commit("sha256:" + "a" * 64, "work-1", labels={"layer": "1"})
    assert not snap.exists("work-1")
    with pytest.raises(NotFound):
        snap.stat("work-1")
    info = snap.stat("sha256:" + "a" * 64)
    assert (info.kind, info.parent, info.labels) == (Kind.COMMITTED, None, {"layer": "1"})

    snap.view("look", "sha256:" + "a" * 64)
    with mounted(snap.mounts("look")) as m:
        assert tree(m) == {"hello": b"world", "dir/f": b"x" * 10}


def test_chain_of_three_layers_add_modify_delete(snap: Snapshotter) -> None:
    write_layer(snap, "k1", None, {"a": b"a1", "b": b"b1", "c": b"c1", "d/e": b"e1"}, "L1")
    write_layer(snap, "k2", "L1", {"a": b"a2", "b": None, "f": b"f2", "d/g": b"g2"}, "L2")
    write_layer(snap, "k3", "L2", {"c": None, "d/e": b"e3", "h": b"h3"}, "L3")

    snap.view("top", "L3")
    with mounted(snap.mounts("top")) as m:
        assert tree(m) == {"a": b"a2", "f": b"f2", "d/e": b"e3", "d/g": b"g2", "h": b"h3"}
    snap.view("middle", "L2")
    with mounted(snap.mounts("middle")) as m:
        assert tree(m) == {"a": b"a2", "c": b"c1", "d/e": b"e1", "f": b"f2", "d/g": b"g2"}
    # an active snapshot on top sees the same and can change it again
    with mounted(snap.prepare("rw", "L3")) as m:
        assert (m / "a").read_bytes() == b"a2"
        (m / "a").unlink()
        assert not (m / "a").exists()
    with mounted(snap.mounts("top")) as m:
        assert (m / "a").read_bytes() == b"a2"   # the committed layers are untouched


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_view_is_read_only(snap: Snapshotter, depth: int) -> None:
    parent = None
    for i in range(depth):
        write_layer(snap, f"k{i}", parent, {f"f{i}": b"data"}, f"L{i}")
        parent = f"L{i}"
    snap.view("v", parent)
    assert snap.stat("v").kind == Kind.VIEW
    with mounted(snap.mounts("v")) as m:
        with pytest.raises(OSError) as exc:
            (m / "new").write_text("nope")
        assert exc.value.errno == errno.EROFS
        if depth:
            with pytest.raises(OSError) as exc:
                (m / f"f{depth - 1}").unlink()
            assert exc.value.errno == errno.EROFS


def test_state_errors(snap: Snapshotter) -> None:
    snap.prepare("a")
    with pytest.raises(AlreadyExists):
        snap.prepare("a")
    with pytest.raises(AlreadyExists):
        snap.view("a")
    with pytest.raises(NotFound):
        snap.prepare("b", "missing-parent")
    with pytest.raises(FailedPrecondition):
        snap.prepare("b", "a")           # the parent is active, not committed
    assert not snap.exists("b")
    snap.commit("A", "a")
    snap.prepare("c")
    with pytest.raises(AlreadyExists):
        snap.commit("A", "c")            # names and keys share one namespace
    with pytest.raises(NotFound):
        snap.commit("X", "missing")
    snap.view("v", "A")
    with pytest.raises(FailedPrecondition):
        snap.commit("V", "v")            # a view cannot be committed
    with pytest.raises(FailedPrecondition):
        snap.commit("AA", "A")           # nor can a committed snapshot
    with pytest.raises(FailedPrecondition):
        snap.mounts("A")                 # committed snapshots are mounted through views
    with pytest.raises(FailedPrecondition):
        with snap.apply_target("v"):
            pass
    with pytest.raises(NotFound):
        snap.remove("missing")
    with pytest.raises(NotFound):
        snap.usage("missing")
    assert {i.name for i in snap.walk()} == {"A", "c", "v"}


def test_remove_parent_refused(snap: Snapshotter, root: Path) -> None:
    write_layer(snap, "k1", None, {"a": b"1"}, "L1")
    write_layer(snap, "k2", "L1", {"b": b"2"}, "L2")
    snap.view("v", "L2")
    with pytest.raises(Conflict):
        snap.remove("L1")
    with pytest.raises(Conflict):
        snap.remove("L2")
    snap.remove("v")
    with pytest.raises(Conflict):
        snap.remove("L1")
    snap.remove("L2")
    snap.remove("L1")
    assert list(snap.walk()) == []


def test_remove_leaves_no_directories(snap: Snapshotter, root: Path) -> None:
    write_layer(snap, "k1", None, {"a": b"1"}, "L1")
    write_layer(snap, "k2", "L1", {"sub/b": b"2"}, "L2")
    snap.view("v1", "L1")
    snap.view("v2", "L2")
    with mounted(snap.prepare("active", "L2")) as m:
        (m / "c").write_bytes(b"3")
    assert len(snapshot_dirs(root)) == 5
    for key in ("active", "v2", "v1", "L2", "L1"):
        snap.remove(key)
        assert not snap.exists(key)
    assert snapshot_dirs(root) == []
    assert os.listdir(root / "staging") == [] and os.listdir(root / "trash") == []
    assert list(snap.walk()) == []


def test_walk_lists_kinds_and_parents(snap: Snapshotter) -> None:
    write_layer(snap, "k1", None, {"a": b"1"}, "L1")
    write_layer(snap, "k2", "L1", {"b": b"2"}, "L2")
    snap.prepare("active", "L2", labels={"container": "c1"})
    snap.view("view", "L1")
    snap.prepare("base")
    got = {i.name: (i.kind, i.parent) for i in snap.walk()}
    assert got == {
        "L1": (Kind.COMMITTED, None),
        "L2": (Kind.COMMITTED, "L1"),
        "active": (Kind.ACTIVE, "L2"),
        "view": (Kind.VIEW, "L1"),
        "base": (Kind.ACTIVE, None),
    }
    assert snap.stat("active").labels == {"container": "c1"}
    assert all(i.created > 0 for i in snap.walk())


def test_usage_grows_after_writing(snap: Snapshotter) -> None:
    write_layer(snap, "k1", None, {"small": b"x"}, "L1")
    mounts = snap.prepare("a", "L1")
    before = snap.usage("a")
    with mounted(mounts) as m:
        with open(m / "big", "wb") as f:
            f.write(os.urandom(MiB))
            f.flush()
            os.fsync(f.fileno())
    after = snap.usage("a")
    assert after.size >= before.size + MiB
    assert after.inodes >= before.inodes + 1
    snap.commit("A", "a")
    committed = snap.usage("A")           # recorded at commit time
    assert committed.size >= MiB and committed.inodes >= 1


def test_reopen_sees_same_state(driver: str, root: Path, snap: Snapshotter) -> None:
    write_layer(snap, "k1", None, {"a": b"1"}, "L1")
    snap.prepare("active", "L1", labels={"x": "y"})
    snap.view("view", "L1")
    before = sorted(snap.walk(), key=lambda i: i.name)
    mounts = {k: snap.mounts(k) for k in ("active", "view")}
    usage = snap.usage("L1")
    snap.close()

    with get_snapshotter(driver, root) as again:
        assert sorted(again.walk(), key=lambda i: i.name) == before
        assert {k: again.mounts(k) for k in ("active", "view")} == mounts
        assert again.usage("L1") == usage
        with mounted(again.mounts("view")) as m:
            assert (m / "a").read_bytes() == b"1"
        again.commit("L2", "active")
        assert again.stat("L2").parent == "L1"


def _prepare_many(driver: str, root: str, tag: str, n: int, barrier, results) -> None:
    try:
        with get_snapshotter(driver, Path(root)) as s:
            barrier.wait(timeout=60)
            made = []
            for i in range(n):
                s.prepare(f"{tag}-{i}", "base")
                with s.apply_target(f"{tag}-{i}") as (target, _, _):
                    made.append(str(target))
            try:
                s.prepare("contested", "base")
                contested = "won"
            except AlreadyExists:
                contested = "lost"
            results.put((tag, made, contested, None))
    except BaseException as e:  # report instead of dying silently in the child
        results.put((tag, [], "", repr(e)))


def test_concurrent_prepare_from_two_processes(driver: str, root: Path, snap: Snapshotter) -> None:
    write_layer(snap, "k", None, {"base-file": b"1"}, "base")
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    n = 8
    procs = [ctx.Process(target=_prepare_many, args=(driver, str(root), tag, n, barrier, results))
             for tag in ("p1", "p2")]
    for p in procs:
        p.start()
    try:
        got = [results.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    assert all(err is None for _, _, _, err in got), got
    assert sorted(c for _, _, c, _ in got) == ["lost", "won"]
    dirs = [d for _, made, _, _ in got for d in made]
    assert len(dirs) == 2 * n and len(set(dirs)) == 2 * n
    assert all(Path(d).is_dir() for d in dirs)
    keys = {i.name for i in snap.walk()}
    assert {f"{t}-{i}" for t in ("p1", "p2") for i in range(n)} | {"base", "contested"} == keys
    with mounted(snap.mounts("p2-3")) as m:
        assert (m / "base-file").read_bytes() == b"1"


def test_apply_target_and_diff_source(driver: str, snap: Snapshotter) -> None:
    write_layer(snap, "k1", None, {"a": b"1"}, "L1")
    write_layer(snap, "k2", "L1", {"b": b"2"}, "L2")
    snap.prepare("base")
    snap.prepare("child", "L2")

    with snap.apply_target("child") as (target, whiteouts, lowers):
        assert target.is_dir()
        (target / "applied").write_bytes(b"from a layer")
        if driver == "overlay":
            assert whiteouts == "overlay"
            assert [p.is_dir() for p in lowers] == [True, True]
            assert (lowers[0] / "b").read_bytes() == b"2" and (lowers[1] / "a").read_bytes() == b"1"
            assert not (target / "a").exists()           # the upper dir holds only this layer's changes
        else:
            assert (whiteouts, lowers) == ("delete", [])
            assert (target / "a").exists() and (target / "b").exists()   # the whole tree
    with mounted(snap.mounts("child")) as m:
        assert tree(m) == {"a": b"1", "b": b"2", "applied": b"from a layer"}

    src = snap.diff_source("child")
    if driver == "overlay":
        kind, upper, lowers2 = src
        assert (kind, upper, lowers2) == ("overlay", target, lowers)
        assert os.listdir(upper) == ["applied"]
        kind, upper, lowers = snap.diff_source("base")
        assert (kind, lowers) == ("overlay", [])
    else:
        kind, parent_dir, snap_dir = src
        assert kind == "dirs" and snap_dir == target
        assert parent_dir is not None and tree(parent_dir) == {"a": b"1", "b": b"2"}
        assert snap.diff_source("base")[0:2] == ("dirs", None)
    with snap.apply_target("base") as (target, _, lowers):
        assert lowers == []
    snap.commit("L3", "child")
    assert snap.diff_source("L3")[0] in ("overlay", "dirs")   # committed layers can be diffed (export)
    snap.view("v", "L3")
    with pytest.raises(FailedPrecondition):
        snap.diff_source("v")


def _deep_chain(snap: Snapshotter, depth: int) -> None:
    parent = None
    for i in range(depth):
        key = f"extract-{i}"
        snap.prepare(key, parent)
        with snap.apply_target(key) as (target, _, lowers):
            assert len(lowers) == (i if snap.name == "overlay" else 0)
            (target / f"file-{i:03d}").write_text(str(i))
        name = "sha256:" + f"{i:064x}"
        snap.commit(name, key)
        parent = name


def test_deep_chain(driver: str, snap: Snapshotter) -> None:
    depth = 150 if driver == "overlay" else 12
    _deep_chain(snap, depth)
    top = "sha256:" + f"{depth - 1:064x}"
    mounts = snap.view("top-view", top)
    if driver == "overlay":
        assert len(",".join(mounts[0].options)) > 4096   # past the one-page limit of mount(2) options
    expected = {f"file-{i:03d}" for i in range(depth)}
    with mounted(mounts) as m:
        assert set(os.listdir(m)) == expected
        assert (m / "file-000").read_text() == "0"
    with mounted(snap.prepare("top-rw", top)) as m:
        assert set(os.listdir(m)) == expected
        (m / "file-000").write_text("changed")
        assert (m / "file-000").read_text() == "changed"


@pytest.mark.parametrize("driver", ["overlay"])  # overrides the all-drivers fixture: this is overlay's fallback
def test_overlay_deep_chain_through_short_links(driver: str, snap: Snapshotter, monkeypatch) -> None:
    """The fallback for kernels without lowerdir+: short symlinks and a chdir'ed child."""
    _deep_chain(snap, 150)
    monkeypatch.setattr(mount_mod, "overlay_supports_lowerdir_plus", lambda: False)
    top = "sha256:" + f"{149:064x}"
    cwd = os.getcwd()
    with mounted(snap.view("v", top)) as m:
        assert len(os.listdir(m)) == 150
    with mounted(snap.prepare("rw", top)) as m:
        (m / "new").write_text("x")
        assert len(os.listdir(m)) == 151
    assert os.getcwd() == cwd
    with snap.apply_target("rw") as (upper, _, _):
        assert os.listdir(upper) == ["new"]


def test_crash_leftovers_are_swept_on_open(driver: str, root: Path, snap: Snapshotter) -> None:
    write_layer(snap, "k1", None, {"a": b"1"}, "L1")
    snap.close()
    # what a crash can leave: a snapshot dir whose transaction never committed, a dead process's staging dir,
    # a half-deleted dir in the trash
    (root / "snapshots" / "9999").mkdir()
    (root / "snapshots" / "9999" / "junk").write_text("x")
    (root / "staging" / "999999999-deadbeef").mkdir()
    (root / "trash" / "7-cafe").mkdir()
    with get_snapshotter(driver, root) as s:
        assert snapshot_dirs(root) == ["1"]
        assert os.listdir(root / "staging") == [] and os.listdir(root / "trash") == []
        assert [i.name for i in s.walk()] == ["L1"]


@pytest.mark.parametrize("kind", ["prepare", "view"])
def test_failed_create_leaves_nothing(driver: str, root: Path, snap: Snapshotter, monkeypatch, kind: str) -> None:
    """A failure after the directory is renamed into place (btrfs: after a view is made read-only) but before the
    transaction commits leaves neither a record nor a directory."""
    write_layer(snap, "k1", None, {"a": b"1"}, "L1")

    def boom(*a, **kw):
        raise OSError(errno.EIO, "simulated failure after the rename")

    monkeypatch.setattr("barque.snapshot._driver.fsync_dir", boom)
    with pytest.raises(OSError):
        getattr(snap, kind)("doomed", "L1")
    monkeypatch.undo()
    assert not snap.exists("doomed")
    assert snapshot_dirs(root) == ["1"]
    assert os.listdir(root / "staging") == [] and os.listdir(root / "trash") == []
    snap.prepare("fine", "L1")   # and the id is usable again
    assert len(snapshot_dirs(root)) == 2
