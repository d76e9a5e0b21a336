"""The containers as a long-lived reader (the API server) sees them, kept current by events instead of read anew for
every listing.

barque has no daemon owning the containers: their records are in SQLite and each state file is written by the
container's monitor (or a CLI, or another server), replaced atomically. A one-shot `barque ps` reads them all; a
server answering `GET /containers/json` many times a second keeps them and learns what changed:

- the records, endpoints and published ports: `PRAGMA data_version` of a connection of its own (one query) says
  whether anyone committed to the database since the last look; only then are they read again;
- a state file: an inotify watch on each container's directory (the monitors' atomic renames of state.json, and any
  other write of it);
- a container whose process and monitor both die unobserved (SIGKILL, OOM of both): a pidfd of the process that
  keeps the state "running", polled; its exit makes the state be read and reconciled again (store.reconcile);
- a network namespace made or removed: a watch on the run root's netns directory.

Anything the view cannot watch (the kernel's watch limit reached, no descriptors left, no inotify instance to be
had at all) is read every time, as the store does: slower, never stale. A lost event (the inotify queue overflowed)
forgets everything. A read that fails (the database busy) leaves the view to read again at the next refresh.

Callers hold `lock` while they use what `refresh` returned (the view is shared by the server's reader threads).
"""

from __future__ import annotations

import logging
import os
import resource
import select
import sqlite3
import threading
from pathlib import Path
from typing import Callable

from barque.container.store import STATE_FILE, Container, proc_start, read_state, reconcile
from barque.linux.inotify import (IN_CLOSE_WRITE, IN_CREATE, IN_DELETE, IN_DELETE_SELF, IN_IGNORED, IN_MOVED_FROM,
                                  IN_MOVED_TO, IN_ONLYDIR, IN_Q_OVERFLOW, Inotify)

__all__ = ["ContainerView"]

log = logging.getLogger(__name__)

_STATE_EVENTS = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_ONLYDIR
_NETNS_EVENTS = IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE_SELF | IN_ONLYDIR
_LIVE = ("running", "paused", "restarting")


