"""Reading an image archive — Docker's `save` format or an OCI image layout, as a tar stream or a directory.

Large members (layers, blobs) stream straight into the content store as they are read, so a multi-gigabyte
archive never sits in memory or in a temporary copy; small metadata files are kept in memory until the archive's
index (manifest.json / index.json, which may come last) says what they are.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
from pathlib import Path
from typing import BinaryIO

from barque.content import ContentStore
from barque.errors import DataCorruption, InvalidArgument
from barque.oci.digest import Digest

SMALL = 4 << 20  # metadata files (JSON) are kept in memory up to this size


def _norm(name: str) -> str:
    name = posixpath.normpath("/" + name.replace("\\", "/")).lstrip("/")
    return name


class ArchiveContents:
    def __init__(self, content: ContentStore) -> None:
        self.content = content
        self.small: dict[str, bytes] = {}
        self.blobs: dict[str, tuple[Digest, int]] = {}
        self.links: dict[str, str] = {}

    # ---- reading ---------------------------------------------------------------------------------------------------
    def read_tar(self, stream: BinaryIO, seekable: bool = False) -> None:
        """Read a tar; `seekable` (a plain file) lets tarfile read members straight from it, without its stream
        layer's extra copy."""
        try:
            with tarfile.open(fileobj=stream, mode="r:" if seekable else "r|") as tf:
                for member in tf:
                    name = _norm(member.name)
                    if member.issym():
                        self.links[name] = _norm(posixpath.join(posixpath.dirname(name), member.linkname))
                    elif member.islnk():
                        self.links[name] = _norm(member.linkname)
                    elif member.isreg():
                        src = tf.extractfile(member)
                        self._take(name, src, member.size)
        except tarfile.ReadError as e:
            raise DataCorruption(f"invalid archive: not a tar file or corrupt ({e})") from e
        except EOFError as e:
            raise DataCorruption(f"invalid archive: truncated tar ({e})") from e
        except tarfile.TarError as e:
            raise DataCorruption(f"invalid archive: {e}") from e

    def read_dir(self, root: Path) -> None:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fn in sorted(filenames):
                path = Path(dirpath) / fn
                name = _norm(str(path.relative_to(root)))
                if path.is_symlink():
                    self.links[name] = _norm(posixpath.join(posixpath.dirname(name), os.readlink(path)))
                    continue
                with open(path, "rb") as f:
                    self._take(name, f, path.stat().st_size)

    def _take(self, name: str, src: BinaryIO, size: int) -> None:
        expected = _blob_digest(name)
        if size <= SMALL and expected is None and not name.endswith("layer.tar"):
            data = _read_exact(src, size, name)
            self.small[name] = data
            return
        try:
            info = self.content.ingest(src, expected, size)
        except DataCorruption as e:
            raise DataCorruption(f"invalid archive: {name}: {e}") from e
        self.blobs[name] = (info.digest, info.size)

    # ---- lookup ----------------------------------------------------------------------------------------------------
    def resolve(self, name: str) -> str:
        name = _norm(name)
        for _ in range(40):
            if name in self.links:
                name = self.links[name]
            else:
                return name
        raise InvalidArgument(f"invalid archive: too many levels of links at {name}")

    def has(self, name: str) -> bool:
        name = self.resolve(name)
        return name in self.small or name in self.blobs

    def read(self, name: str) -> bytes:
        name = self.resolve(name)
        if name in self.small:
            return self.small[name]
        if name in self.blobs:
            return self.content.read(self.blobs[name][0])
        raise InvalidArgument(f"invalid archive: {name} is referenced but not in the archive")

    def blob(self, name: str) -> tuple[Digest, int]:
        """The member as a blob in the content store (small members are stored now)."""
        name = self.resolve(name)
        if name in self.blobs:
            return self.blobs[name]
        if name in self.small:
            data = self.small[name]
            expected = _blob_digest(name)
            try:
                info = self.content.add(data, expected)
            except DataCorruption as e:
                raise DataCorruption(f"invalid archive: {name}: {e}") from e
            self.blobs[name] = (info.digest, info.size)
            return self.blobs[name]
        raise InvalidArgument(f"invalid archive: {name} is referenced but not in the archive")


def _blob_digest(name: str) -> Digest | None:
    parts = name.split("/")
    if len(parts) >= 3 and parts[-3] == "blobs":
        try:
            return Digest.parse(f"{parts[-2]}:{parts[-1]}")
        except InvalidArgument:
            return None
    return None


def _read_exact(src: BinaryIO, size: int, name: str) -> bytes:
    data = src.read(size)
    if len(data) != size:
        raise DataCorruption(f"invalid archive: {name} is truncated ({len(data)} of {size} bytes)")
    return data
