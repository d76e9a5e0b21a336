"""Paths from untrusted archives, confined to a root directory.

Entry names are cleaned lexically (a leading "/" is dropped, "." and empty components vanish, ".." pops) and
refused when they climb above the root. Directories are then reached one component at a time through file
descriptors opened with O_NOFOLLOW; a symlink met on the way is resolved the way a chroot would resolve it (an
absolute target starts again at the root, ".." never goes above it), which is what Docker gets by unpacking
inside a chroot and containerd by its RootPath. The last component is never followed: callers act on it
relative to the parent's descriptor. Nothing a tar contains can therefore make barque write outside the root.
"""

from __future__ import annotations

import os
import stat
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from barque.errors import InvalidArgument

__all__ = ["clean_parts", "RootDir", "proc_path"]

_MAX_SYMLINKS = 40  # as the kernel's MAXSYMLINKS
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

Parts = tuple[str, ...]


def clean_parts(name: str, *, what: str = "tar entry") -> Parts:
    """The components of an archive path, or InvalidArgument if it climbs out of the root.

    '/etc/x' and './etc/x' both give ('etc', 'x'); 'a/../../x' is refused; '' and '/' give () (the root).
    """
    while name.startswith("./"):  # GNU tar's usual prefix
        name = name[2:]
    if name and ".." not in name and "//" not in name and "/./" not in name and name[0] != "/" \
            and not name.endswith(("/.", "/")) and name != ".":
        return tuple(name.split("/"))  # already clean: the common case
    parts: list[str] = []
    for comp in name.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                raise InvalidArgument(f"{what} {name!r} points outside the root directory")
            parts.pop()
            continue
        parts.append(comp)
    return tuple(parts)


class RootDir:
    """A directory tree that paths are resolved inside of. Close it (or use ``with``) to release descriptors.

    Directory descriptors are cached (LRU); call :meth:`invalidate` whenever a directory or symlink inside the
    tree is removed or replaced, since a cached descriptor would still point to the old directory. Descriptors
    handed out stay valid until the next :meth:`collect`.

    ``pending`` is for a caller that creates entries on other threads: it is told the (symlink-free) path of a
    component found missing, waits for whatever is about to be made there, and returns True if something was,
    so that the walk looks again instead of taking the name as free (and making a directory over it).
    """

    def __init__(self, root: Path, *, cache_size: int = 64, pending: Callable[[Parts], bool] | None = None) -> None:
        self.path = Path(root)
        self._pending = pending
        self.fd = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self._cache: OrderedDict[tuple[Parts, bool], tuple[int, Parts]] = OrderedDict()
        self._cache_size = cache_size
        self._retired: list[int] = []

    def __enter__(self) -> "RootDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.invalidate()
        self.collect()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def invalidate(self) -> None:
        """Forget cached directories. Their descriptors stay open until :meth:`collect`, so a caller in the middle
        of an operation on one (the parent of an entry being replaced) can finish it."""
        self._retired.extend(fd for fd, _ in self._cache.values())
        self._cache.clear()

    def collect(self) -> None:
        """Close descriptors retired by :meth:`invalidate` or evicted from the cache."""
        while self._retired:
            os.close(self._retired.pop())

    def resolve_dir(
        self,
        parts: Parts,
        *,
        create: bool = False,
        follow: bool = True,
        on_create: Callable[[Parts], None] | None = None,
    ) -> tuple[int, Parts] | None:
        """An O_PATH descriptor of the directory ``parts`` and its symlink-free path from the root.

        The descriptor belongs to the cache: do not close it. Missing directories are created (mode 0755) when
        ``create``, with ``on_create`` told their path; otherwise None. ``follow=False`` answers None rather
        than cross a symlink. A non-directory in the way is an InvalidArgument when creating, else None.
        """
        hit = self._cache.get(parts)
        if hit is not None:
            self._cache.move_to_end(parts)
            # a path resolved without crossing a symlink resolves to itself
            return hit if follow or hit[1] == parts else None
        label = "/".join(parts)
        found: object = _RESTART
        # start from the deepest cached ancestor that is a real directory (the common case: a sibling's parent)
        for k in range(len(parts) - 1, 0, -1):
            base = self._cache.get(parts[:k])
            if base is not None and base[1] == parts[:k]:
                found = self._walk(parts[k:], base, label, create=create, follow=follow, on_create=on_create)
                break
        if found is _RESTART:
            found = self._walk(parts, None, label, create=create, follow=follow, on_create=on_create)
        if found is None:
            return None
        assert isinstance(found, tuple)
        self._cache[parts] = found
        if len(self._cache) > self._cache_size:
            _, (old_fd, _) = self._cache.popitem(last=False)
            self._retired.append(old_fd)
        return found

    def _walk(self, parts: Parts, base: tuple[int, Parts] | None, label: str, *, create: bool, follow: bool,
              on_create: Callable[[Parts], None] | None) -> tuple[int, Parts] | None | object:
        """Walk ``parts`` from the root, or from a cached real directory ``base``; from a base, anything that
        needs the path above it (a symlink, "..") answers _RESTART."""
        base_fd = base[0] if base is not None else self.fd
        todo = list(reversed(parts))  # a stack: next component last
        stack: list[int] = []  # descriptors below the base, one per resolved component
        resolved: list[str] = list(base[1]) if base is not None else []
        links = 0

        def top() -> int:
            return stack[-1] if stack else base_fd

        try:
            while todo:
                comp = todo.pop()
                if comp in ("", "."):
                    continue
                if comp == "..":
                    if stack:
                        os.close(stack.pop())
                        resolved.pop()
                    elif base is not None:
                        return _RESTART
                    continue
                try:
                    stack.append(os.open(comp, _DIR_FLAGS, dir_fd=top()))
                    resolved.append(comp)
                    continue
                except FileNotFoundError:  # (a dangling symlink gives ENOTDIR, handled below)
                    if self._pending is not None and self._pending(tuple(resolved) + (comp,)):
                        todo.append(comp)  # it was being made: look again
                        continue
                    if not create:
                        return None
                    os.mkdir(comp, 0o755, dir_fd=top())
                    if on_create is not None:
                        on_create(tuple(resolved) + (comp,))
                    todo.append(comp)  # and open it
                    continue
                except NotADirectoryError:
                    pass
                # not a directory: a symlink to resolve, or something in the way
                st = os.lstat(comp, dir_fd=top())
                if not stat.S_ISLNK(st.st_mode):
                    if create:
                        where = "/".join(resolved + [comp])
                        raise InvalidArgument(f"cannot create {label!r}: {where!r} is not a directory")
                    return None
                if not follow:
                    return None
                if base is not None:
                    return _RESTART
                links += 1
                if links > _MAX_SYMLINKS:
                    raise InvalidArgument(f"too many levels of symbolic links resolving {label!r}")
                target = os.readlink(comp, dir_fd=top())
                if target.startswith("/"):
                    while stack:
                        os.close(stack.pop())
                    resolved.clear()
                todo.extend(reversed(target.split("/")))
            fd = os.dup(top()) if not stack else stack.pop()
            return fd, tuple(resolved)
        finally:
            for fd in stack:
                os.close(fd)


_RESTART = object()


def proc_path(dir_fd: int, name: str) -> str:
    """A path naming ``name`` inside the directory open as ``dir_fd``, for calls that take no dir_fd (lsetxattr).

    The kernel reaches the directory through the descriptor itself, not by walking its path again.
    """
    return f"/proc/self/fd/{dir_fd}/{name}"
