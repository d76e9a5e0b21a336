"""Writing layer tars from changes, reproducibly.

The output follows what containerd's and BuildKit's diff writer produce (Go archive/tar, PAX format): entries
sorted by path, whiteouts as empty ".wh.NAME" files with mode 0, owner 0:0 and mtime 0 (containerd >= 2.0),
mtimes truncated to whole seconds, no atime/ctime, empty user and group names, hard links inside the layer
as link entries to the first name, end-of-archive without record padding. The same tree therefore always
gives the same bytes, and ``source_date_epoch`` clamps later mtimes the way BuildKit's rewrite-timestamp does.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from barque.errors import Conflict, InvalidArgument
from barque.layers import _tarformat as tf
from barque.layers._xattrs import read_xattrs
from barque.layers.changes import Change, diff_dirs
from barque.layers.compression import open_compressor
from barque.layers.whiteout import OPAQUE, whiteout_name
from barque.oci.digest import Digest
from barque.oci.mediatypes import OCI_LAYER_FOR

__all__ = ["write_layer", "pack_layer", "pack_dir", "PackedLayer"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


@dataclass(frozen=True)
class PackedLayer:
    diff_id: Digest  # sha256 of the uncompressed tar
    digest: Digest  # sha256 of the bytes written to dest
    size: int  # bytes written to dest
    media_type: str  # the OCI layer media type for the compression


class _Sink:
    """Batches small header writes; large data goes straight through."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._buf = bytearray()

    def write(self, data: bytes | memoryview) -> None:
        if len(data) >= _CHUNK // 4:
            self.flush()
            self._out.write(data)
            return
        self._buf += data
        if len(self._buf) >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            self._out.write(self._buf)
            self._buf = bytearray()


def _entry_name(path: str) -> bytes:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidArgument(f"invalid change path {path!r}: expected a relative path like 'etc/passwd'")
    return os.fsencode(path)


def _split(name: bytes) -> tuple[bytes, bytes]:
    head, _, base = name.rpartition(b"/")
    return (head + b"/" if head else b""), base


def _copy_content(sink: _Sink, source: Path, size: int, path: str) -> None:
    sink.flush()
    buf = bytearray(min(size, _CHUNK))
    view = memoryview(buf)
    left = size
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        while left:
            n = os.readv(fd, [view[: min(left, len(buf))]])
            if n == 0:
                raise Conflict(f"{path!r} shrank while it was being packed ({size - left} of {size} bytes read)")
            sink.write(view[:n])
            left -= n
    finally:
        os.close(fd)
    sink.write(tf.padding(size))


def write_layer(
    changes: Iterable[Change],
    out: BinaryIO,
    *,
    source_date_epoch: int | None = None,
    hardlinks: bool = True,
    ids: Callable[[int, int], tuple[int, int]] | None = None,
) -> None:
    """Write the changes as an uncompressed layer tar to ``out`` (which is not closed). ``ids`` translates the
    owners on disk into the owners the archive records (a user namespace's host ids back to its own)."""
    ordered = sorted(changes, key=lambda c: os.fsencode(c.path))
    sink = _Sink(out)
    seen_inodes: dict[tuple[int, int], bytes] = {}
    previous: bytes | None = None
    for change in ordered:
        name = _entry_name(change.path)
        if name == previous:
            raise InvalidArgument(f"path {change.path!r} appears twice in the changes of one layer")
        previous = name
        if change.kind == "delete":
            head, base = _split(name)
            sink.write(tf.build_header(head + os.fsencode(whiteout_name(os.fsdecode(base))), tf.REG))
            continue
        assert change.source is not None
        _write_entry(sink, change, name, source_date_epoch, seen_inodes if hardlinks else None, ids)
    sink.write(tf.END_OF_ARCHIVE)
    sink.flush()


