"""apply_layer on hand-made tars: entry types, metadata, whiteouts, and every way a tar could try to escape."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import tarfile
import threading
import time
from pathlib import Path

import pytest

import barque.layers._writer as writer
import barque.layers.apply as apply_mod
from barque.errors import DataCorruption, InvalidArgument
from barque.layers import ApplyResult, apply_layer

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (chown, mknod, trusted.* xattrs)")
MTIME = 1_600_000_000


class TarBuilder:
    """Crafts layer tars with the standard library, as a foreign tool would."""

    def __init__(self, fmt: int = tarfile.PAX_FORMAT) -> None:
        self._buf = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buf, mode="w", format=fmt)

    def _add(self, info: tarfile.TarInfo, data: bytes | None = None, **meta) -> "TarBuilder":
        info.mtime = meta.get("mtime", MTIME)
        info.mode = meta.get("mode", info.mode)
        info.uid = meta.get("uid", 0)
        info.gid = meta.get("gid", 0)
        if meta.get("xattrs"):
            info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in meta["xattrs"].items()}
        self._tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return self

    def file(self, name: str, data: bytes = b"", mode: int = 0o644, **meta) -> "TarBuilder":
        info = tarfile.TarInfo(name)
        info.size = len(data)
        return self._add(info, data, mode=mode, **meta)

    def dir(self, name: str, mode: int = 0o755, **meta) -> "TarBuilder":
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        return self._add(info, mode=mode, **meta)

    def symlink(self, name: str, target: str, **meta) -> "TarBuilder":
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.SYMTYPE, target
        return self._add(info, mode=0o777, **meta)

    def hardlink(self, name: str, target: str, **meta) -> "TarBuilder":
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.LNKTYPE, target
        return self._add(info, **meta)

    def device(self, name: str, kind: bytes, major: int = 0, minor: int = 0, mode: int = 0o600, **meta) -> "TarBuilder":
        info = tarfile.TarInfo(name)
        info.type, info.devmajor, info.devminor = kind, major, minor
        return self._add(info, mode=mode, **meta)

    def whiteout(self, path: str) -> "TarBuilder":
        head, _, base = path.rpartition("/")
        return self.file(f"{head}/.wh.{base}" if head else f".wh.{base}", mode=0)

    def opaque(self, dir_path: str) -> "TarBuilder":
        return self.file(f"{dir_path}/.wh..wh..opq", mode=0)

    def bytes(self) -> bytes:
        self._tar.close()
        return self._buf.getvalue()


def apply_bytes(data: bytes, root: Path, **kw) -> ApplyResult:
    return apply_layer(io.BytesIO(data), root, **kw)


class _AlwaysThreaded(writer.Pace):
    def threaded(self) -> bool:
        return True


@pytest.fixture(autouse=True, params=["as-is", "threads"])
def creating(request, monkeypatch) -> str:
    """Every test runs twice: as apply_layer chooses (on a fast disk: unthreaded), and with every new file and
    symlink handed to the workers, which are slowed down so that anything not waiting for them would see it."""
    if request.param == "threads":
        monkeypatch.setattr(apply_mod, "Pace", _AlwaysThreaded)
        for job in (apply_mod._NewFile, apply_mod._NewSymlink):
            monkeypatch.setattr(job, "run", _slowed(job.run))
    return request.param


def _slowed(run):
    def slow_run(self) -> None:
        time.sleep(0.002)
        run(self)
    return slow_run


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return r


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the root that no tar may touch."""
    o = tmp_path / "outside"
    o.mkdir()
    (o / "secret").write_text("keep me")
    (o / "dir").mkdir()
    (o / "dir" / "inner").write_text("inner")
    os.chmod(o, 0o755)
    return o


def snapshot(path: Path) -> dict[str, tuple]:
    """Everything observable about a tree (that is not a time it cannot control)."""
    out = {}
    for p in sorted([path, *path.rglob("*")]):
        st = p.lstat()
        content = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else None
        link = os.readlink(p) if p.is_symlink() else None
        out[str(p.relative_to(path))] = (stat.filemode(st.st_mode), st.st_uid, st.st_gid, st.st_nlink, content, link)
    return out


# ------------------------------------------------------------------------------------------------ basics


