"""barque's metadata database (SQLite, WAL) and the store-wide lock."""

from barque.metadata.db import Database
from barque.metadata.lock import StoreLock

__all__ = ["Database", "StoreLock"]