def _write_entry(sink: _Sink, change: Change, name: bytes, source_date_epoch: int | None,
                 seen_inodes: dict[tuple[int, int], bytes] | None,
                 ids: Callable[[int, int], tuple[int, int]] | None = None) -> None:
    source = change.source
    assert source is not None
    try:
        st = os.lstat(source)
    except FileNotFoundError:
        raise Conflict(f"cannot pack {change.path!r}: {str(source)!r} disappeared while the layer was written") from None
    mode = st.st_mode
    mtime = st.st_mtime_ns // 1_000_000_000
    if source_date_epoch is not None and mtime > source_date_epoch:
        mtime = source_date_epoch
    uid, gid = (st.st_uid, st.st_gid) if ids is None else ids(st.st_uid, st.st_gid)
    common = dict(mode=stat.S_IMODE(mode), uid=uid, gid=gid, mtime=mtime)
    if stat.S_ISSOCK(mode):
        log.debug("skipping socket %s: tar cannot hold sockets", change.path)
        return
    xattrs = read_xattrs(str(source))
    if stat.S_ISDIR(mode):
        sink.write(tf.build_header(name + b"/", tf.DIR, xattrs=xattrs, **common))
        if change.opaque:
            sink.write(tf.build_header(name + b"/" + OPAQUE.encode(), tf.REG))
        return
    if change.opaque:
        raise InvalidArgument(f"change of {change.path!r} is marked opaque but is not a directory")
    if stat.S_ISREG(mode):
        if seen_inodes is not None and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = seen_inodes.get(key)
            if first is not None:
                sink.write(tf.build_header(name, tf.LINK, linkname=first, **common))
                return
            seen_inodes[key] = name
        sink.write(tf.build_header(name, tf.REG, size=st.st_size, xattrs=xattrs, **common))
        if st.st_size:
            _copy_content(sink, source, st.st_size, change.path)
    elif stat.S_ISLNK(mode):
        target = os.fsencode(os.readlink(source))
        sink.write(tf.build_header(name, tf.SYMLINK, linkname=target, xattrs=xattrs, **common))
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = tf.CHAR if stat.S_ISCHR(mode) else tf.BLOCKDEV
        sink.write(tf.build_header(name, kind, devmajor=os.major(st.st_rdev), devminor=os.minor(st.st_rdev),
                                   xattrs=xattrs, **common))
    elif stat.S_ISFIFO(mode):
        sink.write(tf.build_header(name, tf.FIFO, xattrs=xattrs, **common))
    else:
        raise InvalidArgument(f"cannot pack {change.path!r}: unsupported file type {stat.S_IFMT(mode):o}")


class _DigestingWriter(io.RawIOBase):
    """Passes writes on to ``out`` while digesting and counting them."""

    def __init__(self, out: BinaryIO) -> None:
        super().__init__()
        self._out = out
        self._hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._hash.update(b)
        self._out.write(b)
        n = len(b)
        self.size += n
        return n

    def digest(self) -> Digest:
        return Digest("sha256", self._hash.hexdigest())


def pack_layer(
    changes: Iterable[Change],
    dest: BinaryIO,
    compression: str = "gzip",
    *,
    source_date_epoch: int | None = None,
    ids: Callable[[int, int], tuple[int, int]] | None = None,
) -> PackedLayer:
    """Write the changes to ``dest`` as a compressed layer blob and describe it (diff ID, digest, size)."""
    compressed = _DigestingWriter(dest)
    compressor = open_compressor(compressed, compression)  # type: ignore[arg-type]
    plain = _DigestingWriter(compressor)
    write_layer(changes, plain, source_date_epoch=source_date_epoch, ids=ids)  # type: ignore[arg-type]
    compressor.close()
    return PackedLayer(
        diff_id=plain.digest(),
        digest=compressed.digest(),
        size=compressed.size,
        media_type=OCI_LAYER_FOR[compression],
    )


def pack_dir(
    root: Path,
    dest: BinaryIO,
    compression: str = "gzip",
    *,
    source_date_epoch: int | None = None,
) -> PackedLayer:
    """The whole tree under ``root`` as one layer."""
    return pack_layer(diff_dirs(None, Path(root)), dest, compression, source_date_epoch=source_date_epoch)
