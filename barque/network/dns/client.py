"""Talking to the embedded DNS server of a run root: start it when needed, have it serve or forget a container.

`attach` holds `<run root>/dns.lock` while it looks for the server, starts one, and talks to it: two `run`s at once
never start two servers, and the server, which takes the same lock before it exits when idle, never leaves
while an `attach` is on its way to it. `detach` takes no lock: with no server, there is nothing to undo.

The control socket speaks one JSON line each way: `{"op": "attach", "id": …, "netns": …, "root": …, "upstreams":
[…] or null}`,
`{"op": "detach", "id": …}`, `{"op": "status"}` → `{"ok": true, …}` or `{"ok": false, "error": …}`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from barque.errors import Unavailable

__all__ = ["attach", "detach", "status", "stop", "upstreams_for", "pick_upstreams", "SOCKET", "PID_FILE",
           "LOCK_FILE", "LOG_FILE"]

SOCKET = "dns.sock"
PID_FILE = "dns.pid"
LOCK_FILE = "dns.lock"
LOG_FILE = "dns.log"
LOCK_TIMEOUT = 30.0
START_TIMEOUT = 20.0
REQUEST_TIMEOUT = 15.0
DETACH_TIMEOUT = 5.0
MAX_REPLY = 1 << 20
log = logging.getLogger(__name__)


class _NotRunning(Exception):
    """Nothing listens on the control socket."""


@contextlib.contextmanager
def _flock(path: Path, timeout: float) -> Iterator[None]:
    import fcntl

    from barque.linux.flock import flock_within

    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if not flock_within(fd, fcntl.LOCK_EX, timeout):
            raise Unavailable(f"timed out waiting for the lock {path} of barque's DNS server")
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


@contextlib.contextmanager
def unix_address(path: Path) -> Iterator[str]:
    """An address for `path` that fits in a unix socket address (108 bytes): the path itself when short enough,
    else the name inside its directory reached through /proc/self/fd (deep temporary run roots need this)."""
    path = Path(path)
    if len(os.fsencode(str(path))) < 100:
        yield str(path)
        return
    dirfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{dirfd}/{path.name}"
    finally:
        os.close(dirfd)


def _request(run_root: Path, req: dict, timeout: float) -> dict:
    """The server's reply to `req`; `_NotRunning` when no server listens, OSError or ValueError when the exchange
    breaks (a server exiting under us)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
        s.settimeout(timeout)
        with unix_address(Path(run_root) / SOCKET) as address:
            try:
                s.connect(address)
            except (FileNotFoundError, ConnectionRefusedError) as e:
                raise _NotRunning(str(e)) from e
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n") and len(buf) < MAX_REPLY:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    reply = json.loads(buf)
    if not isinstance(reply, dict):
        raise ValueError(f"unexpected reply {reply!r}")
    return reply


def _boot_code() -> str:
    pkg_parent = str(Path(__file__).resolve().parents[3])
    return (f"import sys; sys.path.insert(0, {pkg_parent!r}); "
            "from barque.network.dns.daemon import main; main()")


def _log_tail(run_root: Path) -> str:
    try:
        with open(Path(run_root) / LOG_FILE, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 2000))
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _read_ready(fd: int, deadline: float) -> str | None:
    """What the new server says on its ready pipe; None when it says nothing in time."""
    import select

    buf = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            return buf.decode(errors="replace")
        buf += chunk


def _start(root: Path, run_root: Path) -> None:
    """A server for `run_root`, started and listening (or found starting); Unavailable when it cannot be had."""
    import subprocess

    r, w = os.pipe2(os.O_CLOEXEC)
    argv = [sys.executable or "python3", "-S", "-c", _boot_code(), "--root", str(root), "--run-root",
            os.path.abspath(run_root), "--ready-fd", str(w)]
    deadline = time.monotonic() + START_TIMEOUT
    try:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, pass_fds=(w,), start_new_session=True, cwd="/")
        except OSError as e:
            raise Unavailable(f"cannot start barque's DNS server: {e}") from e
        os.close(w)
        w = -1
        message = _read_ready(r, deadline)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    try:
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))  # the first process exits once it has forked
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if message == "ok":
        return
    if message == "running":  # another server starts or stops right now: wait for it to listen
        while time.monotonic() < deadline:
            try:
                if _request(run_root, {"op": "status"}, 2.0).get("ok"):
                    return
            except (_NotRunning, OSError, ValueError):
                pass
            time.sleep(0.05)
        message = "another DNS server holds the pid file but does not answer"
    if message is None:
        why = "it did not start in time"
    else:
        why = message or "it exited at once"
    tail = _log_tail(run_root)
    raise Unavailable(f"cannot start barque's DNS server for {run_root}: {why}"
                      + (f" (dns.log: {tail})" if tail and tail not in why else ""))


