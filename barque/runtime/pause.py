"""`pause` and `resume`: the cgroup freezer; the record remembers it so `state` says "paused"."""

from __future__ import annotations

from barque.errors import FailedPrecondition
from barque.runtime.state import PAUSED, RUNNING, StateStore

__all__ = ["pause", "resume"]


def pause(store: StateStore, cid: str) -> None:
    _set_frozen(store, cid, True)


def resume(store: StateStore, cid: str) -> None:
    _set_frozen(store, cid, False)


def _set_frozen(store: StateStore, cid: str, frozen: bool) -> None:
    from barque.runtime.create import cgroup_manager

    verb, needed = ("pause", RUNNING) if frozen else ("resume", PAUSED)
    with store.lock(cid):
        c = store.load(cid)
        status = c.status()
        if status != needed:
            raise FailedPrecondition(f"cannot {verb} container {cid}: it is {status}, not {needed}")
        manager = cgroup_manager(c.cgroups_path)
        manager.freeze() if frozen else manager.thaw()
        c.paused = frozen
        store.save(c)
