"""Streaming (de)compression of layer blobs: gzip through isal, zstd through zstandard.

Both directions work on file objects without temporary files. Decompression is driven through the
codecs' ``decompressobj`` interfaces rather than their file wrappers because only those report whether the
stream really ended (``eof``): ``zstandard``'s ``stream_reader`` returns a short, silent EOF on a truncated
frame, and a truncated layer must never pass as a smaller valid one.
"""

from __future__ import annotations

import io
import logging
from typing import BinaryIO, Protocol

import zstandard
from isal import isal_zlib

from barque.errors import DataCorruption, InvalidArgument

__all__ = ["COMPRESSIONS", "detect_compression", "open_decompressed", "open_compressor"]

log = logging.getLogger(__name__)

COMPRESSIONS = ("", "gzip", "zstd")

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 20
# zstd's decompressobj cannot bound its output, and one 128 KiB RLE block can expand 32768-fold; feeding
# it small input pieces caps a single call's output (16 KiB in -> at most 512 MiB out, usually ~64 KiB).
_ZSTD_FEED = 16 << 10
_GZIP_WBITS = 31  # deflate with a gzip header and trailer


def detect_compression(head: bytes) -> str:
    """Name the compression of a stream from its first bytes: ``"gzip"``, ``"zstd"`` or ``""`` (none)."""
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return ""


def _check_compression(compression: str) -> None:
    if compression not in COMPRESSIONS:
        raise InvalidArgument(f"unsupported layer compression {compression!r}: expected one of gzip, zstd or none")


class _Decompressor(Protocol):
    eof: bool
    unused_data: bytes
    unconsumed_tail: bytes

    def decompress(self, data: bytes, max_length: int = ...) -> bytes: ...


