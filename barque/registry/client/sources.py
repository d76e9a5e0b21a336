"""What the client remembers between commands (tables of migration 5 in barque/metadata/db.py):

* ``registry_blobs``: the repositories of a registry known to hold a blob, because it was pulled from or pushed
  there — a push to another repository of the same registry mounts it instead of uploading it again;
* ``compressed_blobs``: the blob a push compressed from a stored layer (kept in the content store), so the next
  push of that layer sends the same bytes without compressing again.
"""

from __future__ import annotations

import time
from typing import Iterable

from barque.oci.digest import Digest

__all__ = ["remember", "repositories_with", "compressed", "remember_compressed"]


def remember(db, registry: str, repository: str, digests: Iterable[Digest]) -> None:
    rows = [(registry, repository, str(d), time.time()) for d in digests]
    if not rows:
        return
    with db.transaction() as conn:
        conn.executemany("INSERT INTO registry_blobs(registry, repository, digest, seen) VALUES (?,?,?,?) "
                         "ON CONFLICT DO UPDATE SET seen=excluded.seen", rows)


def repositories_with(db, registry: str, digest: Digest, exclude: str) -> list[str]:
    """Repositories of `registry` known to hold `digest`, most recently seen first."""
    rows = db.query("SELECT repository FROM registry_blobs WHERE registry=? AND digest=? AND repository<>? "
                    "ORDER BY seen DESC LIMIT 3", (registry, str(digest), exclude))
    return [r["repository"] for r in rows]


def forget(db, registry: str, repository: str, digest: Digest) -> None:
    with db.transaction() as conn:
        conn.execute("DELETE FROM registry_blobs WHERE registry=? AND repository=? AND digest=?",
                     (registry, repository, str(digest)))


def compressed(db, content, source: Digest, compression: str) -> tuple[Digest, int] | None:
    rows = db.query("SELECT digest, size FROM compressed_blobs WHERE source=? AND compression=?",
                    (str(source), compression))
    if not rows:
        return None
    digest = Digest.parse(rows[0]["digest"])
    return (digest, rows[0]["size"]) if content.exists(digest) else None


def remember_compressed(db, source: Digest, compression: str, digest: Digest, size: int) -> None:
    with db.transaction() as conn:
        conn.execute("INSERT INTO compressed_blobs(source, compression, digest, size) VALUES (?,?,?,?) "
                     "ON CONFLICT DO UPDATE SET digest=excluded.digest, size=excluded.size",
                     (str(source), compression, str(digest), size))