def pick_upstreams(dns, config_dns) -> list[str] | None:
    """Docker's choice of a container's resolvers: its own `--dns` (HostConfig.Dns), else the engine's (the config
    file's `dns`), else None — the host's."""
    chosen = [d for d in (dns or []) if isinstance(d, str)] or [d for d in (config_dns or []) if isinstance(d, str)]
    return chosen or None


def upstreams_for(host_config: dict) -> list[str] | None:
    """The `upstreams` to `attach` a container with, from its HostConfig and barque's config file (a broken file
    is reported by the network commands; here it counts as none, as for the container's resolv.conf)."""
    from barque.network.config import load

    try:
        config_dns = load().dns
    except Exception as e:  # noqa: BLE001 - see above
        log.debug("config file: %s", e)
        config_dns = ()
    return pick_upstreams(host_config.get("Dns"), config_dns)


def attach(root: Path, run_root: Path, container_id: str, netns_path: Path,
           upstreams: list[str] | None = None) -> None:
    """Have the run root's DNS server (started if needed) answer at 127.0.0.11:53 inside the container's
    network namespace; returns once it does, so the container's first process can resolve. Names that are no
    container's go to `upstreams`, asked from inside the container's namespace (`upstreams_for` picks them as
    Docker does), or with None to the host's resolvers, asked from the host's."""
    run_root = Path(run_root)
    run_root.mkdir(parents=True, exist_ok=True, mode=0o711)
    req = {"op": "attach", "id": container_id, "netns": os.path.abspath(netns_path),
           "root": os.path.realpath(root), "upstreams": None if upstreams is None else list(upstreams)}
    with _flock(run_root / LOCK_FILE, LOCK_TIMEOUT):
        for attempt in range(3):
            try:
                try:
                    reply = _request(run_root, req, REQUEST_TIMEOUT)
                except _NotRunning:
                    _start(Path(os.path.realpath(root)), run_root)
                    reply = _request(run_root, req, REQUEST_TIMEOUT)
            except (_NotRunning, OSError, ValueError) as e:
                if attempt < 2:
                    continue  # the server went away under us (SIGTERM): once more, with a new one
                raise Unavailable(f"barque's DNS server for {run_root} does not answer: {e}") from e
            if reply.get("ok"):
                return
            raise Unavailable(f"barque's DNS server cannot serve container {container_id[:12]}: "
                              f"{reply.get('error')}")


def detach(run_root: Path, container_id: str) -> None:
    """Have the DNS server close the container's sockets (which hold its network namespace alive). Quick, and
    never raises: with no server running there is nothing to close, and a server that missed this closes them
    itself once the namespace's file is gone."""
    try:
        _request(Path(run_root), {"op": "detach", "id": container_id}, DETACH_TIMEOUT)
    except _NotRunning:
        return
    except (OSError, ValueError) as e:
        log.warning("barque's DNS server did not take detach of %s: %s", container_id[:12], e)


def status(run_root: Path) -> dict | None:
    """The running server's pid, root and served containers; None when none runs."""
    try:
        reply = _request(Path(run_root), {"op": "status"}, DETACH_TIMEOUT)
    except (_NotRunning, OSError, ValueError):
        return None
    return reply if reply.get("ok") else None


def _is_server(pid: int, run_root: Path) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return False
    return b"barque.network.dns" in cmdline and os.fsencode(os.path.abspath(run_root)) + b"\0" in cmdline


def _server_pid(run_root: Path) -> int | None:
    """The pid in the pid file, when that process is this run root's DNS server."""
    try:
        pid = int((Path(run_root) / PID_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _is_server(pid, run_root) else None


def stop(run_root: Path, timeout: float = 5.0) -> bool:
    """Stop the run root's DNS server and wait until it is gone (SIGTERM, then SIGKILL after `timeout`): for
    tests' teardown and cleanup. Whether one was running."""
    import signal

    pid = _server_pid(Path(run_root))
    if pid is None:
        return False
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _is_server(pid, run_root):
                return True
            time.sleep(0.02)
    return True