def test_files_dirs_and_metadata_land_as_the_tar_says(root: Path) -> None:
    data = (TarBuilder()
            .dir("etc", mode=0o755)
            .file("etc/hostname", b"box\n", mode=0o640, mtime=1_500_000_000)
            .dir("empty", mode=0o750, mtime=1_400_000_000)
            .file("usr/bin/tool", b"#!/bin/sh\n", mode=0o4755)  # parents not listed: implied
            .bytes())
    result = apply_bytes(data, root)
    assert (root / "etc/hostname").read_bytes() == b"box\n"
    assert stat.S_IMODE((root / "etc/hostname").stat().st_mode) == 0o640
    assert (root / "etc/hostname").stat().st_mtime == 1_500_000_000
    assert stat.S_IMODE((root / "empty").stat().st_mode) == 0o750
    assert (root / "empty").stat().st_mtime == 1_400_000_000  # set after its (no) content, not bumped
    assert stat.S_IMODE((root / "usr").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "usr/bin/tool").stat().st_mode) == 0o4755
    assert result.size == len(b"box\n") + len(b"#!/bin/sh\n")
    # the diff ID is the digest of every byte of the stream, record padding after the end marker included
    assert len(data) % 10240 == 0
    assert str(result.diff_id) == "sha256:" + hashlib.sha256(data).hexdigest()


def test_directory_mtime_survives_content_written_later(root: Path) -> None:
    data = TarBuilder().dir("d", mtime=1_000_000_000).file("d/a", b"x").file("d/b", b"y").bytes()
    apply_bytes(data, root)
    assert (root / "d").stat().st_mtime == 1_000_000_000


def test_nanosecond_mtimes_from_pax(root: Path) -> None:
    b = TarBuilder()
    info = tarfile.TarInfo("f")
    info.mtime = 1_600_000_000.25
    b._tar.addfile(info, io.BytesIO(b""))
    apply_bytes(b.bytes(), root)
    assert (root / "f").stat().st_mtime_ns == 1_600_000_000_250_000_000


@needs_root
def test_ownership_and_id_map(root: Path) -> None:
    data = TarBuilder().dir("home", uid=1000, gid=1000).file("home/f", b"x", uid=1000, gid=50).bytes()
    apply_bytes(data, root, id_map=lambda uid, gid: (uid + 100000, gid + 200000))
    st = (root / "home/f").stat()
    assert (st.st_uid, st.st_gid) == (101000, 200050)
    st = (root / "home").stat()
    assert (st.st_uid, st.st_gid) == (101000, 201000)


def test_symlinks_keep_their_target_and_times(root: Path) -> None:
    data = TarBuilder().file("a.txt", b"alpha").symlink("link-a", "/a.txt", mtime=1_234_567_890).bytes()
    apply_bytes(data, root)
    assert os.readlink(root / "link-a") == "/a.txt"
    assert (root / "link-a").lstat().st_mtime == 1_234_567_890


def test_hard_links_share_the_inode(root: Path) -> None:
    data = TarBuilder().file("a", b"alpha").hardlink("b", "a").hardlink("sub/c", "/a").bytes()
    apply_bytes(data, root)
    assert (root / "a").stat().st_nlink == 3
    assert (root / "a").stat().st_ino == (root / "b").stat().st_ino == (root / "sub/c").stat().st_ino


def test_hard_link_to_missing_target_is_refused(root: Path) -> None:
    with pytest.raises(InvalidArgument, match="'b'.*'nope'.*does not exist"):
        apply_bytes(TarBuilder().hardlink("b", "nope").bytes(), root)


def test_user_xattrs_are_applied(root: Path) -> None:
    data = TarBuilder().file("f", b"x", xattrs={"user.mime": "text/plain"}).dir("d", xattrs={"user.k": "v"}).bytes()
    apply_bytes(data, root)
    assert os.getxattr(root / "f", "user.mime") == b"text/plain"
    assert os.getxattr(root / "d", "user.k") == b"v"


@needs_root
def test_security_capability_applied_and_overlay_xattrs_refused(root: Path, caplog) -> None:
    cap = "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"  # cap_net_raw+p
    data = (TarBuilder()
            .file("ping", b"x", mode=0o755, xattrs={"security.capability": cap})
            .dir("d", xattrs={"trusted.overlay.opaque": "y", "trusted.overlay.redirect": "/etc"})
            .bytes())
    apply_bytes(data, root)
    assert os.getxattr(root / "ping", "security.capability") == cap.encode("utf-8")
    assert os.listxattr(root / "d") == [] or not any(x.startswith("trusted.overlay.") for x in os.listxattr(root / "d"))
    assert "trusted.overlay.opaque" in caplog.text


