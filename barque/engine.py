"""The composition root: settings in, concrete stores and drivers out. Both the CLI and the API build one Engine.

Kept thin on purpose: it wires, it does not decide. Every component is built lazily so a command pays only for
what it touches (the CLI's start-up is on the path of every `run`).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from barque.config import Settings

log = logging.getLogger(__name__)

DRIVER_FILE = "storage-driver"


#: what a forked child inherited and must neither use nor close (kept referenced, so no finaliser closes it)
_INHERITED: list = []


class Engine:
    #: set by a process that keeps Engines to read with for a long time (the API server's reader threads): caches
    #: those Engines share, where stores keep what they parsed, reused while what it came from is unchanged
    reader_caches: dict | None = None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.root
        self.run_root = settings.run_root
        if settings.storage_driver:
            _check_driver_name(settings.storage_driver)

    @functools.cached_property
    def db(self):
        from barque.metadata import Database

        self.root.mkdir(parents=True, exist_ok=True, mode=0o710)
        return Database(self.root / "barque.db")

    @functools.cached_property
    def lock(self):
        from barque.metadata import StoreLock

        return StoreLock(self.root / "store.lock")

    @functools.cached_property
    def content(self):
        from barque.content import ContentStore

        return ContentStore(self.root / "content")

    @functools.cached_property
    def images(self):
        from barque.images.store import ImageStore

        return ImageStore(self.db)

    @functools.cached_property
    def driver_name(self) -> str:
        return choose_driver(self.root, self.settings.storage_driver)

    @functools.cached_property
    def snapshotter(self):
        from barque.snapshot import get_snapshotter

        name = self.driver_name
        snap = get_snapshotter(name, self.root / "snapshots" / name)
        remember_driver(self.root, name)
        return snap

    @functools.cached_property
    def containers(self):
        from barque.container.store import ContainerStore

        return ContainerStore(self.db, self.root / "containers", self.run_root / "containers",
                              caches=self.reader_caches)

    @functools.cached_property
    def volumes(self):
        from barque.container.volumes import VolumeStore

        return VolumeStore(self.db, self.root / "volumes", events_root=self.root)

    @functools.cached_property
    def networks(self):
        from barque.network.store import NetworkStore

        return NetworkStore(self.db)

    @property
    def runtime_root(self) -> Path:
        """barque-runtime's state root for this engine's containers (on the run root: it is run-time state)."""
        return self.run_root / "runtime"

    def after_fork(self) -> None:
        """In a forked child: stop using the parent's SQLite connections (the metadata database's and the snapshot
        driver's) without closing them — SQLite forbids both, a close could even checkpoint the parent's WAL away —
        so that the next use opens the child's own."""
        db = self.__dict__.get("db")
        conn = getattr(getattr(db, "_local", None), "conn", None) if db is not None else None
        if conn is not None:
            _INHERITED.append(conn)
            db._local.conn = None
        snapshotter = self.__dict__.pop("snapshotter", None)
        if snapshotter is not None:
            _INHERITED.append(snapshotter)

    def close(self) -> None:
        """Release open files (database connections, driver metadata); the engine is unusable afterwards."""
        if "snapshotter" in self.__dict__:
            self.snapshotter.close()
        if "db" in self.__dict__:
            self.db.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_driver_name(name: str) -> None:
    """Refuse an unknown or unavailable driver up front, whatever the command (as dockerd refuses to start)."""
    from barque.snapshot import DRIVERS, canonical_driver_name, get_snapshotter

    if canonical_driver_name(name) not in DRIVERS:
        get_snapshotter(name, Path("/nonexistent"))  # raises the driver's own explanation


def choose_driver(root: Path, requested: str | None) -> str:
    """An explicit choice wins; otherwise the driver this root used last; otherwise btrfs on btrfs, else overlay."""
    if requested:
        from barque.snapshot import canonical_driver_name

        return canonical_driver_name(requested)
    try:
        remembered = (root / DRIVER_FILE).read_text().strip()
        if remembered:
            return remembered
    except FileNotFoundError:
        pass
    from barque.linux.mountinfo import fs_type

    return "btrfs" if fs_type(root) == "btrfs" else "overlay"


def remember_driver(root: Path, name: str) -> None:
    path = root / DRIVER_FILE
    try:
        if path.read_text().strip() == name:
            return
    except FileNotFoundError:
        pass
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(name + "\n")
    tmp.replace(path)
