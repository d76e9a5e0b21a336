"""Digests of context files remembered by their stat, as git's index remembers them: a file whose device, inode,
size, mtime and ctime (nanoseconds) are unchanged has the content it had, and is not read again. A file changed
less than RACY_S ago is never remembered — the kernel's file times are coarse (a clock tick), so two writes within
one tick could leave the same stat behind ("racily clean" in git's words)."""

from __future__ import annotations

import hashlib
import os
import time

__all__ = ["HashCache"]

RACY_S = 2.0


class HashCache:
    def __init__(self, engine, top: str) -> None:
        self.engine = engine
        self.top = os.path.abspath(top)
        self.known: dict[str, tuple] = {}
        self.pending: list[tuple] = []
        self.now_ns = time.time_ns()
        rows = engine.db.query("SELECT * FROM build_hashes WHERE path >= ? AND path < ?",
                               (self.top + "/", self.top + "0"))
        for r in rows:
            self.known[r["path"]] = ((r["dev"], r["ino"], r["size"], r["mtime_ns"], r["ctime_ns"]), r["digest"])

    def digest(self, path: str, st: os.stat_result) -> bytes:
        """The sha256 of the regular file `path` (lstat `st`)."""
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        hit = self.known.get(path)
        if hit is not None and hit[0] == key:
            return hit[1]
        with open(path, "rb") as f:
            value = hashlib.file_digest(f, "sha256").digest()
        if self.now_ns - max(st.st_mtime_ns, st.st_ctime_ns) > RACY_S * 1e9:
            self.pending.append((path, *key, value))
        return value

    def flush(self) -> None:
        if not self.pending:
            return
        with self.engine.db.transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO build_hashes(path, dev, ino, size, mtime_ns, ctime_ns, digest) "
                             "VALUES (?,?,?,?,?,?,?)", self.pending)
        self.pending.clear()