@needs_root
def test_device_nodes_and_fifos(root: Path) -> None:
    data = (TarBuilder()
            .device("dev/null", tarfile.CHRTYPE, 1, 3, mode=0o666)
            .device("dev/loop9", tarfile.BLKTYPE, 7, 9, mode=0o660, gid=6)
            .device("run/fifo", tarfile.FIFOTYPE, mode=0o620)
            .bytes())
    apply_bytes(data, root)
    st = (root / "dev/null").lstat()
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert stat.S_IMODE(st.st_mode) == 0o666
    st = (root / "dev/loop9").lstat()
    assert stat.S_ISBLK(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (7, 9) and st.st_gid == 6
    st = (root / "run/fifo").lstat()
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620


def test_long_and_non_ascii_names(root: Path) -> None:
    long = "/".join(["d" * 60] * 4) + "/" + "f" * 120
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        target = root / str(fmt)
        target.mkdir()
        data = TarBuilder(fmt).file(long, b"deep").file("café/naïve.txt", b"utf8").symlink("l", "x" * 150).bytes()
        apply_bytes(data, target)
        assert (target / long).read_bytes() == b"deep"
        assert (target / "café/naïve.txt").read_bytes() == b"utf8"
        assert os.readlink(target / "l") == "x" * 150


# ------------------------------------------------------------------------------------------------ replacing


def test_entries_replace_what_is_there(root: Path) -> None:
    (root / "was-dir").mkdir()
    (root / "was-dir/child").write_text("old")
    (root / "was-file").write_text("old")
    (root / "merged").mkdir(mode=0o700)
    (root / "merged/old").write_text("kept")
    data = (TarBuilder()
            .file("was-dir", b"now a file")
            .dir("was-file", mode=0o711)
            .dir("merged", mode=0o755)
            .file("merged/new", b"added")
            .bytes())
    apply_bytes(data, root)
    assert (root / "was-dir").read_bytes() == b"now a file"
    assert (root / "was-file").is_dir() and stat.S_IMODE((root / "was-file").stat().st_mode) == 0o711
    assert (root / "merged/old").read_text() == "kept"
    assert (root / "merged/new").read_text() == "added"
    assert stat.S_IMODE((root / "merged").stat().st_mode) == 0o755


# ------------------------------------------------------------------------------------------------ whiteouts


def test_whiteouts_delete_files_and_whole_directories(root: Path) -> None:
    apply_bytes(TarBuilder().file("a/keep", b"1").file("a/gone", b"2").file("b/deep/x", b"3").file("c", b"").bytes(),
                root)
    result = apply_bytes(TarBuilder().dir("a").whiteout("a/gone").whiteout("b").whiteout("nothing/here").bytes(), root)
    assert (root / "a/keep").exists()
    assert not (root / "a/gone").exists()
    assert not (root / "b").exists()
    assert not (root / "nothing").exists()  # a whiteout of something absent creates nothing
    assert result.size == 0
    assert sorted(p.name for p in root.iterdir()) == ["a", "c"]


@pytest.mark.parametrize("marker_first", [True, False])
def test_opaque_directory_keeps_only_this_layers_content(root: Path, marker_first: bool) -> None:
    apply_bytes(TarBuilder().file("d/old", b"old").file("d/sub/old", b"old").file("d/sub2/x", b"x")
                .file("other", b"o").bytes(), root)
    b = TarBuilder().dir("d")
    if marker_first:
        b.opaque("d").file("d/new", b"new").dir("d/sub").file("d/sub/fresh", b"f")
    else:  # a tar that puts siblings before the marker (byte order: "-" < ".")
        b.file("d/-early", b"e").dir("d/sub").file("d/sub/fresh", b"f").opaque("d").file("d/new", b"new")
    apply_bytes(b.bytes(), root)
    names = sorted(str(p.relative_to(root / "d")) for p in (root / "d").rglob("*"))
    expected = ["new", "sub", "sub/fresh"] + ([] if marker_first else ["-early"])
    assert names == sorted(expected)
    assert (root / "other").exists()
    assert not (root / "d" / ".wh..wh..opq").exists()


def test_invalid_whiteout_names_are_refused(root: Path) -> None:
    (root / "d").mkdir()
    for bad in ("d/.wh..", "d/.wh."):
        with pytest.raises(InvalidArgument, match="invalid whiteout"):
            apply_bytes(TarBuilder().file(bad).bytes(), root)
    assert (root / "d").is_dir()


# ------------------------------------------------------------------------------------------------ hostile tars


def _escape_tar(kind: str, outside: Path) -> bytes:
    o = str(outside)
    b = TarBuilder()
    if kind == "dotdot":
        b.file("../outside/secret", b"pwned")
    elif kind == "dotdot-inner":
        b.file("a/../../outside/secret", b"pwned")
    elif kind == "symlink-abs-parent":
        b.symlink("evil", o).file("evil/secret", b"pwned").file("evil/new", b"pwned")
    elif kind == "symlink-rel-parent":
        b.symlink("evil", "../../../../../../../../" + o.lstrip("/")).file("evil/secret", b"pwned")
    elif kind == "symlink-chain":
        b.dir("x").symlink("x/up", "..").symlink("x/up2", "up/..").file("x/up2/outside/secret", b"pwned")
    elif kind == "symlink-final":
        b.symlink("s", o + "/secret").file("s", b"pwned")
    elif kind == "symlink-dir-entry":
        b.symlink("d", o + "/dir").dir("d", mode=0o777).file("d/inner", b"pwned")
    elif kind == "hardlink-dotdot":
        b.hardlink("h", "../outside/secret")
    elif kind == "hardlink-through-symlink":
        b.symlink("evil", o).hardlink("h", "evil/secret")
    elif kind == "whiteout-through-symlink":
        b.symlink("evil", o).file("evil/.wh.secret")
    elif kind == "opaque-through-symlink":
        b.symlink("evil", o + "/dir").opaque("evil")
    elif kind == "symlink-then-write-link-target":
        b.symlink("cfg", o + "/secret").hardlink("h", "cfg").file("h", b"pwned")
    return b.bytes()


ESCAPES = ["dotdot", "dotdot-inner", "symlink-abs-parent", "symlink-rel-parent", "symlink-chain", "symlink-final",
           "symlink-dir-entry", "hardlink-dotdot", "hardlink-through-symlink", "whiteout-through-symlink",
           "opaque-through-symlink", "symlink-then-write-link-target"]


@pytest.mark.parametrize("kind", ESCAPES)
def test_nothing_is_written_outside_the_root(root: Path, outside: Path, kind: str) -> None:
    before = snapshot(outside)
    mode_before = stat.S_IMODE((outside / "dir").stat().st_mode)
    try:
        apply_bytes(_escape_tar(kind, outside), root)
    except InvalidArgument as e:
        # refusals name the offending entry
        assert any(word in str(e) for word in ("outside", "secret", "'h'")), str(e)
    assert snapshot(outside) == before
    assert stat.S_IMODE((outside / "dir").stat().st_mode) == mode_before


@pytest.mark.parametrize("kind", ["dotdot", "dotdot-inner", "hardlink-dotdot"])
def test_climbing_out_is_refused_with_the_entry_named(root: Path, outside: Path, kind: str) -> None:
    with pytest.raises(InvalidArgument, match="outside the root"):
        apply_bytes(_escape_tar(kind, outside), root)


def test_symlinked_parents_resolve_inside_the_root_like_a_chroot(root: Path, outside: Path) -> None:
    apply_bytes(_escape_tar("symlink-abs-parent", outside), root)
    # 'evil' -> /…/outside is followed as if root were '/': the files land under root/…/outside
    assert (root / str(outside).lstrip("/") / "new").read_bytes() == b"pwned"
    apply_bytes(_escape_tar("symlink-chain", outside), root)
    assert (root / "outside/secret").read_bytes() == b"pwned"


def test_absolute_names_are_taken_relative_to_the_root(root: Path) -> None:
    apply_bytes(TarBuilder().file("/etc/x", b"abs").file("./etc/y", b"dot").bytes(), root)
    assert (root / "etc/x").read_bytes() == b"abs"
    assert (root / "etc/y").read_bytes() == b"dot"


def test_symlink_loops_are_refused(root: Path) -> None:
    data = TarBuilder().symlink("a", "b").symlink("b", "a").file("a/x", b"x").bytes()
    with pytest.raises(InvalidArgument, match="symbolic links"):
        apply_bytes(data, root)


def test_non_directory_parent_is_refused(root: Path) -> None:
    with pytest.raises(InvalidArgument, match="'f' is not a directory"):
        apply_bytes(TarBuilder().file("f", b"x").file("f/child", b"y").bytes(), root)


# ------------------------------------------------------------------------------------------------ broken streams


def _two_files() -> bytes:
    return TarBuilder().file("first", b"1" * 1000).file("second", b"2" * 5000).bytes()


def test_truncated_data_names_the_entry(root: Path) -> None:
    data = _two_files()
    with pytest.raises(DataCorruption, match=r"truncated.*'second'"):
        apply_bytes(data[:3000], root)


def test_truncated_header_is_an_error(root: Path) -> None:
    data = _two_files()
    with pytest.raises(DataCorruption, match=r"truncated.*header.*'first'"):
        apply_bytes(data[: 512 + 1024 + 200], root)


def test_corrupt_header_in_the_middle_is_an_error_not_an_early_end(root: Path) -> None:
    data = bytearray(_two_files())
    data[512 + 1024 + 10] ^= 0x55  # inside the second header's name: checksum no longer matches
    with pytest.raises(DataCorruption, match=r"checksum.*after entry 'first'"):
        apply_bytes(bytes(data), root)


def test_missing_end_of_archive_marker_is_accepted_like_go(root: Path) -> None:
    data = _two_files()
    end = 512 + 1024 + 512 + 5120
    apply_bytes(data[:end], root)
    assert (root / "second").stat().st_size == 5000


def test_non_tar_input_is_an_error(root: Path) -> None:
    with pytest.raises(DataCorruption):
        apply_bytes(b"this is not a tar archive at all" * 40, root)


def test_unknown_whiteout_mode(root: Path) -> None:
    with pytest.raises(InvalidArgument, match="whiteout mode"):
        apply_bytes(_two_files(), root, whiteouts="aufs")


def test_truncated_compressed_layer_is_data_corruption(root: Path) -> None:
    from barque.layers import open_compressor, open_decompressed

    blob = io.BytesIO()
    w = open_compressor(blob, "gzip")
    w.write(TarBuilder().file("big", os.urandom(2_000_000)).bytes())
    w.close()
    with pytest.raises(DataCorruption, match="gzip stream is truncated"):
        apply_layer(open_decompressed(io.BytesIO(blob.getvalue()[:-100])), root)


def test_root_entry_sets_the_roots_metadata(root: Path) -> None:
    apply_bytes(TarBuilder().dir("./", mode=0o751, mtime=1_111_111_111).file("./x", b"x").bytes(), root)
    assert stat.S_IMODE(root.stat().st_mode) == 0o751
    assert root.stat().st_mtime == 1_111_111_111
    with pytest.raises(InvalidArgument, match="replace the root"):
        apply_bytes(TarBuilder().file("./", b"x").bytes(), root)


# ------------------------------------------------------------------------------------------------ threaded creation
# (run in both modes like the rest; the hazards matter in the "threads" one)


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("barque-layer-write")]


