"""`update --resources FILE|-`: new linux.resources for a live container (containerd's shim pipes them on stdin)."""

from __future__ import annotations

import json

from barque.errors import FailedPrecondition, InvalidArgument
from barque.runtime.state import STOPPED, StateStore

__all__ = ["update"]


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
        cgroup_manager(c.cgroups_path).set(resources)
