"""The server's event-driven view of the containers (barque/container/view.py), on a real store: SQLite, inotify on
the state files, pidfds of real processes."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from barque.container.store import ContainerStore, now_rfc3339, proc_start, write_state
from barque.container.view import ContainerView
from barque.metadata.db import Database


@pytest.fixture
def store(tmp_path: Path):
    db = Database(tmp_path / "barque.db")
    s = ContainerStore(db, tmp_path / "containers", tmp_path / "run" / "containers")
    view = ContainerView(tmp_path / "barque.db", tmp_path / "run")
    yield SimpleNamespace(db=db, store=s, view=view, engine=SimpleNamespace(containers=s), run=tmp_path / "run")
    view.close()
    db.close()


def add(s, name: str):
    cid = secrets.token_hex(32)
    return s.store.add({"Id": cid, "Name": "/" + name, "Image": "sha256:" + "0" * 64, "Config": {}, "HostConfig": {}})


def states(s) -> dict[str, dict]:
    with s.view.lock:
        containers, _ = s.view.refresh(s.engine)
        return {c.name: c.state for c in containers}


@pytest.fixture
def sleeper():
    procs = []

    def start() -> subprocess.Popen:
        p = subprocess.Popen(["sleep", "60"])
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()


def running_state(pid: int) -> dict:
    return {"Status": "running", "Running": True, "Pid": pid, "_PidStart": proc_start(pid), "ExitCode": 0,
            "StartedAt": now_rfc3339(), "FinishedAt": "0001-01-01T00:00:00Z", "_MonitorPid": 0}


def test_a_state_is_kept_until_its_file_is_replaced(store):
    c = add(store, "a")
    first = states(store)["a"]
    assert first["Status"] == "created"
    assert states(store)["a"] is first  # nothing happened: the very same state, not read again
    write_state(c.state_path, {**first, "Status": "exited", "ExitCode": 3})  # as a monitor writes it: a rename
    again = states(store)["a"]
    assert (again["Status"], again["ExitCode"]) == ("exited", 3)


def test_database_changes_are_seen_and_nothing_else_rereads_it(store):
    add(store, "a")
    with store.view.lock:
        _, changed = store.view.refresh(store.engine)
        assert changed
        _, changed = store.view.refresh(store.engine)
        assert not changed
    add(store, "b")
    assert sorted(states(store)) == ["a", "b"]
    c = store.store.get("a")
    store.store.rename(c, "a2")
    assert sorted(states(store)) == ["a2", "b"]
    store.store.delete(store.store.get("b"))
    assert sorted(states(store)) == ["a2"]


def test_a_process_dying_unobserved_shows_without_any_write(store, sleeper):
    """The container's process and its monitor die and nobody writes the state file (SIGKILL of both): the pidfd
    the view holds makes it reconcile the state again."""
    c = add(store, "a")
    p = sleeper()
    write_state(c.state_path, running_state(p.pid))
    assert states(store)["a"]["Status"] == "running"
    before = c.state_path.stat().st_mtime_ns
    p.send_signal(signal.SIGKILL)
    p.wait()
    state = states(store)["a"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 255)
    assert c.state_path.stat().st_mtime_ns == before  # nothing was written: the pidfd told


def test_the_monitor_is_held_when_the_process_is_gone(store, sleeper):
    c = add(store, "a")
    monitor = sleeper()
    state = {**running_state(0), "Pid": 0, "_MonitorPid": monitor.pid, "_MonitorStart": proc_start(monitor.pid)}
    write_state(c.state_path, state)
    assert states(store)["a"]["Status"] == "running"
    monitor.send_signal(signal.SIGKILL)
    monitor.wait()
    assert states(store)["a"]["Status"] == "exited"


def test_network_namespace_events_drop_the_row(store):
    c = add(store, "a")
    states(store)
    assert store.view.netns_watched
    store.view.rows[c.id] = "row"
    (store.run / "netns" / c.id).touch()
    states(store)
    assert c.id not in store.view.rows


def test_removed_containers_leave_no_descriptor(store, sleeper):
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    made = []
    for i in range(5):
        c = add(store, f"c{i}")
        write_state(c.state_path, running_state(sleeper().pid))
        made.append(c)
    states(store)
    held = fds()
    for c in made:
        store.store.delete(store.store.get(c.id))
    assert states(store) == {}
    assert fds() == held - 5  # the five pidfds are closed
    assert not store.view.rows


def test_an_unwatchable_container_is_read_every_time(store, monkeypatch):
    add(store, "a")

    def refuse(path, mask):
        raise OSError(28, "No space left on device")  # the kernel's max_user_watches

    monkeypatch.setattr(store.view._ino, "add", refuse)
    first = states(store)["a"]
    assert states(store)["a"] is not first  # read again: never stale
    c = store.store.get("a")
    write_state(c.state_path, {**first, "Status": "exited"})
    assert states(store)["a"]["Status"] == "exited"


def test_past_its_descriptor_budget_a_running_state_is_read_every_time(store, sleeper):
    c = add(store, "a")
    p = sleeper()
    write_state(c.state_path, running_state(p.pid))
    store.view.max_pins = 0
    first = states(store)["a"]
    assert first["Status"] == "running" and states(store)["a"] is not first
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert states(store)["a"]["Status"] == "exited"


def test_without_an_inotify_instance_every_state_is_read_every_time(tmp_path, monkeypatch):
    """No inotify instance to be had (EMFILE: fs.inotify.max_user_instances reached): listings still work, reading
    each state every time, never stale."""
    import barque.container.view as view_module

    def refuse():
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(view_module, "Inotify", refuse)
    db = Database(tmp_path / "barque.db")
    s = SimpleNamespace(db=db, store=ContainerStore(db, tmp_path / "containers", tmp_path / "run" / "containers"),
                        view=ContainerView(tmp_path / "barque.db", tmp_path / "run"))
    s.engine = SimpleNamespace(containers=s.store)
    try:
        c = add(s, "a")
        first = states(s)["a"]
        assert not s.view.netns_watched and states(s)["a"] is not first
        write_state(c.state_path, {**first, "Status": "exited", "ExitCode": 2})
        assert states(s)["a"]["ExitCode"] == 2
    finally:
        s.view.close()
        db.close()


def test_a_refresh_that_fails_leaves_nothing_stale(store):
    """A read of the database that raises (SQLite busy) must not leave the view believing it is current: the next
    refresh reads the records, and makes `extra` again."""
    add(store, "a")
    with store.view.lock:
        store.view.refresh(store.engine, lambda found: len(found))
        assert store.view.extra == 1
    add(store, "b")

    def busy(found):
        raise sqlite3.OperationalError("database is locked")

    with store.view.lock, pytest.raises(sqlite3.OperationalError):
        store.view.refresh(store.engine, busy)
    with store.view.lock:
        containers, changed = store.view.refresh(store.engine, lambda found: len(found))
    assert changed and sorted(c.name for c in containers) == ["a", "b"] and store.view.extra == 2


def test_a_sized_listing_measures_without_holding_the_view(store, monkeypatch):
    """`docker ps --size` and `system df` walk each container's files: that happens once the view's lock is let go,
    so other listings are not held up meanwhile (the rows are the same)."""
    import barque.api.routes.containers as routes

    for name in ("a", "b"):
        store.store.add({"Id": secrets.token_hex(32), "Name": "/" + name, "Image": "sha256:" + "0" * 64, "Config": {},
                         "HostConfig": {}, "_barque": {"snapshot": "container-" + name}})
    held = []

    def usage(snapshot):
        held.append((snapshot, store.view.lock.locked()))
        return SimpleNamespace(size=7)

    monkeypatch.setattr(routes, "_row", lambda engine, c, prefetched: {"Id": c.id, "Names": ["/" + c.name],
                                                                        "Status": ""})
    engine = SimpleNamespace(containers=store.store, db=store.db, settings=SimpleNamespace(run_root=store.run),
                             snapshotter=SimpleNamespace(usage=usage))
    rows = routes._listing(engine, store.view, [], True, -1, True)
    assert [(r["Names"], r["SizeRw"], r["Status"]) for r in rows] == [(["/b"], 7, "Created"), (["/a"], 7, "Created")]
    assert held == [("container-b", False), ("container-a", False)]
    assert json.loads(routes._listing(engine, store.view, [], True, -1, True, encode=True)) == rows
