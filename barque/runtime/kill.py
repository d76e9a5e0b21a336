"""`kill`: a signal to the container's PID 1, or with --all to every process in its cgroup."""

from __future__ import annotations

import os
import signal as signal_mod

from barque.errors import FailedPrecondition, InvalidArgument
from barque.runtime.state import STOPPED, StateStore

__all__ = ["kill", "parse_signal"]


def parse_signal(value: str | int) -> int:
    """`9`, `KILL`, `SIGKILL`, `sigkill` → 9."""
    if isinstance(value, int) or str(value).isdigit():
        number = int(value)
        if not 0 < number < signal_mod.NSIG:
            raise InvalidArgument(f"invalid signal number {value}")
        return number
    name = str(value).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(getattr(signal_mod.Signals, name))
    except AttributeError:
        raise InvalidArgument(f"unknown signal {value!r}") from None


def kill(store: StateStore, cid: str, sig: int, all_processes: bool = False) -> None:
    from barque.runtime.create import cgroup_manager

    c = store.load(cid)
    status = c.status()
    if all_processes:
        mgr = cgroup_manager(c.cgroups_path)
        mgr.kill(sig)
        return
    if status == STOPPED:
        raise FailedPrecondition("container not running")
    try:
        os.kill(c.pid, sig)
    except ProcessLookupError:
        raise FailedPrecondition("container not running") from None
