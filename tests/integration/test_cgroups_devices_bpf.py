"""The cgroup v2 device allowlist on the real kernel: an eBPF BPF_PROG_TYPE_CGROUP_DEVICE program attached to a
cgroup under this host's cgroup2 mount (/sys/fs/cgroup/unified; device programs need no controller), a child moved
into it, and what the child may open. Every cgroup is `barque-test-<hex>` and is removed (its processes killed
first) in `finally`; removing the cgroup detaches its programs."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from barque.cgroups import CgroupManager, devices_bpf
from barque.errors import FailedPrecondition, InvalidArgument
from barque.linux import _libc

UNIFIED = Path("/sys/fs/cgroup/unified")

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="loads eBPF programs and creates cgroups: needs root"),
    pytest.mark.skipif(not (UNIFIED / "cgroup.procs").exists(), reason="needs a cgroup2 mount at " + str(UNIFIED)),
]

NULL = {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}

# the child opens each path given on its command line and prints "ok" or the errno name, one per line
CHILD = """
import errno, os, sys
sys.stdin.readline()
for path in sys.argv[1:]:
    try:
        os.close(os.open(path, os.O_RDWR))
        print("ok")
    except OSError as e:
        print(errno.errorcode[e.errno])
"""


def _rmdir(d: Path) -> None:
    for _ in range(100):
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            time.sleep(0.05)  # the killed child is still leaving
    d.rmdir()


@pytest.fixture
def cgroup() -> Iterator[Path]:
    d = UNIFIED / f"barque-test-{uuid.uuid4().hex[:10]}"
    d.mkdir()
    try:
        yield d
    finally:
        for pid in (d / "cgroup.procs").read_text().split():
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
        _rmdir(d)
    assert not d.exists()


def _opens(d: Path, *paths: str) -> list[str]:
    """Start a child, move it into `d`, and return what opening each path gave it."""
    p = subprocess.Popen([sys.executable, "-c", CHILD, *paths], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        (d / "cgroup.procs").write_text(str(p.pid))
        out, err = p.communicate("go\n", timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    return out.split()


def _attach(d: Path, rules: list[dict]) -> None:
    prog_fd = _libc.bpf_prog_load_cgroup_device(devices_bpf.program(rules))
    try:
        cg_fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            _libc.bpf_prog_attach(prog_fd, cg_fd)
        finally:
            os.close(cg_fd)
    finally:
        os.close(prog_fd)


def _attached(d: Path) -> list[int]:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return _libc.bpf_prog_query(fd)
    finally:
        os.close(fd)


def test_no_program_everything_opens(cgroup: Path) -> None:
    assert _opens(cgroup, "/dev/null", "/dev/zero") == ["ok", "ok"]


def test_only_dev_null_allowed(cgroup: Path) -> None:
    _attach(cgroup, [NULL])  # the fds are closed: the attachment holds the program
    assert len(_attached(cgroup)) == 1
    assert _opens(cgroup, "/dev/null", "/dev/zero", "/dev/full") == ["ok", "EPERM", "EPERM"]


def test_later_deny_overrides_earlier_allow(cgroup: Path) -> None:
    rules = [{"allow": True, "type": "c", "major": 1, "minor": None, "access": "rwm"},  # all of c 1:*
             {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "rwm"}]  # but not /dev/zero
    _attach(cgroup, rules)
    assert _opens(cgroup, "/dev/null", "/dev/zero", "/dev/full") == ["ok", "EPERM", "ok"]


def test_access_subset(cgroup: Path) -> None:
    _attach(cgroup, [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"}])
    assert _opens(cgroup, "/dev/null") == ["EPERM"]  # opened O_RDWR: read and write requested, only read allowed


def test_allow_all_then_deny(cgroup: Path) -> None:
    _attach(cgroup, [{"allow": True, "type": "a"}, {"allow": False, "type": "c", "major": 1, "minor": 3}])
    assert _opens(cgroup, "/dev/null", "/dev/zero") == ["EPERM", "ok"]


def test_bad_program_reports_the_verifier() -> None:
    bad = devices_bpf.insn(devices_bpf.EXIT)  # r0 never set
    with pytest.raises(OSError) as e:
        _libc.bpf_prog_load_cgroup_device(bad)
    assert e.value.errno in (errno.EACCES, errno.EINVAL)
    assert "BPF_PROG_LOAD" in str(e.value) and "verifier log" in str(e.value) and "R0" in str(e.value)
    with pytest.raises(ValueError):
        _libc.bpf_prog_load_cgroup_device(b"\x95\0\0")


def test_manager_v2_set_attaches_and_replaces() -> None:
    name = f"barque-test-{uuid.uuid4().hex[:10]}"
    m = CgroupManager(f"/{name}", root=UNIFIED, mode="v2")
    m.create()
    try:
        d = m.paths["unified"]
        m.set({"devices": [{"allow": False, "type": "a"}, NULL]})
        assert len(_attached(d)) == 1
        assert _opens(d, "/dev/null", "/dev/zero") == ["ok", "EPERM"]
        first = _attached(d)
        m.set({"devices": [{"allow": False, "type": "a"}, {**NULL, "minor": 5}]})  # update: new one replaces old
        assert len(_attached(d)) == 1 and _attached(d) != first
        assert _opens(d, "/dev/null", "/dev/zero") == ["EPERM", "ok"]
        with pytest.raises(InvalidArgument):
            m.set({"devices": [{"allow": True, "type": "q"}]})
        assert len(_attached(d)) == 1
    finally:
        m.destroy()
    assert not (UNIFIED / name).exists()


def test_manager_attach_needs_the_cgroup() -> None:
    m = CgroupManager(f"/barque-test-{uuid.uuid4().hex[:10]}", root=UNIFIED, mode="v2")
    with pytest.raises(FailedPrecondition):
        m.set({"devices": [NULL]})


def test_partial_deny_refuses_overlapping_access(cgroup: Path) -> None:
    _attach(cgroup, [{"allow": True, "type": "a"},
                     {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}])
    assert _opens(cgroup, "/dev/null", "/dev/zero") == ["EPERM", "ok"]  # O_RDWR asks for w too
