"""Content digests as the OCI image spec defines them: ``algorithm ":" encoded``."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from barque.errors import InvalidArgument

__all__ = ["Digest", "ALGORITHMS", "sha256_of", "Digester"]

# algorithm -> length of the lowercase hex encoding
ALGORITHMS = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")


@dataclass(frozen=True, order=True)
class Digest:
    algorithm: str
    encoded: str

    @classmethod
    def parse(cls, text: str) -> "Digest":
        m = _DIGEST_RE.match(text or "")
        if not m:
            raise InvalidArgument(f"invalid digest {text!r}: expected ALGORITHM:HEX")
        algorithm, encoded = m.group(1), m.group(2)
        if algorithm not in ALGORITHMS:
            raise InvalidArgument(f"unsupported digest algorithm {algorithm!r} in {text!r}")
        if len(encoded) != ALGORITHMS[algorithm] or not re.fullmatch(r"[0-9a-f]+", encoded):
            raise InvalidArgument(f"invalid {algorithm} digest {text!r}: expected {ALGORITHMS[algorithm]} lowercase hex characters")
        return cls(algorithm, encoded)

    @classmethod
    def from_bytes(cls, data: bytes, algorithm: str = "sha256") -> "Digest":
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"

    @property
    def short(self) -> str:
        """The 12-character form Docker prints in listings."""
        return self.encoded[:12]

    def hasher(self) -> "hashlib._Hash":
        return hashlib.new(self.algorithm)


def sha256_of(data: bytes) -> Digest:
    return Digest.from_bytes(data, "sha256")


class Digester:
    """Accumulates a digest and a byte count over a stream."""

    def __init__(self, algorithm: str = "sha256") -> None:
        if algorithm not in ALGORITHMS:
            raise InvalidArgument(f"unsupported digest algorithm {algorithm!r}")
        self.algorithm = algorithm
        self._h = hashlib.new(algorithm)
        self.size = 0

    def update(self, data: bytes) -> None:
        self._h.update(data)
        self.size += len(data)

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._h.hexdigest())