class _DecompressingReader(io.RawIOBase):
    """A raw reader yielding the decompressed bytes of a (possibly multi-member) gzip or zstd stream.

    Truncation, corrupt data and trailing garbage raise DataCorruption.
    """

    def __init__(self, src: BinaryIO, compression: str, head: bytes = b"") -> None:
        super().__init__()
        self._src = src
        self._compression = compression
        self._pending_in: bytes | memoryview = head  # compressed input not yet handed to a decompressor
        self._out = memoryview(b"")  # decompressed output not yet returned
        self._dec: _Decompressor | None = None
        self._started = False  # whether any member/frame began
        self._done = False
        self._consumed = 0  # compressed bytes read from src (for messages)

    def readable(self) -> bool:
        return True

    def _new_decompressor(self) -> _Decompressor:
        if self._compression == "gzip":
            return isal_zlib.decompressobj(wbits=_GZIP_WBITS)
        return zstandard.ZstdDecompressor().decompressobj()

    def _read_src(self) -> bytes:
        data = self._src.read(_CHUNK)
        self._consumed += len(data)
        return data

    def _fail(self, what: str, cause: BaseException | None = None) -> DataCorruption:
        return DataCorruption(f"{self._compression} stream {what} (after {self._consumed} compressed bytes)", cause=cause)

    def _between_members(self) -> bool:
        """At a member boundary: start the next member, or finish. Returns False when the stream is done."""
        data = bytes(self._pending_in)
        while True:
            if self._compression == "gzip":
                # like gzip(1) and Python's gzip module, accept zero padding after the last member
                data = data.lstrip(b"\0")
            if data:
                break
            data = self._read_src()
            if not data:
                if not self._started:
                    raise self._fail("is empty")
                return False
        magic = _GZIP_MAGIC if self._compression == "gzip" else _ZSTD_MAGIC
        if self._started and not data.startswith(magic[: len(data)]):
            raise self._fail("has trailing data that is not a new member")
        self._pending_in = data
        self._dec = self._new_decompressor()
        self._started = True
        return True

    def _produce(self, want: int) -> bytes:
        """Decompress until some output is available or the stream ends (b"")."""
        while True:
            if self._dec is None:
                if not self._between_members():
                    self._done = True
                    return b""
            dec = self._dec
            assert dec is not None
            if not self._pending_in:
                self._pending_in = self._read_src()
                if not self._pending_in:
                    raise self._fail("is truncated: it ends inside a compressed member")
            try:
                if self._compression == "gzip":
                    out = dec.decompress(self._pending_in, want)
                    # after the member's end the rest of the input is in unused_data (unconsumed_tail may repeat it)
                    if dec.eof:
                        self._pending_in = dec.unused_data
                        self._dec = None
                    else:
                        self._pending_in = dec.unconsumed_tail
                else:
                    pending = memoryview(self._pending_in)
                    out = dec.decompress(pending[:_ZSTD_FEED])
                    rest = pending[_ZSTD_FEED:]
                    if dec.eof:
                        self._pending_in = dec.unused_data + bytes(rest)
                        self._dec = None
                    else:
                        self._pending_in = rest
            except (isal_zlib.error, zstandard.ZstdError) as e:
                raise self._fail(f"is corrupt: {e}", e) from e
            if out:
                return out

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``b`` as far as the stream allows (one zstd call yields only ~64 KiB; callers read MiBs)."""
        want = len(b)
        got = 0
        while got < want:
            if not self._out:
                if self._done:
                    break
                self._out = memoryview(self._produce(max(want - got, 64 << 10)))
                if not self._out:
                    break
            n = min(want - got, len(self._out))
            b[got : got + n] = self._out[:n]
            self._out = self._out[n:]
            got += n
        return got


def open_decompressed(f: BinaryIO, compression: str | None = None) -> BinaryIO:
    """Wrap ``f`` so that reading yields uncompressed bytes.

    ``compression`` None detects it from the first bytes (consumed from ``f`` and replayed). The result is a
    buffered reader; closing it does not close ``f``.
    """
    head = b""
    if compression is None:
        head = f.read(4)
        while len(head) < 4:
            more = f.read(4 - len(head))
            if not more:
                break
            head += more
        compression = detect_compression(head)
    _check_compression(compression)
    if compression == "":
        raw: io.RawIOBase = _PrefixedReader(head, f)
    else:
        raw = _DecompressingReader(f, compression, head)
    return io.BufferedReader(raw, buffer_size=_CHUNK)  # type: ignore[return-value]


class _PrefixedReader(io.RawIOBase):
    """Replays bytes already peeked from ``src`` before reading on from it."""

    def __init__(self, head: bytes, src: BinaryIO) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._src = src

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        readinto = getattr(self._src, "readinto", None)
        if readinto is not None:
            return readinto(b) or 0
        data = self._src.read(len(b))
        b[: len(data)] = data
        return len(data)


class _CompressingWriter(io.RawIOBase):
    """Compresses what is written into ``out``; close() writes the stream's end but leaves ``out`` open."""

    def __init__(self, out: BinaryIO, compression: str, level: int | None) -> None:
        super().__init__()
        self._out = out
        if compression == "gzip":
            # isal has levels 0-3; accept zlib's 0-9 and cap them rather than fail a caller thinking in zlib terms
            isal_level = isal_zlib.ISAL_DEFAULT_COMPRESSION if level is None else min(level, isal_zlib.ISAL_BEST_COMPRESSION)
            self._obj = isal_zlib.compressobj(isal_level, isal_zlib.DEFLATED, _GZIP_WBITS)
        else:
            self._obj = zstandard.ZstdCompressor(
                level=3 if level is None else level, write_checksum=True  # as containerd's zstd writer does
            ).compressobj()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a closed compressor")
        data = self._obj.compress(b)
        if data:
            self._out.write(data)
        return len(b)

    def close(self) -> None:
        if not self.closed:
            tail = self._obj.flush()
            if tail:
                self._out.write(tail)
            self._out.flush()
        super().close()


class _PassthroughWriter(io.RawIOBase):
    def __init__(self, out: BinaryIO) -> None:
        super().__init__()
        self._out = out

    def writable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._out.write(b)
        return len(b)

    def close(self) -> None:
        if not self.closed:
            self._out.flush()
        super().close()


def open_compressor(out: BinaryIO, compression: str, level: int | None = None) -> BinaryIO:
    """A writer compressing into ``out`` ("" passes bytes through). close() finalises, ``out`` stays open."""
    _check_compression(compression)
    if level is not None and level < 0:
        raise InvalidArgument(f"compression level must not be negative, got {level}")
    if compression == "":
        return _PassthroughWriter(out)  # type: ignore[return-value]
    return _CompressingWriter(out, compression, level)  # type: ignore[return-value]
