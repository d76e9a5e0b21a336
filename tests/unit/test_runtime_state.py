"""The lifecycle as a state machine: status derived from /proc (a fake tree) and the exec fifo, the record written
atomically, and the verbs refusing illegal moves — no root, no containers."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from barque.errors import AlreadyExists, Conflict, FailedPrecondition, NotFound, Unavailable
from barque.runtime import state as st
from barque.runtime.delete import delete
from barque.runtime.kill import kill, parse_signal
from barque.runtime.list import list_containers, render_table
from barque.runtime.pause import pause, resume
from barque.runtime.start import start


def fake_proc(tmp_path: Path, pid: int, state: str = "S", start_time: int = 4242, comm: str = "sh (x) y") -> Path:
    proc = tmp_path / "proc"
    (proc / str(pid)).mkdir(parents=True, exist_ok=True)
    fields = [state] + ["0"] * 18 + [str(start_time)] + ["0"] * 30
    (proc / str(pid) / "stat").write_text(f"{pid} ({comm}) " + " ".join(fields) + "\n")
    return proc


def record(store: st.StateStore, cid: str = "c1", pid: int = 77, start_time: int = 4242, **kw) -> st.Container:
    store.reserve(cid)
    c = st.Container(id=cid, bundle="/b", rootfs="/b/rootfs", pid=pid, start_time=start_time, created=st.now_rfc3339(),
                     oci_version="1.1.0", cgroups_path=f"/barque/{cid}", annotations={"a": "b"}, **kw)
    store.save(c, config={"ociVersion": "1.1.0", "process": {"args": ["sh"]}})
    return c


def test_start_time_parsing_survives_odd_command_names(tmp_path):
    proc = fake_proc(tmp_path, 10, comm="a) (b")
    assert st.process_start_time(10, proc) == 4242
    assert st.process_start_time(11, proc) is None
    fake_proc(tmp_path, 12, state="Z")
    assert st.process_start_time(12, proc) is None, "a zombie is gone"


def test_status_is_derived(tmp_path):
    store = st.StateStore(tmp_path / "root")
    c = record(store)
    proc = fake_proc(tmp_path, 77)
    assert c.status(proc) == st.RUNNING
    os.mkfifo(c.fifo)
    assert c.status(proc) == st.CREATED, "the exec fifo is there until start"
    c.fifo.unlink()
    c.paused = True
    assert c.status(proc) == st.PAUSED
    fake_proc(tmp_path, 77, start_time=9999)
    assert c.status(proc) == st.STOPPED, "pid reused by another process"
    fake_proc(tmp_path, 77, state="Z")
    assert c.status(proc) == st.STOPPED, "zombie"


def test_oci_state_json(tmp_path):
    store = st.StateStore(tmp_path / "root")
    c = record(store, pid=999999999)
    s = store.load("c1").oci_state()
    assert s["status"] == "stopped" and s["pid"] == 0
    assert {k: s[k] for k in ("ociVersion", "id", "bundle", "annotations")} == \
        {"ociVersion": "1.1.0", "id": "c1", "bundle": "/b", "annotations": {"a": "b"}}
    assert s["created"].endswith("Z") and "T" in s["created"]
    assert json.loads((c.dir / "state.json").read_text())["start_time"] == 4242


def test_ids_are_claimed_once(tmp_path):
    store = st.StateStore(tmp_path / "root")
    record(store)
    with pytest.raises(AlreadyExists, match="c1 already exists"):
        store.reserve("c1")
    with pytest.raises(NotFound, match="container nope does not exist"):
        store.load("nope")
    assert store.ids() == ["c1"]
    store.bpf_cache.mkdir()
    assert store.ids() == ["c1"], "the seccomp cache is no container"
    store.remove("c1")
    assert store.ids() == [] and not store.dir("c1").exists()


def test_lock_serialises_verbs(tmp_path):
    store = st.StateStore(tmp_path / "root")
    record(store)
    entered = threading.Event()
    release = threading.Event()

    def hold():
        with store.lock("c1"):
            entered.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    entered.wait(5)
    with pytest.raises(Unavailable, match="locked"):
        with store.lock("c1", timeout=0.05):
            pass
    release.set()
    t.join()
    with store.lock("c1", timeout=1):
        pass


def live(store: st.StateStore, cid: str = "c1", created: bool = False) -> st.Container:
    """A record whose pid is this test process itself: a live 'container' without any kernel work."""
    c = record(store, cid, pid=os.getpid(), start_time=st.process_start_time(os.getpid()))
    if created:
        os.mkfifo(c.fifo)
    return c


def test_start_only_from_created(tmp_path):
    store = st.StateStore(tmp_path / "root")
    live(store)
    with pytest.raises(FailedPrecondition, match="it is running, not created"):
        start(store, "c1")
    record(store, "dead", pid=999999999)
    with pytest.raises(FailedPrecondition, match="it is stopped, not created"):
        start(store, "dead")


def test_start_opens_the_fifo_and_reads_the_go_byte(tmp_path):
    store = st.StateStore(tmp_path / "root")
    c = live(store, created=True)

    def container_side():
        fd = os.open(c.fifo, os.O_WRONLY)  # blocks until start opens the read end
        os.write(fd, b"0")
        os.close(fd)

    t = threading.Thread(target=container_side)
    t.start()
    start(store, "c1")
    t.join(5)
    assert not c.fifo.exists() and store.load("c1").status() == st.RUNNING


def test_delete_refuses_a_running_container(tmp_path):
    store = st.StateStore(tmp_path / "root")
    live(store)
    with pytest.raises(Conflict, match="not stopped: running"):
        delete(store, "c1")


def test_delete_of_nothing(tmp_path):
    store = st.StateStore(tmp_path / "root")
    with pytest.raises(NotFound):
        delete(store, "ghost")
    delete(store, "ghost", force=True)  # as runc: nothing to delete is fine with --force
    store.reserve("half")  # a create that died before its state.json
    delete(store, "half", force=True)
    assert not store.dir("half").exists()


def test_pause_and_resume_refuse_wrong_states(tmp_path):
    store = st.StateStore(tmp_path / "root")
    record(store, "dead", pid=999999999)
    with pytest.raises(FailedPrecondition, match="stopped, not running"):
        pause(store, "dead")
    live(store)
    with pytest.raises(FailedPrecondition, match="running, not paused"):
        resume(store, "c1")


def test_kill_a_stopped_container_says_not_running(tmp_path):
    store = st.StateStore(tmp_path / "root")
    record(store, "dead", pid=999999999)
    with pytest.raises(FailedPrecondition, match="container not running"):
        kill(store, "dead", 15)


@pytest.mark.parametrize("text,number", [("9", 9), ("KILL", 9), ("SIGKILL", 9), ("term", 15), ("SIGUSR1", 10)])
def test_signals_by_name_and_number(text, number):
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["SIGBOGUS", "0", "999"])
def test_bad_signals(text):
    with pytest.raises(Exception, match="signal"):
        parse_signal(text)


def test_list(tmp_path):
    store = st.StateStore(tmp_path / "root")
    live(store)
    record(store, "dead", pid=999999999)
    states = list_containers(store)
    assert [(s["id"], s["status"]) for s in states] == [("c1", "running"), ("dead", "stopped")]
    table = render_table(states).splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"] and len(table) == 3


def test_rfc3339_is_go_parseable():
    t = st.now_rfc3339()
    assert time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S") and t.endswith("Z") and len(t.split(".")[1]) == 10
