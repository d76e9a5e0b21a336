"""`cp`: files between a container and the host, both ways, by Docker's rules (docker container cp).

The container's filesystem is reached from the host without entering the container: its root is the rootfs the
start code mounted on the host (running or paused) or, for a container that is not running, its writable snapshot
mounted on a temporary directory for the length of the copy. Volumes and bind mounts exist only inside the
container's mount namespace (and not at all while it is stopped), so a path under one of their destinations is
taken to the mount's host directory (`Mounts[].Source`) as if it were mounted — dockerd mounts them for a copy too,
running or not. tmpfs mounts (and volumes whose driver mounts a device) hold nothing the host can reach and are not
included: the copy sees what lies under them in the container's own layer. /etc/hosts, /etc/hostname and
/etc/resolv.conf are the container's own files, as in Docker.

Every path inside the container is resolved one component at a time through directory descriptors opened with
O_NOFOLLOW, with symlinks resolved as a chroot resolves them (an absolute target starts again at the container's
root; ".." stops there), and every file is then opened relative to its directory's descriptor: no symlink a
container makes — even one it swaps in while the copy runs — leads the copy outside it. The host's side is read and
written the same way, rooted at "/" for a source and at the destination directory for what comes out of a container.

As in Docker, a copy is a stream of tar entries made on one side and extracted on the other: `-` as the source or
destination is that stream as a real tar archive on stdin or stdout. Files copied into a container are owned by its
root unless `archive` keeps the source's owners; files copied out belong to the user running barque.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tarfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from barque.errors import Conflict, InvalidArgument, NotFound

__all__ = [
    "Bind",
    "Entry",
    "FSView",
    "Location",
    "asserts_directory",
    "container_binds",
    "container_view",
    "copy_in",
    "copy_out",
    "lexical_parts",
    "read_tar",
    "split_cp_arg",
    "walk_entries",
    "write_tar",
]

log = logging.getLogger(__name__)

Parts = tuple[str, ...]

_DIR_PATH = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_DIR_NOFOLLOW = _DIR_PATH | os.O_NOFOLLOW
_DIR_READ = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_SYMLINKS = 40
_CHUNK = 1 << 20
_BLOCK = 512
_CACHE = 64
# Docker's archives carry only this extended attribute (file capabilities)
CAPABILITY_XATTR = "security.capability"
_XATTR_PAX = "SCHILY.xattr."
# what a running container may do to a path between listing and opening it: skip it, as it is no longer there
_VANISHED = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)


# ---- paths as Docker reads them -----------------------------------------------------------------------------------

def lexical_parts(path: str) -> Parts:
    """The components of `path` after Go's filepath.Clean, relative to a root that ".." never climbs above."""
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts:
                parts.pop()
            continue
        parts.append(comp)
    return tuple(parts)


def asserts_directory(path: str) -> bool:
    """Docker's assertsDirectory: a trailing "/" or a last component "." says the path must be a directory."""
    return path.endswith("/") or path == "." or path.endswith("/.")


def _copies_contents(path: str) -> bool:
    return path == "." or path.endswith("/.")


def _base(path: str) -> str:
    """The name a source takes in the archive: its last component, "." for `DIR/.` (its content) or the root."""
    parts = lexical_parts(path)
    if _copies_contents(path) or not parts:
        return "."
    return parts[-1]


def _show(parts: Parts) -> str:
    return "/" + "/".join(parts)


def split_cp_arg(arg: str) -> tuple[str, str]:
    """Docker's splitCpArg: `CONTAINER:PATH` → (container, path); a local path → ("", path).

    An absolute path is local even with a colon in it; so is a relative one starting with "." (`./a:b`)."""
    if arg.startswith("/"):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return "", arg
    return container, path


def _absolute(path: str) -> str:
    """An absolute local path, keeping the trailing "/" or "/." that changes what a copy means."""
    out = os.path.abspath(path)
    if _copies_contents(path):
        return out.rstrip("/") + "/."
    if path.endswith("/") and out != "/":
        return out + "/"
    return out


def _go_error(op: str, path: str, e: OSError) -> str:
    """An OSError worded as Go's *PathError prints: "lstat /x: no such file or directory"."""
    reason = (e.strerror or str(e)).lower() if e.errno != errno.ELOOP else "too many levels of symbolic links"
    return f"{op} {path}: {reason}"


