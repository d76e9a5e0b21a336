"""Blobs on disk under ``<root>/blobs/<algorithm>/<hex>``, written through a verifying, atomic ingest.

A blob is only ever visible complete: bytes stream into ``<root>/ingest/``, the digest and size are checked, the
file is fsynced and then renamed into place. A writer that fails or is abandoned leaves nothing in ``blobs/``.
"""

from __future__ import annotations

import logging
import os

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from barque.errors import DataCorruption, InvalidArgument, NotFound
from barque.oci.digest import ALGORITHMS, Digest, Digester

log = logging.getLogger(__name__)

CHUNK = 1 << 20


@dataclass(frozen=True)
class BlobInfo:
    digest: Digest
    size: int
    created: float


class Writer:
    """One blob being written. Use as a context manager; `commit()` verifies and publishes it."""

    def __init__(self, store: "ContentStore", expected: Digest | None, size: int | None, algorithm: str) -> None:
        self._store = store
        self.expected = expected
        self.expected_size = size
        self._digester = Digester(expected.algorithm if expected else algorithm)
        import tempfile  # here: the container commands import this module without ever writing a blob

        fd, name = tempfile.mkstemp(dir=store.ingest_dir, prefix="ingest-")
        self._path = Path(name)
        self._file = os.fdopen(fd, "wb", buffering=0)
        self._done = False

    @property
    def size(self) -> int:
        return self._digester.size

    def write(self, data: bytes | memoryview) -> int:
        if self.expected_size is not None and self._digester.size + len(data) > self.expected_size:
            raise DataCorruption(
                f"blob {self.expected or ''} is larger than its declared size {self.expected_size}".replace("  ", " ")
            )
        self._digester.update(data)
        view = memoryview(data)
        while view:
            n = self._file.write(view)
            view = view[n:]
        return len(data)

    def copy_from(self, src: BinaryIO, limit: int | None = None) -> int:
        """Stream `src` (up to `limit` bytes) into the blob; returns the bytes copied."""
        copied = 0
        buf = bytearray(CHUNK)
        mv = memoryview(buf)
        while limit is None or copied < limit:
            want = CHUNK if limit is None else min(CHUNK, limit - copied)
            n = src.readinto(mv[:want]) if hasattr(src, "readinto") else _read_into(src, mv[:want])
            if not n:
                break
            self.write(mv[:n])
            copied += n
        return copied

    def commit(self) -> BlobInfo:
        """Verify size and digest, then make the blob visible. Raises DataCorruption and stores nothing on mismatch."""
        if self._done:
            raise InvalidArgument("blob writer already finished")
        try:
            actual = self._digester.digest()
            if self.expected_size is not None and self._digester.size != self.expected_size:
                raise DataCorruption(
                    f"blob {self.expected or actual} is truncated or wrong size: got {self._digester.size} bytes, "
                    f"expected {self.expected_size}"
                )
            if self.expected is not None and actual != self.expected:
                raise DataCorruption(f"digest mismatch: content has {actual}, expected {self.expected}")
            os.fsync(self._file.fileno())
            self._file.close()
            target = self._store.path(actual)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(self._path, 0o444)
            os.rename(self._path, target)  # identical content if it already existed: replacing it is harmless
            self._done = True
            return BlobInfo(actual, self._digester.size, target.stat().st_mtime)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            self._file.close()
        finally:
            self._path.unlink(missing_ok=True)

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.abort()


def _read_into(src: BinaryIO, mv: memoryview) -> int:
    data = src.read(len(mv))
    mv[: len(data)] = data
    return len(data)


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs"
        self.ingest_dir = self.root / "ingest"
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        self.ingest_dir.mkdir(parents=True, exist_ok=True)

    def path(self, digest: Digest) -> Path:
        if digest.algorithm not in ALGORITHMS:
            raise InvalidArgument(f"unsupported digest algorithm {digest.algorithm!r}")
        return self.blobs_dir / digest.algorithm / digest.encoded

    def writer(self, expected: Digest | None = None, size: int | None = None, algorithm: str = "sha256") -> Writer:
        return Writer(self, expected, size, algorithm)

    def ingest(self, src: BinaryIO, expected: Digest | None = None, size: int | None = None,
               algorithm: str = "sha256") -> BlobInfo:
        """Stream `src` into a verified blob. With `size`, reads exactly that many bytes (truncation is an error)."""
        with self.writer(expected, size, algorithm) as w:
            w.copy_from(src, size)
            if size is not None and w.size < size:
                raise DataCorruption(
                    f"blob {expected or ''} is truncated: got {w.size} of {size} bytes".replace("blob  ", "blob ")
                )
            return w.commit()

    def add(self, data: bytes, expected: Digest | None = None, algorithm: str = "sha256") -> BlobInfo:
        with self.writer(expected, len(data) if expected else None, algorithm) as w:
            w.write(data)
            return w.commit()

    def exists(self, digest: Digest) -> bool:
        return self.path(digest).is_file()

    def info(self, digest: Digest) -> BlobInfo:
        try:
            st = self.path(digest).stat()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None
        return BlobInfo(digest, st.st_size, st.st_mtime)

    def open(self, digest: Digest) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def read(self, digest: Digest, max_size: int = 64 << 20) -> bytes:
        with self.open(digest) as f:
            data = f.read(max_size + 1)
        if len(data) > max_size:
            raise InvalidArgument(f"blob {digest} is larger than {max_size} bytes")
        return data

    def delete(self, digest: Digest) -> None:
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def walk(self) -> Iterator[BlobInfo]:
        for algorithm in sorted(ALGORITHMS):
            d = self.blobs_dir / algorithm
            if not d.is_dir():
                continue
            for entry in sorted(os.scandir(d), key=lambda e: e.name):
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                yield BlobInfo(Digest(algorithm, entry.name), st.st_size, st.st_mtime)

    def sweep_ingest(self, older_than: float = 3600.0) -> int:
        """Remove ingest files abandoned by killed processes."""
        import time

        removed = 0
        cutoff = time.time() - older_than
        for entry in os.scandir(self.ingest_dir):
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                pass
        return removed

    def usage(self) -> int:
        return sum(b.size for b in self.walk())


__all__ = ["BlobInfo", "ContentStore", "Writer", "CHUNK"]
