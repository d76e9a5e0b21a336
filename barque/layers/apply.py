"""Applying a layer tar to a directory: the unpack half of a layer's life.

One pass over the stream, digesting it as it goes (the diff ID), writing every entry relative to directory
descriptors resolved inside the root (see :mod:`barque.layers.safepath`). Whiteouts are either carried out
("delete": the layer is applied on top of a full copy of the lower layers, as the vfs and btrfs drivers do) or
translated to overlayfs' own form ("overlay": the root is an upper directory; lower layers stay untouched).

Directory metadata (owner, mode, xattrs, mtime) is set after everything else, deepest first, so that writing
into a directory neither fails on a read-only mode nor bumps an mtime that was already set.

While creating an inode is slow, new regular files (content held in memory) and symlinks are created on worker
threads (see :mod:`barque.layers._writer`); everything else, and anything in the way of an entry, is done in tar
order on the reading thread. The result is the unthreaded one because whatever depends on a path waits for its
pending creation first: a later entry for the same path, a hard link to it, and a directory walk that finds it
missing (the RootDir ``pending`` hook); every removal (whiteouts, opaque markers, replacements) and finish() wait
for all. Errors are raised in tar order too (see WriteQueue).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from barque.errors import InvalidArgument
from barque.layers import _tarformat as tf
from barque.layers._overlay import OPAQUE_XATTR, OVERLAY_XATTR_PREFIX, LowerStack
from barque.layers._tarreader import TarReader
from barque.layers._writer import Pace, WriteQueue
from barque.layers._xattrs import read_xattrs
from barque.layers.safepath import Parts, RootDir, clean_parts, proc_path
from barque.layers.whiteout import OPAQUE, WHITEOUT_PREFIX, whiteout_target
from barque.oci.digest import Digest

__all__ = ["ApplyResult", "apply_layer", "IdMap", "WHITEOUT_MODES"]

log = logging.getLogger(__name__)

IdMap = Callable[[int, int], tuple[int, int]]
WHITEOUT_MODES = ("delete", "overlay")

_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_XATTR_SOFT_ERRORS = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES)
_WORKERS = 4  # threads creating files; 0: all in the reading thread
_MAX_QUEUED_FILE = 8 << 20  # larger files are written by the reading thread, streamed from the tar


@dataclass
class ApplyResult:
    diff_id: Digest  # sha256 of the uncompressed tar stream as read
    size: int  # bytes of regular file content written (Docker's layer "Size")


@dataclass(slots=True)
class _DirMeta:
    rel: Parts
    uid: int | None
    gid: int | None
    mode: int
    mtime_ns: int | None
    xattrs: dict[str, bytes]


def apply_layer(
    stream: BinaryIO,
    root: Path,
    *,
    whiteouts: str = "delete",
    lowers: Sequence[Path] = (),
    id_map: IdMap | None = None,
    lenient_end: bool = False,
) -> ApplyResult:
    """Apply the UNCOMPRESSED layer tar read from ``stream`` to the directory ``root``.

    ``whiteouts="overlay"`` treats ``root`` as an overlayfs upper directory over ``lowers`` (top-most first):
    deletions become 0:0 character devices (only where a lower shows the path; always when no lowers are
    given), opaque markers the trusted.overlay.opaque xattr, and a hard link to a file only a lower holds
    copies that file up first. ``id_map`` maps each entry's (uid, gid) to the host's. ``lenient_end`` accepts a
    stream cut in the padding after its last entry's data (see TarReader; build contexts, not layers).

    Raises InvalidArgument for entries that would land outside ``root`` (nothing is written outside it, ever)
    and DataCorruption for a truncated or corrupt stream.
    """
    if whiteouts not in WHITEOUT_MODES:
        raise InvalidArgument(f"unknown whiteout mode {whiteouts!r}: expected 'delete' or 'overlay'")
    if lowers and whiteouts != "overlay":
        raise InvalidArgument("lower directories only make sense with whiteouts='overlay'")
    with TarReader(stream, lenient_end=lenient_end) as reader, \
            _Applier(Path(root), whiteouts == "overlay", LowerStack(lowers), id_map) as applier:
        try:
            for entry in reader.entries():
                try:
                    applier.apply(entry, reader)
                finally:
                    applier.root.collect()
            applier.finish()
        except Exception:
            # an earlier entry still being written may fail too: its error comes first, as it would unthreaded
            applier.writes.wait_all()
            raise
        return ApplyResult(diff_id=reader.digest(), size=applier.size)


class _Applier:
    def __init__(self, root: Path, overlay: bool, lowers: LowerStack, id_map: IdMap | None) -> None:
        if not root.is_dir():
            raise InvalidArgument(f"cannot apply a layer to {str(root)!r}: not a directory")
        self.writes = WriteQueue(_WORKERS)
        self.pace = Pace()
        self.root = RootDir(root, pending=self.writes.wait)
        self.overlay = overlay
        self.lowers = lowers
        self.id_map = id_map
        self.size = 0
        self._dirs: list[_DirMeta] = []
        self._unpacked: set[Parts] = set()  # paths this layer wrote, and their ancestors
        self._warned: set[tuple[str, int]] = set()
        self._umask = _current_umask()

    def __enter__(self) -> "_Applier":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.writes.close()  # no thread outlives the call, whatever happened
        finally:
            self.root.close()

    # ------------------------------------------------------------------------------------------ helpers

    def _ids(self, uid: int, gid: int) -> tuple[int, int]:
        return self.id_map(uid, gid) if self.id_map is not None else (uid, gid)

    def _mark(self, rel: Parts) -> None:
        self._unpacked.add(rel)
        for i in range(len(rel) - 1, 0, -1):
            if rel[:i] in self._unpacked:
                break
            self._unpacked.add(rel[:i])

    def _parent(self, parts: Parts) -> tuple[int, Parts]:
        found = self.root.resolve_dir(parts, create=True, on_create=self._implied_dir)
        assert found is not None
        return found

    def _implied_dir(self, rel: Parts) -> None:
        """A parent directory the tar did not list: inherit a lower's metadata in an upper directory (otherwise
        the new upper directory would hide the lower one's mode and owner), else 0755 root, as Docker does."""
        lower = self.lowers.lookup(rel) if self.overlay and self.lowers else None
        if lower is not None and stat.S_ISDIR(lower[1].st_mode):
            path, st = lower
            self._dirs.append(_DirMeta(rel, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_mtime_ns,
                                       read_xattrs(str(path))))
        else:
            uid, gid = self._ids(0, 0)
            self._dirs.append(_DirMeta(rel, uid, gid, 0o755, None, {}))

    def _remove(self, dir_fd: int, name: str) -> None:
        """Remove whatever ``name`` is in ``dir_fd`` (a directory recursively); nothing if absent."""
        self.writes.wait_all()  # what is being created there, or below (rare enough not to track which)
        try:
            st = os.lstat(name, dir_fd=dir_fd)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=dir_fd)
            self.root.invalidate()
        else:
            os.unlink(name, dir_fd=dir_fd)
            if stat.S_ISLNK(st.st_mode):
                self.root.invalidate()

    def _create(self, dir_fd: int, name: str, make: Callable[[], object]) -> object:
        """Create a non-directory, replacing whatever is in the way (never writing through it)."""
        try:
            return make()
        except FileExistsError:
            self._remove(dir_fd, name)
            return make()

    def _set_xattrs(self, target: int | str, xattrs: dict[str, bytes], entry: str) -> None:
        for key, value in xattrs.items():
            if key.startswith(OVERLAY_XATTR_PREFIX):
                # overlayfs would act on these (redirects, metacopy, opaque): a layer must not smuggle them in
                log.warning("ignoring xattr %s on %s: overlayfs' own attributes are not taken from layers", key, entry)
                continue
            try:
                if isinstance(target, int):
                    os.setxattr(target, key, value)
                else:  # a /proc/self/fd path: never follow the entry itself
                    os.setxattr(target, key, value, follow_symlinks=False)
            except OSError as e:
                if e.errno not in _XATTR_SOFT_ERRORS:
                    raise
                namespace = key.split(".", 1)[0]
                if (namespace, e.errno) not in self._warned:
                    self._warned.add((namespace, e.errno))
                    log.warning("cannot set %s.* xattrs (first: %s on %s): %s", namespace, key, entry, e.strerror)

    # ------------------------------------------------------------------------------------------ entries

    def apply(self, entry: tf.TarEntry, reader: TarReader) -> None:
        parts = clean_parts(entry.name)
        if not parts:
            if entry.typeflag != tf.DIR:
                raise InvalidArgument(f"tar entry {entry.name!r} would replace the root directory")
            uid, gid = self._ids(entry.uid, entry.gid)
            self._dirs.append(_DirMeta((), uid, gid, entry.mode & 0o7777, entry.mtime_ns, entry.xattrs))
            return
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(entry, parts)
            return
        kind = entry.typeflag
        if kind == tf.GNU_VOLHDR:
            return
        if kind == tf.GNU_SPARSE:
            raise InvalidArgument(f"tar entry {entry.name!r} is a sparse file, which barque does not support")
        if not (entry.is_regular or kind in tf.HEADER_ONLY):
            raise InvalidArgument(f"tar entry {entry.name!r} has unsupported type {kind.decode('latin-1')!r}")
        dir_fd, parent = self._parent(parts[:-1])
        rel = parent + (base,)
        self.writes.wait(rel)  # an earlier entry for the same path comes first
        if kind == tf.DIR:
            self._dir(dir_fd, base, rel, entry)
        elif entry.is_regular:
            if not self._queue_file(dir_fd, base, rel, entry, reader):
                self._file(dir_fd, base, entry, reader)
        elif kind == tf.SYMLINK:
            if not self._queue_symlink(dir_fd, base, rel, entry):
                self._symlink(dir_fd, base, entry)
        elif kind == tf.LINK:
            if not self._hardlink(dir_fd, base, rel, entry):
                return
        else:
            self._node(dir_fd, base, entry)
        self._mark(rel)

    def _dir(self, dir_fd: int, name: str, rel: Parts, entry: tf.TarEntry) -> None:
        try:
            os.mkdir(name, 0o700, dir_fd=dir_fd)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(name, dir_fd=dir_fd).st_mode):
                self._remove(dir_fd, name)
                os.mkdir(name, 0o700, dir_fd=dir_fd)
            # an existing directory is kept and merged with; its metadata is updated at the end
        uid, gid = self._ids(entry.uid, entry.gid)
        self._dirs.append(_DirMeta(rel, uid, gid, entry.mode & 0o7777, entry.mtime_ns, entry.xattrs))

    def _file(self, dir_fd: int, name: str, entry: tf.TarEntry, reader: TarReader) -> None:
        mode = entry.mode & 0o7777
        fd = self._timed_create(dir_fd, name, lambda: os.open(name, _FILE_FLAGS, mode & 0o777, dir_fd=dir_fd))
        assert isinstance(fd, int)
        try:
            view = reader.buffered_data()  # small files: no generator
            for chunk in (view,) if view is not None else reader.chunks():
                _write_all(fd, chunk)
            self.size += entry.size
            _own(fd, *self._ids(entry.uid, entry.gid), mode, self._umask)
            if entry.xattrs:
                self._set_xattrs(fd, entry.xattrs, entry.name)
            os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
        finally:
            os.close(fd)

    def _threaded(self) -> bool:
        """Whether to hand the next create over (if not, it is made here and timed: see Pace)."""
        return self.writes.enabled and self.pace.threaded()

    def _timed_create(self, dir_fd: int, name: str, make: Callable[[], object]) -> object:
        start = time.perf_counter_ns()
        made = self._create(dir_fd, name, make)
        self.pace.record(time.perf_counter_ns() - start)
        return made

    def _queue_file(self, dir_fd: int, name: str, rel: Parts, entry: tf.TarEntry, reader: TarReader) -> bool:
        """Hand a new file to the writers, while they pay: one whose path is free (nothing to replace) and whose
        content fits in memory. False leaves it to :meth:`_file`; so are files with xattrs (warnings in order)."""
        if entry.xattrs or entry.size > _MAX_QUEUED_FILE or not self._threaded() or _lexists(dir_fd, name):
            return False
        view = reader.buffered_data()
        data = bytes(view) if view is not None else b"".join([bytes(c) for c in reader.chunks()])
        uid, gid = self._ids(entry.uid, entry.gid)
        job = _NewFile(os.dup(dir_fd), name, data, entry.mode & 0o7777, uid, gid, entry.mtime_ns, self._umask)
        self.writes.submit(rel, entry.name, len(data), job)
        self.size += entry.size
        return True

    def _queue_symlink(self, dir_fd: int, name: str, rel: Parts, entry: tf.TarEntry) -> bool:
        if entry.xattrs or not self._threaded() or _lexists(dir_fd, name):
            return False
        uid, gid = self._ids(entry.uid, entry.gid)
        self.writes.submit(rel, entry.name, 0, _NewSymlink(os.dup(dir_fd), name, entry.linkname, uid, gid,
                                                           entry.mtime_ns))
        return True

    def _symlink(self, dir_fd: int, name: str, entry: tf.TarEntry) -> None:
        self._timed_create(dir_fd, name, lambda: os.symlink(entry.linkname, name, dir_fd=dir_fd))
        uid, gid = self._ids(entry.uid, entry.gid)
        os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
        if entry.xattrs:
            self._set_xattrs(proc_path(dir_fd, name), entry.xattrs, entry.name)
        os.utime(name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=dir_fd, follow_symlinks=False)

    def _node(self, dir_fd: int, name: str, entry: tf.TarEntry) -> None:
        kind = {tf.CHAR: stat.S_IFCHR, tf.BLOCKDEV: stat.S_IFBLK, tf.FIFO: stat.S_IFIFO}[entry.typeflag]
        device = os.makedev(entry.devmajor, entry.devminor) if kind != stat.S_IFIFO else 0
        self._create(dir_fd, name, lambda: os.mknod(name, kind | 0o600, device, dir_fd=dir_fd))
        uid, gid = self._ids(entry.uid, entry.gid)
        # the node was just created by us and is not a symlink: following is safe here
        os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
        os.chmod(name, entry.mode & 0o7777, dir_fd=dir_fd)
        if entry.xattrs:
            self._set_xattrs(proc_path(dir_fd, name), entry.xattrs, entry.name)
        os.utime(name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=dir_fd, follow_symlinks=False)

    def _hardlink(self, dir_fd: int, name: str, rel: Parts, entry: tf.TarEntry) -> bool:
        target = clean_parts(entry.linkname, what=f"hard link target of {entry.name!r}:")
        if not target:
            raise InvalidArgument(f"tar entry {entry.name!r} is a hard link to the root directory")
        found = self.root.resolve_dir(target[:-1])
        tname = target[-1]
        if found is not None:
            self.writes.wait(found[1] + (tname,))
        if found is not None and _lexists(found[0], tname):
            tdir_fd, tparent = found
        elif self.overlay and self.lowers:
            tdir_fd, tparent = self._copy_up(target, entry)
        else:
            raise InvalidArgument(f"tar entry {entry.name!r} is a hard link to {entry.linkname!r}, which does not exist")
        if tparent + (tname,) == rel:
            return False  # a link to itself
        if stat.S_ISDIR(os.lstat(tname, dir_fd=tdir_fd).st_mode):
            raise InvalidArgument(f"tar entry {entry.name!r} is a hard link to the directory {entry.linkname!r}")
        self._create(dir_fd, name, lambda: os.link(tname, name, src_dir_fd=tdir_fd, dst_dir_fd=dir_fd,
                                                   follow_symlinks=False))
        # As Docker (pkg/archive createTarFile) and containerd do, the link entry's own header then applies to the
        # shared inode: the last header for an inode wins.
        uid, gid = self._ids(entry.uid, entry.gid)
        os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode):
            os.chmod(name, entry.mode & 0o7777, dir_fd=dir_fd)  # a hard link we just made, not a symlink
        if entry.xattrs:
            self._set_xattrs(proc_path(dir_fd, name), entry.xattrs, entry.name)
        os.utime(name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=dir_fd, follow_symlinks=False)
        return True

    def _copy_up(self, target: Parts, entry: tf.TarEntry) -> tuple[int, Parts]:
        """Copy a hard link's target from the lowers into the upper directory, as overlayfs' copy-up would."""
        lower = self.lowers.lookup(target)
        if lower is None or stat.S_ISDIR(lower[1].st_mode):
            raise InvalidArgument(f"tar entry {entry.name!r} is a hard link to {entry.linkname!r}, "
                                  "which neither this layer nor a lower one has")
        src, st = lower
        dir_fd, parent = self._parent(target[:-1])
        name = target[-1]
        if stat.S_ISREG(st.st_mode):
            out = os.open(name, _FILE_FLAGS, 0o600, dir_fd=dir_fd)
            try:
                with open(src, "rb") as f:
                    remaining = st.st_size
                    while remaining > 0:
                        sent = os.sendfile(out, f.fileno(), None, min(remaining, 1 << 30))
                        if sent == 0:
                            break
                        remaining -= sent
                os.fchown(out, st.st_uid, st.st_gid)
                os.fchmod(out, stat.S_IMODE(st.st_mode))
                self._set_xattrs(out, read_xattrs(str(src)), entry.linkname)
                os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(out)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), name, dir_fd=dir_fd)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dir_fd, follow_symlinks=False)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dir_fd, follow_symlinks=False)
        else:
            os.mknod(name, st.st_mode, st.st_rdev, dir_fd=dir_fd)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dir_fd, follow_symlinks=False)
            os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dir_fd)
        self._mark(parent + (name,))
        return dir_fd, parent

    # ------------------------------------------------------------------------------------------ whiteouts

    def _whiteout(self, entry: tf.TarEntry, parts: Parts) -> None:
        base = parts[-1]
        if base == OPAQUE:
            self._opaque(parts[:-1])
            return
        victim = whiteout_target(base)
        if victim is None:  # ".wh..wh.*": AUFS bookkeeping (hard link dir, aufs metadata), not a deletion
            log.debug("skipping AUFS metadata entry %s", entry.name)
            return
        if victim in ("", ".", ".."):
            raise InvalidArgument(f"invalid whiteout entry {entry.name!r}")
        found = self.root.resolve_dir(parts[:-1])
        if found is not None:
            self._remove(found[0], victim)
        if not self.overlay:
            return
        parent = found[1] if found is not None else parts[:-1]
        if self.lowers and not self.lowers.exists(parent + (victim,)):
            return  # nothing below to hide
        dir_fd, parent = self._parent(parts[:-1])
        os.mknod(victim, stat.S_IFCHR, os.makedev(0, 0), dir_fd=dir_fd)
        uid, gid = self._ids(entry.uid, entry.gid)
        os.chown(victim, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
        self._mark(parent + (victim,))

    def _opaque(self, parts: Parts) -> None:
        """Hide the lower content of a directory, keeping what this layer put there (before or after the marker)."""
        self.writes.wait_all()  # (not needed for what _clear keeps or removes, but it lists a settled directory)
        if self.overlay:
            dir_fd, rel = self._parent(parts)
            os.setxattr(proc_path(dir_fd, "."), OPAQUE_XATTR, b"y")
        else:
            found = self.root.resolve_dir(parts)
            if found is None:
                return
            dir_fd, rel = found
        self._mark(rel)
        self._clear(dir_fd, rel)

    def _clear(self, dir_fd: int, rel: Parts) -> None:
        fd = os.open(".", _OPEN_DIR, dir_fd=dir_fd)
        try:
            for name in os.listdir(fd):
                child = rel + (name,)
                if child not in self._unpacked:
                    self._remove(fd, name)
                elif stat.S_ISDIR(os.lstat(name, dir_fd=fd).st_mode):
                    sub = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                    try:
                        self._clear(sub, child)
                    finally:
                        os.close(sub)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------------------------------ finish

    def finish(self) -> None:
        """Set directory metadata, deepest and latest first; a directory listed twice gets its last entry's."""
        self.writes.wait_all()
        done: set[Parts] = set()
        for meta in reversed(self._dirs):
            if meta.rel in done:
                continue
            done.add(meta.rel)
            try:
                self._dir_metadata(meta)
            finally:
                self.root.collect()

    def _dir_metadata(self, meta: _DirMeta) -> None:
        if meta.rel:
            found = self.root.resolve_dir(meta.rel[:-1], follow=False)
            if found is None:
                return  # removed or replaced later in the layer
            try:
                fd = os.open(meta.rel[-1], _OPEN_DIR, dir_fd=found[0])
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    return
                raise
        else:
            fd = os.open(".", _OPEN_DIR, dir_fd=self.root.fd)
        try:
            if meta.uid is not None and meta.gid is not None:
                os.fchown(fd, meta.uid, meta.gid)
            os.fchmod(fd, meta.mode)
            if meta.xattrs:
                self._set_xattrs(fd, meta.xattrs, "/".join(meta.rel) or ".")
            if meta.mtime_ns is not None:
                os.utime(fd, ns=(meta.mtime_ns, meta.mtime_ns))
        finally:
            os.close(fd)


def _own(fd: int, uid: int, gid: int, mode: int, umask: int) -> None:
    """A new file's owner, then its mode where the create could not give it: chown clears set-id bits, and the
    umask masked some."""
    os.fchown(fd, uid, gid)
    if mode & ~0o777 or mode & umask:
        os.fchmod(fd, mode)


@dataclass(slots=True)
class _NewFile:
    """A regular file to create where nothing is, with its whole content (a :class:`WriteQueue` job)."""

    dir_fd: int  # a duplicate, owned (closed) by the job
    name: str
    data: bytes
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    umask: int

    def run(self) -> None:
        try:
            fd = os.open(self.name, _FILE_FLAGS, self.mode & 0o777, dir_fd=self.dir_fd)
            try:
                _write_all(fd, self.data)
                _own(fd, self.uid, self.gid, self.mode, self.umask)
                os.utime(fd, ns=(self.mtime_ns, self.mtime_ns))
            finally:
                os.close(fd)
        finally:
            os.close(self.dir_fd)

    def discard(self) -> None:
        os.close(self.dir_fd)


@dataclass(slots=True)
class _NewSymlink:
    dir_fd: int  # a duplicate, owned (closed) by the job
    name: str
    target: str
    uid: int
    gid: int
    mtime_ns: int

    def run(self) -> None:
        try:
            os.symlink(self.target, self.name, dir_fd=self.dir_fd)
            os.chown(self.name, self.uid, self.gid, dir_fd=self.dir_fd, follow_symlinks=False)
            os.utime(self.name, ns=(self.mtime_ns, self.mtime_ns), dir_fd=self.dir_fd, follow_symlinks=False)
        finally:
            os.close(self.dir_fd)

    def discard(self) -> None:
        os.close(self.dir_fd)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _lexists(dir_fd: int, name: str) -> bool:
    try:
        os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


def _current_umask() -> int:
    """The process umask, read without changing it (os.umask would, for a moment, for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o777  # unknown: always chmod
