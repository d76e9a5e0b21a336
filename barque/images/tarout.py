"""A minimal sequential tar writer for archives of blobs: headers from tarfile, bodies copied with sendfile."""

from __future__ import annotations

import os
import tarfile
from typing import BinaryIO

BLOCK = 512


class TarOut:
    def __init__(self, out: BinaryIO, mtime: int = 0) -> None:
        self._out = out
        self._mtime = mtime
        self._dirs: set[str] = set()
        try:
            self._fd = out.fileno()
            out.flush()
        except (AttributeError, OSError, ValueError):
            self._fd = None

    def _write(self, data: bytes) -> None:
        self._out.write(data)

    def _header(self, name: str, size: int, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, linkname: str = "") -> bytes:
        ti = tarfile.TarInfo(name)
        ti.size = size
        ti.type = kind
        ti.mode = mode
        ti.mtime = self._mtime
        ti.linkname = linkname
        return ti.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")

    def dir(self, name: str) -> None:
        name = name.rstrip("/") + "/"
        if name in self._dirs:
            return
        self._dirs.add(name)
        self._write(self._header(name, 0, tarfile.DIRTYPE, 0o755))

    def _parents(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.dir("/".join(parts[:i]))

    def add_bytes(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._parents(name)
        self._write(self._header(name, len(data), mode=mode))
        self._write(data)
        self._pad(len(data))

    def add_file(self, name: str, src: BinaryIO, size: int, mode: int = 0o644) -> None:
        """Copy exactly `size` bytes of `src` as member `name` (zero-copy when both ends are files)."""
        self._parents(name)
        self._write(self._header(name, size, mode=mode))
        copied = 0
        if self._fd is not None and hasattr(src, "fileno"):
            try:
                self._out.flush()
                in_fd = src.fileno()
                offset = src.tell()
                while copied < size:
                    n = os.sendfile(self._fd, in_fd, offset + copied, size - copied)
                    if n == 0:
                        break
                    copied += n
            except (OSError, ValueError, AttributeError):
                if copied:  # part of the body is out: falling back would corrupt the archive
                    raise
        while copied < size:
            chunk = src.read(min(1 << 20, size - copied))
            if not chunk:
                raise EOFError(f"{name}: source ended after {copied} of {size} bytes")
            self._write(chunk)
            copied += len(chunk)
        self._pad(size)

    def symlink(self, name: str, target: str) -> None:
        self._parents(name)
        self._write(self._header(name, 0, tarfile.SYMTYPE, 0o777, target))

    def _pad(self, size: int) -> None:
        rem = size % BLOCK
        if rem:
            self._write(b"\0" * (BLOCK - rem))

    def close(self) -> None:
        self._write(b"\0" * (BLOCK * 2))
        self._out.flush()