def test_same_path_twice_then_a_hard_link_gets_the_later_content(root: Path) -> None:
    data = (TarBuilder().file("a", b"first", mode=0o600).file("a", b"second", mode=0o640)
            .hardlink("b", "a").hardlink("d/c", "a").bytes())
    result = apply_bytes(data, root)
    assert (root / "a").read_bytes() == (root / "b").read_bytes() == (root / "d/c").read_bytes() == b"second"
    assert (root / "a").stat().st_nlink == 3
    assert stat.S_IMODE((root / "a").stat().st_mode) == 0o644  # the last header for the inode wins (the link's)
    assert result.size == len(b"first") + len(b"second")


@pytest.mark.parametrize("whiteouts", ["delete", "overlay"])
def test_file_then_its_whiteout_in_the_same_layer(root: Path, whiteouts: str) -> None:
    data = (TarBuilder().file("d/gone", b"x").file("d/kept", b"y").symlink("d/link", "kept")
            .whiteout("d/gone").whiteout("d/link").bytes())
    apply_bytes(data, root, whiteouts=whiteouts)
    assert (root / "d/kept").read_bytes() == b"y"
    for name in ("gone", "link"):
        if whiteouts == "delete":
            assert not os.path.lexists(root / "d" / name)
        else:  # no lowers: an overlay whiteout is always written
            st = (root / "d" / name).lstat()
            assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def test_file_then_directory_at_the_same_path(root: Path) -> None:
    data = TarBuilder().file("a", b"file").dir("a", mode=0o710).file("a/x", b"inside").symlink("l", "a").bytes()
    apply_bytes(data, root)
    assert (root / "a").is_dir() and stat.S_IMODE((root / "a").stat().st_mode) == 0o710
    assert (root / "a/x").read_bytes() == b"inside"


