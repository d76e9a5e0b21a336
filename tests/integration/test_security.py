"""Capabilities, no_new_privs and the default seccomp profile on the real kernel, as root.

Each check runs in a forked child that reports through a pipe and `os._exit`s; the parent bounds it with a
timeout and reaps it, so nothing is left behind and the test process itself is never restricted. Before a child
loads a filter it moves into private mount and UTS namespaces, and the blocked calls are made with arguments
that would fail harmlessly (bad pointers, bad flags) should the filter let them through — a control child
without the filter shows what they return then.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import select
import signal
import socket
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pyprctl
import pyseccomp
import pytest

from barque.errors import FailedPrecondition
from barque.runtime.caps import (ALL_CAPABILITIES, apply_capabilities, available_capabilities, capability_mask,
                                 keep_caps_across_setuid)
from barque.runtime.defaults import DEFAULT_CAPABILITIES, base_spec, default_seccomp_profile, privileged
from barque.runtime.seccomp import build_filter, load_filter, notify_fd

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall arguments below are x86_64's"),
]

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.personality.argtypes = [ctypes.c_ulong]

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWUSER = 0x10000000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
SIGCHLD = 17
AF_ALG = 38
AF_VSOCK = 40
DEFAULT_MASK = capability_mask(DEFAULT_CAPABILITIES)


def nr(name: str) -> int:
    return pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)


def call(name: str, *args: int | bytes | None) -> int:
    """The raw syscall's errno, or 0 when it succeeded."""
    ctypes.set_errno(0)
    ret = libc.syscall(nr(name), *[ctypes.c_void_p(None) if a is None else a for a in args])
    return ctypes.get_errno() if ret == -1 else 0