# ---- resolving paths inside a root, with mounts over it ----------------------------------------------------------

@dataclass(frozen=True)
class Bind:
    """A mount over a view's root: what its destination shows, reached from the host."""

    dest: Parts
    source: Path
    readonly: bool
    is_dir: bool


@dataclass
class Location:
    """Where a resolved path is: `name` in the directory open as `dir_fd` ("." when `dir_fd` is the thing itself).

    `parts` is its symlink-free path in the view; `bind` the mount holding it (None: the root filesystem). Owns
    `dir_fd`: close it (or use ``with``)."""

    parts: Parts
    dir_fd: int
    name: str
    bind: Bind | None

    def lstat(self) -> os.stat_result | None:
        try:
            return os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def close(self) -> None:
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    def __enter__(self) -> "Location":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FSView:
    """A directory tree as a chroot would show it, with `binds` standing over parts of it. Close it when done."""

    def __init__(self, root: Path, binds: Sequence[Bind] = (), *, readonly_root: bool = False) -> None:
        self.root = Path(root)
        self.readonly_root = readonly_root
        self.fd = os.open(self.root, _DIR_PATH)
        self._binds: dict[Parts, Bind] = {}
        # a destination is where the mount really is: a symlink on the way (/var/run -> /run) is resolved first
        for b in sorted(binds, key=lambda b: len(b.dest)):
            self._binds[self._real(b.dest)] = b
        self._children: dict[Parts, set[str]] = {}
        for dest in self._binds:
            if dest:
                self._children.setdefault(dest[:-1], set()).add(dest[-1])
        self._binds = {dest: replace(b, dest=dest) for dest, b in self._binds.items()}

    def _real(self, parts: Parts) -> Parts:
        try:
            with self.walk(parts) as loc:
                return loc.parts
        except OSError:
            return parts

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "FSView":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def bind_at(self, parts: Parts) -> Bind | None:
        return self._binds.get(parts)

    def bound_children(self, parts: Parts) -> set[str]:
        """Names of mounts directly under the directory `parts` (their mount points may not exist yet)."""
        return self._children.get(parts, set())

    def walk(self, parts: Parts, *, follow_last: bool = True, want_dir: bool = False,
             create: bool = False) -> Location:
        """Resolve `parts` (already clean, see `lexical_parts`) inside the view.

        The last component need not exist (the Location then names what is missing in an existing directory);
        one before it must. `follow_last=False` leaves a final symlink unresolved. `want_dir` asks for a
        directory (every component must be one), creating missing ones (mode 0755) when `create`. Raises
        FileNotFoundError, NotADirectoryError or OSError(ELOOP), naming the path inside the view.
        """
        stack: list[tuple[int, str, Bind | None]] = []  # directories open below the root
        todo = list(reversed(parts))
        links = 0

        def where() -> Parts:
            return tuple(s[1] for s in stack)

        def top() -> int:
            return stack[-1][0] if stack else self.fd

        def bind() -> Bind | None:
            return next((s[2] for s in reversed(stack) if s[2] is not None), None)

        def at(comp: str) -> Location:
            return Location(where() + (comp,), os.dup(top()), comp, bind())

        def error(kind: type[OSError], code: int, here: Parts) -> OSError:
            return kind(code, os.strerror(code), _show(here))

        try:
            while todo:
                comp = todo.pop()
                if comp in ("", "."):
                    continue
                if comp == "..":
                    if stack:
                        os.close(stack.pop()[0])
                    continue
                last = not want_dir and all(c in ("", ".") for c in todo)
                here = where() + (comp,)
                b = self._binds.get(here)
                if b is not None:
                    if b.is_dir:
                        stack.append((os.open(b.source, _DIR_PATH), comp, b))
                        continue
                    if last:
                        return Location(here, os.open(b.source.parent, _DIR_PATH), b.source.name, b)
                    raise error(NotADirectoryError, errno.ENOTDIR, here)
                if last and not follow_last:
                    return at(comp)
                try:
                    fd = os.open(comp, _DIR_NOFOLLOW, dir_fd=top())
                except FileNotFoundError:
                    if last:
                        return at(comp)
                    if not create:
                        raise error(FileNotFoundError, errno.ENOENT, here) from None
                    os.mkdir(comp, 0o755, dir_fd=top())
                    todo.append(comp)
                    continue
                except OSError as e:
                    if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    st = os.stat(comp, dir_fd=top(), follow_symlinks=False)
                    if not stat.S_ISLNK(st.st_mode):
                        if last:
                            return at(comp)
                        raise error(NotADirectoryError, errno.ENOTDIR, here) from None
                    links += 1
                    if links > _MAX_SYMLINKS:
                        raise error(OSError, errno.ELOOP, here) from None
                    target = os.readlink(comp, dir_fd=top())
                    if target.startswith("/"):
                        while stack:
                            os.close(stack.pop()[0])
                    todo.extend(reversed(target.split("/")))
                    continue
                if last:
                    os.close(fd)
                    return at(comp)
                stack.append((fd, comp, None))
            if not stack:
                return Location((), os.dup(self.fd), ".", None)
            names, holder = where(), bind()
            return Location(names, stack.pop()[0], ".", holder)
        finally:
            for fd, _, _ in stack:
                os.close(fd)


