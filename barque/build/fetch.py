"""ADD's remote sources: a URL fetched into a temporary file, its digest checked against `--checksum`.

Plain `urllib` is enough here: one GET per source, streamed to disk, and nothing else of an HTTP client is needed
(the registry client, which needs far more, is built on aiohttp).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from email.utils import parsedate_to_datetime
from pathlib import Path

from barque.errors import DataCorruption, InvalidArgument, Unavailable

__all__ = ["fetch"]

TIMEOUT_S = 60


def fetch(url: str, checksum: str | None, stack) -> tuple[Path, float | None, str]:
    """(the downloaded file, its Last-Modified time or None, sha256:… of its content)."""
    algorithm, expected = "sha256", None
    if checksum:
        algorithm, _, expected = checksum.partition(":")
        if algorithm not in ("sha256", "sha384", "sha512") or not expected:
            raise InvalidArgument(f"invalid checksum {checksum!r}: expected sha256:HEX (or sha384, sha512)")
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="barque-add-")))
    target = tmp / "download"
    h = hashlib.new(algorithm)
    plain = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp, open(target, "wb") as f:
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                h.update(chunk)
                plain.update(chunk)
                f.write(chunk)
            modified = resp.headers.get("Last-Modified")
    except urllib.error.HTTPError as e:
        raise Unavailable(f"ADD failed: failed to GET {url} with status {e.code}: {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise Unavailable(f"ADD failed: cannot fetch {url}: {getattr(e, 'reason', e)}") from None
    if expected and h.hexdigest() != expected.lower():
        raise DataCorruption(f"ADD failed: digest mismatch for {url}: expected {algorithm}:{expected}, got "
                             f"{algorithm}:{h.hexdigest()}")
    mtime = None
    if modified:
        try:
            mtime = parsedate_to_datetime(modified).timestamp()
            os.utime(target, (mtime, mtime))
        except (TypeError, ValueError):
            mtime = None
    os.chmod(target, 0o600)
    return target, mtime, "sha256:" + plain.hexdigest()
