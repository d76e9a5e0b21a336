"""The distribution spec's error codes, and the one exception the HTTP layer turns into its JSON error body.

Every refusal the registry makes is a `RegistryError` carrying a spec code, an HTTP status and a detail; the
middleware in `app.py` renders it as ``{"errors": [{"code", "message", "detail"}]}``. Statuses follow the spec's
table and, where the spec leaves room, what Docker's distribution answers (405 UNSUPPORTED for a disabled delete or a
read-only registry, 413 for an oversized body).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["RegistryError", "CODES", "error_body"]

# code -> (default HTTP status, message), as in the spec's error code table (and distribution's errcode package)
CODES: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (400, "manifest references a manifest or blob unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown to registry"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "the operation is unsupported"),
    "TOOMANYREQUESTS": (429, "too many requests"),
    "RANGE_INVALID": (416, "invalid content range"),
    "PAGINATION_NUMBER_INVALID": (400, "invalid number of results requested"),
    "TAG_INVALID": (400, "manifest tag did not match URI"),
}


class RegistryError(Exception):
    """A refusal with a spec error code. `headers` go on the response (a 401's challenge, a 416's Range)."""

    def __init__(self, code: str, detail: Any = None, *, status: int | None = None, message: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        default_status, default_message = CODES[code]
        self.code = code
        self.status = status or default_status
        self.message = message or default_message
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(f"{code}: {self.message}" + (f" ({detail})" if detail else ""))


def error_body(*errors: RegistryError) -> bytes:
    """The spec's error body for one or more errors."""
    out = []
    for e in errors:
        item: dict[str, Any] = {"code": e.code, "message": e.message}
        if e.detail is not None:
            item["detail"] = e.detail
        out.append(item)
    return json.dumps({"errors": out}).encode()