def status() -> dict[str, str]:
    lines = Path("/proc/self/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def cap_fields(st: dict[str, str]) -> dict[str, int]:
    return {k: int(st[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


def in_child(body: Callable[[], object], timeout: float = 30.0) -> object:
    """Run `body` in a forked child; return what it returned (JSON-able) or fail with its traceback."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(r)
            payload = {"value": body()}
        except BaseException:  # noqa: BLE001 — everything is reported to the parent
            payload, code = {"error": traceback.format_exc()}, 1
        try:
            os.write(w, json.dumps(payload).encode())
        finally:
            os._exit(code)
    os.close(w)
    try:
        data = _read_until_eof(r, timeout)
    finally:
        os.close(r)
        _reap(pid, timeout)
    result = json.loads(data or b'{"error": "the child reported nothing"}')
    if "error" in result:
        pytest.fail(f"child failed:\n{result['error']}")
    return result["value"]


def _read_until_eof(fd: int, timeout: float) -> bytes:
    deadline, chunks = time.monotonic() + timeout, []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError("the child did not finish in time")
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _reap(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, wstatus = os.waitpid(pid, os.WNOHANG)
        if done:
            return wstatus
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1]


def private_namespaces() -> None:
    """Private mount and UTS namespaces for the child, so that a filter that failed open could touch nothing."""
    for what, err in (("unshare", call("unshare", CLONE_NEWNS | CLONE_NEWUTS)),
                      ("make / private", call("mount", b"none", b"/", None, MS_REC | MS_PRIVATE, None))):
        if err:
            raise OSError(err, f"{what}: {os.strerror(err)}")


# -- seccomp --------------------------------------------------------------------------------------------------

# Blocked syscalls, with arguments that fail harmlessly if they are let through.
BLOCKED_CALLS: dict[str, tuple] = {
    "mount": (None, None, None, 0, None),
    "umount2": (None, 0),
    "pivot_root": (None, None),
    "setns": (-1, 0),
    "keyctl": (0, -1, 0),                     # KEYCTL_GET_KEYRING_ID of the thread keyring, no create
    "add_key": (None, None, None, 0, 0),
    "request_key": (None, None, None, 0),
    "clock_settime": (0, None),               # CLOCK_REALTIME, no time given
    "settimeofday": (None, None),             # nothing to set
    "kexec_load": (0, 1000, None, 0xFFFF0000),  # too many segments, unknown architecture flags
    "kexec_file_load": (-1, -1, 0, None, 0xFFFF),
    "init_module": (None, 0, None),
    "finit_module": (-1, None, 0),
    "delete_module": (b"barque_no_such_module", os.O_NONBLOCK),
    "reboot": (0, 0, 0, None),                # bad magic
    "swapon": (None, 0),
    "bpf": (-1, None, 0),
    "perf_event_open": (None, 0, -1, -1, 0),
    "open_by_handle_at": (-1, None, 0),
    "sethostname": (None, 1000),              # too long
    "acct": (1,),                             # a bad pointer: acct(NULL) would switch accounting off
    "quotactl": (0, None, 0, None),
    "io_uring_setup": (0, None),
    "clone": (SIGCHLD | CLONE_NEWUSER, 0, None, None, 0),
    "unshare": (CLONE_NEWUSER,),              # last: where it works, the child loses its caps over the host
}


def _blocked_results() -> dict[str, int]:
    results = {}
    for name, args in BLOCKED_CALLS.items():
        if name == "clone":
            ret = libc.syscall(nr("clone"), *[ctypes.c_void_p(None) if a is None else a for a in args])
            if ret == 0:
                os._exit(0)  # a clone that got through: the copy leaves at once
            if ret > 0:
                os.waitpid(ret, 0)
                results[name] = 0
            else:
                results[name] = ctypes.get_errno()
            continue
        results[name] = call(name, *args)
    return results


def _allowed_results() -> dict[str, object]:
    out: dict[str, object] = {"getpid": os.getpid() > 0}
    r, w = os.pipe()
    out["write"] = os.write(w, b"ping") == 4
    out["read"] = os.read(r, 4) == b"ping"
    pid = os.fork()  # glibc's fork: clone without namespace flags
    if pid == 0:
        os._exit(7)
    out["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    ret = libc.syscall(nr("clone"), SIGCHLD, 0, None, None, 0)
    if ret == 0:
        os._exit(8)
    out["clone"] = os.waitstatus_to_exitcode(os.waitpid(ret, 0)[1]) if ret > 0 else -ctypes.get_errno()
    out["clone3"] = call("clone3", None, 0)  # ENOSYS, so that libc falls back to clone
    seen: list[int] = []
    t = threading.Thread(target=lambda: seen.append(threading.get_native_id()))
    t.start()
    t.join()
    out["thread"] = len(seen) == 1
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        out["socket_inet"] = s.fileno() >= 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        out["socket_unix"] = s.fileno() >= 0
    out["socket_alg"] = call("socket", AF_ALG, 5, 0)
    out["socket_vsock"] = call("socket", AF_VSOCK, 1, 0)
    out["personality_query"] = libc.personality(0xFFFFFFFF) >= 0
    out["personality_no_aslr"] = call("personality", 0x0040000)
    return out


def test_control_without_filter_blocked_calls_do_not_fail_with_eperm():
    """Shows the EPERMs below come from the filter: as root and unfiltered, most of these fail otherwise."""
    def body():
        private_namespaces()
        return _blocked_results()

    results = in_child(body)
    not_eperm = {name for name, err in results.items() if err != errno.EPERM}
    # kexec and module loading can be disabled by sysctl, which answers EPERM too; the rest must differ
    assert set(BLOCKED_CALLS) - {"kexec_load", "kexec_file_load", "init_module", "finit_module",
                                 "delete_module"} <= not_eperm, results


def test_default_profile_blocks_with_eperm_and_allows_the_rest():
    profile = default_seccomp_profile()

    def body():
        private_namespaces()
        f = build_filter(profile)
        pyprctl.set_no_new_privs()
        load_filter(f)
        st = status()
        return {"blocked": _blocked_results(), "allowed": _allowed_results(),
                "seccomp": st["Seccomp"], "nnp": st["NoNewPrivs"]}

    out = in_child(body)
    assert out["seccomp"] == "2" and out["nnp"] == "1"
    assert out["blocked"] == {name: errno.EPERM for name in BLOCKED_CALLS}
    allowed = out["allowed"]
    assert allowed["clone3"] == errno.ENOSYS
    assert allowed["socket_alg"] == errno.EPERM and allowed["socket_vsock"] == errno.EPERM
    assert allowed["personality_no_aslr"] == errno.EPERM
    assert allowed["fork"] == 7 and allowed["clone"] == 8
    for key in ("getpid", "read", "write", "thread", "socket_inet", "socket_unix", "personality_query"):
        assert allowed[key] is True, key


def test_filter_without_no_new_privs_needs_cap_sys_admin():
    profile = default_seccomp_profile()

    def body():
        f = build_filter(profile)
        apply_capabilities({s: list(DEFAULT_CAPABILITIES) for s in ("bounding", "effective", "permitted")})
        try:
            load_filter(f)
        except FailedPrecondition as e:
            return str(e)
        return "loaded"

    assert in_child(body).startswith("cannot load the seccomp filter: the kernel requires no_new_privs")


# -- capabilities ---------------------------------------------------------------------------------------------

ALL_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")


def test_apply_default_capabilities_as_root():
    def body():
        private_namespaces()
        path = tempfile.mktemp(prefix="barque-caps-")
        Path(path).write_text("x")
        try:
            apply_capabilities({s: list(DEFAULT_CAPABILITIES) for s in ALL_SETS})
            caps = cap_fields(status())
            os.chown(path, 1234, 1234)  # CAP_CHOWN is kept
            chowned = os.stat(path).st_uid == 1234
        finally:
            os.unlink(path)
        return {"caps": caps, "chowned": chowned,
                "sethostname": call("sethostname", b"x", 1),  # needs CAP_SYS_ADMIN
                "mount": call("mount", b"none", b"/tmp", b"tmpfs", 0, None),
                "bnd_sys_admin": pyprctl.capbset_read(pyprctl.Cap.SYS_ADMIN)}

    out = in_child(body)
    assert out["caps"] == {k: DEFAULT_MASK for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
    assert out["chowned"] is True
    assert out["sethostname"] == errno.EPERM and out["mount"] == errno.EPERM
    assert out["bnd_sys_admin"] is False


def test_apply_none_drops_everything():
    def body():
        apply_capabilities(None)
        return cap_fields(status())

    assert in_child(body) == {k: 0 for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


def test_apply_sets_exactly_what_is_asked():
    spec = {"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"], "permitted": ["CAP_CHOWN", "CAP_KILL"],
            "effective": ["CAP_KILL"], "inheritable": ["CAP_CHOWN"], "ambient": ["CAP_CHOWN"]}

    def body():
        apply_capabilities(spec)
        return cap_fields(status())

    assert in_child(body) == {"CapBnd": capability_mask(spec["bounding"]), "CapPrm": capability_mask(spec["permitted"]),
                              "CapEff": capability_mask(spec["effective"]),
                              "CapInh": capability_mask(spec["inheritable"]), "CapAmb": capability_mask(["CAP_CHOWN"])}


def test_ambient_that_cannot_be_raised_is_skipped():
    def body():
        apply_capabilities({"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"], "effective": ["CAP_KILL"],
                            "ambient": ["CAP_KILL"]})  # not inheritable, so it cannot be ambient
        return cap_fields(status())

    out = in_child(body)
    assert out["CapAmb"] == 0 and out["CapEff"] == capability_mask(["CAP_KILL"])


def _exec_status_as(uid: int, caps: dict, *, keep_caps: bool = True, seccomp: bool = True, nnp: bool = True) -> str:
    """Fork; become `uid` with `caps`, no_new_privs and the default filter; exec cat /proc/self/status.

    Without no_new_privs the filter is loaded first, while CAP_SYS_ADMIN is still held (the runtime's order then):
    the uid change and the capability calls then run under the filter.
    """
    profile = default_seccomp_profile()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            f = build_filter(profile) if seccomp else None
            if f is not None and not nnp:
                load_filter(f)
                f = None
            if keep_caps:
                keep_caps_across_setuid()
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            apply_capabilities(caps)
            if nnp:
                pyprctl.set_no_new_privs()
            if f is not None:
                load_filter(f)
            os.dup2(w, 1)
            os.execv("/bin/cat", ["cat", "/proc/self/status"])
        except BaseException:  # noqa: BLE001
            os.write(w, ("ERROR " + traceback.format_exc()).encode())
        os._exit(127)
    os.close(w)
    try:
        data = _read_until_eof(r, 30)
    finally:
        os.close(r)
        _reap(pid, 30)
    return data.decode()


def _parse(text: str) -> dict[str, str]:
    assert not text.startswith("ERROR"), text
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def test_non_root_keeps_ambient_capabilities_across_exec():
    st = _parse(_exec_status_as(1000, {s: list(DEFAULT_CAPABILITIES) for s in ALL_SETS}))
    assert st["Uid"].split()[0] == "1000" and st["Gid"].split()[0] == "1000"
    assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2"
    assert cap_fields(st) == {k: DEFAULT_MASK for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


def test_filter_loaded_before_the_uid_change_allows_it():
    st = _parse(_exec_status_as(1000, {s: list(DEFAULT_CAPABILITIES) for s in ALL_SETS}, nnp=False))
    assert st["Uid"].split()[0] == "1000" and st["NoNewPrivs"] == "0" and st["Seccomp"] == "2"
    assert cap_fields(st)["CapEff"] == DEFAULT_MASK


def test_notify_fd_of_a_loaded_filter():
    spec = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/barque-test.sock",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]}

    def body():
        f = build_filter(spec)
        pyprctl.set_no_new_privs()
        load_filter(f)
        fd = notify_fd(f)
        return {"fd": fd, "link": os.readlink(f"/proc/self/fd/{fd}")}  # getppid is never called: nobody answers

    out = in_child(body)
    assert out["fd"] >= 0 and "seccomp notify" in out["link"]


def test_non_root_without_ambient_loses_capabilities_at_exec():
    caps = {s: list(DEFAULT_CAPABILITIES) for s in ("bounding", "effective", "inheritable", "permitted")}
    st = _parse(_exec_status_as(1000, caps))
    fields = cap_fields(st)
    assert fields["CapEff"] == fields["CapPrm"] == fields["CapAmb"] == 0
    assert fields["CapBnd"] == DEFAULT_MASK


def test_root_exec_keeps_the_bounding_set_without_ambient():
    caps = {s: list(DEFAULT_CAPABILITIES) for s in ("bounding", "effective", "permitted")}
    st = _parse(_exec_status_as(0, caps))
    assert cap_fields(st) == {"CapInh": 0, "CapPrm": DEFAULT_MASK, "CapEff": DEFAULT_MASK, "CapBnd": DEFAULT_MASK,
                              "CapAmb": 0}


def test_without_keep_caps_the_uid_change_loses_the_permitted_set():
    text = _exec_status_as(1000, {s: list(DEFAULT_CAPABILITIES) for s in ALL_SETS}, keep_caps=False, seccomp=False)
    assert text.startswith("ERROR")
    assert "FailedPrecondition: cannot grant capabilities this process does not hold: CAP_AUDIT_WRITE, " in text


def test_capabilities_not_held_are_named():
    def body():
        apply_capabilities({"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"], "effective": ["CAP_KILL"]})
        try:
            apply_capabilities({"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL", "CAP_CHOWN"]})
        except FailedPrecondition as e:
            return str(e)
        return "applied"

    assert in_child(body) == "cannot grant capabilities this process does not hold: CAP_CHOWN"


def test_privileged_capability_set_applies():
    caps = privileged(base_spec())["process"]["capabilities"]
    assert set(caps["bounding"]) == set(available_capabilities()) <= set(ALL_CAPABILITIES)

    def body():
        apply_capabilities(caps)
        return cap_fields(status())

    out = in_child(body)
    full = capability_mask(available_capabilities())
    assert out["CapBnd"] == out["CapEff"] == out["CapPrm"] == full and out["CapAmb"] == 0