# ---- entries: what travels from one side to the other ------------------------------------------------------------

@dataclass
class Entry:
    """One archive member. `reader` (regular files) must be consumed before the next entry is asked for."""

    name: str
    kind: str  # file, dir, symlink, hardlink, char, block, fifo
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    size: int = 0
    linkname: str = ""
    major: int = 0
    minor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)
    reader: BinaryIO | None = None

    @property
    def tar_size(self) -> int:
        """Bytes this entry takes in a tar (header and padded content), what Docker's progress counts."""
        body = -(-self.size // _BLOCK) * _BLOCK if self.kind == "file" else 0
        return _BLOCK + body


def _join(parent: str, name: str) -> str:
    return name if not parent else f"{parent}/{name}"


def _capability(fd: int) -> dict[str, bytes]:
    try:
        return {CAPABILITY_XATTR: os.getxattr(fd, CAPABILITY_XATTR)}
    except OSError:
        return {}


def walk_entries(view: FSView, loc: Location, top: str, *, include_top: bool = True) -> Iterator[Entry]:
    """Entries for the tree at `loc`, named `top` ("" with include_top=False: its content, unprefixed), parents
    first, symlinks never followed, mounts of the view entered. Hard links within the tree become link entries."""
    st = loc.lstat()
    if st is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), _show(loc.parts))
    yield from _entries(view, loc.dir_fd, loc.name, st, top, loc.parts, {}, include_top)


def _entries(view: FSView, dir_fd: int, name: str, st: os.stat_result, tar_name: str, parts: Parts,
             links: dict[tuple[int, int], str], include: bool = True) -> Iterator[Entry]:
    mode = st.st_mode
    common = dict(mode=stat.S_IMODE(mode), uid=st.st_uid, gid=st.st_gid, mtime=int(st.st_mtime))
    if stat.S_ISDIR(mode):
        try:
            fd = os.open(name, _DIR_READ, dir_fd=dir_fd)
        except OSError as e:
            if e.errno in _VANISHED:
                return
            raise
        try:
            if include:
                yield Entry(tar_name, "dir", xattrs=_capability(fd), **common)
            for child in sorted(set(os.listdir(fd)) | view.bound_children(parts)):
                child_parts = parts + (child,)
                b = view.bind_at(child_parts)
                cdir, cname = (os.open(b.source.parent, _DIR_PATH), b.source.name) if b else (fd, child)
                try:
                    try:
                        cst = os.stat(cname, dir_fd=cdir, follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    yield from _entries(view, cdir, cname, cst, _join(tar_name, child), child_parts, links)
                finally:
                    if cdir != fd:
                        os.close(cdir)
        finally:
            os.close(fd)
    elif stat.S_ISREG(mode):
        if st.st_nlink > 1:
            first = links.get((st.st_dev, st.st_ino))
            if first is not None:
                yield Entry(tar_name, "hardlink", linkname=first, **common)
                return
            links[(st.st_dev, st.st_ino)] = tar_name
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as e:
            if e.errno in _VANISHED:
                return
            raise
        with open(fd, "rb", buffering=0) as f:
            fst = os.fstat(fd)
            if stat.S_ISREG(fst.st_mode):
                yield Entry(tar_name, "file", size=fst.st_size, xattrs=_capability(fd), reader=f, **common)
    elif stat.S_ISLNK(mode):
        try:
            target = os.readlink(name, dir_fd=dir_fd)
        except OSError as e:
            if e.errno in _VANISHED + (errno.EINVAL,):
                return
            raise
        yield Entry(tar_name, "symlink", linkname=target, **common)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        yield Entry(tar_name, "char" if stat.S_ISCHR(mode) else "block", major=os.major(st.st_rdev),
                    minor=os.minor(st.st_rdev), **common)
    elif stat.S_ISFIFO(mode):
        yield Entry(tar_name, "fifo", **common)
    else:
        log.debug("skipping socket %s: a tar cannot hold it", _show(parts))


# ---- tar streams ----------------------------------------------------------------------------------------------

_TAR_TYPE = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
             "fifo": tarfile.FIFOTYPE}
