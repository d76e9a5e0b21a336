"""Named and anonymous volumes of the `local` driver: records in the metadata database, data under
`<root>/<name>/_data`, as Docker keeps them under /var/lib/docker/volumes.

Docker's rules kept here, because scripts depend on them:
- creating a name that exists returns the existing volume (compose re-runs `volume create` freely);
- a volume created without a name gets 64 random hex digits and the label `com.docker.volume.anonymous`, and
  `volume prune` (Docker 23+) removes only volumes carrying that label unless asked for all;
- a volume named by any container's Mounts is in use and cannot be removed, not even with force.

The local driver's options (`type`, `device`, `o`) are recorded, not mounted: the container's OCI spec mounts a
tmpfs or bind volume directly (`driver_mount`), so nothing is left mounted on the host between containers. This
differs from Docker in one way: two containers using one tmpfs volume at once each get their own tmpfs.

Several barque processes share a root: every change runs in one `BEGIN IMMEDIATE` transaction, and a removed
volume's directory is renamed away while that lock is held, so a volume created again under the same name at the
same moment never loses its data to the slower remover.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sqlite3
import stat
import time
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from barque.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound
from barque.filters import label_matches

__all__ = [
    "ANONYMOUS_LABEL",
    "LOCAL_DRIVER",
    "VolumeStore",
    "driver_mount",
    "validate_name",
    "validate_options",
    "used_volume_names",
]

LOCAL_DRIVER = "local"
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
_VALID_OPTIONS = ("type", "o", "device", "size")
_REQUIRED_WITH = {"device": ("type",), "type": ("device",), "o": ("device", "type")}
_TRASH_PREFIX = ".removing-"


def validate_name(name: str) -> None:
    """The local driver's name rule: the name becomes a directory, so nothing that could leave the volumes root."""
    if len(name) == 1:
        raise InvalidArgument(f"create {name}: volume name is too short, names should be at least two "
                              "alphanumeric characters")
    if not _NAME.fullmatch(name):
        raise InvalidArgument(f'create {name}: "{name}" includes invalid characters for a local volume name, only '
                              f'"{_NAME_CHARS}" are allowed. If you intended to pass a host directory, use absolute '
                              "path")


def validate_options(name: str, options: Mapping[str, str] | None) -> None:
    """The options the local driver knows, and the ones each needs alongside it (Docker's wording)."""
    if not options:
        return
    for key in options:
        if key not in _VALID_OPTIONS:
            raise InvalidArgument(f'create {name}: invalid option: "{key}"')
    if "size" in options:
        raise InvalidArgument(f"create {name}: quota size requested but no quota support")
    for key, needed in _REQUIRED_WITH.items():
        if key in options:
            for other in needed:
                if other not in options:
                    raise InvalidArgument(f'create {name}: missing required option: "{other}"')


def _mount_options(options: Mapping[str, str]) -> list[str]:
    return [o for o in options.get("o", "").split(",") if o]


def driver_mount(options: Mapping[str, str] | None, data_dir: Path | str) -> tuple[str, dict | None]:
    """Where a volume's content comes from: (source path, OCI mount template without destination, or None).

    Plain volumes are their `_data` directory (None: bind it). `type=tmpfs` is a fresh tmpfs with the `o` options;
    `o=bind` (Docker's `type=none,o=bind,device=/path`) is the device path itself; any other type mounts
    `device` with that filesystem type. A pure function: the container's spec is built from it.
    """
    if not options or not options.get("type"):
        return str(data_dir), None
    fstype, device, opts = options["type"], options.get("device", ""), _mount_options(options)
    if fstype == "tmpfs":
        return str(data_dir), {"type": "tmpfs", "source": device or "tmpfs", "options": opts}
    if "bind" in opts or "rbind" in opts:
        return device, {"type": "bind", "source": device, "options": opts}
    return str(data_dir), {"type": fstype, "source": device, "options": opts}


def _now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def used_volume_names(rows: Sequence[sqlite3.Row | tuple]) -> dict[str, list[str]]:
    """Volume name → ids of the containers whose records mount it, from (id, record) rows."""
    used: dict[str, list[str]] = {}
    for cid, record in rows:
        try:
            mounts = (json.loads(record) or {}).get("Mounts") or []
        except (ValueError, AttributeError):
            continue
        for m in mounts:
            if isinstance(m, dict) and m.get("Type") == "volume" and m.get("Name"):
                users = used.setdefault(m["Name"], [])
                if cid not in users:
                    users.append(cid)
    return used


