"""`update --resources FILE|-`: new linux.resources for a live container (containerd's shim pipes them on stdin)."""

from __future__ import annotations

import json

from barque.errors import FailedPrecondition, InvalidArgument
from barque.runtime.state import STOPPED, StateStore

__all__ = ["update", "changes_only"]

# values where 0 means "leave as it is" in an update, as runc reads them (Docker's `docker update --pids-limit 50`
# sends every field, the memory limit among them as 0)
_ZERO_IS_UNSET = {
    "memory": ("limit", "reservation", "swap", "kernel", "kernelTCP"),
    "cpu": ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod"),
    "pids": ("limit",),
    "blockIO": ("weight", "leafWeight"),
}


def changes_only(resources: dict) -> dict:
    """The update's resources without the fields that are 0 (unchanged) or null, and without emptied sections."""
    out: dict = {}
    for section, value in resources.items():
        if value is None:
            continue
        if isinstance(value, dict) and section in _ZERO_IS_UNSET:
            kept = {k: v for k, v in value.items()
                    if v is not None and not (k in _ZERO_IS_UNSET[section] and v == 0)}
            if section == "cpu":
                kept = {k: v for k, v in kept.items() if v not in ("", None)}
            if kept:
                out[section] = kept
        else:
            out[section] = value
    return out


def update(store: StateStore, cid: str, resources_json: str) -> None:
    from barque.runtime.create import cgroup_manager

    try:
        resources = json.loads(resources_json)
    except ValueError as e:
        raise InvalidArgument(f"--resources: not valid JSON: {e}") from e
    if not isinstance(resources, dict):
        raise InvalidArgument("--resources must hold a JSON object (the spec's linux.resources)")
    with store.lock(cid):
        c = store.load(cid)
        if c.status() == STOPPED:
            raise FailedPrecondition(f"cannot update container {cid}: it is stopped")
        cgroup_manager(c.cgroups_path).set(changes_only(resources))
