"""The Engine API's archive of a container path: its stat (`HEAD`), the path as a tar (`GET`), a tar extracted into a
directory (`PUT`) — dockerd's containerStatPath, containerArchivePath and containerExtractToDir, on barque.container.copy's
safe resolution and tar streams (the same code `barque cp` uses).

A path is resolved as dockerd resolves it: its directory following symlinks inside the container, its last
component not (a trailing "/" or "/." follows it). The stat is Docker's ContainerPathStat: `mode` is a Go
os.FileMode (permission bits plus Go's type bits: 1<<31 directory, 1<<27 symlink…), `mtime` RFC 3339 with
nanoseconds, `linkTarget` a symlink's target resolved inside the container.

Extraction: files take the owners their tar entries give (dockerd's default), or with `copy_uid_gid` the
container's configured user's when it has one; `no_overwrite_dir_non_dir` refuses to replace a directory by a
non-directory or the reverse, else the one in the way is removed.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from typing import BinaryIO

from barque.errors import InvalidArgument, NotFound

__all__ = ["go_file_mode", "go_time", "stat_path", "archive_path", "extract_archive", "EXTRACT_ERROR_PREFIX"]

#: how dockerd words a failure while it extracts (its extraction runs as a child process)
EXTRACT_ERROR_PREFIX = "Error processing tar file(exit status 1): "

_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE, _GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
_GO_SETUID, _GO_SETGID, _GO_CHARDEV, _GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


def go_file_mode(mode: int) -> int:
    """A unix st_mode as Go's os.FileMode (what Docker's JSON carries)."""
    out = mode & 0o777
    kind = stat.S_IFMT(mode)
    out |= {stat.S_IFDIR: _GO_DIR, stat.S_IFLNK: _GO_SYMLINK, stat.S_IFBLK: _GO_DEVICE,
            stat.S_IFCHR: _GO_DEVICE | _GO_CHARDEV, stat.S_IFIFO: _GO_PIPE, stat.S_IFSOCK: _GO_SOCKET}.get(kind, 0)
    if mode & stat.S_ISUID:
        out |= _GO_SETUID
    if mode & stat.S_ISGID:
        out |= _GO_SETGID
    if mode & stat.S_ISVTX:
        out |= _GO_STICKY
    return out


def go_time(ns: int) -> str:
    """Go's time.Time in JSON (RFC 3339, nanoseconds without trailing zeros), in UTC."""
    secs, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def _name(path: str) -> str:
    """Go's filepath.Base of the absolute path: "/" for the root, "." for `DIR/.`."""
    clean = path.rstrip("/")
    if not clean:
        return "/"
    return clean.rsplit("/", 1)[-1] or "/"