def test_a_pending_file_is_not_taken_for_a_missing_parent(root: Path) -> None:
    with pytest.raises(InvalidArgument, match="'f' is not a directory"):
        apply_bytes(TarBuilder().file("f", b"x").file("f/y", b"y").bytes(), root)
    assert (root / "f").read_bytes() == b"x"


def test_paths_through_a_pending_symlink_resolve_through_it(root: Path) -> None:
    data = TarBuilder().dir("real").symlink("via", "real").file("via/x", b"x").hardlink("h", "via/x").bytes()
    apply_bytes(data, root)
    assert os.readlink(root / "via") == "real"
    assert (root / "real/x").read_bytes() == b"x" and (root / "h").stat().st_ino == (root / "real/x").stat().st_ino


def test_a_directory_replaced_under_pending_files(root: Path) -> None:
    files = TarBuilder().dir("d")
    for i in range(20):
        files.file(f"d/f{i}", b"%d" % i)
    apply_bytes(files.file("d", b"now a file").file("e/x", b"x").bytes(), root)
    assert (root / "d").read_bytes() == b"now a file"
    assert (root / "e/x").read_bytes() == b"x"


def test_many_files_in_many_directories_land_as_unthreaded(root: Path, tmp_path: Path, monkeypatch) -> None:
    b = TarBuilder()
    for d in range(12):
        b.dir(f"d{d}", mode=0o750, mtime=1_000_000_000 + d)
        for f in range(25):
            b.file(f"d{d}/f{f}", os.urandom(f * 97), mode=0o4755 if f == 3 else 0o644, uid=f, gid=d)
            if f % 5 == 0:
                b.symlink(f"d{d}/l{f}", f"f{f}").hardlink(f"d{d}/h{f}", f"d{d}/f{f}")
    b.file("d1/f1", b"rewritten").whiteout("d2/f2").whiteout("d3").opaque("d4")
    data = b.bytes()
    apply_bytes(data, root)
    monkeypatch.setattr(apply_mod, "_WORKERS", 0)
    plain = tmp_path / "plain"
    plain.mkdir()
    apply_bytes(data, plain)
    assert snapshot(root) == snapshot(plain)
    for p in plain.rglob("*"):
        assert p.lstat().st_mtime_ns == (root / p.relative_to(plain)).lstat().st_mtime_ns, p


