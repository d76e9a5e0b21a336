"""What happens when a container's process has exited: the exit recorded, its cgroup and runtime state released, its
rootfs unmounted, then — as its restart policy and --rm ask — a restart scheduled or the container removed.

Runs in the container's monitor (barque.container.monitor) after the last output was drained, so heavier imports
here cost nothing while the container runs.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

#: Docker's restart back-off: 100 ms, doubled at each restart, back to the start after 10 s of running
BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
BACKOFF_RESET_AFTER = 10.0


def oom_killed(cgroups_path: str) -> bool:
    try:
        from barque.cgroups import CgroupManager

        return CgroupManager(cgroups_path).oom_kill_count() > 0
    except Exception:  # noqa: BLE001 - a report only
        return False


def release(runtime_root: str, cid: str, rootfs: str | None) -> bool:
    """Delete the runtime's container (its cgroup with it) and unmount the rootfs; whether OOM killed something."""
    from barque.errors import NotFound
    from barque.runtime.delete import delete
    from barque.runtime.state import StateStore

    store = StateStore(Path(runtime_root))
    oom = False
    try:
        oom = oom_killed(store.load(cid).cgroups_path)
        delete(store, cid, force=True)
    except NotFound:
        pass
    if rootfs:
        unmount_rootfs(rootfs)
    return oom


def unmount_rootfs(rootfs: str) -> None:
    from barque.linux.mountinfo import mounted_under
    from barque.snapshot import unmount

    if os.path.ismount(rootfs) or mounted_under(rootfs):
        unmount(Path(rootfs))


def should_restart(policy: dict, exit_code: int, restarts: int, stopped_by_user: bool) -> bool:
    name = (policy or {}).get("Name") or "no"
    if stopped_by_user or name == "no":
        return False
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        limit = policy.get("MaximumRetryCount") or 0
        return exit_code != 0 and (limit == 0 or restarts < limit)
    return False


def backoff(restarts: int, ran_for: float) -> float:
    if ran_for >= BACKOFF_RESET_AFTER:
        return BACKOFF_START
    return min(BACKOFF_MAX, BACKOFF_START * (2 ** min(restarts, 20)))


def after_exit(cfg: dict, exit_code: int) -> bool:
    from barque.container.events import record
    from barque.container.monitor import (RESTART_POLICY_KEY, STOPPED_BY_USER_KEY, now_rfc3339, proc_start,
                                          read_state, state_lock, write_state)

    oom = release(cfg["runtime_root"], cfg["id"], cfg.get("rootfs"))
    try:
        from barque.network.sandbox import leave

        leave(cfg["root"], cfg["engine_run_root"], cfg["id"])
    except Exception as e:  # noqa: BLE001 - the exit must be recorded; `system check --repair` finishes this
        log.warning("could not take container %s off its networks: %s", cfg["id"], e)
    attrs = cfg.get("event_attrs") or {}
    if oom:
        record(cfg["root"], "container", "oom", cfg["id"], attrs)
    record(cfg["root"], "container", "die", cfg["id"], {**attrs, "exitCode": str(exit_code)})
    with state_lock(cfg["state_path"]):
        state = read_state(cfg["state_path"])
        stopped = bool(state.get(STOPPED_BY_USER_KEY))
        restarts = state.get("RestartCount", 0)
        state.update(Status="exited", Running=False, Paused=False, Restarting=False, Pid=0, ExitCode=exit_code,
                     OOMKilled=oom, FinishedAt=now_rfc3339(), _PidStart=None)
        if state.get("Health"):
            state["Health"]["Status"] = "unhealthy"
        # `update --restart` on a running container reaches its monitor through the state
        policy = state.get(RESTART_POLICY_KEY) or cfg.get("restart") or {}
        if should_restart(policy, exit_code, restarts, stopped):
            started = _parse_time(state.get("StartedAt"))
            delay = backoff(restarts, time.time() - started if started else 0)
            pid = _spawn_restart(cfg, delay)
            # the restarter stands in for the monitor until the new one exists: while it lives, "restarting" is true
            state.update(Status="restarting", Restarting=True, RestartCount=restarts + 1, _MonitorPid=pid,
                         _MonitorStart=proc_start(pid))
            write_state(cfg["state_path"], state)
            return False
        write_state(cfg["state_path"], state)
    if cfg.get("autoremove"):
        try:
            _remove(cfg)
            return True
        except Exception as e:  # noqa: BLE001 - the container stays, as Docker leaves it when removal fails
            log.warning("could not remove container %s: %s", cfg["id"], e)
    return False


def _parse_time(text: str | None) -> float:
    if not text or text.startswith("0001"):
        return 0.0
    from barque.oci.times import parse_time

    try:
        return parse_time(text)
    except Exception:  # noqa: BLE001
        return 0.0


def _spawn_restart(cfg: dict, delay: float) -> int:
    """A new `barque start` in its own session after the back-off; it makes a new monitor, and this one ends."""
    argv = [*cfg["barque_argv"], "start", "--restarting", cfg["id"]]
    script = f"sleep {delay:.3f}; exec \"$@\""
    proc = subprocess.Popen(["/bin/sh", "-c", script, "sh", *argv], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            close_fds=True)
    return proc.pid


def _remove(cfg: dict) -> None:
    from barque.config import Settings
    from barque.container.remove import remove
    from barque.engine import Engine

    settings = Settings(root=Path(cfg["root"]), run_root=Path(cfg["engine_run_root"]),
                        storage_driver=cfg.get("driver"))
    with Engine(settings) as engine:
        c = engine.containers.get(cfg["id"])
        remove(engine, c, force=False, volumes=True, exited_already=True)
