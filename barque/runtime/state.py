"""A container's persistent record under `<root>/<id>/`: state.json (written atomically), exec.fifo (exists while the
container is created but not started, as runc's), a copy of the config, and a per-container lock.

The status is derived, never trusted: the record holds the pid and its start time (field 22 of /proc/PID/stat), so a
process that exited, is a zombie, or whose pid was reused by another process all read as "stopped".
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from barque.errors import AlreadyExists, NotFound, Unavailable

__all__ = ["Container", "StateStore", "CREATING", "CREATED", "RUNNING", "PAUSED", "STOPPED", "process_start_time"]

CREATING, CREATED, RUNNING, PAUSED, STOPPED = "creating", "created", "running", "paused", "stopped"
DEFAULT_ROOT = Path("/run/barque-runtime")
STATE_FILE = "state.json"
FIFO = "exec.fifo"
CONFIG = "config.json"


@dataclass
class Container:
    id: str
    bundle: str
    rootfs: str
    pid: int
    start_time: int
    created: str
    oci_version: str
    cgroups_path: str
    annotations: dict = field(default_factory=dict)
    paused: bool = False
    owner: str = ""
    #: where `<root>/<id>` is; not persisted
    dir: Path | None = field(default=None, compare=False, repr=False)

    @property
    def fifo(self) -> Path:
        assert self.dir is not None
        return self.dir / FIFO

    def status(self, proc: Path = Path("/proc")) -> str:
        if not self.pid or process_start_time(self.pid, proc) != self.start_time:
            return STOPPED
        if self.fifo.exists():
            return CREATED
        if self.paused:
            return PAUSED
        return RUNNING

    def oci_state(self, status: str | None = None) -> dict:
        """The runtime spec's state, with runc's extra fields (rootfs, created, owner) that go-runc reads."""
        status = status or self.status()
        out = {
            "ociVersion": self.oci_version,
            "id": self.id,
            "status": status,
            "pid": self.pid if status != STOPPED else 0,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
        }
        if self.annotations:
            out["annotations"] = self.annotations
        return out

    def config(self) -> dict:
        assert self.dir is not None
        return json.loads((self.dir / CONFIG).read_bytes())


def process_start_time(pid: int, proc: Path = Path("/proc")) -> int | None:
    """The start time of a live process (clock ticks since boot), None when it is gone or a zombie."""
    try:
        data = (proc / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    rest = data[data.rindex(b")") + 2:].split()
    if rest[0] in (b"Z", b"X"):
        return None
    return int(rest[19])


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


class StateStore:
    """The containers under one --root."""

    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        self.root = Path(root)

    @property
    def bpf_cache(self) -> Path:
        """Compiled seccomp programs (bpf.py), shared by the containers under this root."""
        return self.root / ".bpf"

    def dir(self, cid: str) -> Path:
        return self.root / cid

    def reserve(self, cid: str) -> Path:
        """Make `<root>/<id>` (the create's claim on the id): AlreadyExists when another container has it."""
        self.root.mkdir(mode=0o711, parents=True, exist_ok=True)
        d = self.dir(cid)
        try:
            d.mkdir(mode=0o711)
        except FileExistsError:
            raise AlreadyExists(f"container with id {cid} already exists") from None
        return d

    def save(self, c: Container, config: dict | None = None) -> None:
        d = self.dir(c.id)
        if config is not None:
            _atomic_write(d / CONFIG, json.dumps(config).encode())
        data = {k: v for k, v in asdict(c).items() if k != "dir"}
        _atomic_write(d / STATE_FILE, json.dumps(data).encode())
        c.dir = d

    def load(self, cid: str) -> Container:
        d = self.dir(cid)
        try:
            data = json.loads((d / STATE_FILE).read_bytes())
        except FileNotFoundError:
            raise NotFound(f"container {cid} does not exist") from None
        except ValueError as e:
            raise NotFound(f"container {cid}: its state file is unreadable ({e})") from e
        c = Container(**{k: v for k, v in data.items() if k in Container.__dataclass_fields__})
        c.dir = d
        return c

    def ids(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.root) if e.is_dir() and (Path(e.path) / STATE_FILE).exists())
        except FileNotFoundError:
            return []

    def remove(self, cid: str) -> None:
        d = self.dir(cid)
        for name in (STATE_FILE, CONFIG, FIFO, ".lock"):
            try:
                (d / name).unlink()
            except FileNotFoundError:
                pass
        try:
            d.rmdir()
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno != errno.ENOTEMPTY:
                raise
            import shutil

            shutil.rmtree(d, ignore_errors=True)

    @contextmanager
    def lock(self, cid: str, timeout: float = 30.0) -> Iterator[None]:
        """An exclusive flock on the container's directory: verbs on one container run one at a time."""
        d = self.dir(cid)
        try:
            fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"container {cid} does not exist") from None
        try:
            from barque.linux.flock import flock_within

            if not flock_within(fd, fcntl.LOCK_EX, timeout, interval=0.01):
                raise Unavailable(f"container {cid} is locked by another barque-runtime command")
            yield
        finally:
            os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
