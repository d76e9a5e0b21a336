"""`system restore`: after the host boots, start again the containers whose restart policy says they should run.

Docker does this when dockerd starts; barque has no daemon, so a oneshot systemd unit runs `barque system restore`
at boot (contrib/systemd/barque-restore.service). A reboot wipes the run root — the containers' monitors, mounted
rootfs and runtime state — while their state files still say "running";
`store.reconcile` shows those as exited (255), and this starts them with `barque.container.start.start`.

Which ones, as dockerd decides at its start (a container that never started stays as it is):

* `always`: every one, even one the user had stopped (Docker: "restarted when the daemon restarts");
* `unless-stopped`: those the user did not stop — the flag `_StoppedByUser` `stop` writes in the state. A state
  written before that flag existed is read for what it implies: the monitor restarts an unless-stopped container
  after every exit the user did not ask for, so a state left "running", "paused" or "restarting" means the host
  went down under it, an exit recorded with an error means its last restart failed, and an exit recorded cleanly
  was the user's stop.
* `on-failure`: those the host's shutdown killed (dockerd sees their death as exit 255, a failure), not those
  that had ended on their own before it;
* `no`: none.

Idempotent: a container that runs is left alone, so running it twice, or on a host that did not reboot, is harmless.
Containers sharing another's network namespace (`--network container:X`) start after the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from barque.container.monitor import STOPPED_BY_USER_KEY
from barque.errors import BarqueError

__all__ = ["RestoreReport", "restore", "should_restore", "stopped_by_user", "STOPPED_BY_USER_KEY"]

log = logging.getLogger(__name__)

_LIVE = ("running", "paused", "restarting")


@dataclass
class RestoreReport:
    started: list = field(default_factory=list)     # containers started again
    failed: list = field(default_factory=list)      # (container, error message)


def _started_before(raw: dict) -> bool:
    started = raw.get("StartedAt") or ""
    return bool(started) and not started.startswith("0001-01-01")


def stopped_by_user(c, raw: dict) -> bool:
    """Whether the user stopped `c` (see the module docstring); `raw` is its state file as written."""
    if STOPPED_BY_USER_KEY in raw:
        return bool(raw[STOPPED_BY_USER_KEY])
    if raw.get("Status") in _LIVE:
        return False
    return raw.get("Status") == "exited" and not raw.get("Error")


def should_restore(c, raw: dict) -> bool:
    """Whether `c` is to run again after a boot, from its record's restart policy and its state file `raw`."""
    policy = ((c.record.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"
    if not _started_before(raw):
        return False
    if policy == "always":
        return True
    if policy == "unless-stopped":
        return not stopped_by_user(c, raw)
    if policy == "on-failure":
        # dockerd records an unobserved death as exit 255, a failure: a container that was running when the host
        # went down comes back; one that had exited on its own (whatever its code) stays as it ended
        return raw.get("Status") in _LIVE and not stopped_by_user(c, raw)
    return False


def _start_order(containers: list) -> list:
    """Oldest first; those joining another container's network namespace after all the others."""
    ordered = sorted(containers, key=lambda c: c.record.get("Created") or "")
    joins = [c for c in ordered if ((c.record.get("HostConfig") or {}).get("NetworkMode") or "")
             .startswith("container:")]
    return [c for c in ordered if c not in joins] + joins


def restore(engine, on_started=None) -> RestoreReport:
    """Start every container that `should_restore` and does not run; `on_started(c)` is called after each start.
    A failure is recorded in the report and the others are still started."""
    from barque.container.start import start
    from barque.container.store import read_state

    report = RestoreReport()
    for c in _start_order(engine.containers.list()):
        raw = read_state(c.state_path)
        if not should_restore(c, raw):
            continue
        if c.refresh().get("Status") in ("running", "paused"):
            continue  # alive (reconciled against its process): nothing to do
        try:
            start(engine, c)
        except BarqueError as e:
            log.warning("container %s not restored: %s", c.name, e.message)
            report.failed.append((c, e.message))
            continue
        report.started.append(c)
        if on_started is not None:
            on_started(c)
    return report