_KIND = {v: k for k, v in _TAR_TYPE.items()}
_KIND.update({tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file"})


def _copy_exact(src: BinaryIO, write: Callable[[bytes], object], size: int, name: str) -> None:
    """Copy `size` bytes: a file that shrank while copied is padded with zeros, one that grew is cut, as the
    archive already promised its size."""
    left = size
    while left:
        chunk = src.read(min(_CHUNK, left))
        if not chunk:
            log.warning("%s shrank while it was copied: padded with %d zero bytes", name, left)
            while left:
                n = min(_CHUNK, left)
                write(b"\0" * n)
                left -= n
            return
        write(chunk)
        left -= len(chunk)


def write_tar(entries: Iterator[Entry], out: BinaryIO) -> int:
    """Write the entries as a tar archive (PAX where needed) to `out`; returns the bytes written."""
    written = 0
    for e in entries:
        info = tarfile.TarInfo(e.name + "/" if e.kind == "dir" and not e.name.endswith("/") else e.name)
        info.type = _TAR_TYPE[e.kind]
        info.mode, info.uid, info.gid, info.mtime = e.mode, e.uid, e.gid, e.mtime
        info.size = e.size if e.kind == "file" else 0
        info.linkname = e.linkname
        info.devmajor, info.devminor = e.major, e.minor
        info.uname = info.gname = ""
        if e.xattrs:
            info.pax_headers = {_XATTR_PAX + k: v.decode("utf-8", "surrogateescape") for k, v in e.xattrs.items()}
        header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        out.write(header)
        written += len(header)
        if e.kind == "file" and e.size:
            assert e.reader is not None
            _copy_exact(e.reader, out.write, e.size, e.name)
            pad = -e.size % _BLOCK
            out.write(b"\0" * pad)
            written += e.size + pad
    out.write(b"\0" * (2 * _BLOCK))
    out.flush()
    return written + 2 * _BLOCK


def read_tar(stream: BinaryIO) -> Iterator[Entry]:
    """The entries of a tar archive read from `stream` (plain, gzip, bzip2 or xz), as Docker's extract accepts."""
    try:
        archive = tarfile.open(fileobj=stream, mode="r|*")
    except tarfile.ReadError as e:
        if "empty" in str(e):
            return  # nothing on stdin: nothing to copy
        raise InvalidArgument(f"cannot read the tar archive: {e}") from e
    with archive:
        while True:
            try:
                info = archive.next()
            except (tarfile.TarError, EOFError) as e:
                raise InvalidArgument(f"cannot read the tar archive: {e}") from e
            if info is None:
                return
            kind = _KIND.get(info.type)
            if kind is None:
                log.warning("skipping %s: unsupported tar entry type %r", info.name, info.type)
                continue
            xattrs = {k[len(_XATTR_PAX):]: v.encode("utf-8", "surrogateescape")
                      for k, v in info.pax_headers.items() if k.startswith(_XATTR_PAX)}
            yield Entry(info.name, kind, mode=info.mode & 0o7777, uid=info.uid, gid=info.gid, mtime=int(info.mtime),
                        size=info.size if kind == "file" else 0, linkname=info.linkname, major=info.devmajor,
                        minor=info.devminor, xattrs=xattrs,
                        reader=archive.extractfile(info) if kind == "file" else None)


# ---- extracting entries into a view -------------------------------------------------------------------------------

Owner = Callable[[Entry], "tuple[int, int] | None"]
_NODE = {"char": stat.S_IFCHR, "block": stat.S_IFBLK, "fifo": stat.S_IFIFO}


class _Extractor:
    """Docker's Untar with NoOverwriteDirNonDir: entries land under `dest`, existing non-directories are replaced,
    a directory is never replaced by something else (nor the reverse); directory times are set last. Without
    `no_overwrite_dir_non_dir` (the Engine API's PUT archive may ask so) the one in the way is removed instead."""

    no_overwrite_dir_non_dir = True

    def __init__(self, view: FSView, dest: Parts, owner: Owner) -> None:
        self.view = view
        self.dest = dest
        self.owner = owner
        self._dirs: OrderedDict[Parts, Location] = OrderedDict()
        self._retired: list[Location] = []
        self._times: list[tuple[Parts, int]] = []

    def close(self) -> None:
        self._forget()
        self._collect()

    def _forget(self) -> None:
        """Cached directories may have been reached through a symlink just removed: resolve them again."""
        self._retired.extend(self._dirs.values())
        self._dirs.clear()

    def _collect(self) -> None:
        while self._retired:
            self._retired.pop().close()

    def _dir(self, parts: Parts) -> Location:
        hit = self._dirs.get(parts)
        if hit is not None:
            self._dirs.move_to_end(parts)
            return hit
        loc = self.view.walk(parts, want_dir=True, create=True)
        self._dirs[parts] = loc
        if len(self._dirs) > _CACHE:
            self._retired.append(self._dirs.popitem(last=False)[1])
        return loc

    def check_writable(self, bind: Bind | None) -> None:
        if bind is not None:
            if bind.readonly:
                raise Conflict("mounted volume is marked read-only")
        elif self.view.readonly_root:
            raise Conflict("container rootfs is marked read-only")

    def extract(self, entries: Iterator[Entry]) -> int:
        from barque.layers.safepath import clean_parts

        size = 0
        try:
            for e in entries:
                size += e.tar_size
                parts = clean_parts(e.name, what="archive entry")
                if parts:  # "." is the extraction directory itself
                    try:
                        self._one(e, self.dest + parts)
                    finally:
                        self._collect()
            for parts, mtime in reversed(self._times):
                try:
                    with self.view.walk(parts, want_dir=True) as loc:
                        os.utime(f"/proc/self/fd/{loc.dir_fd}", (mtime, mtime))
                except OSError as e:
                    log.debug("cannot set the times of %s: %s", _show(parts), e)
        finally:
            self.close()
        return size + 2 * _BLOCK

    def _one(self, e: Entry, full: Parts) -> None:
        parent = self._dir(full[:-1])
        name = full[-1]
        real = parent.parts + (name,)
        bind = self.view.bind_at(real)
        self.check_writable(bind or parent.bind)
        if bind is not None:
            self._onto_bind(e, bind, real)
            return
        pfd = parent.dir_fd
        try:
            existing = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None and not self.no_overwrite_dir_non_dir \
                and stat.S_ISDIR(existing.st_mode) != (e.kind == "dir"):
            if stat.S_ISDIR(existing.st_mode):
                import shutil

                shutil.rmtree(name, dir_fd=pfd)
            else:
                os.unlink(name, dir_fd=pfd)
            self._forget()  # a cached directory may have been reached through what was just removed
            existing = None
        if existing is not None:
            is_dir = stat.S_ISDIR(existing.st_mode)
            if is_dir and e.kind != "dir":
                raise Conflict(f'cannot overwrite directory "{_show(real)}" with non-directory "{_show(self.dest)}"')
            if not is_dir and e.kind == "dir":
                raise Conflict(f'cannot overwrite non-directory "{_show(real)}" with directory "{_show(self.dest)}"')
            if not is_dir:
                os.unlink(name, dir_fd=pfd)
                if stat.S_ISLNK(existing.st_mode):
                    self._forget()
        owner = self.owner(e)
        if e.kind == "dir":
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=pfd)
            fd = os.open(name, _DIR_READ, dir_fd=pfd)
            try:
                _metadata(fd, e, owner)
            finally:
                os.close(fd)
            self._times.append((real, e.mtime))
        elif e.kind == "file":
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=pfd)
            try:
                _write_content(fd, e)
                _metadata(fd, e, owner)
                os.utime(fd, (e.mtime, e.mtime))
            finally:
                os.close(fd)
        elif e.kind == "symlink":
            os.symlink(e.linkname, name, dir_fd=pfd)
            if owner is not None:
                os.chown(name, *owner, dir_fd=pfd, follow_symlinks=False)
            os.utime(name, (e.mtime, e.mtime), dir_fd=pfd, follow_symlinks=False)
        elif e.kind == "hardlink":
            from barque.layers.safepath import clean_parts

            target = self.dest + clean_parts(e.linkname, what="hard link target")
            with self.view.walk(target, follow_last=False) as src:
                os.link(src.name, name, src_dir_fd=src.dir_fd, dst_dir_fd=pfd, follow_symlinks=False)
        else:
            os.mknod(name, _NODE[e.kind] | 0o600, os.makedev(e.major, e.minor), dir_fd=pfd)
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            try:
                path = f"/proc/self/fd/{fd}"
                if owner is not None:
                    os.chown(path, *owner)
                os.chmod(path, e.mode)
                os.utime(path, (e.mtime, e.mtime))
            finally:
                os.close(fd)

    def _onto_bind(self, e: Entry, bind: Bind, real: Parts) -> None:
        """An entry landing exactly on a mount point: its metadata for a directory, content in place for a file."""
        owner = self.owner(e)
        if bind.is_dir and e.kind == "dir":
            fd = os.open(bind.source, _DIR_READ)
            try:
                _metadata(fd, e, owner)
            finally:
                os.close(fd)
            self._times.append((real, e.mtime))
            return
        if bind.is_dir:
            raise Conflict(f'cannot overwrite directory "{_show(real)}" with non-directory "{_show(self.dest)}"')
        if e.kind != "file":
            raise Conflict(f"cannot replace {_show(real)}: it is a mount point, only its content can be copied")
        fd = os.open(bind.source, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            _write_content(fd, e)
            _metadata(fd, e, owner)
            os.utime(fd, (e.mtime, e.mtime))
        finally:
            os.close(fd)


def _write_content(fd: int, e: Entry) -> None:
    if e.size and e.reader is not None:
        def write(data: bytes) -> None:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]

        _copy_exact(e.reader, write, e.size, e.name)


