"""The snapshot metadata store on its own: containerd's rules, ids, transactions, several processes. No mounts."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from barque.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound
from barque.snapshot.base import Kind, Usage
from barque.snapshot.metadata import MetaStore


@pytest.fixture
def store(tmp_path: Path):
    s = MetaStore(tmp_path / "metadata.db")
    yield s
    s.close()


def create(store: MetaStore, kind: Kind, key: str, parent: str | None = None, labels=None):
    with store.write() as tx:
        return tx.create(kind, key, parent, labels)


def commit(store: MetaStore, key: str, name: str, usage: Usage = Usage(0, 0), labels=None):
    with store.write() as tx:
        return tx.commit(key, name, usage, labels)


def get(store: MetaStore, key: str):
    with store.read() as tx:
        return tx.get(key)


def test_create_get_and_parent_chain(store: MetaStore) -> None:
    a = create(store, Kind.ACTIVE, "a", labels={"x": "1"})
    assert (a.name, a.kind, a.parent, a.parent_ids, a.labels) == ("a", Kind.ACTIVE, None, (), {"x": "1"})
    commit(store, "a", "A")
    b = create(store, Kind.ACTIVE, "b", "A")
    commit(store, "b", "B")
    c = create(store, Kind.VIEW, "c", "B")
    A, B = get(store, "A"), get(store, "B")
    assert A.id == a.id and B.id == b.id            # commit keeps the id: the directory stays put
    assert c.parent == "B" and c.parent_ids == (B.id, A.id)   # top-most first
    assert len({a.id, b.id, c.id}) == 3
    info = get(store, "c").info()
    assert (info.name, info.key, info.kind, info.parent) == ("c", "c", Kind.VIEW, "B")


def test_commit_rules(store: MetaStore) -> None:
    create(store, Kind.ACTIVE, "a", labels={"transient": "yes"})
    create(store, Kind.VIEW, "v")
    with pytest.raises(FailedPrecondition):
        commit(store, "v", "V")
    with pytest.raises(NotFound):
        commit(store, "missing", "M")
    with pytest.raises(AlreadyExists):
        commit(store, "a", "v")                     # one namespace for keys and names
    rec = commit(store, "a", "A", Usage(4096, 3), labels={"kept": "1"})
    assert rec.kind == Kind.COMMITTED and rec.usage == Usage(4096, 3)
    assert rec.labels == {"kept": "1"}              # replaced, not inherited (containerd)
    with pytest.raises(NotFound):
        get(store, "a")
    with pytest.raises(FailedPrecondition):
        commit(store, "A", "AA")


def test_create_rules(store: MetaStore) -> None:
    create(store, Kind.ACTIVE, "a")
    with pytest.raises(AlreadyExists):
        create(store, Kind.VIEW, "a")
    with pytest.raises(NotFound):
        create(store, Kind.ACTIVE, "b", "nope")
    with pytest.raises(FailedPrecondition):
        create(store, Kind.ACTIVE, "b", "a")
    with pytest.raises(InvalidArgument):
        create(store, Kind.COMMITTED, "b")
    with pytest.raises(InvalidArgument):
        create(store, Kind.ACTIVE, "")
    with pytest.raises(InvalidArgument):
        create(store, Kind.ACTIVE, "b", labels={"k": 1})
    weird = "sha256:" + "f" * 64 + "/../../etc ☃ \n"
    assert create(store, Kind.ACTIVE, weird).name == weird   # keys are arbitrary; dirs are named by id


def test_remove_rules_and_ids_never_reused(store: MetaStore) -> None:
    a = create(store, Kind.ACTIVE, "a")
    commit(store, "a", "A")
    create(store, Kind.VIEW, "v", "A")
    with store.write() as tx:
        with pytest.raises(Conflict) as exc:
            tx.remove("A")
        assert "'v'" in str(exc.value)
    with store.write() as tx:
        assert tx.remove("v").name == "v"
        assert tx.remove("A").id == a.id
        with pytest.raises(NotFound):
            tx.remove("A")
    again = create(store, Kind.ACTIVE, "a")
    assert again.id > a.id      # AUTOINCREMENT: a deleted id never names a new snapshot


def test_failed_transaction_rolls_back(store: MetaStore) -> None:
    with pytest.raises(RuntimeError):
        with store.write() as tx:
            tx.create(Kind.ACTIVE, "a")
            raise RuntimeError("crash before commit")
    with store.read() as tx:
        assert tx.find("a") is None and tx.walk() == []


def test_read_transaction_refuses_writes(store: MetaStore) -> None:
    with store.read() as tx:
        with pytest.raises(RuntimeError):
            tx.create(Kind.ACTIVE, "a")


def test_walk_and_reopen(tmp_path: Path) -> None:
    s = MetaStore(tmp_path / "m.db")
    create(s, Kind.ACTIVE, "a")
    commit(s, "a", "A", Usage(10, 1))
    create(s, Kind.ACTIVE, "b", "A", labels={"l": "v"})
    before = [r.info() for r in _walk(s)]
    s.close()
    s2 = MetaStore(tmp_path / "m.db")
    try:
        assert [r.info() for r in _walk(s2)] == before
        assert [(i.name, i.kind, i.parent) for i in before] == [("A", Kind.COMMITTED, None), ("b", Kind.ACTIVE, "A")]
        assert get(s2, "A").usage == Usage(10, 1)
    finally:
        s2.close()


def _walk(s: MetaStore):
    with s.read() as tx:
        return tx.walk()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(FailedPrecondition):
        MetaStore(tmp_path / "m.db")


def test_wal_mode(store: MetaStore, tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "metadata.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def _create_many(path: str, tag: str, n: int, barrier, out) -> None:
    s = MetaStore(Path(path))
    try:
        barrier.wait(timeout=30)
        ids = []
        for i in range(n):
            with s.write() as tx:
                ids.append(tx.create(Kind.ACTIVE, f"{tag}-{i}", "base").id)
        out.put((tag, ids))
    finally:
        s.close()


def test_writers_in_several_processes(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    s = MetaStore(path)
    create(s, Kind.ACTIVE, "b")
    commit(s, "b", "base")
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_create_many, args=(str(path), f"p{i}", 30, barrier, out)) for i in range(3)]
    for p in procs:
        p.start()
    got = dict(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    all_ids = [i for ids in got.values() for i in ids]
    assert len(all_ids) == 90 and len(set(all_ids)) == 90
    assert len(_walk(s)) == 91
    s.close()
