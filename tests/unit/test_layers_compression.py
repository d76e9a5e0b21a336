"""Compression round trips, detection, and what broken input looks like to a caller."""

from __future__ import annotations

import gzip
import io
import os

import pytest
import zstandard

from barque.errors import DataCorruption, InvalidArgument
from barque.layers import detect_compression, open_compressor, open_decompressed

PAYLOAD = os.urandom(200_000) + b"\0" * 3_000_000 + b"tail"


def compress(data: bytes, compression: str, level: int | None = None) -> bytes:
    out = io.BytesIO()
    w = open_compressor(out, compression, level)
    for i in range(0, len(data), 100_003):
        w.write(data[i : i + 100_003])
    w.close()
    assert not out.closed  # close() finalises the stream, not the destination
    return out.getvalue()


@pytest.mark.parametrize("compression", ["", "gzip", "zstd"])
def test_round_trip_with_detection(compression: str) -> None:
    blob = compress(PAYLOAD, compression)
    assert detect_compression(blob[:8]) == compression
    assert open_decompressed(io.BytesIO(blob)).read() == PAYLOAD
    assert open_decompressed(io.BytesIO(blob), compression).read() == PAYLOAD
    if compression:
        assert len(blob) < len(PAYLOAD) // 4


def test_output_is_readable_by_other_tools() -> None:
    assert gzip.decompress(compress(PAYLOAD, "gzip")) == PAYLOAD
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(compress(PAYLOAD, "zstd")))
    assert reader.read() == PAYLOAD


def test_input_from_other_tools_and_multiple_members() -> None:
    made_elsewhere = gzip.compress(b"one") + gzip.compress(b"two")
    assert open_decompressed(io.BytesIO(made_elsewhere)).read() == b"onetwo"
    frames = zstandard.ZstdCompressor().compress(b"one") + zstandard.ZstdCompressor().compress(b"two")
    assert open_decompressed(io.BytesIO(frames)).read() == b"onetwo"
    assert open_decompressed(io.BytesIO(gzip.compress(b"x") + b"\0" * 512)).read() == b"x"  # zero padding


def test_same_input_gives_same_bytes() -> None:
    for compression in ("gzip", "zstd"):
        assert compress(PAYLOAD, compression) == compress(PAYLOAD, compression)


def test_detect() -> None:
    assert detect_compression(b"\x1f\x8b\x08\x00") == "gzip"
    assert detect_compression(b"\x28\xb5\x2f\xfd") == "zstd"
    assert detect_compression(b"ustar") == ""
    assert detect_compression(b"") == ""


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
@pytest.mark.parametrize("cut", [0.5, 0.99, "last-byte"])
def test_truncated_input_is_data_corruption(compression: str, cut) -> None:
    blob = compress(PAYLOAD, compression)
    end = len(blob) - 1 if cut == "last-byte" else int(len(blob) * cut)
    with pytest.raises(DataCorruption, match="truncated"):
        open_decompressed(io.BytesIO(blob[:end]), compression).read()


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_corrupt_input_is_data_corruption(compression: str) -> None:
    blob = bytearray(compress(PAYLOAD, compression))
    blob[len(blob) // 3] ^= 0xFF
    with pytest.raises(DataCorruption, match=f"{compression} stream"):
        open_decompressed(io.BytesIO(bytes(blob))).read()


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_trailing_garbage_and_empty_input(compression: str) -> None:
    with pytest.raises(DataCorruption, match="trailing"):
        open_decompressed(io.BytesIO(compress(b"x", compression) + b"garbage")).read()
    with pytest.raises(DataCorruption, match="empty"):
        open_decompressed(io.BytesIO(b""), compression).read()


def test_unknown_compression_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="bzip2"):
        open_decompressed(io.BytesIO(b""), "bzip2")
    with pytest.raises(InvalidArgument):
        open_compressor(io.BytesIO(), "xz")


def test_levels() -> None:
    fast = compress(PAYLOAD, "zstd", 1)
    assert open_decompressed(io.BytesIO(fast)).read() == PAYLOAD
    assert open_decompressed(io.BytesIO(compress(PAYLOAD, "gzip", 9))).read() == PAYLOAD  # zlib-style level: capped