def _metadata(fd: int, e: Entry, owner: tuple[int, int] | None) -> None:
    """Owner, then mode (chown clears set-id bits), then xattrs (chown clears file capabilities too)."""
    if owner is not None:
        os.fchown(fd, *owner)
    os.fchmod(fd, e.mode)
    for key, value in e.xattrs.items():
        try:
            os.setxattr(fd, key, value)
        except OSError as err:
            log.warning("cannot set %s on %s: %s", key, e.name, err)


# ---- a container's filesystem -------------------------------------------------------------------------------------

def container_binds(c) -> list[Bind]:
    """The container's volumes and bind mounts whose content the host can reach, and its hosts/hostname/resolv.conf."""
    from barque.container.volumes import driver_mount

    out: list[Bind] = []
    for m in c.record.get("Mounts") or []:
        kind, source = m.get("Type"), m.get("Source") or ""
        if kind == "volume":
            data_dir, extra = driver_mount(m.get("_volume_options"), source)
            if extra is not None and extra.get("type") != "bind":
                continue  # a tmpfs or a device: nothing on the host shows its content
            source = extra["source"] if extra is not None else data_dir
        elif kind != "bind":
            continue
        if not source or not os.path.exists(source):
            continue
        out.append(Bind(lexical_parts(m.get("Destination") or ""), Path(source), not m.get("RW", True),
                        os.path.isdir(source)))
    taken = {b.dest for b in out}
    readonly = bool(c.record.get("HostConfig", {}).get("ReadonlyRootfs"))
    for dest, name in ((("etc", "resolv.conf"), "resolv.conf"), (("etc", "hostname"), "hostname"),
                       (("etc", "hosts"), "hosts")):
        if dest not in taken and (c.dir / name).is_file():
            out.append(Bind(dest, c.dir / name, readonly, False))
    return out


