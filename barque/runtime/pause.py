"""`pause` and `resume`: the cgroup freezer; the record remembers it so `state` says "paused"."""

from __future__ import annotations

from barque.errors import FailedPrecondition
from barque.runtime.state import PAUSED, RUNNING, StateStore

__all__ = ["pause", "resume"]


def pause(store: StateStore, cid: str) -> None:
    from barque.runtime.create import cgroup_manager

    with store.lock(cid):
        c = store.load(cid)
        status = c.status()
        if status != RUNNING:
            raise FailedPrecondition(f"cannot pause container {cid}: it is {status}, not running")
        cgroup_manager(c.cgroups_path).freeze()
        c.paused = True
        store.save(c)


def resume(store: StateStore, cid: str) -> None:
    from barque.runtime.create import cgroup_manager

    with store.lock(cid):
        c = store.load(cid)
        status = c.status()
        if status != PAUSED:
            raise FailedPrecondition(f"cannot resume container {cid}: it is {status}, not paused")
        cgroup_manager(c.cgroups_path).thaw()
        c.paused = False
        store.save(c)
