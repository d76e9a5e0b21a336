"""`kill`, `stop`, `pause`/`unpause`: signals to a running container's PID 1 (checked against its start time so a
reused pid is never signalled), and stop's Docker sequence — the stop signal, up to the timeout, then SIGKILL.
A kill with SIGKILL returns once the container has exited (as dockerd's Kill); other signals are only sent.

A stop by the user is marked in the container's state before the signal, so the monitor does not apply the
restart policy to the exit it causes, as Docker does.
"""

from __future__ import annotations

import os
import signal as signalmod
import time

from barque.errors import Conflict

__all__ = ["kill", "stop", "restart", "pause", "unpause", "DEFAULT_STOP_TIMEOUT"]

DEFAULT_STOP_TIMEOUT = 10
KILL_WAIT = 30.0


def _event(c, action: str, **extra: str) -> None:
    from barque.container.events import container_event

    container_event(c.root, c.record, action, **extra)


def _signal_number(sig: str | int) -> int:
    from barque.container.options import parse_signal, signal_number

    if isinstance(sig, int):
        return sig
    return signal_number(parse_signal(sig, "--signal"))


def _send(c, signum: int) -> bool:
    from barque.container.store import proc_start

    state = c.refresh()
    pid = state.get("Pid") or 0
    if not pid or proc_start(pid) != state.get("_PidStart"):
        return False
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    _event(c, "kill", signal=str(signum))
    return True


def kill(c, sig: str | int = "SIGKILL") -> None:
    signum = _signal_number(sig)
    if not c.refresh().get("Running") or c.status not in ("running", "paused"):
        raise Conflict(f"Cannot kill container: {c.name}: Container {c.id} is not running")
    if signum in (signalmod.SIGKILL, signalmod.SIGTERM, signalmod.SIGINT):
        mark_stopped(c)
    if c.status == "paused" and signum == signalmod.SIGKILL:
        _send(c, signum)
        _thaw(c)
    elif not _send(c, signum):
        raise Conflict(f"Cannot kill container: {c.name}: Container {c.id} is not running")
    if signum == signalmod.SIGKILL:
        # dockerd's Kill (SIGKILL, or no signal given) answers once the container is no longer running, so its
        # exit code and state are those of the exit; any other signal is only sent
        wait_stopped(c, KILL_WAIT)


def mark_stopped(c) -> None:
    """Before the signal: the monitor applies no restart policy to the exit, a pending restart is dropped, and
    `system restore` leaves the container (the flag is in the state, which survives a reboot). A start clears it."""
    from barque.container.monitor import STOPPED_BY_USER_KEY

    c.update_state(**{STOPPED_BY_USER_KEY: True})


def wait_stopped(c, timeout: float) -> bool:
    """Until the container is no longer running (the monitor reports the exit) or `timeout` passes."""
    from barque.container.attach import wait_exit

    deadline = time.monotonic() + timeout
    if wait_exit(c, timeout) is not None:
        return True
    while time.monotonic() < deadline:  # no monitor to ask: watch the state and the process
        if not c.refresh().get("Running") or c.status not in ("running", "paused", "restarting"):
            return True
        time.sleep(0.05)
    return not c.refresh().get("Running")


def stop(c, timeout: int | None = None, sig: str | None = None) -> None:
    state = c.refresh()
    if state.get("Status") == "restarting":
        mark_stopped(c)
        c.update_state(when=lambda s: s.get("Status") == "restarting", Status="exited", Restarting=False,
                       Running=False)
        return
    if state.get("Status") not in ("running", "paused"):
        return
    config = c.record["Config"]
    if timeout is None:
        timeout = config.get("StopTimeout")
        if timeout is None:
            timeout = DEFAULT_STOP_TIMEOUT
    signum = _signal_number(sig or config.get("StopSignal") or "SIGTERM")
    mark_stopped(c)
    paused = c.status == "paused"
    stopped = False
    if timeout != 0 and _send(c, signum):
        if paused:
            _thaw(c)
        stopped = timeout < 0 or wait_stopped(c, float(timeout))
    if not stopped:
        _send(c, signalmod.SIGKILL)
        if paused:
            _thaw(c)
        wait_stopped(c, KILL_WAIT)
    _event(c, "stop")


def restart(engine, c, timeout: int | None = None, sig: str | None = None) -> None:
    """Docker's restart: a stop (of a running container), then a start."""
    from barque.container.start import start

    stop(c, timeout, sig)
    start(engine, c)
    _event(c, "restart")


def _runtime(c):
    from barque.runtime import Runtime

    return Runtime(c.runtime_root)


def _thaw(c) -> None:
    try:
        _runtime(c).resume(c.id)
    except Exception:  # noqa: BLE001 - best effort: the process may be gone
        pass
    c.update_state(when=lambda s: s.get("Status") == "paused", Status="running", Paused=False)


def pause(c) -> None:
    state = c.refresh()
    if state.get("Status") != "running":
        if state.get("Status") == "paused":
            raise Conflict(f"Container {c.id} is already paused")
        raise Conflict(f"Container {c.id} is not running")
    _runtime(c).pause(c.id)
    c.update_state(when=lambda s: s.get("Status") == "running", Status="paused", Paused=True)
    _event(c, "pause")


def unpause(c) -> None:
    state = c.refresh()
    if state.get("Status") != "paused":
        raise Conflict(f"Container {c.id} is not paused")
    _runtime(c).resume(c.id)
    c.update_state(when=lambda s: s.get("Status") == "paused", Status="running", Paused=False)
    _event(c, "unpause")