def _rootfs_mounted(rootfs: Path) -> bool:
    from barque.linux.mountinfo import mounted_under

    path = os.path.abspath(rootfs)
    return path in mounted_under(Path(path))


@contextmanager
def container_view(engine, c, *, writable: bool, binds: bool = True) -> Iterator[FSView]:
    """The container's filesystem: its mounted rootfs while it runs, else its snapshot mounted for the moment
    (read-only unless `writable`); with its volumes and bind mounts unless `binds` is false."""
    from barque.snapshot import Mount, mounted

    mounts = container_binds(c) if binds else []
    readonly = bool(c.record.get("HostConfig", {}).get("ReadonlyRootfs"))
    rootfs = c.run_dir / "rootfs"
    if _rootfs_mounted(rootfs):
        with FSView(rootfs, mounts, readonly_root=readonly) as view:
            yield view
        return
    plans = engine.snapshotter.mounts(c.private["snapshot"])
    if not writable:
        plans = [Mount(m.type, m.source, tuple(m.options) + ("ro",)) for m in plans]
    with mounted(plans) as root, FSView(root, mounts, readonly_root=readonly) as view:
        yield view


# ---- the two directions ---------------------------------------------------------------------------------------

def _plan(src_is_dir: bool, src_base: str, dst: Parts, dst_exists: bool, dst_is_dir: bool,
          dst_asserts_dir: bool) -> tuple[Parts, str]:
    """Docker's PrepareArchiveCopy: the directory to extract into, and the name the source takes there."""
    if dst_exists and dst_is_dir:
        return dst, src_base
    if dst_exists and src_is_dir:
        raise InvalidArgument("cannot copy directory")
    if not dst_exists and not src_is_dir and dst_asserts_dir:
        raise InvalidArgument("no such directory")
    if not dst:
        raise InvalidArgument("cannot copy directory")
    return dst[:-1], dst[-1]


