"""Log drivers: Docker's json-file bytes, line splitting, rotation, and the reader behind `barque logs`."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from barque.container.logs import (
    DEFAULT_MAX_FILE,
    DEFAULT_MAX_SIZE,
    LogEntry,
    LogWriter,
    format_entry,
    log_settings,
    open_writer,
    parse_log_config,
    parse_since,
    read_logs,
)
from barque.errors import InvalidArgument

T0 = 1704164645.0   # 2024-01-02T03:04:05Z


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def datas(entries) -> list[bytes]:
    return [e.data for e in entries]


# --- the file format -------------------------------------------------------------------------------------------


def test_line_is_byte_exact_docker_json_file(tmp_path):
    log = tmp_path / "c.log"
    with LogWriter(str(log), None, 1) as w:
        w.write("stdout", b"hello world\n", when=T0 + 0.125)
        w.write("stderr", b"oops\n", when=T0)
    assert log.read_bytes() == (
        b'{"log":"hello world\\n","stream":"stdout","time":"2024-01-02T03:04:05.125Z"}\n'
        b'{"log":"oops\\n","stream":"stderr","time":"2024-01-02T03:04:05Z"}\n'
    )


def test_escaping_follows_go_and_invalid_utf8_becomes_replacement_per_byte(tmp_path):
    log = tmp_path / "c.log"
    with LogWriter(str(log), None, 1) as w:
        w.write("stdout", b'a<b>&"q"\\\t\r\x01\x7f caf\xc3\xa9 \xe2\x80\xa8 \xff\xe2\x82x\xef\xbf\xbd\n', when=T0)
    assert log.read_bytes() == (
        b'{"log":"a\\u003cb\\u003e\\u0026\\"q\\"\\\\\\u0009\\r\\u0001\x7f caf\xc3\xa9 \\u2028 '
        b'\\ufffd\\ufffd\\ufffdx\xef\xbf\xbd\\n",'
        b'"stream":"stdout","time":"2024-01-02T03:04:05Z"}\n'
    )
    json.loads(log.read_bytes())   # and it is valid JSON
    [entry] = read_logs(str(log))
    assert entry.data == 'a<b>&"q"\\\t\r\x01\x7f café \u2028 \ufffd\ufffd\ufffdx\ufffd\n'.encode()


def test_real_clock_time_is_rfc3339_nano_utc(tmp_path):
    log = tmp_path / "c.log"
    before = time.time()
    with LogWriter(str(log), None, 1) as w:
        w.write("stdout", b"x\n")
    stamp = json.loads(log.read_bytes())["time"]
    import re

    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z", stamp)
    [entry] = read_logs(str(log))
    assert entry.time == stamp and before - 1 <= entry.ts <= time.time() + 1


def test_reads_a_file_docker_wrote_and_formats_like_docker_logs(tmp_path):
    log = tmp_path / "c.log"
    log.write_bytes(b'{"log":"Log line is here\\n","stream":"stdout","time":"2019-01-01T11:11:11.111111111Z"}\n'
                    b'{"log":"two\\n","stream":"stderr","time":"2019-01-01T11:11:12.5Z"}\n'
                    b'{"log":"three\\n","stream":"stdout","time":"2019-01-01T11:11:13Z"}\n')
    entries = list(read_logs(str(log)))
    assert entries[0] == LogEntry("stdout", "2019-01-01T11:11:11.111111111Z", pytest.approx(1546341071.111111111),
                                  b"Log line is here\n")
    assert [e.stream for e in entries] == ["stdout", "stderr", "stdout"]
    assert [format_entry(e, False) for e in entries] == [b"Log line is here\n", b"two\n", b"three\n"]
    assert [format_entry(e, True) for e in entries] == [
        b"2019-01-01T11:11:11.111111111Z Log line is here\n",
        b"2019-01-01T11:11:12.500000000Z two\n",
        b"2019-01-01T11:11:13.000000000Z three\n",
    ]


# --- splitting into entries ------------------------------------------------------------------------------------


def test_partial_lines_wait_for_their_newline_per_stream_and_flush_on_close(tmp_path):
    log = tmp_path / "c.log"
    w = LogWriter(str(log), None, 1)
    w.write("stdout", b"abc", when=T0)
    w.write("stderr", b"err-", when=T0)
    assert log.read_bytes() == b""
    w.write("stdout", b"def\nsecond\nthi", when=T0 + 1)
    w.write("stderr", b"done\n", when=T0 + 2)
    assert [(e.stream, e.data) for e in read_logs(str(log))] == [
        ("stdout", b"abcdef\n"), ("stdout", b"second\n"), ("stderr", b"err-done\n")]
    w.write("stdout", b"rd", when=T0 + 3)
    w.close()
    last = lines_of(log)[-1]
    assert json.loads(last)["log"] == "third"   # Docker's partial: no newline
    w.close()   # closing twice is harmless
    with pytest.raises(ValueError):
        w.write("stdout", b"late\n")


def test_empty_lines_are_entries(tmp_path):
    log = tmp_path / "c.log"
    with LogWriter(str(log), None, 1) as w:
        w.write("stdout", b"\n\na\n", when=T0)
    assert datas(read_logs(str(log))) == [b"\n", b"\n", b"a\n"]


def test_long_lines_are_cut_every_16k_sharing_the_first_pieces_time(tmp_path):
    log = tmp_path / "c.log"
    k16 = 16 * 1024
    with LogWriter(str(log), None, 1) as w:
        w.write("stdout", b"a" * (k16 - 1) + b"\n", when=T0)              # fits: one entry
        w.write("stdout", b"b" * k16, when=T0 + 1)                        # a full buffer goes out at once
        w.write("stdout", b"\n", when=T0 + 2)
        w.write("stdout", b"c" * (2 * k16 + 10), when=T0 + 3)
        w.write("stdout", b"c\n", when=T0 + 4)
    objs = [json.loads(line) for line in lines_of(log)]
    assert [len(o["log"]) for o in objs] == [k16, k16, 1, k16, k16, 12]
    assert [o["log"].endswith("\n") for o in objs] == [True, False, True, False, False, True]
    assert [o["time"] for o in objs] == ["2024-01-02T03:04:05Z"] + ["2024-01-02T03:04:06Z"] * 2 + \
        ["2024-01-02T03:04:08Z"] * 3
    assert b"".join(datas(read_logs(str(log)))) == (b"a" * (k16 - 1) + b"\n" + b"b" * k16 + b"\n"
                                                    + b"c" * (2 * k16 + 11) + b"\n")


def test_entries_are_on_disk_without_close(tmp_path):
    """The monitor may be SIGKILLed: what write() returned from must already be in the file."""
    log = tmp_path / "c.log"
    w = LogWriter(str(log), None, 1)
    w.write("stdout", b"one\ntwo\n", when=T0)
    assert datas(read_logs(str(log))) == [b"one\n", b"two\n"]
    w.close()


def test_reopening_appends(tmp_path):
    log = tmp_path / "c.log"
    with LogWriter(str(log), None, 1) as w:
        w.write("stdout", b"first\n", when=T0)
    with LogWriter(str(log), None, 1) as w:
        w.write("stdout", b"second\n", when=T0 + 1)
    assert datas(read_logs(str(log))) == [b"first\n", b"second\n"]


# --- rotation --------------------------------------------------------------------------------------------------


def write_numbered(path: Path, n: int, max_size: int | None, max_file: int, compress: bool = False) -> None:
    with LogWriter(str(path), max_size, max_file, compress) as w:
        for i in range(n):
            w.write("stdout", b"line %04d\n" % i, when=T0 + i)


def test_rotation_keeps_max_file_files_each_within_max_size(tmp_path):
    log = tmp_path / "c.log"
    write_numbered(log, 200, 1000, 3)
    assert sorted(os.listdir(tmp_path)) == ["c.log", "c.log.1", "c.log.2"]
    for name in os.listdir(tmp_path):
        assert 0 < (tmp_path / name).stat().st_size <= 1000
    got = datas(read_logs(str(log)))
    # oldest first, contiguous, ending with the last line written
    assert got == [b"line %04d\n" % i for i in range(200 - len(got), 200)]
    assert len(got) > 2 * (1000 // 70)
    # the newest lines are in the current file, the oldest in .2
    assert lines_of(log)[-1].startswith(b'{"log":"line 0199\\n"')
    assert json.loads(lines_of(tmp_path / "c.log.2")[0])["log"] == got[0].decode()


def test_rotation_with_compression(tmp_path):
    log = tmp_path / "c.log"
    write_numbered(log, 200, 1000, 4, compress=True)
    assert sorted(os.listdir(tmp_path)) == ["c.log", "c.log.1.gz", "c.log.2.gz", "c.log.3.gz"]
    with gzip.open(tmp_path / "c.log.1.gz") as f:
        rotated = f.read()
    assert len(rotated) <= 1000 and rotated.startswith(b'{"log":"line ')
    assert lines_of(log)[0] != rotated.splitlines(keepends=True)[0]
    got = datas(read_logs(str(log)))
    assert got == [b"line %04d\n" % i for i in range(200 - len(got), 200)]
    assert len(got) > 3 * (1000 // 70)


def test_one_file_starts_over(tmp_path):
    log = tmp_path / "c.log"
    write_numbered(log, 50, 500, 1)
    assert os.listdir(tmp_path) == ["c.log"]
    assert log.stat().st_size <= 500
    got = datas(read_logs(str(log)))
    assert got[-1] == b"line 0049\n" and len(got) < 50


def test_unbounded_never_rotates(tmp_path):
    log = tmp_path / "c.log"
    write_numbered(log, 300, None, 5)
    assert os.listdir(tmp_path) == ["c.log"]
    assert len(list(read_logs(str(log)))) == 300


# --- reading ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_tail_across_rotated_files(tmp_path, compress):
    log = tmp_path / "c.log"
    write_numbered(log, 200, 1000, 5, compress)
    total = datas(read_logs(str(log)))
    assert datas(read_logs(str(log), tail=3)) == [b"line 0197\n", b"line 0198\n", b"line 0199\n"]
    assert datas(read_logs(str(log), tail=40)) == [b"line %04d\n" % i for i in range(160, 200)]   # spans files
    assert datas(read_logs(str(log), tail=10_000)) == total
    assert datas(read_logs(str(log), tail=-1)) == total
    assert list(read_logs(str(log), tail=0)) == []


def test_tail_reads_the_current_file_from_its_end(tmp_path, monkeypatch):
    """Ten lines of a big log must not mean reading the whole file."""
    log = tmp_path / "c.log"
    with LogWriter(str(log), None, 1) as w:
        w.write("stdout", b"".join(b"line %06d\n" % i for i in range(50_000)), when=T0)
    read = []
    real_pread = os.pread

    def counting_pread(fd, n, offset):
        data = real_pread(fd, n, offset)
        read.append(len(data))
        return data

    monkeypatch.setattr(os, "pread", counting_pread)
    assert datas(read_logs(str(log), tail=10)) == [b"line %06d\n" % i for i in range(49_990, 50_000)]
    assert sum(read) < log.stat().st_size / 10


def test_since_and_until_are_inclusive(tmp_path):
    log = tmp_path / "c.log"
    write_numbered(log, 100, 1000, 10, compress=True)
    assert datas(read_logs(str(log), since=T0 + 95)) == [b"line %04d\n" % i for i in range(95, 100)]
    assert datas(read_logs(str(log), since=T0 + 20, until=T0 + 22)) == [b"line 0020\n", b"line 0021\n",
                                                                        b"line 0022\n"]
    assert datas(read_logs(str(log), until=T0 - 1)) == []
    # like Docker, tail picks the last N and since filters those
    assert datas(read_logs(str(log), tail=5, since=T0 + 97)) == [b"line 0097\n", b"line 0098\n", b"line 0099\n"]


def test_missing_log_reads_as_empty(tmp_path):
    assert list(read_logs(str(tmp_path / "nope.log"))) == []


def test_a_line_still_being_written_is_not_shown_until_complete(tmp_path):
    log = tmp_path / "c.log"
    done = b'{"log":"done\\n","stream":"stdout","time":"2024-01-02T03:04:05Z"}\n'
    log.write_bytes(done + b'{"log":"hal')
    assert datas(read_logs(str(log))) == [b"done\n"]
    assert datas(read_logs(str(log), tail=5)) == [b"done\n"]


def test_follow_sees_new_entries_and_ends_when_the_container_stops(tmp_path):
    log = tmp_path / "c.log"
    w = LogWriter(str(log), None, 1)
    w.write("stdout", b"before\n", when=T0)
    stopped = threading.Event()
    got: list[bytes] = []

    def writer() -> None:
        time.sleep(0.05)
        w.write("stdout", b"af", when=T0 + 1)
        time.sleep(0.05)
        w.write("stdout", b"ter\n", when=T0 + 1)
        w.close()
        stopped.set()

    t = threading.Thread(target=writer)
    t.start()
    for entry in read_logs(str(log), follow=True, still_running=lambda: not stopped.is_set(), poll=0.01):
        got.append(entry.data)
    t.join()
    assert got == [b"before\n", b"after\n"]


@pytest.mark.parametrize("compress", [False, True])
def test_follow_survives_rotation(tmp_path, compress):
    log = tmp_path / "c.log"
    w = LogWriter(str(log), 700, 50, compress)
    for i in range(5):
        w.write("stdout", b"line %04d\n" % i, when=T0 + i)
    stopped = threading.Event()

    def writer() -> None:
        for i in range(5, 150):
            w.write("stdout", b"line %04d\n" % i, when=T0 + i)
            time.sleep(0.001)
        w.close()
        stopped.set()

    t = threading.Thread(target=writer)
    t.start()
    try:
        got = datas(read_logs(str(log), follow=True, still_running=lambda: not stopped.is_set(), poll=0.002))
    finally:
        t.join()
    assert got == [b"line %04d\n" % i for i in range(150)]
    assert (tmp_path / ("c.log.5.gz" if compress else "c.log.5")).exists()   # it really rotated, several times


def test_follow_waits_for_the_file_and_honours_until(tmp_path):
    log = tmp_path / "c.log"
    now = time.time()

    def writer() -> None:
        time.sleep(0.05)
        with LogWriter(str(log), None, 1) as w:
            w.write("stdout", b"early\n", when=now)
            w.write("stdout", b"late\n", when=now + 100)

    t = threading.Thread(target=writer)
    t.start()
    got = datas(read_logs(str(log), follow=True, until=now + 30, poll=0.01))   # ends at the entry past `until`
    t.join()
    assert got == [b"early\n"]
    started = time.time()   # and when `until` has passed, following stops even with nothing more written
    assert datas(read_logs(str(log), follow=True, until=started + 0.2, poll=0.01)) == [b"early\n"]
    assert time.time() - started < 5


# --- configuration ---------------------------------------------------------------------------------------------


def test_log_config_keeps_the_users_options_and_defaults_are_bounded():
    assert parse_log_config("json-file", {}) == {"Type": "json-file", "Config": {}}
    assert parse_log_config("", {}) == {"Type": "json-file", "Config": {}}
    assert log_settings({"Type": "json-file", "Config": {}}) == (DEFAULT_MAX_SIZE, DEFAULT_MAX_FILE, False)
    assert (DEFAULT_MAX_SIZE, DEFAULT_MAX_FILE) == (20 * 1024 * 1024, 5)
    cfg = parse_log_config("json-file", {"max-size": "10m", "max-file": "3", "compress": "true", "tag": "x",
                                         "labels": "a", "env": "B", "mode": "non-blocking",
                                         "max-buffer-size": "4m"})
    assert cfg["Config"]["max-size"] == "10m"
    assert log_settings(cfg) == (10_000_000, 3, True)
    assert log_settings(parse_log_config("json-file", {"max-size": "10M"})) == (10_000_000, 1, False)  # Docker's 1
    assert log_settings(parse_log_config("json-file", {"max-file": "3"})) == (DEFAULT_MAX_SIZE, 3, False)
    assert log_settings(parse_log_config("json-file", {"max-size": "-1"})) == (None, 1, False)
    assert log_settings(parse_log_config("json-file", {"max-size": "512", "max-file": "2"})) == (512, 2, False)
    assert log_settings(parse_log_config("json-file", {"max-size": "1g"}))[0] == 1_000_000_000
    assert log_settings(parse_log_config("json-file", {"max-size": "2kb"}))[0] == 2000
    assert log_settings(parse_log_config("local", {})) == (20 * 1024 * 1024, 5, True)
    assert log_settings(parse_log_config("local", {"max-size": "1m", "compress": "false", "max-file": "1"})) == \
        (1_000_000, 1, False)
    assert parse_log_config("none", {}) == {"Type": "none", "Config": {}}
    assert log_settings({"Type": "none", "Config": {}}) is None


@pytest.mark.parametrize("driver,opts,message", [
    ("syslogx", {}, 'error looking up logging plugin syslogx: plugin "syslogx" not found'),
    ("json-file", {"max-sise": "1m"}, "unknown log opt 'max-sise' for json-file log driver"),
    ("json-file", {"max-size": "ten"}, "invalid size: 'ten'"),
    ("json-file", {"max-size": "0"}, "max-size must be a positive number"),
    ("json-file", {"max-file": "two"}, 'strconv.Atoi: parsing "two": invalid syntax'),
    ("json-file", {"max-file": "0"}, "max-file cannot be less than 1"),
    ("json-file", {"compress": "yes"}, 'strconv.ParseBool: parsing "yes": invalid syntax'),
    ("json-file", {"max-size": "1m", "compress": "true"},
     "compress cannot be true when max-file is less than 2 or max-size is not set"),
    ("json-file", {"max-size": "-1", "max-file": "3", "compress": "true"},
     "compress cannot be true when max-file is less than 2 or max-size is not set"),
    ("json-file", {"mode": "fast"}, "logger: logging mode not supported: fast"),
    ("json-file", {"max-buffer-size": "1m"},
     "logger: max-buffer-size option is only supported with 'mode=non-blocking'"),
    ("local", {"labels": "a", "foo": "b"}, "unknown log opt 'foo' for log driver local"),
    ("local", {"max-size": "big"}, "invalid value for max-size: big: invalid size: 'big'"),
    ("local", {"max-file": "x"}, 'invalid value for max-file: x: strconv.Atoi: parsing "x": invalid syntax'),
    ("local", {"max-file": "-2", "compress": "false"}, "max-file must not be negative"),
    ("local", {"compress": "maybe"}, 'invalid boolean value for compress: strconv.ParseBool: parsing "maybe": '
                                     "invalid syntax"),
    ("local", {"max-file": "1"}, "compression cannot be enabled when max file count is 1"),
])
def test_bad_log_options_use_dockers_words(driver, opts, message):
    with pytest.raises(InvalidArgument) as exc:
        parse_log_config(driver, opts)
    assert str(exc.value) == message


def test_open_writer_follows_the_driver(tmp_path):
    assert open_writer({"Type": "none", "Config": {}}, str(tmp_path / "c.log")) is None
    assert not (tmp_path / "c.log").exists()
    w = open_writer(parse_log_config("local", {"max-size": "1k", "max-file": "3"}), str(tmp_path / "c.log"))
    assert (w.max_size, w.max_file, w.compress) == (1000, 3, True)
    for i in range(100):
        w.write("stdout", b"line %04d\n" % i, when=T0 + i)
    w.close()
    assert sorted(os.listdir(tmp_path)) == ["c.log", "c.log.1.gz", "c.log.2.gz"]


def test_the_monitor_side_stays_lean(tmp_path):
    """Importing the module and writing a log loads no heavy modules (typing, barque.errors, datetime…)."""
    code = (
        "import sys; before = set(sys.modules)\n"
        "from barque.container.logs import open_writer\n"
        f"w = open_writer({{'Type': 'json-file', 'Config': {{'max-size': '1k'}}}}, {str(tmp_path / 'c.log')!r})\n"
        "for i in range(100): w.write('stdout', b'x' * 50 + b'\\n')\n"
        "w.close()\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.split()
    for heavy in ("typing", "dataclasses", "datetime", "barque.errors", "gzip", "collections.abc"):
        assert heavy not in out
    assert "barque.container.logs" in out


# --- --since / --until -----------------------------------------------------------------------------------------

NOW = 1_700_000_000.75


@pytest.mark.parametrize("text,expected", [
    ("10m", 1_700_000_000 - 600),
    ("1h30m", 1_700_000_000 - 5400),
    ("42s", 1_700_000_000 - 42),
    ("1.5h", 1_700_000_000 - 5400),
    ("-1m", 1_700_000_060),
    ("1700000000", 1_700_000_000.0),
    ("1700000000.123", 1_700_000_000.123),
    ("0", 0.0),
    ("2024-01-02T03:04:05Z", T0),
    ("2024-01-02T03:04:05.5Z", T0 + 0.5),
    ("2024-01-02T03:04:05.123456789Z", T0 + 0.123456789),
    ("2024-01-02T04:04:05+01:00", T0),
    ("2024-01-02T01:04:05-02:00", T0),
    ("2024-01-02T03:04Z", T0 - 5),
    ("2024-01-02T03Z", T0 - 245),
    ("2024-01-02Z", T0 - 11045),
])
def test_parse_since_forms(text, expected):
    assert parse_since(text, NOW) == pytest.approx(expected, abs=1e-6)


def test_parse_since_without_zone_is_local_time():
    local = time.mktime((2024, 1, 2, 3, 4, 5, 0, 0, -1))
    assert parse_since("2024-01-02T03:04:05", T0) == pytest.approx(local)
    assert parse_since("2024-01-02T03:04:05.25", T0) == pytest.approx(local + 0.25)
    assert parse_since("2024-01-02", T0) == pytest.approx(time.mktime((2024, 1, 2, 0, 0, 0, 0, 0, -1)))


@pytest.mark.parametrize("text", ["yesterday", "10x", "2024-13-01T00:00:00Z", "2024-01-02T03:04:05.Z", "", "1.2.3"])
def test_parse_since_rejects_nonsense_naming_it(text):
    with pytest.raises(InvalidArgument) as exc:
        parse_since(text, NOW)
    assert f'"{text}"' in str(exc.value)