def test_a_failing_write_is_the_entrys_error_and_leaves_no_thread(root: Path, creating: str, monkeypatch) -> None:
    real_write = apply_mod._write_all

    def write_all(fd: int, data) -> None:
        if bytes(data) == b"boom":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(fd, data)

    monkeypatch.setattr(apply_mod, "_write_all", write_all)
    before = set(_writer_threads())
    b = TarBuilder().file("a", b"fine").file("d/bad", b"boom")
    for i in range(50):
        b.file(f"e/later{i}", b"later")
    with pytest.raises(OSError) as caught:
        apply_bytes(b.bytes(), root)
    assert caught.value.errno == errno.ENOSPC
    if creating == "threads":
        assert "while creating tar entry 'd/bad'" in caught.value.__notes__
    assert set(_writer_threads()) <= before
    assert (root / "a").read_bytes() == b"fine"


def test_the_earliest_failing_entry_is_reported(root: Path, monkeypatch) -> None:
    monkeypatch.setattr(apply_mod, "Pace", _AlwaysThreaded)
    real_write = apply_mod._write_all

    def write_all(fd: int, data) -> None:
        if bytes(data).startswith(b"slow-bad"):
            time.sleep(0.05)  # fails after the later entry did
            raise OSError(errno.EIO, "first")
        if bytes(data) == b"bad":
            raise OSError(errno.ENOSPC, "second")
        real_write(fd, data)

    monkeypatch.setattr(apply_mod, "_write_all", write_all)
    with pytest.raises(OSError, match="first"):
        apply_bytes(TarBuilder().file("x/a", b"slow-bad").file("y/b", b"bad").file("z/c", b"ok").bytes(), root)
    assert not _writer_threads()


def test_a_bad_entry_after_queued_files_waits_for_them(root: Path) -> None:
    data = TarBuilder().file("a", b"1").file("b", b"2").hardlink("c", "missing").bytes()
    with pytest.raises(InvalidArgument, match="does not exist"):
        apply_bytes(data, root)
    assert not _writer_threads()
    assert (root / "a").read_bytes() == b"1" and (root / "b").read_bytes() == b"2"  # as unthreaded: applied
