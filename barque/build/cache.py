"""The build cache: what a step made, found again by what went into it.

A step's key is the sha256 of its parent state's ID (the config digest, which covers every layer and setting
before it), the instruction with its arguments as expanded, the build arguments a RUN sees, and for COPY and ADD a
digest of the sources' content, names and modes (never their mtimes or owners on the host). The same key on any
later build — or after a reboot — gives the state that step made, so a changed file invalidates its COPY and every
step after it, and nothing before.

Entries are roots for garbage collection (their configs, manifests, layer blobs and unpacked layers stay) until
`barque builder prune` or `system prune` drops them.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from barque.oci.digest import Digest

__all__ = ["step_key", "BuildCache", "CacheEntry"]

KEY_VERSION = "barque.build.v1"


def step_key(parent: str, *parts) -> str:
    """The cache key of a step started from state `parent` (a config digest, or "scratch")."""
    doc = json.dumps([KEY_VERSION, parent, *parts], separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    key: str
    config: Digest
    manifest: Digest
    parent: str
    description: str
    created: float
    last_used: float


class BuildCache:
    def __init__(self, engine) -> None:
        self.engine = engine

    def get(self, key: str) -> CacheEntry | None:
        rows = self.engine.db.query("SELECT * FROM build_cache WHERE key = ?", (key,))
        if not rows:
            return None
        entry = _entry(rows[0])
        content = self.engine.content
        if not (content.exists(entry.config) and content.exists(entry.manifest)):
            return None  # swept by hand or a damaged store: build the step again
        return entry

    def touch(self, keys) -> None:
        """Mark entries used now (one transaction for a whole build's hits)."""
        keys = list(keys)
        if not keys:
            return
        now = time.time()
        with self.engine.db.transaction() as conn:
            conn.executemany("UPDATE build_cache SET last_used = ? WHERE key = ?", [(now, k) for k in keys])

    def put(self, key: str, config: Digest, manifest: Digest, parent: str, description: str) -> None:
        now = time.time()
        with self.engine.db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO build_cache(key, config, manifest, parent, description, created, last_used)"
                " VALUES (?,?,?,?,?,?,?)", (key, str(config), str(manifest), parent, description[:512], now, now))

    def entries(self) -> list[CacheEntry]:
        return [_entry(r) for r in self.engine.db.query("SELECT * FROM build_cache ORDER BY created")]

    def drop(self, keys) -> None:
        keys = list(keys)
        with self.engine.db.transaction() as conn:
            conn.executemany("DELETE FROM build_cache WHERE key = ?", [(k,) for k in keys])


def _entry(row) -> CacheEntry:
    return CacheEntry(row["key"], Digest.parse(row["config"]), Digest.parse(row["manifest"]), row["parent"],
                      row["description"], row["created"], row["last_used"])
