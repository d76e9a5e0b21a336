"""Byte ranges of chunked uploads.

A chunk's ``Content-Range`` is ``START-END`` (inclusive, no unit: the spec's form) or the HTTP form
``bytes START-END/TOTAL`` some clients send. A chunk must start exactly where the upload stands (else 416, with the
upload's current ``Range`` so the client can resume). Responses report progress as ``Range: 0-LAST``.
"""

from __future__ import annotations

import re

from barque.registry.server.errors import RegistryError

__all__ = ["parse_content_range", "progress_range", "check_chunk_start"]

_RANGE_RE = re.compile(r"^(?:bytes[ =])?(\d{1,19})-(\d{1,19})(?:/(\d{1,19}|\*))?$")


def parse_content_range(value: str) -> tuple[int, int]:
    """(start, end) inclusive. Raises BLOB_UPLOAD_INVALID (400) on malformed input."""
    m = _RANGE_RE.match(value.strip())
    if not m:
        raise RegistryError("BLOB_UPLOAD_INVALID", f"malformed Content-Range {value!r}")
    start, end = int(m.group(1)), int(m.group(2))
    if end < start:
        raise RegistryError("BLOB_UPLOAD_INVALID", f"Content-Range {value!r} ends before it starts")
    return start, end


def progress_range(offset: int) -> str:
    """The ``Range`` header of an upload holding `offset` bytes: ``0-(offset-1)``; ``0-0`` for none, as
    distribution sends (clients read the end as the last byte received)."""
    return f"0-{max(offset - 1, 0)}"


def check_chunk_start(start: int, offset: int, location: str, upload_id: str) -> None:
    """A chunk must continue the upload exactly: 416 with the current progress otherwise."""
    if start != offset:
        raise RegistryError(
            "RANGE_INVALID", f"chunk starts at {start}, the upload holds {offset} bytes",
            status=416, message="requested range not satisfiable",
            headers={"Location": location, "Range": progress_range(offset), "Docker-Upload-UUID": upload_id},
        )
