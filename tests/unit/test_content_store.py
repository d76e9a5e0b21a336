"""The content store: verified, atomic ingest; nothing stored on mismatch."""

from __future__ import annotations

import hashlib
import io
import multiprocessing

import pytest

from barque.content import ContentStore
from barque.errors import DataCorruption, InvalidArgument, NotFound
from barque.oci.digest import Digest


def test_ingest_computes_and_verifies(tmp_path):
    store = ContentStore(tmp_path)
    data = b"x" * 3_000_000
    expected = Digest("sha256", hashlib.sha256(data).hexdigest())
    info = store.ingest(io.BytesIO(data), expected, len(data))
    assert info.digest == expected and info.size == len(data)
    assert store.read(expected) == data
    assert list(store.ingest_dir.iterdir()) == []


def test_sha512(tmp_path):
    store = ContentStore(tmp_path)
    data = b"hello"
    d = Digest("sha512", hashlib.sha512(data).hexdigest())
    assert store.add(data, d).digest == d
    assert store.exists(d) and store.path(d).parent.name == "sha512"


@pytest.mark.parametrize("case", ["digest", "short", "long"])
def test_mismatch_stores_nothing(tmp_path, case):
    store = ContentStore(tmp_path)
    data = b"content" * 1000
    good = Digest.from_bytes(data)
    with pytest.raises(DataCorruption) as err:
        if case == "digest":
            store.ingest(io.BytesIO(data + b"!"), good, len(data) + 1)
        elif case == "short":
            store.ingest(io.BytesIO(data[:-10]), good, len(data))
        else:
            with store.writer(good, len(data)) as w:
                w.write(data + b"more")
                w.commit()
    assert str(good) in str(err.value)
    assert list(store.walk()) == []
    assert list(store.ingest_dir.iterdir()) == []


def test_missing_blob(tmp_path):
    store = ContentStore(tmp_path)
    with pytest.raises(NotFound):
        store.open(Digest.from_bytes(b"nope"))
    with pytest.raises(InvalidArgument):
        Digest.parse("md5:abcd")


def test_walk_and_delete(tmp_path):
    store = ContentStore(tmp_path)
    a, b = store.add(b"a"), store.add(b"b")
    assert {i.digest for i in store.walk()} == {a.digest, b.digest}
    store.delete(a.digest)
    assert [i.digest for i in store.walk()] == [b.digest]
    with pytest.raises(NotFound):
        store.delete(a.digest)


def _writer(root: str, n: int) -> None:
    store = ContentStore(root)
    for i in range(50):
        store.add(f"blob-{i % 10}".encode() * 1000)


def test_concurrent_writers_of_the_same_blobs(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), n)) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    store = ContentStore(tmp_path)
    blobs = list(store.walk())
    assert len(blobs) == 10
    for info in blobs:
        assert Digest.from_bytes(store.read(info.digest)) == info.digest
