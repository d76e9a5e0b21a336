"""Snapshot metadata in SQLite: keys, kinds, parent links and the numeric ids that name the directories.

One database per driver root (``<root>/metadata.db``), in WAL mode, shared by every process that opens the root.
Writers take the write lock up front (``BEGIN IMMEDIATE``) and wait on a busy timeout rather than fail. The rules
are containerd's (core/snapshots/storage/bolt.go): keys and committed names share one namespace; only committed
snapshots can be parents; a commit keeps the id (so the directory stays put) and retires the key; a snapshot with
children cannot be removed.

Ids come from AUTOINCREMENT, so an id that was ever committed is never handed out again: a directory left behind by a
crash can be told apart from a live one and swept.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from barque.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from barque.snapshot.base import Info, Kind, Usage

__all__ = ["MetaStore", "Record", "Transaction"]

BUSY_TIMEOUT_S = 60.0
SCHEMA_VERSION = 1

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
        parent_id INTEGER REFERENCES snapshots(id) ON DELETE RESTRICT,
        created REAL NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',
        size INTEGER NOT NULL DEFAULT 0,
        inodes INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id)",
]

_CHAIN_SQL = """
    WITH RECURSIVE chain(id, parent_id, depth) AS (
        SELECT id, parent_id, 0 FROM snapshots WHERE id = ?
        UNION ALL
        SELECT s.id, s.parent_id, chain.depth + 1 FROM snapshots s JOIN chain ON s.id = chain.parent_id
    )
    SELECT id FROM chain ORDER BY depth