class VolumeStore:
    """The local driver's volumes of one barque root. Methods return Docker's `volume inspect` dicts."""

    def __init__(self, db, root: Path, events_root: Path | None = None) -> None:
        self.db = db
        self.root = Path(root)
        #: where creations and removals are recorded as Docker's volume events (barque.container.events); None: not
        self.events_root = events_root

    def _event(self, action: str, name: str, driver: str = LOCAL_DRIVER) -> None:
        if self.events_root is not None:
            from barque.container.events import record

            record(self.events_root, "volume", action, name, {"driver": driver})

    # ---- reading -------------------------------------------------------------------------------------------------
    def mountpoint(self, name: str) -> Path:
        return self.root / name / "_data"

    def _inspect(self, row) -> dict:
        labels, options = json.loads(row["labels"]), json.loads(row["options"])
        return {
            "CreatedAt": row["created"],
            "Driver": row["driver"],
            "Labels": dict(sorted(labels.items())) if labels is not None else None,  # Go sorts map keys
            "Mountpoint": str(self.mountpoint(row["name"])),
            "Name": row["name"],
            "Options": dict(sorted(options.items())) if options is not None else None,
            "Scope": "local",
        }

    def _row(self, name: str, conn: sqlite3.Connection | None = None):
        sql, params = "SELECT * FROM volumes WHERE name=?", (name,)
        rows = conn.execute(sql, params).fetchall() if conn is not None else self.db.query(sql, params)
        return rows[0] if rows else None

    def get(self, name: str, conn: sqlite3.Connection | None = None) -> dict:
        row = self._row(name, conn)
        if row is None:
            raise NotFound(f"get {name}: no such volume")
        return self._inspect(row)

    def list(self) -> list[dict]:
        return [self._inspect(r) for r in self.db.query("SELECT * FROM volumes ORDER BY name")]

    def _used(self, conn: sqlite3.Connection | None = None) -> dict[str, list[str]]:
        sql = "SELECT id, record FROM containers"
        rows = conn.execute(sql).fetchall() if conn is not None else self.db.query(sql)
        return used_volume_names([(r[0], r[1]) for r in rows])

    def used(self) -> dict[str, list[str]]:
        """Every volume in use, with the containers using it (one pass over the container records)."""
        return self._used()

    def in_use(self, name: str, conn: sqlite3.Connection | None = None) -> list[str]:
        """Ids of the containers whose Mounts name this volume."""
        sql = "SELECT id, record FROM containers WHERE instr(record, ?) > 0"
        params = (json.dumps(name),)  # a cheap pre-filter: the name as it appears in the JSON
        rows = conn.execute(sql, params).fetchall() if conn is not None else self.db.query(sql, params)
        return used_volume_names([(r[0], r[1]) for r in rows]).get(name, [])

    def usage(self, name: str) -> int:
        """Bytes the volume's files take, as Docker counts them: file sizes, hard links once, directories not."""
        self.get(name)
        return _tree_size(self.mountpoint(name))

    def volume_source(self, name: str) -> tuple[str, dict | None]:
        """What a container mounts for this volume at start: see `driver_mount`. A bind volume's device must exist."""
        volume = self.get(name)
        source, extra = driver_mount(volume["Options"], volume["Mountpoint"])
        if extra is not None and extra["type"] == "bind" and not os.path.exists(source):
            raise FailedPrecondition(
                f"error while mounting volume '{volume['Mountpoint']}': failed to mount local volume: mount "
                f"{source}:{volume['Mountpoint']}, flags: 0x1000: no such file or directory")
        return source, extra

    # ---- writing -------------------------------------------------------------------------------------------------
    def create(self, name: str | None = None, driver: str = LOCAL_DRIVER, labels: Mapping[str, str] | None = None,
               options: Mapping[str, str] | None = None, anonymous: bool = False,
               conn: sqlite3.Connection | None = None) -> dict:
        """Create a volume, or return the one of that name. Pass `conn` to create inside a caller's transaction
        (container create: the volume and the container record that protects it appear together)."""
        if conn is None:
            with self.db.transaction() as own:
                return self.create(name, driver, labels, options, anonymous, conn=own)
        if not name or anonymous:
            name = name or secrets.token_hex(32)
            labels = {**(labels or {}), ANONYMOUS_LABEL: ""}
        if driver != LOCAL_DRIVER:
            raise NotFound(f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found')
        validate_name(name)
        validate_options(name, options)
        row = self._row(name, conn)
        if row is not None:
            existing = self._inspect(row)
            if options and dict(options) != (existing["Options"] or {}):
                raise Conflict(f"create {name}: volume name must be unique: {name} already exists with other "
                               "driver options")
            return existing
        created = _now_rfc3339()
        conn.execute(
            "INSERT INTO volumes(name, driver, created, labels, options) VALUES (?,?,?,?,?)",
            (name, driver, created, json.dumps(dict(labels) if labels is not None else None),
             json.dumps(dict(options) if options is not None else None)),
        )
        self.root.mkdir(parents=True, exist_ok=True, mode=0o701)
        (self.root / name).mkdir(exist_ok=True, mode=0o701)
        self.mountpoint(name).mkdir(exist_ok=True, mode=0o755)
        self._event("create", name, driver)
        return self.get(name, conn)

    def remove(self, name: str, force: bool = False) -> None:
        """Delete a volume and its data. Force only forgives a missing volume; one in use is never removed."""
        try:
            with self.db.transaction() as conn:
                if self._row(name, conn) is None:
                    raise NotFound(f"get {name}: no such volume")
                users = self.in_use(name, conn)
                if users:
                    raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
                trash = self._detach(conn, name)
        except NotFound:
            if force:
                return
            raise
        self._event("destroy", name)
        _remove_tree(trash)

    def prune(self, all: bool = False, labels: Sequence[str] = (),
              not_labels: Sequence[str] = ()) -> tuple[list[str], int]:
        """Remove unused volumes: anonymous ones only (Docker 23+), or every unused one with `all`.

        `labels` are `key` or `key=value` that must all match, `not_labels` ones that must not (Docker's
        `label=` and `label!=` filters). Returns the names removed and the bytes reclaimed.
        """
        detached: list[tuple[str, Path | None]] = []
        with self.db.transaction() as conn:
            used = self._used(conn)
            for row in conn.execute("SELECT * FROM volumes ORDER BY name").fetchall():
                volume = self._inspect(row)
                vlabels = volume["Labels"] or {}
                if volume["Name"] in used:
                    continue
                if not all and ANONYMOUS_LABEL not in vlabels:
                    continue
                if labels and not label_matches(vlabels, labels):
                    continue
                if any(label_matches(vlabels, [n]) for n in not_labels):
                    continue
                detached.append((volume["Name"], self._detach(conn, volume["Name"])))
        reclaimed = 0
        for name, trash in detached:
            self._event("destroy", name)
            if trash is not None:
                reclaimed += _tree_size(trash / "_data")
                _remove_tree(trash)
        return [n for n, _ in detached], reclaimed

    def _detach(self, conn: sqlite3.Connection, name: str) -> Path | None:
        """Delete the record and move the directory aside (inside the transaction); the caller deletes it after."""
        directory = self.root / name
        _refuse_mounted(name, directory)
        conn.execute("DELETE FROM volumes WHERE name=?", (name,))
        if not directory.exists():
            return None
        trash = self.root / f"{_TRASH_PREFIX}{name}-{secrets.token_hex(4)}"
        os.rename(directory, trash)
        return trash


def _refuse_mounted(name: str, directory: Path) -> None:
    from barque.linux.mountinfo import mounted_under

    busy = mounted_under(directory)
    if busy:
        raise Conflict(f"remove {name}: volume is in use - something is mounted on {busy[0]}")


def _walk_files(top: Path) -> Iterator[os.stat_result]:
    """lstat of every non-directory below `top`, never following symlinks nor crossing into other filesystems."""
    try:
        root_dev = os.lstat(top).st_dev
    except FileNotFoundError:
        return
    stack = [str(top)]
    while stack:
        path = stack.pop()
        try:
            entries = list(os.scandir(path))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if st.st_dev == root_dev:
                    stack.append(entry.path)
                continue
            yield st


def _tree_size(top: Path) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for st in _walk_files(top):
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
        total += st.st_size
    return total


def _remove_tree(path: Path | None) -> None:
    if path is None:
        return
    shutil.rmtree(path, ignore_errors=True)
