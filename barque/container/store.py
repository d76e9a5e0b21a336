"""Container records: the Docker-shaped configuration in SQLite, the live state in a small file beside it.

The record (`containers.record`, JSON shaped like `docker container inspect` without State) changes rarely — create,
rename, commit of settings — and needs SQLite's guarantees: names are UNIQUE, so twenty parallel `run --name x`
leave exactly one container named x. The state (`<root>/containers/<id>/state.json`: Status, Pid, ExitCode, …)
changes at every start and exit and is written by the container's monitor, which must stay small and must not open
the database; it is replaced atomically (write, fsync, rename), so a reader sees the old or the new state, never half.

A state is never trusted blindly: "running" is checked against the process (pid and its start time) and against the
monitor that owns it, so a monitor killed with SIGKILL shows as what is true — still running when the container
process lives on, exited with an unknown status (255) when it died unobserved.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from barque.errors import Conflict, InvalidArgument, NotFound

__all__ = ["Container", "ContainerStore", "read_state", "write_state", "proc_start", "now_rfc3339"]

STATE_FILE = "state.json"
_HEX = re.compile(r"[0-9a-f]{1,64}")


def now_rfc3339(t: float | None = None) -> str:
    t = time.time() if t is None else t
    secs = int(t)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{int((t - secs) * 1e9):09d}Z"


ZERO_TIME = "0001-01-01T00:00:00Z"


def proc_start(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None when the process is gone or a zombie."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def empty_state() -> dict:
    return {"Status": "created", "Running": False, "Paused": False, "Restarting": False, "OOMKilled": False,
            "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "", "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME}


def read_state(path: Path) -> dict:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return empty_state()
    except ValueError:
        return {**empty_state(), "Status": "dead", "Dead": True, "Error": f"unreadable state file {path}"}


def write_state(path: Path, state: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(state).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def reconcile(state: dict) -> dict:
    """The state as it truly is now (see the module docstring); the file is not rewritten here."""
    if state.get("Status") not in ("running", "paused", "restarting"):
        return state
    pid, started = state.get("Pid") or 0, state.get("_PidStart")
    if pid and proc_start(pid) == started:
        return state
    monitor = state.get("_MonitorPid") or 0
    if monitor and proc_start(monitor) == state.get("_MonitorStart"):
        return state
    out = dict(state)
    out.update(Status="exited", Running=False, Paused=False, Restarting=False, Pid=0, ExitCode=255,
               Error="the container's monitor died before it: its exit status is unknown",
               FinishedAt=state.get("FinishedAt") if state.get("FinishedAt") != ZERO_TIME else now_rfc3339())
    return out


@dataclass
class Container:
    """One container: its record (inspect-shaped, without State) and where its files are."""

    record: dict
    dir: Path
    run_dir: Path
    _state: dict | None = field(default=None, repr=False)
    #: how the state file is read, given the container (a long-lived reader's store passes one that reuses what it
    #: parsed)
    _reader: Callable[["Container"], dict] | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return self.record["Id"]

    @property
    def name(self) -> str:
        return self.record["Name"].lstrip("/")

    @property
    def root(self) -> Path:
        """The engine root the container belongs to (its directory is `<root>/containers/<id>`)."""
        return self.dir.parent.parent

    @property
    def state_path(self) -> Path:
        return self.dir / STATE_FILE

    @property
    def state(self) -> dict:
        if self._state is None:
            raw = self._reader(self) if self._reader is not None else read_state(self.state_path)
            self._state = reconcile(raw)
        return self._state

    def refresh(self) -> dict:
        self._state = None
        return self.state

    def save_state(self, state: dict) -> None:
        write_state(self.state_path, state)
        self._state = state

    def update_state(self, when=None, **changes) -> dict:
        """Read-modify-write of state.json under the lock the monitor takes too; `when(state)` (on the state as
        read) may veto the change. Returns the state as it now is."""
        from barque.container.monitor import state_lock

        with state_lock(self.state_path):
            raw = read_state(self.state_path)  # written back as it was, plus the changes: not as reconciled
            if when is None or when(reconcile(raw)):
                raw.update(changes)
                write_state(self.state_path, raw)
        self._state = reconcile(raw)
        return self._state

    @property
    def status(self) -> str:
        return self.state.get("Status", "created")

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused", "restarting")

    @property
    def runtime_root(self) -> Path:
        return self.run_dir.parent.parent / "runtime"

    @property
    def private(self) -> dict:
        """barque's own fields of the record (snapshot key, image reference as given, …)."""
        return self.record.setdefault("_barque", {})


