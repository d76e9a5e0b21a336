"""write_layer / pack_layer / pack_dir: what the tar holds, reproducibility, and round trips through apply."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from barque.errors import InvalidArgument
from barque.layers import Change, apply_layer, diff_dirs, open_decompressed, pack_dir, pack_layer, write_layer
from barque.oci.mediatypes import OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (chown, mknod)")


def tree_state(root: Path) -> dict[str, tuple]:
    """What a tree looks like to a user, times to the second, plus which paths share an inode."""
    state: dict[str, tuple] = {}
    inodes: dict[int, str] = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        rel = str(p.relative_to(root))
        if stat.S_ISREG(st.st_mode):
            detail = hashlib.sha256(p.read_bytes()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            detail = os.readlink(p)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            detail = (os.major(st.st_rdev), os.minor(st.st_rdev))
        else:
            detail = None
        link_group = inodes.setdefault(st.st_ino, rel) if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode) else None
        xattrs = {} if stat.S_ISLNK(st.st_mode) else {k: os.getxattr(p, k) for k in os.listxattr(p) if k.startswith("user.")}
        mtime = None if p.is_symlink() else int(st.st_mtime)
        state[rel] = (stat.filemode(st.st_mode), st.st_uid, st.st_gid, mtime, detail, link_group, xattrs)
    return state


def build_tree(root: Path, *, mtime: int = 1_650_000_000, with_devices: bool = ROOT) -> Path:
    root.mkdir()
    (root / "etc").mkdir()
    (root / "etc/conf").write_bytes(b"key=value\n")
    (root / "etc/conf").chmod(0o640)
    (root / "bin").mkdir()
    (root / "bin/tool").write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # bigger than one copy chunk
    (root / "bin/tool").chmod(0o4755)
    os.link(root / "bin/tool", root / "bin/tool-alias")
    os.symlink("tool", root / "bin/t")
    (root / "secret").mkdir(mode=0o750)
    (root / "secret").chmod(0o750)
    (root / "empty").write_bytes(b"")
    long_dir = root / ("d" * 90) / ("e" * 90)
    long_dir.mkdir(parents=True)
    (long_dir / ("f" * 120)).write_bytes(b"deep")
    (root / "ünï").write_bytes(b"utf8")
    os.setxattr(root / "etc/conf", "user.tag", b"\x00binary\xff")
    if with_devices:
        os.chown(root / "etc/conf", 1000, 1001)
        (root / "dev").mkdir()
        os.mknod(root / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(root / "dev/fifo", 0o600 | stat.S_IFIFO)
    for p in sorted(root.rglob("*"), reverse=True):
        os.utime(p, (mtime, mtime), follow_symlinks=False)
    return root


def layer_bytes(changes, **kw) -> bytes:
    out = io.BytesIO()
    write_layer(changes, out, **kw)
    return out.getvalue()


def test_tar_entries_look_like_containerd_made_them(tmp_path: Path) -> None:
    root = build_tree(tmp_path / "t")
    data = layer_bytes(diff_dirs(None, root))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=os.fsencode)
    by_name = {m.name: m for m in members}
    assert by_name["bin"].isdir() and by_name["bin/tool"].isfile()
    assert by_name["bin/tool"].mode == 0o4755
    assert by_name["bin/tool-alias"].islnk() and by_name["bin/tool-alias"].linkname == "bin/tool"
    assert by_name["bin/t"].issym() and by_name["bin/t"].linkname == "tool"
    assert by_name["etc/conf"].pax_headers["SCHILY.xattr.user.tag"] == "\x00binary\udcff"
    for m in members:
        assert m.uname == "" and m.gname == ""
        assert "atime" not in m.pax_headers and "ctime" not in m.pax_headers and "mtime" not in m.pax_headers
    assert data.endswith(b"\0" * 1024) and len(data) % 512 == 0
    # GNU tar reads it too
    listing = subprocess.run(["tar", "-tvf", "-"], input=data, capture_output=True, check=True).stdout.decode()
    assert "bin/tool-alias link to bin/tool" in listing


def test_whiteouts_and_opaque_markers(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    os.utime(d, (1_700_000_000, 1_700_000_000))
    changes = [
        Change("delete", "etc/gone", None),
        Change("modify", "var/cache", d, opaque=True),
        Change("add", "var/cache/-first", d),
        Change("delete", "top", None),
    ]
    with tarfile.open(fileobj=io.BytesIO(layer_bytes(changes)), mode="r:") as tf:
        members = [(m.name, m.type, m.mode, m.uid, m.gid, m.mtime, m.size) for m in tf.getmembers()]
    # sorted by the changed path; the opaque marker right after its directory (before "-first", though "-" < ".")
    assert [m[0] for m in members] == ["etc/.wh.gone", ".wh.top", "var/cache", "var/cache/.wh..wh..opq",
                                       "var/cache/-first"]
    for name, kind, mode, uid, gid, mtime, size in members:
        if ".wh." in name:
            assert (kind, mode, uid, gid, mtime, size) == (tarfile.REGTYPE, 0, 0, 0, 0, 0)
    assert members[2][1] == tarfile.DIRTYPE and members[2][5] == 1_700_000_000


def test_same_tree_gives_identical_bytes_and_epoch_clamps_times(tmp_path: Path) -> None:
    one = build_tree(tmp_path / "one", mtime=1_650_000_000)
    two = build_tree(tmp_path / "two", mtime=1_660_000_000)
    # the random content differs between builds: give both the same bytes
    shutil.copyfile(one / "bin/tool", two / "bin/tool")
    os.utime(two / "bin/tool", (1_660_000_000, 1_660_000_000))
    assert layer_bytes(diff_dirs(None, one)) == layer_bytes(diff_dirs(None, one))
    assert layer_bytes(diff_dirs(None, one)) != layer_bytes(diff_dirs(None, two))
    epoch = 1_600_000_000
    a = layer_bytes(diff_dirs(None, one), source_date_epoch=epoch)
    b = layer_bytes(diff_dirs(None, two), source_date_epoch=epoch)
    assert hashlib.sha256(a).hexdigest() == hashlib.sha256(b).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(a), mode="r:") as tf:
        assert {m.mtime for m in tf.getmembers()} == {epoch}
    # an epoch later than every mtime changes nothing
    assert layer_bytes(diff_dirs(None, one), source_date_epoch=1_700_000_000) == layer_bytes(diff_dirs(None, one))


def test_hardlinks_false_writes_every_name_as_a_file(tmp_path: Path) -> None:
    root = build_tree(tmp_path / "t")
    with tarfile.open(fileobj=io.BytesIO(layer_bytes(diff_dirs(None, root), hardlinks=False)), mode="r:") as tf:
        assert tf.getmember("bin/tool-alias").isfile()


def test_bad_change_paths_are_refused(tmp_path: Path) -> None:
    for bad in ("/abs", "a/../b", "a//b", ""):
        with pytest.raises(InvalidArgument):
            layer_bytes([Change("add", bad, tmp_path)])
    with pytest.raises(InvalidArgument, match="twice"):
        layer_bytes([Change("add", "x", tmp_path), Change("delete", "x", None)])


@pytest.mark.parametrize("compression, media_type", [("", OCI_LAYER), ("gzip", OCI_LAYER_GZIP), ("zstd", OCI_LAYER_ZSTD)])
def test_pack_dir_describes_what_it_wrote(tmp_path: Path, compression: str, media_type: str) -> None:
    root = build_tree(tmp_path / "t")
    blob = io.BytesIO()
    packed = pack_dir(root, blob, compression, source_date_epoch=1_600_000_000)
    raw = blob.getvalue()
    plain = open_decompressed(io.BytesIO(raw)).read()
    assert packed.size == len(raw)
    assert str(packed.digest) == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert str(packed.diff_id) == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert packed.media_type == media_type
    assert plain == layer_bytes(diff_dirs(None, root), source_date_epoch=1_600_000_000)
    if compression == "gzip":
        assert gzip.decompress(raw) == plain
    # and applying it reports the same diff ID
    target = tmp_path / "applied"
    target.mkdir()
    result = apply_layer(open_decompressed(io.BytesIO(raw)), target)
    assert result.diff_id == packed.diff_id


def test_pack_then_apply_reproduces_the_tree(tmp_path: Path) -> None:
    root = build_tree(tmp_path / "t")
    blob = io.BytesIO()
    pack_dir(root, blob, "gzip")
    target = tmp_path / "copy"
    target.mkdir()
    apply_layer(open_decompressed(io.BytesIO(blob.getvalue())), target)
    assert tree_state(target) == tree_state(root)


def test_diff_write_apply_round_trip(tmp_path: Path) -> None:
    lower = build_tree(tmp_path / "lower")
    upper = tmp_path / "upper"
    subprocess.run(["cp", "-a", str(lower), str(upper)], check=True)
    # the container's edits
    (upper / "etc/conf").write_text("changed\n")
    shutil.rmtree(upper / "secret")
    (upper / "empty").unlink()
    (upper / "bin/tool-alias").unlink()  # the other name stays
    (upper / "new/dir").mkdir(parents=True)
    (upper / "new/dir/file").write_text("n")
    os.link(upper / "new/dir/file", upper / "new/second")
    os.chmod(upper / "bin", 0o700)
    os.utime(upper / "bin", (1_650_000_000, 1_650_000_000))

    layer = layer_bytes(diff_dirs(lower, upper))
    names = [m.name for m in tarfile.open(fileobj=io.BytesIO(layer), mode="r:").getmembers()]
    assert ".wh.secret" in names and ".wh.empty" in names and "bin/.wh.tool-alias" in names
    assert "bin/tool" in names  # its link count changed, so it is carried too

    applied = tmp_path / "applied"
    subprocess.run(["cp", "-a", str(lower), str(applied)], check=True)
    apply_layer(io.BytesIO(layer), applied)
    assert tree_state(applied) == tree_state(upper)


def test_a_source_that_vanished_is_a_clear_error(tmp_path: Path) -> None:
    from barque.errors import Conflict

    with pytest.raises(Conflict, match="'gone'.*disappeared"):
        layer_bytes([Change("add", "gone", tmp_path / "nope")])


def test_pack_layer_of_changes_applies_as_a_deletion(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc/old").write_text("old")
    blob = io.BytesIO()
    packed = pack_layer([Change("delete", "etc/old", None)], blob, "zstd")
    assert packed.media_type == OCI_LAYER_ZSTD and packed.size == len(blob.getvalue())
    result = apply_layer(open_decompressed(io.BytesIO(blob.getvalue())), lower)
    assert result.diff_id == packed.diff_id
    assert not (lower / "etc/old").exists() and (lower / "etc").is_dir()
