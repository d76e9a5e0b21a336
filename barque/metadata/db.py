"""One SQLite database (WAL) for images, layers and containers of a barque root.

Several barque processes share a root: every write runs in a ``BEGIN IMMEDIATE`` transaction with a generous busy
timeout, so writers queue instead of failing. The schema grows through numbered migrations recorded in
``PRAGMA user_version``.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from barque.errors import Unavailable

BUSY_TIMEOUT_S = 60.0

MIGRATIONS: list[str] = [
    # 1: images, their names, and unpacked layers
    """
    CREATE TABLE images (
        id TEXT PRIMARY KEY,              -- config digest = Docker's image ID
        target_digest TEXT NOT NULL,      -- the manifest the image was stored with
        target_media_type TEXT NOT NULL,
        target_size INTEGER NOT NULL,
        created TEXT NOT NULL,            -- config.created (RFC 3339) or ''
        size INTEGER NOT NULL,            -- unpacked size of all layers, as Docker reports Size
        parent TEXT NOT NULL DEFAULT '',  -- the image a commit/build started from (Docker's Parent)
        added REAL NOT NULL
    );
    CREATE TABLE tags (
        name TEXT PRIMARY KEY,            -- normalised reference with tag: docker.io/library/busybox:latest
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
    );
    CREATE INDEX tags_image ON tags(image_id);
    CREATE TABLE digests (
        name TEXT PRIMARY KEY,            -- repository@digest: docker.io/library/busybox@sha256:...
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
    );
    CREATE INDEX digests_image ON digests(image_id);
    CREATE TABLE layers (
        chain_id TEXT PRIMARY KEY,
        diff_id TEXT NOT NULL,
        parent TEXT NOT NULL DEFAULT '',  -- parent chain id
        size INTEGER NOT NULL,            -- bytes of file content the layer unpacks to
        tar_size INTEGER NOT NULL         -- length of the uncompressed tar
    );
    CREATE TABLE containers (
        id TEXT PRIMARY KEY,
        name TEXT UNIQUE NOT NULL,
        image_id TEXT NOT NULL,
        created REAL NOT NULL,
        record TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX containers_image ON containers(image_id);
    """,
    # 2: volumes of the local driver (their data lives under <root>/volumes/<name>/_data)
    """
    CREATE TABLE volumes (
        name TEXT PRIMARY KEY,
        driver TEXT NOT NULL DEFAULT 'local',
        created TEXT NOT NULL,            -- RFC 3339, as Docker's CreatedAt
        labels TEXT NOT NULL DEFAULT 'null',   -- JSON object, or null as Docker shows for implicit volumes
        options TEXT NOT NULL DEFAULT 'null'   -- JSON object of driver options (type, device, o)
    );
    """,
    # 3: the build cache: a step's key (parent state, instruction, content of its sources) -> the state it made
    """
    CREATE TABLE build_cache (
        key TEXT PRIMARY KEY,             -- sha256 of the step's inputs
        config TEXT NOT NULL,             -- the resulting state's image config digest
        manifest TEXT NOT NULL,           -- and its manifest (which lists the layer blobs)
        parent TEXT NOT NULL DEFAULT '',  -- the state the step started from
        description TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        last_used REAL NOT NULL
    );
    """,
    # 4: content digests of build-context files, known by their stat (as git's index), so a rebuild need not
    #    read every file again
    """
    CREATE TABLE build_hashes (
        path TEXT PRIMARY KEY,
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        digest BLOB NOT NULL
    );
    """,
    # 5: the registry client's memory: which repositories of a registry are known to hold a blob (pulled from or
    #    pushed there), for cross-repository mounts; and the compressed blob a push made from a stored layer
    """
    CREATE TABLE registry_blobs (
        registry TEXT NOT NULL,           -- domain as in references: docker.io, 127.0.0.1:5000
        repository TEXT NOT NULL,         -- path: library/busybox
        digest TEXT NOT NULL,
        seen REAL NOT NULL,
        PRIMARY KEY (registry, digest, repository)
    );
    CREATE TABLE compressed_blobs (
        source TEXT NOT NULL,             -- the stored layer blob (any compression)
        compression TEXT NOT NULL,        -- gzip | zstd
        digest TEXT NOT NULL,             -- the blob made from it, kept in the content store
        size INTEGER NOT NULL,
        PRIMARY KEY (source, compression)
    );
    """,
    # 6: networks (Docker's records), each container's endpoint on a network (its address, held from create to rm),
    #    and what a running container has switched on: its published ports
    """
    CREATE TABLE networks (
        id TEXT PRIMARY KEY,
        name TEXT UNIQUE NOT NULL,
        driver TEXT NOT NULL,             -- bridge | host | null
        created TEXT NOT NULL,            -- RFC 3339
        record TEXT NOT NULL              -- JSON: IPAM, Options, Labels, Internal, the bridge's name
    );
    CREATE TABLE endpoints (
        id TEXT PRIMARY KEY,
        network_id TEXT NOT NULL REFERENCES networks(id),
        container_id TEXT NOT NULL,
        ip TEXT NOT NULL,                 -- IPv4 address without prefix, unique on its network
        mac TEXT NOT NULL,
        record TEXT NOT NULL,             -- JSON: Aliases, IPAMConfig (a static --ip), Links
        UNIQUE (network_id, container_id),
        UNIQUE (network_id, ip)
    );
    CREATE INDEX endpoints_container ON endpoints(container_id);
    CREATE TABLE port_mappings (
        container_id TEXT NOT NULL,
        proto TEXT NOT NULL,              -- tcp | udp
        host_ip TEXT NOT NULL,            -- 0.0.0.0 for every address of the host
        host_port INTEGER NOT NULL,
        container_ip TEXT NOT NULL,
        container_port INTEGER NOT NULL,
        UNIQUE (proto, host_ip, host_port)
    );
    CREATE INDEX port_mappings_container ON port_mappings(container_id);
    """,
]


class Database:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._migrate()

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    def _migrate(self) -> None:
        if self._connect().execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS):
            return  # the common case: no write transaction on a read-only command
        with self.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for n, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {n}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: BEGIN IMMEDIATE takes the write lock up front, so it never deadlocks on upgrade."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise Unavailable(f"metadata database {self.path} is busy: {e}") from e
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        return self._connect().execute(sql, params).fetchall()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