def copy_out(engine, c, container_name: str, src: str, dst: str | BinaryIO, *, follow_link: bool = False
             ) -> tuple[int, str]:
    """`cp CONTAINER:SRC DST`: DST a host path, or a binary stream that gets a tar archive (`-`).

    Returns the bytes of archive copied and the destination as Docker names it in its report."""
    host_dst = None
    if isinstance(dst, str):
        host_dst = _absolute(dst)
        _validate_output_path(host_dst)
    with container_view(engine, c, writable=False) as view:
        try:
            loc = view.walk(lexical_parts(src), follow_last=asserts_directory(src) or follow_link)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"Could not find the file {src} in container {container_name}") from None
        except OSError as e:
            raise InvalidArgument(_go_error("lstat", src, e)) from e
        with loc:
            st = loc.lstat()
            if st is None:
                raise NotFound(f"Could not find the file {src} in container {container_name}")
            if asserts_directory(src) and not stat.S_ISDIR(st.st_mode):
                raise InvalidArgument(f"lstat {src}: not a directory")
            base = _base(src)
            entries = container_owned(c, walk_entries(view, loc, base))
            if host_dst is None:
                assert not isinstance(dst, str)
                return write_tar(entries, dst), "-"
            return _extract_on_host(entries, stat.S_ISDIR(st.st_mode), base, host_dst), host_dst


def container_owned(c, entries: Iterator[Entry]) -> Iterator[Entry]:
    """The entries with the owners the container knows (see barque.container.userns.container_ids)."""
    from barque.container.userns import container_ids

    ids = container_ids(c)
    if ids is None:
        yield from entries
        return
    for e in entries:
        e.uid, e.gid = ids(e.uid, e.gid)
        yield e


def _validate_output_path(path: str) -> None:
    """Docker's ValidateOutputPath: the parent must exist; an existing destination must be a directory or file."""
    parent = os.path.dirname(path.rstrip("/")) or "/"
    if not os.path.exists(parent):
        raise InvalidArgument(f'invalid output path: directory "{parent}" does not exist')
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise InvalidArgument(_go_error("stat", path, e)) from e
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        raise InvalidArgument(f'invalid output path: "{path}" must be a directory or a regular file: got a device')
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise InvalidArgument(f'invalid output path: "{path}" must be a directory or a regular file: '
                              "got an irregular file")


def _extract_on_host(entries: Iterator[Entry], src_is_dir: bool, src_base: str, dst: str) -> int:
    """Docker's CopyTo: a final symlink in `dst` is followed; its parent must exist."""
    with FSView(Path("/")) as host:
        try:
            loc = host.walk(lexical_parts(dst))
        except OSError as e:
            raise InvalidArgument(_go_error("stat", dst, e)) from e
        with loc:
            st = loc.lstat()
            real = loc.parts
    directory, name = _plan(src_is_dir, src_base, real, st is not None, st is not None and stat.S_ISDIR(st.st_mode),
                            asserts_directory(dst))
    with FSView(Path(_show(directory))) as target:
        extractor = _Extractor(target, (), lambda e: None)
        return extractor.extract(_renamed(entries, src_base, name))


