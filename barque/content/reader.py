"""Readers that digest and count what passes through them."""

from __future__ import annotations

from typing import BinaryIO

from barque.oci.digest import Digest, Digester


class DigestingReader:
    """Wraps a stream; every byte read is digested and counted. `drain()` reads to the end."""

    def __init__(self, f: BinaryIO, algorithm: str = "sha256") -> None:
        self._f = f
        self._d = Digester(algorithm)

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        if data:
            self._d.update(data)
        return data

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    @property
    def size(self) -> int:
        return self._d.size

    def digest(self) -> Digest:
        return self._d.digest()


class CountingReader:
    """Wraps a stream and counts the bytes read through it (cheaper than digesting when a digest is not needed)."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.size += len(data)
        return data

    def readinto(self, buf) -> int:
        if hasattr(self._f, "readinto"):
            n = self._f.readinto(buf)
        else:
            data = self._f.read(len(buf))
            n = len(data)
            buf[:n] = data
        self.size += n or 0
        return n

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(1 << 20):
            pass
