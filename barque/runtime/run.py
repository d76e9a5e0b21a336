"""`run`: create + start; in the foreground, wait for the container's process, forward signals to it (and proxy its
terminal when it has one and no console socket was given), delete the container, and return its exit status —
128+N when signal N killed it, as a shell reports it.

In the foreground the runtime makes itself a child subreaper before forking, so the container's PID 1, orphaned
when stage 1 exits, becomes our child and its exit status ours to collect.
"""

from __future__ import annotations

import logging
import os
import signal

from barque.runtime.create import CreateOptions, create
from barque.runtime.state import StateStore

__all__ = ["run", "wait_foreground", "exit_code"]

log = logging.getLogger(__name__)
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
             signal.SIGWINCH)


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def run(store: StateStore, cid: str, opts: CreateOptions, detach: bool = False, keep: bool = False) -> int:
    """create + start; in the foreground, wait and delete (unless `keep`); the exit code."""
    from barque.linux import _libc
    from barque.runtime.delete import delete
    from barque.runtime.start import start

    if not detach:
        _libc.set_child_subreaper(True)
        opts.console_to_parent = not opts.console_socket
    created = create(store, cid, opts)
    try:
        start(store, cid)
    except BaseException:
        delete(store, cid, force=True)
        raise
    if detach:
        return 0
    try:
        code = wait_foreground(created.container.pid, created.console_fd)
    finally:
        if code_is_oom(store, cid):
            log.warning("container %s: a process was killed by the kernel's OOM killer (memory limit reached)", cid)
        if not keep:
            delete(store, cid, force=True)
    return code


def code_is_oom(store: StateStore, cid: str) -> bool:
    from barque.runtime.create import cgroup_manager

    try:
        return cgroup_manager(store.load(cid).cgroups_path).oom_kill_count() > 0
    except Exception:  # noqa: BLE001 - a report only
        return False


def wait_foreground(pid: int, console_fd: int | None = None) -> int:
    """Wait for our child `pid` (forwarding signals); reap any other orphan handed to us; its exit code."""
    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    previous = {s: signal.signal(s, forward) for s in FORWARDED}
    try:
        if console_fd is not None:
            from barque.runtime.console import proxy

            proxy(console_fd, lambda: _alive(pid))
            os.close(console_fd)
        _, status = os.waitpid(pid, 0)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    _reap_orphans()
    return exit_code(status)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def _reap_orphans() -> None:
    while True:
        try:
            done, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not done:
            return
