"""The event log: Docker's event shape and line format, whole lines under concurrent appends, bounded rotation,
since/until, following across rotation, and dockerd's filter rules."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from barque.container import events
from barque.container.events import (
    container_attributes,
    container_event,
    format_event,
    make_event,
    matches,
    parse_filters,
    read,
    record,
)
from barque.errors import InvalidArgument

CID = "3f4e9d1c2b7a" + "0" * 52
T0 = 1704164645_123456789  # 2024-01-02T03:04:05.123456789Z


def lines(root: Path) -> list[dict]:
    return [json.loads(x) for x in (root / "events.log").read_text().splitlines()]


def test_container_event_has_dockers_shape_and_field_order(tmp_path):
    rec = {"Id": CID, "Name": "/web", "Image": "sha256:abc", "Config": {"Image": "busybox", "Labels": {"tier": "a"}}}
    container_event(tmp_path, rec, "die", exitCode="0")
    raw = (tmp_path / "events.log").read_text()
    assert raw.endswith("\n") and raw.count("\n") == 1
    ev = json.loads(raw)
    assert list(ev) == ["status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"]
    assert ev["status"] == ev["Action"] == "die"
    assert ev["id"] == ev["Actor"]["ID"] == CID
    assert ev["from"] == "busybox"
    assert ev["Type"] == "container" and ev["scope"] == "local"
    assert ev["Actor"]["Attributes"] == {"exitCode": "0", "image": "busybox", "name": "web", "tier": "a"}
    assert list(ev["Actor"]["Attributes"]) == sorted(ev["Actor"]["Attributes"])  # as Go marshals a map
    assert ev["time"] == ev["timeNano"] // 10**9
    assert abs(ev["time"] - time.time()) < 5


def test_volume_events_have_no_deprecated_fields():
    ev = make_event("volume", "create", "data", {"driver": "local"}, time_ns=T0)
    assert list(ev) == ["Type", "Action", "Actor", "scope", "time", "timeNano"]
    img = make_event("image", "tag", "sha256:abc", {"name": "busybox:latest"}, time_ns=T0)
    assert img["status"] == "tag" and img["id"] == "sha256:abc" and "from" not in img


def test_container_attributes_from_record():
    rec = {"Id": CID, "Name": "/x", "Image": "sha256:abc", "Config": {"Image": "busybox:1"}}
    assert container_attributes(rec) == {"image": "busybox:1", "name": "x"}


def test_docker_line_format_utc_and_offset(monkeypatch):
    ev = make_event("container", "start", CID, {"name": "x", "image": "busybox"}, time_ns=T0)
    assert format_event(ev, utc=True) == \
        f"2024-01-02T03:04:05.123456789Z container start {CID} (image=busybox, name=x)"
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    try:
        assert format_event(ev).startswith("2024-01-02T04:04:05.123456789+01:00 container start")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    bare = make_event("volume", "destroy", "v1", {}, time_ns=T0)
    assert format_event(bare, utc=True) == "2024-01-02T03:04:05.123456789Z volume destroy v1"


def test_record_never_raises(tmp_path, caplog):
    missing = tmp_path / "no" / "such" / "dir"
    assert record(missing, "container", "start", CID, {}) is None
    assert "not recorded" in caplog.text


def _writer(root: str, n: int, tag: int) -> None:
    for i in range(n):
        record(root, "container", "exec_start: " + "x" * 300, f"{tag}-{i}", {"pad": "y" * (tag * 50)})


def test_concurrent_processes_interleave_whole_lines(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), 200, t)) for t in range(1, 5)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    got = lines(tmp_path)  # every line parses: none was torn
    assert len(got) == 800
    for t in range(1, 5):
        mine = [e["Actor"]["ID"] for e in got if e["Actor"]["ID"].startswith(f"{t}-")]
        assert mine == [f"{t}-{i}" for i in range(200)]  # each writer's own order is kept


def test_rotation_keeps_two_files_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(events, "MAX_BYTES", 4096)
    for i in range(100):
        record(tmp_path, "container", "start", f"c{i}", {"name": f"n{i}"})
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["events.log", "events.log.1"]
    assert all(p.stat().st_size <= 4096 for p in tmp_path.iterdir())
    # what is left is the newest events, in order, without a gap between the two files
    ids = [e["Actor"]["ID"] for e in read(tmp_path)]
    assert ids[-1] == "c99"
    assert ids == [f"c{i}" for i in range(100 - len(ids), 100)]


def test_concurrent_rotation_rotates_once(tmp_path, monkeypatch):
    monkeypatch.setattr(events, "MAX_BYTES", 64 * 1024)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), 150, t)) for t in range(1, 5)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    got = list(read(tmp_path))
    assert len(got) == sum(len(p.read_bytes().splitlines()) for p in tmp_path.iterdir())  # no torn line
    # a rotated file is always one that was full: a second writer never rotates the fresh log away
    assert (tmp_path / "events.log.1").stat().st_size > 64 * 1024 - 1024
    assert (tmp_path / "events.log").stat().st_size <= 64 * 1024


def test_a_writer_that_waited_for_the_lock_does_not_rotate_again(tmp_path, monkeypatch):
    monkeypatch.setattr(events, "MAX_BYTES", 1024)
    path = tmp_path / "events.log"
    path.write_bytes(b"x" * 1000 + b"\n")
    stale = os.open(path, os.O_WRONLY | os.O_APPEND)  # writer B opened the full log…
    record(tmp_path, "container", "start", "from-a", {})  # …writer A rotates it first
    assert (tmp_path / "events.log.1").read_bytes() == b"x" * 1000 + b"\n"
    fd = events._rotate(str(path), stale, 1024, 200)  # B's turn: the log is already new, nothing to rotate
    os.close(fd)
    assert [e["Actor"]["ID"] for e in read(tmp_path)] == ["from-a"]
    assert (tmp_path / "events.log.1").read_bytes() == b"x" * 1000 + b"\n"


def _log(root: Path, *specs: tuple) -> None:
    with open(root / "events.log", "a") as f:
        for type_, action, actor, attrs, ns in specs:
            f.write(json.dumps(make_event(type_, action, actor, attrs, time_ns=ns), separators=(",", ":")) + "\n")


def test_since_and_until_are_inclusive(tmp_path):
    s = 10**9
    _log(tmp_path, *[("container", "start", f"c{i}", {}, T0 + i * s) for i in range(5)])
    ids = lambda **kw: [e["Actor"]["ID"] for e in read(tmp_path, **kw)]  # noqa: E731
    assert ids() == ["c0", "c1", "c2", "c3", "c4"]
    assert ids(since=(T0 + s) / 1e9) == ["c1", "c2", "c3", "c4"]
    assert ids(until=(T0 + 2 * s) / 1e9 + 1e-6) == ["c0", "c1", "c2"]
    assert ids(since=(T0 + s) / 1e9, until=(T0 + 3 * s) / 1e9 + 1e-6) == ["c1", "c2", "c3"]
    assert ids(since=time.time() + 10) == []


def test_torn_and_foreign_lines_are_skipped(tmp_path):
    _log(tmp_path, ("container", "start", "good", {}, T0))
    with open(tmp_path / "events.log", "a") as f:
        f.write("not json\n{\"half\": \n")
    _log(tmp_path, ("container", "die", "good2", {}, T0 + 1))
    assert [e["Actor"]["ID"] for e in read(tmp_path)] == ["good", "good2"]


def test_follow_sees_new_events_and_rotation(tmp_path, monkeypatch):
    monkeypatch.setattr(events, "MAX_BYTES", 2048)
    got: list[str] = []
    start = time.time()
    until = start + 3.0

    def follow():
        for e in read(tmp_path, since=start, until=until, follow=True, poll=0.02):
            got.append(e["Actor"]["ID"])

    t = threading.Thread(target=follow)
    t.start()
    time.sleep(0.2)
    for i in range(40):  # several rotations while following
        record(tmp_path, "container", "start", f"n{i}", {"name": "z" * 20})
        time.sleep(0.01)
    t.join(10)
    assert not t.is_alive(), "follow did not stop at --until"
    assert time.time() >= until
    assert got == [f"n{i}" for i in range(40)]


def test_follow_without_a_log_yet_waits_for_it(tmp_path):
    got: list[str] = []
    stop = time.time() + 1.5
    t = threading.Thread(target=lambda: got.extend(e["Actor"]["ID"] for e in read(
        tmp_path, since=time.time(), until=stop, follow=True, poll=0.02)))
    t.start()
    time.sleep(0.3)
    record(tmp_path, "container", "create", "first", {})
    t.join(5)
    assert got == ["first"]


def test_following_from_now_skips_old_events_without_reading_them(tmp_path):
    _log(tmp_path, ("container", "start", "old", {}, T0))
    os.utime(tmp_path / "events.log", (T0 / 1e9, T0 / 1e9))
    now = time.time()
    it = read(tmp_path, since=now, until=now + 0.5, follow=True, poll=0.02)
    record(tmp_path, "container", "stop", "new", {})
    assert [e["Actor"]["ID"] for e in it] == ["new"]


# ---- filters ------------------------------------------------------------------------------------------------------

def test_parse_filters_errors_as_docker():
    assert parse_filters(["type=container", "event=start", "event=die"]) == \
        {"type": ["container"], "event": ["start", "die"]}
    with pytest.raises(InvalidArgument, match=r"bad format of filter \(expected name=value\)"):
        parse_filters(["container"])
    with pytest.raises(InvalidArgument, match="invalid filter 'colour'"):
        parse_filters(["colour=red"])


def ev(type_="container", action="start", actor=CID, **attrs):
    return make_event(type_, action, actor, {"image": "busybox:latest", "name": "web1", **attrs}, time_ns=T0)


@pytest.mark.parametrize("flt, event, want", [
    ({"type": ["container"]}, ev(), True),
    ({"type": ["image"]}, ev(), False),
    ({"event": ["start", "die"]}, ev(action="die"), True),
    ({"event": ["stop"]}, ev(action="start"), False),
    ({"event": ["health_status"]}, ev(action="health_status: healthy"), True),
    ({"event": ["health_status: unhealthy"]}, ev(action="health_status: healthy"), False),
    ({"event": ["exec"]}, ev(action="exec_start: sh"), False),
    ({"container": [CID]}, ev(), True),
    ({"container": [CID[:6]]}, ev(), True),
    ({"container": ["web"]}, ev(), True),          # a name prefix, as dockerd's FuzzyMatch
    ({"container": ["eb1"]}, ev(), False),
    ({"container": ["other", "web1"]}, ev(), True),
    ({"image": ["busybox"]}, ev(), True),            # the tag stripped
    ({"image": ["busybox:latest"]}, ev(), True),
    ({"image": ["alpine"]}, ev(), False),
    ({"image": ["busybox"]}, make_event("image", "tag", "sha256:x", {"name": "busybox:1"}), True),
    ({"image": ["reg:5000/app"]}, ev(image="reg:5000/app:v1"), True),
    ({"label": ["tier"]}, ev(tier="db"), True),
    ({"label": ["tier=db"]}, ev(tier="db"), True),
    ({"label": ["tier=web"]}, ev(tier="db"), False),
    ({"label": ["tier=db", "env"]}, ev(tier="db"), False),
    ({"type": ["container"], "event": ["die"]}, ev(action="start"), False),
    ({"volume": ["data"]}, make_event("volume", "create", "data", {"driver": "local"}), True),
    ({"volume": ["data"]}, ev(), False),
    ({"scope": ["local"]}, ev(), True),
])
def test_filters_match_as_dockerd(flt, event, want):
    assert matches(event, flt) is want


def test_read_applies_filters(tmp_path):
    _log(tmp_path, ("container", "start", "a" * 64, {"name": "one"}, T0),
         ("container", "die", "b" * 64, {"name": "two"}, T0 + 1),
         ("volume", "create", "v", {}, T0 + 2))
    got = [e["Actor"]["ID"][:1] for e in read(tmp_path, filters={"type": ["container"], "event": ["die"]})]
    assert got == ["b"]