def _not_found(path: str, container_name: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {container_name}")


def _resolve(view, path: str, container_name: str):
    """The Location of `path` (its last component unresolved unless the path asserts a directory) and its lstat."""
    from barque.container.copy import asserts_directory, lexical_parts

    try:
        loc = view.walk(lexical_parts(path), follow_last=asserts_directory(path))
    except (FileNotFoundError, NotADirectoryError):
        raise _not_found(path, container_name) from None
    except OSError as e:
        raise InvalidArgument(f"lstat {path}: {(e.strerror or str(e)).lower()}") from e
    st = loc.lstat()
    if st is None:
        loc.close()
        raise _not_found(path, container_name)
    if asserts_directory(path) and not stat.S_ISDIR(st.st_mode):
        loc.close()
        raise InvalidArgument(f"lstat {path}: not a directory")
    return loc, st


def _link_target(view, loc) -> str:
    """A symlink's target as dockerd reports it: fully resolved inside the container, absolute."""
    try:
        with view.walk(loc.parts, follow_last=True) as target:
            return "/" + "/".join(target.parts)
    except OSError:
        from barque.container.copy import lexical_parts

        try:
            link = os.readlink(loc.name, dir_fd=loc.dir_fd)
        except OSError:
            return ""
        base = () if link.startswith("/") else loc.parts[:-1]
        return "/" + "/".join(lexical_parts("/".join(base) + "/" + link))


def _stat_of(view, loc, st: os.stat_result, path: str) -> dict:
    return {"name": _name(path), "size": st.st_size, "mode": go_file_mode(st.st_mode),
            "mtime": go_time(st.st_mtime_ns),
            "linkTarget": _link_target(view, loc) if stat.S_ISLNK(st.st_mode) else ""}


def _absolute(path: str) -> str:
    """dockerd takes every path as absolute in the container."""
    return path if path.startswith("/") else "/" + path


def stat_path(engine, c, container_name: str, path: str) -> dict:
    """Docker's ContainerPathStat of `path` in `c`; NotFound with Docker's message when it does not exist."""
    from barque.container.copy import container_view

    path = _absolute(path)
    with container_view(engine, c, writable=False) as view:
        loc, st = _resolve(view, path, container_name)
        with loc:
            return _stat_of(view, loc, st, path)


def archive_path(engine, c, container_name: str, path: str, out: BinaryIO,
                 on_stat: Callable[[dict], None] | None = None) -> int:
    """Write `path` of `c` to `out` as a tar, its entries named from the path's last component (Docker's rebase);
    `on_stat` gets the path's stat before the first byte. Returns the bytes written."""
    from barque.container.copy import _base, container_owned, container_view, walk_entries, write_tar

    path = _absolute(path)
    with container_view(engine, c, writable=False) as view:
        loc, st = _resolve(view, path, container_name)
        with loc:
            if on_stat is not None:
                on_stat(_stat_of(view, loc, st, path))
            return write_tar(container_owned(c, walk_entries(view, loc, _base(path))), out)


def extract_archive(engine, c, container_name: str, path: str, stream: BinaryIO, *,
                    no_overwrite_dir_non_dir: bool = False, copy_uid_gid: bool = False,
                    on_ready: Callable[[], None] | None = None) -> int:
    """Extract the tar read from `stream` into the directory `path` of `c` (followed through symlinks; it must
    exist). `on_ready` is called once the destination is known good, before the first byte is read. Returns the
    bytes of archive taken. Failures of the extraction itself carry dockerd's prefix (EXTRACT_ERROR_PREFIX)."""
    from barque.container.copy import _Extractor, container_view, lexical_parts, read_tar
    from barque.container.userns import writes_host_ids
    from barque.errors import BarqueError

    path = _absolute(path)
    owner = lambda e: (e.uid, e.gid)  # noqa: E731 - dockerd's default: the archive's owners
    with container_view(engine, c, writable=True) as view:
        if copy_uid_gid:
            fixed = _user_in(view, c)
            if fixed is not None:
                owner = lambda e: fixed  # noqa: E731
        if writes_host_ids(c):
            from barque.container.copy import _remapped

            owner = _remapped(owner)
        try:
            with view.walk(lexical_parts(path), want_dir=False) as loc:
                st, real, holder = loc.lstat(), loc.parts, loc.bind
        except (FileNotFoundError, NotADirectoryError):
            raise _not_found(path, container_name) from None
        except OSError as e:
            raise InvalidArgument(f"lstat {path}: {(e.strerror or str(e)).lower()}") from e
        if st is None:
            raise _not_found(path, container_name)
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidArgument("extraction point is not a directory")
        try:
            with view.walk(real, want_dir=True) as loc:
                holder = loc.bind
        except OSError:
            raise _not_found(path, container_name) from None
        extractor = _Extractor(view, real, owner)
        extractor.no_overwrite_dir_non_dir = no_overwrite_dir_non_dir
        extractor.check_writable(holder)
        if on_ready is not None:
            on_ready()
        try:
            return extractor.extract(read_tar(stream))
        except BarqueError as e:
            raise type(e)(EXTRACT_ERROR_PREFIX + e.message) from None
        except OSError as e:
            raise InvalidArgument(EXTRACT_ERROR_PREFIX + (e.strerror or str(e))) from None


def _user_in(view, c) -> tuple[int, int] | None:
    """The container's Config.User as ids, read from its own /etc/passwd and /etc/group (None: no user set)."""
    user = (c.record.get("Config") or {}).get("User") or ""
    if not user:
        return None
    from barque.container.rootfs import resolve_user

    uid, gid, _extra, _home = resolve_user(view.root, user)
    return uid, gid