class ContainerStore:
    def __init__(self, db, root: Path, run_root: Path, caches: dict | None = None) -> None:
        self.db = db
        self.root = Path(root)
        self.run_root = Path(run_root)
        #: with `caches` (long-lived readers': the API server's threads share them), records and states parsed before
        #: are reused while their text is the same — callers must then treat records as read-only
        self._parsed: dict[str, tuple[str, dict]] | None = None
        self._states: dict[str, tuple[bytes, dict]] = {}
        self._root_text = str(self.root)
        if caches is not None:
            self._parsed = caches.setdefault("records", {})
            self._states = caches.setdefault("states", {})

    def dir(self, cid: str) -> Path:
        return Path(f"{self.root}/{cid}")

    def run_dir(self, cid: str) -> Path:
        return Path(f"{self.run_root}/{cid}")

    def _build(self, row) -> Container:
        text, cid = row["record"], row["id"]
        if self._parsed is None:
            record = json.loads(text)
        else:
            hit = self._parsed.get(cid)
            if hit is not None and hit[0] == text:
                record = hit[1]
            else:
                record = json.loads(text)
                self._parsed[cid] = (text, record)
        return Container(record=record, dir=self.dir(cid), run_dir=self.run_dir(cid),
                         _reader=self._read_state_reusing if self._parsed is not None else None)

    def _read_state_reusing(self, c: "Container") -> dict:
        """read_state, reusing the parse of the same bytes read before (a copy: callers may change the top level)."""
        path = f"{self._root_text}/{c.id}/{STATE_FILE}"
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return empty_state()
        hit = self._states.get(c.id)
        if hit is not None and hit[0] == data:
            return dict(hit[1])
        try:
            state = json.loads(data)
        except ValueError:
            return read_state(Path(path))
        self._states[c.id] = (data, state)
        return dict(state)

    def forget_removed(self, present: set[str]) -> None:
        """Drop parsed records of containers no longer present (a long-lived reader's memory stays bounded)."""
        if self._parsed is not None:  # list() first: other threads may change the shared dicts meanwhile
            for cid in [c for c in list(self._parsed) if c not in present]:
                self._parsed.pop(cid, None)
            for cid in [c for c in list(self._states) if c not in present]:
                self._states.pop(cid, None)

    def add(self, record: dict, conn=None, populate=None) -> Container:
        """Record a new container (in `conn`'s transaction when given, so it commits with what made it).
        `populate(dir)` fills its directory before the record is written: a container is never visible without
        its files, whenever the process creating it is killed."""
        import sqlite3
        from contextlib import nullcontext

        cid, name = record["Id"], record["Name"].lstrip("/")
        d = self.dir(cid)
        d.mkdir(parents=True, exist_ok=False, mode=0o711)  # a remapped root binds its /etc files from here
        try:
            if populate is not None:
                populate(d)
            with (nullcontext(conn) if conn is not None else self.db.transaction()) as tx:
                try:
                    tx.execute("INSERT INTO containers (id, name, image_id, created, record) VALUES (?,?,?,?,?)",
                               (cid, name, record["Image"], time.time(), json.dumps(record)))
                except sqlite3.IntegrityError:
                    raise self._name_conflict(tx, name) from None
            c = Container(record=record, dir=d, run_dir=self.run_dir(cid))
            c.save_state(empty_state())
            return c
        except BaseException:
            import shutil

            shutil.rmtree(d, ignore_errors=True)
            raise

    @staticmethod
    def _name_conflict(conn, name: str) -> Conflict:
        row = conn.execute("SELECT id FROM containers WHERE name=?", (name,)).fetchone()
        owner = row[0] if row else "?"
        return Conflict(f'Conflict. The container name "/{name}" is already in use by container "{owner}". '
                        "You have to remove (or rename) that container to be able to reuse that name.")

    def name_taken(self, name: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM containers WHERE name=?", (name,)))

    def get(self, ref: str) -> Container:
        """By full ID, exact name (with or without the leading "/"), or unique ID prefix — Docker's order."""
        if not ref:
            raise InvalidArgument("container name or ID must not be empty")
        rows = self.db.query("SELECT * FROM containers WHERE id=?", (ref,))
        if not rows:
            rows = self.db.query("SELECT * FROM containers WHERE name=?", (ref.lstrip("/"),))
        if not rows and _HEX.fullmatch(ref):
            rows = self.db.query("SELECT * FROM containers WHERE id LIKE ?", (ref + "%",))
            if len(rows) > 1:
                raise Conflict(f"multiple IDs found with provided prefix: {ref}")
        if not rows:
            raise NotFound(f"No such container: {ref}")
        return self._build(rows[0])

    def list(self) -> list[Container]:
        out = [self._build(r) for r in self.db.query("SELECT * FROM containers ORDER BY created DESC")]
        if self._parsed is not None and len(self._parsed) > len(out):
            self.forget_removed({c.id for c in out})
        return out

    def update(self, c: Container) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE containers SET record=? WHERE id=?", (json.dumps(c.record), c.id))

    def rename(self, c: Container, new: str) -> None:
        import sqlite3

        c.record["Name"] = "/" + new
        with self.db.transaction() as conn:
            try:
                conn.execute("UPDATE containers SET name=?, record=? WHERE id=?", (new, json.dumps(c.record), c.id))
            except sqlite3.IntegrityError:
                raise self._name_conflict(conn, new) from None

    def delete(self, c: Container) -> None:
        import shutil

        with self.db.transaction() as conn:
            conn.execute("DELETE FROM containers WHERE id=?", (c.id,))
        shutil.rmtree(c.dir, ignore_errors=True)
        shutil.rmtree(c.run_dir, ignore_errors=True)
