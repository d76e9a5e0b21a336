"""The registry's metadata database: SQLite (WAL) under the registry root, one connection per thread.

Every write is a ``BEGIN IMMEDIATE`` transaction, so writers (the server's threads, and a `garbage-collect` run in
another process) queue on SQLite's write lock instead of failing. The garbage collector's safety rests on that lock:
see `barque.registry.server.gc`.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["Database"]

BUSY_TIMEOUT_MS = 60_000

SCHEMA = [
    """
    CREATE TABLE repositories (
        name TEXT PRIMARY KEY,
        created REAL NOT NULL
    );
    CREATE TABLE blobs (                  -- every file of the content store, manifests included
        digest TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        last_used REAL NOT NULL           -- upload completed, HEAD-checked or mounted: the GC grace clock
    );
    CREATE TABLE repo_blobs (             -- a blob is visible only in repositories it was pushed or mounted to
        repo TEXT NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (repo, digest)
    );
    CREATE INDEX repo_blobs_digest ON repo_blobs(digest);
    CREATE TABLE manifests (
        repo TEXT NOT NULL,
        digest TEXT NOT NULL,
        media_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        artifact_type TEXT,
        annotations TEXT NOT NULL DEFAULT '{}',
        subject TEXT,                     -- referrers API index
        created REAL NOT NULL,
        PRIMARY KEY (repo, digest)
    );
    CREATE INDEX manifests_subject ON manifests(repo, subject);
    CREATE TABLE manifest_refs (          -- what a manifest needs: kind 'blob' (config, layers) or 'manifest'
        repo TEXT NOT NULL,
        manifest TEXT NOT NULL,
        target TEXT NOT NULL,
        kind TEXT NOT NULL,
        PRIMARY KEY (repo, manifest, target, kind)
    );
    CREATE TABLE tags (
        repo TEXT NOT NULL,
        tag TEXT NOT NULL,
        digest TEXT NOT NULL,
        updated REAL NOT NULL,
        PRIMARY KEY (repo, tag)
    );
    CREATE INDEX tags_digest ON tags(repo, digest);
    CREATE TABLE uploads (
        id TEXT PRIMARY KEY,
        repo TEXT NOT NULL,
        started REAL NOT NULL,
        updated REAL NOT NULL
    );
    """,
]


class Database:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._migrate()

    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                timeout=BUSY_TIMEOUT_MS / 1000)
            c.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = c
            with self._lock:
                self._all.append(c)
        return c

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding SQLite's write lock until it ends (committed, or rolled back on error)."""
        c = self.conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    def _migrate(self) -> None:
        with self.write() as c:
            version = c.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(SCHEMA[version:], version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        c.execute(statement)
                c.execute(f"PRAGMA user_version={number}")

    def close(self) -> None:
        with self._lock:
            for c in self._all:
                try:
                    c.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()