def _renamed(entries: Iterator[Entry], old: str, new: str) -> Iterator[Entry]:
    """Docker's RebaseArchiveEntries: the source's top name `old` becomes `new` (hard link targets too)."""
    if old == new:
        yield from entries
        return
    prefix = old + "/"

    def rebase(name: str) -> str:
        if name == old:
            return new
        if name.startswith(prefix):
            return new + "/" + name[len(prefix):]
        return name

    for e in entries:
        e.name = rebase(e.name)
        if e.kind == "hardlink":
            e.linkname = rebase(e.linkname)
        yield e


def copy_in(engine, c, container_name: str, src: str | BinaryIO, dst: str, *, follow_link: bool = False,
            archive: bool = False) -> int:
    """`cp SRC CONTAINER:DST`: SRC a host path, or a binary stream holding a tar archive (`-`) to extract in the
    directory DST. Files are owned by the container's root unless `archive` keeps the source's owners.
    Returns the bytes of archive copied."""
    owner: Owner = (lambda e: (e.uid, e.gid)) if archive else (lambda e: (0, 0))
    from barque.container.userns import writes_host_ids

    if writes_host_ids(c):
        owner = _remapped(owner)
    with container_view(engine, c, writable=True) as view:
        wanted = lexical_parts(dst)
        try:
            with view.walk(wanted) as loc:  # a final symlink is followed, as Docker's CLI follows it
                st, real = loc.lstat(), loc.parts
        except OSError:
            st, real = None, wanted  # the parent is missing: said below, when it is looked for
        if st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise InvalidArgument(f'destination "{container_name}:{dst}" must be a directory or a regular file: '
                                  "got a device")
        if st is not None and not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            raise InvalidArgument(f'destination "{container_name}:{dst}" must be a directory or a regular file: '
                                  "got an irregular file")
        dst_is_dir = st is not None and stat.S_ISDIR(st.st_mode)
        if not isinstance(src, str):
            if not dst_is_dir:
                raise InvalidArgument(f'destination "{container_name}:{dst}" must be a directory')
            return _extract_in(view, container_name, real, read_tar(src), owner)
        host_src = _absolute(src)
        with FSView(Path("/")) as host:
            try:
                hloc = host.walk(lexical_parts(host_src), follow_last=asserts_directory(src) or follow_link)
            except OSError as e:
                raise InvalidArgument(_go_error("lstat", host_src.rstrip("/."), e)) from e
            with hloc:
                hst = hloc.lstat()
                if hst is None:
                    raise InvalidArgument(f"lstat {_show(hloc.parts)}: no such file or directory")
                src_is_dir = stat.S_ISDIR(hst.st_mode)
                if asserts_directory(src) and not src_is_dir:
                    raise InvalidArgument(f"lstat {host_src}: not a directory")
                directory, name = _plan(src_is_dir, _base(src), real, st is not None, dst_is_dir,
                                        asserts_directory(dst))
                return _extract_in(view, container_name, directory, walk_entries(host, hloc, name), owner)


def _remapped(owner: Owner) -> Owner:
    """The owners as the host stores them for a remapped container whose writable layer holds host ids: its root
    (0) is the first id of its range."""
    from barque.container.userns import remap_ranges, to_host

    uid_map, gid_map = remap_ranges()

    def host_id(mapping: list, value: int, what: str) -> int:
        host = to_host(mapping, value)
        if host is None:
            raise InvalidArgument(f"cannot copy a file owned by {what} {value}: it is outside the container's "
                                  "user namespace")
        return host

    def mapped(e: Entry) -> tuple[int, int] | None:
        ids = owner(e)
        if ids is None:
            return None
        return host_id(uid_map, ids[0], "uid"), host_id(gid_map, ids[1], "gid")

    return mapped


def _extract_in(view: FSView, container_name: str, directory: Parts, entries: Iterator[Entry], owner: Owner) -> int:
    """dockerd's ContainerExtractToDir: the directory must exist and be writable as the container's mounts say."""
    try:
        with view.walk(directory, want_dir=True) as loc:
            holder = loc.bind
    except FileNotFoundError:
        raise NotFound(f"Could not find the file {_show(directory)} in container {container_name}") from None
    except NotADirectoryError:
        raise InvalidArgument("extraction point is not a directory") from None
    extractor = _Extractor(view, directory, owner)
    extractor.check_writable(holder)
    return extractor.extract(entries)