class ContainerView:
    def __init__(self, db_path: str | os.PathLike, run_root: str | os.PathLike) -> None:
        self.lock = threading.Lock()
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)  # used under `lock`
        self._version: int | None = None
        self._containers: list[Container] = []
        #: what the last database read gave besides the records (a listing's Prefetched): kept while it holds
        self.extra = None
        self._ino: Inotify | None = None
        try:
            self._ino = Inotify()
        except OSError as e:  # EMFILE: the user's inotify instances (fs.inotify.max_user_instances) are all taken
            log.warning("container states are not watched (%s): listings read them each time", e)
        self._dirs: dict[int, str] = {}  # watch → container ID
        self._watched: dict[str, int] = {}  # container ID → watch
        self._states: dict[str, dict] = {}  # container ID → its reconciled state, while no event says otherwise
        self._pins: dict[str, int] = {}  # container ID → pidfd of the process that keeps its state live
        self._pinned: dict[int, str] = {}  # pidfd → container ID
        self._poll = select.poll()
        #: pidfds held at most: a quarter of the open files the process may have (the rest serve its clients)
        self.max_pins = resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 4
        #: container ID → what a caller built from the container (its listing row), dropped with its state or
        #: network namespace
        self.rows: dict[str, object] = {}
        self._netns_wd = -1
        netns = Path(run_root) / "netns"
        try:
            netns.mkdir(parents=True, exist_ok=True, mode=0o711)  # as network/netns.py makes it
            if self._ino is not None:
                self._netns_wd = self._ino.add(netns, _NETNS_EVENTS)
        except OSError as e:
            log.debug("network namespaces are not watched (%s): listings check them each time", e)

    @property
    def netns_watched(self) -> bool:
        return self._netns_wd >= 0

    def refresh(self, engine, extra: Callable[[list[Container]], object] | None = None) -> tuple[list[Container], bool]:
        """The containers (newest first) with their current states set, and whether the database changed since the
        last refresh; then `extra` (given the containers) is called again and its result kept as `self.extra`. Call
        with `lock` held. When a read raises, the next refresh reads again."""
        self._take_events()
        version = self._db.execute("PRAGMA data_version").fetchone()[0]  # before the read: a later commit shows
        changed = version != self._version
        if changed:
            self._version = None  # until everything below is read: a failure leaves nothing stale behind
            self._containers = engine.containers.list()
            self._forget({c.id for c in self._containers})
            if extra is not None:
                self.extra = extra(self._containers)
            self._version = version
        for c in self._containers:
            c._state = self._state(c)
        return self._containers, changed

    # ---- states -------------------------------------------------------------------------------------------------

    def _state(self, c: Container) -> dict:
        cid = c.id
        state = self._states.get(cid)
        if state is not None:
            return state
        watched = self._watch(c)  # before the read: a rename after it is an event
        state = reconcile(read_state(c.dir / STATE_FILE))
        if not watched:
            return state
        if state.get("Status") in _LIVE and not self._pin(cid, state):
            return state  # no pidfd: reconciled again at the next listing
        self._states[cid] = state
        return state

    def _watch(self, c: Container) -> bool:
        if c.id in self._watched:
            return True
        if self._ino is None:
            return False
        try:
            wd = self._ino.add(c.dir, _STATE_EVENTS)
        except OSError as e:  # ENOSPC: the kernel's max_user_watches; ENOENT: removed meanwhile
            log.debug("container %s is not watched (%s): its state is read at every listing", c.id[:12], e)
            return False
        self._dirs[wd] = c.id
        self._watched[c.id] = wd
        return True

    def _pin(self, cid: str, state: dict) -> bool:
        """Hold a pidfd of the process that makes reconcile() call the state live: the container's, or else its
        monitor's. False when neither could be held (or the view holds as many as it may)."""
        if len(self._pins) >= self.max_pins:
            return False
        for pid_key, start_key in (("Pid", "_PidStart"), ("_MonitorPid", "_MonitorStart")):
            pid = state.get(pid_key) or 0
            if not pid:
                continue
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                continue  # gone (ESRCH), or no descriptors left
            if proc_start(pid) != state.get(start_key):  # opened after the check of reconcile(): the same process?
                os.close(fd)
                continue
            self._pins[cid] = fd
            self._pinned[fd] = cid
            self._poll.register(fd, select.POLLIN)
            return True
        return False

    def _unpin(self, cid: str) -> None:
        fd = self._pins.pop(cid, None)
        if fd is not None:
            self._pinned.pop(fd, None)
            self._poll.unregister(fd)
            os.close(fd)

    def _drop(self, cid: str) -> None:
        self._states.pop(cid, None)
        self.rows.pop(cid, None)
        self._unpin(cid)

    # ---- events -------------------------------------------------------------------------------------------------

    def _take_events(self) -> None:
        for event in self._ino.read() if self._ino is not None else ():
            if event.mask & IN_Q_OVERFLOW:
                log.debug("inotify queue overflowed: the view forgets every state")
                for cid in list(self._states):
                    self._drop(cid)
                self.rows.clear()
            elif event.wd == self._netns_wd:
                if event.mask & IN_IGNORED:
                    self._netns_wd = -1  # the directory went: listings check the namespaces each time
                self.rows.pop(event.name, None)
            elif event.mask & IN_IGNORED:
                cid = self._dirs.pop(event.wd, None)
                if cid is not None:
                    self._watched.pop(cid, None)
                    self._drop(cid)
            elif event.name == STATE_FILE or event.mask & IN_DELETE_SELF:
                cid = self._dirs.get(event.wd)
                if cid is not None:
                    self._drop(cid)
        if self._pinned:
            for fd, _ in self._poll.poll(0):
                cid = self._pinned.get(fd)
                if cid is not None:
                    self._drop(cid)

    def _forget(self, present: set[str]) -> None:
        """Let go of containers no longer in the database."""
        for cid in [c for c in self._watched if c not in present]:
            wd = self._watched.pop(cid)
            self._dirs.pop(wd, None)
            if self._ino is not None:
                self._ino.remove(wd)
        for cid in [c for c in set(self._states) | set(self._pins) | set(self.rows) if c not in present]:
            self._drop(cid)

    def close(self) -> None:
        for cid in list(self._pins):
            self._unpin(cid)
        if self._ino is not None:
            self._ino.close()
        self._db.close()
