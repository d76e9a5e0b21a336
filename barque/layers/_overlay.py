"""What overlayfs shows through a stack of lower directories, computed without mounting it.

Used to tell whether a path in an upper directory is new or replaces something ("add" vs "modify"), whether a
whiteout is needed at all, where to copy a hard link's target up from, and what metadata a parent directory
created in an upper directory should inherit.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

__all__ = ["OPAQUE_XATTR", "OVERLAY_XATTR_PREFIX", "is_whiteout_device", "is_opaque", "LowerStack"]

OVERLAY_XATTR_PREFIX = "trusted.overlay."
OPAQUE_XATTR = "trusted.overlay.opaque"


def is_whiteout_device(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str | Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


class LowerStack:
    """Lower directories, top-most first, as overlayfs would merge them."""

    def __init__(self, lowers: Sequence[Path]) -> None:
        self.lowers = [Path(p) for p in lowers]
        self._opaque: dict[tuple[int, tuple[str, ...]], bool] = {}

    def __bool__(self) -> bool:
        return bool(self.lowers)

    def _is_opaque(self, index: int, parts: tuple[str, ...], path: Path) -> bool:
        key = (index, parts)
        hit = self._opaque.get(key)
        if hit is None:
            hit = self._opaque[key] = is_opaque(path)
        return hit

    def lookup(self, parts: tuple[str, ...]) -> tuple[Path, os.stat_result] | None:
        """The lower path and stat overlayfs would show for ``parts``, or None if no lower shows it."""
        if not parts:
            return (self.lowers[0], os.lstat(self.lowers[0])) if self.lowers else None
        for index, layer in enumerate(self.lowers):
            path = layer
            for depth, comp in enumerate(parts):
                path = path / comp
                try:
                    st = os.lstat(path)  # every prefix was checked to be a real directory: no symlink followed
                except (FileNotFoundError, NotADirectoryError):
                    break  # absent from this layer: try the next, unless an opaque dir above hid them
                if is_whiteout_device(st):
                    return None
                if depth == len(parts) - 1:
                    return path, st
                if not stat.S_ISDIR(st.st_mode):
                    return None  # a non-directory hides everything below it in the lower layers
                if self._is_opaque(index, parts[: depth + 1], path):
                    # lower layers are hidden below here: only this layer can still show the path
                    return self._lookup_within(path, parts[depth + 1 :])
        return None

    @staticmethod
    def _lookup_within(base: Path, rest: tuple[str, ...]) -> tuple[Path, os.stat_result] | None:
        path = base
        for depth, comp in enumerate(rest):
            path = path / comp
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                return None
            if is_whiteout_device(st):
                return None
            if depth == len(rest) - 1:
                return path, st
            if not stat.S_ISDIR(st.st_mode):
                return None
        return None

    def exists(self, parts: tuple[str, ...]) -> bool:
        return self.lookup(parts) is not None