"""


@dataclass(frozen=True)
class Record:
    """A snapshot as stored: its info plus the id that names its directory and the ids of its ancestors."""

    id: int
    name: str
    kind: Kind
    parent: str | None
    parent_ids: tuple[int, ...]     # parent first, then grandparent… (top-most first, as overlay's lowerdir wants)
    created: float
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    usage: Usage = Usage(0, 0)

    def info(self) -> Info:
        return Info(name=self.name, parent=self.parent, kind=self.kind, created=self.created, labels=dict(self.labels))


def _check_key(key: str, what: str = "key") -> None:
    if not isinstance(key, str) or not key:
        raise InvalidArgument(f"snapshot {what} must be a non-empty string, got {key!r}")
    if "\x00" in key:
        raise InvalidArgument(f"snapshot {what} {key!r} contains a NUL character")


def _check_labels(labels: dict[str, str] | None) -> dict[str, str]:
    labels = dict(labels or {})
    for k, v in labels.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidArgument(f"snapshot labels must map strings to strings, got {k!r}: {v!r}")
    return labels


class Transaction:
    """Queries and updates inside one SQLite transaction (opened by `MetaStore.read` / `MetaStore.write`)."""

    def __init__(self, conn: sqlite3.Connection, writable: bool) -> None:
        self._conn = conn
        self.writable = writable

    # -- reads -------------------------------------------------------------------------------------------------
    def _row(self, key: str) -> sqlite3.Row | None:
        return self._conn.execute(
            "SELECT s.*, p.name AS parent_name FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id "
            "WHERE s.name = ?", (key,)).fetchone()

    def _record(self, row: sqlite3.Row) -> Record:
        parent_ids: tuple[int, ...] = ()
        if row["parent_id"] is not None:
            parent_ids = tuple(r[0] for r in self._conn.execute(_CHAIN_SQL, (row["parent_id"],)))
        return Record(
            id=row["id"], name=row["name"], kind=Kind(row["kind"]), parent=row["parent_name"], parent_ids=parent_ids,
            created=row["created"], labels=json.loads(row["labels"]), usage=Usage(row["size"], row["inodes"]),
        )

    def get(self, key: str) -> Record:
        _check_key(key)
        row = self._row(key)
        if row is None:
            raise NotFound(f"snapshot {key!r} does not exist")
        return self._record(row)

    def find(self, key: str) -> Record | None:
        row = self._row(key) if key else None
        return None if row is None else self._record(row)

    def walk(self) -> list[Record]:
        rows = self._conn.execute(
            "SELECT s.*, p.name AS parent_name FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id "
            "ORDER BY s.id").fetchall()
        return [self._record(r) for r in rows]

    def ids(self) -> set[int]:
        return {r[0] for r in self._conn.execute("SELECT id FROM snapshots")}

    def has_children(self, snapshot_id: int) -> bool:
        return self._conn.execute("SELECT 1 FROM snapshots WHERE parent_id = ? LIMIT 1", (snapshot_id,)).fetchone() \
            is not None

    # -- writes ------------------------------------------------------------------------------------------------
    def _need_write(self) -> None:
        if not self.writable:
            raise RuntimeError("metadata update in a read-only transaction")

    def create(self, kind: Kind, key: str, parent: str | None = None, labels: dict[str, str] | None = None) -> Record:
        """Insert an active snapshot or a view. The parent must exist and be committed."""
        self._need_write()
        _check_key(key)
        labels = _check_labels(labels)
        if kind not in (Kind.ACTIVE, Kind.VIEW):
            raise InvalidArgument(f"only active snapshots and views can be created, not {kind.value}")
        parent_id = None
        if parent:
            prow = self._row(parent)
            if prow is None:
                raise NotFound(f"parent snapshot {parent!r} of {key!r} does not exist")
            if prow["kind"] != Kind.COMMITTED.value:
                raise FailedPrecondition(f"parent {parent!r} of {key!r} is a {prow['kind']} snapshot, not a committed one")
            parent_id = prow["id"]
        if self._row(key) is not None:
            raise AlreadyExists(f"snapshot {key!r} already exists")
        cur = self._conn.execute(
            "INSERT INTO snapshots (name, kind, parent_id, created, labels) VALUES (?, ?, ?, ?, ?)",
            (key, kind.value, parent_id, time.time(), json.dumps(labels, sort_keys=True)))
        row = self._row(key)
        assert row is not None and row["id"] == cur.lastrowid
        return self._record(row)

    def commit(self, key: str, name: str, usage: Usage, labels: dict[str, str] | None = None) -> Record:
        """Rename active `key` to committed `name`, keeping its id; labels are replaced (containerd's rule)."""
        self._need_write()
        _check_key(name, "name")
        labels = _check_labels(labels)
        rec = self.get(key)
        if rec.kind != Kind.ACTIVE:
            raise FailedPrecondition(f"snapshot {key!r} is a {rec.kind.value} snapshot; only active ones can be committed")
        if self._row(name) is not None:
            raise AlreadyExists(f"snapshot {name!r} already exists")
        self._conn.execute(
            "UPDATE snapshots SET name = ?, kind = ?, created = ?, labels = ?, size = ?, inodes = ? WHERE id = ?",
            (name, Kind.COMMITTED.value, time.time(), json.dumps(labels, sort_keys=True), usage.size, usage.inodes,
             rec.id))
        return self.get(name)

    def remove(self, key: str) -> Record:
        """Delete the record of `key`; refuses while other snapshots have it as parent."""
        self._need_write()
        rec = self.get(key)
        if self.has_children(rec.id):
            children = [r[0] for r in self._conn.execute(
                "SELECT name FROM snapshots WHERE parent_id = ? ORDER BY id LIMIT 3", (rec.id,))]
            raise Conflict(f"cannot remove snapshot {key!r}: it is the parent of {', '.join(map(repr, children))}")
        self._conn.execute("DELETE FROM snapshots WHERE id = ?", (rec.id,))
        return rec


class MetaStore:
    """The SQLite database of one snapshotter root. Thread-safe; one connection, transactions serialised."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                         check_same_thread=False)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed removal must survive power loss, or the record could come back after its directory
            # was deleted. The cost is one extra fsync per write transaction.
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as e:
            raise Unavailable(f"cannot open snapshot metadata {self.path}: {e}") from e
        self._migrate()

    def _migrate(self) -> None:
        with self.write() as tx:
            conn = tx._conn
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise FailedPrecondition(
                    f"snapshot metadata {self.path} has schema version {version}; this barque knows up to "
                    f"{SCHEMA_VERSION} (written by a newer barque?)")
            if version < SCHEMA_VERSION:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self, begin: str, writable: bool) -> Iterator[Transaction]:
        with self._lock:
            try:
                self._conn.execute(begin)
            except sqlite3.OperationalError as e:
                raise Unavailable(f"snapshot metadata {self.path} is busy: {e}") from e
            try:
                yield Transaction(self._conn, writable)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                try:
                    self._conn.execute("COMMIT")
                except sqlite3.Error as e:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise Unavailable(f"cannot commit snapshot metadata {self.path}: {e}") from e

    def read(self) -> AbstractContextManager[Transaction]:
        """A consistent read-only snapshot of the metadata."""
        return self._transaction("BEGIN DEFERRED", writable=False)

    def write(self) -> AbstractContextManager[Transaction]:
        """A write transaction holding the database's write lock from the start (no lock-upgrade deadlocks)."""
        return self._transaction("BEGIN IMMEDIATE", writable=True)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
