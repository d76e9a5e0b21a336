"""`delete`: remove a stopped (or, with --force, any) container — kill what is left, wait for it, run the poststop
hooks, remove the cgroup and the state directory. A created container is deleted without --force, as runc does
(its process never ran the user's program). The container's mounts live in its own mount namespace and vanish with
its last process; the host never saw them."""

from __future__ import annotations

import logging
import os
import signal
import time

from barque.errors import Conflict, NotFound
from barque.runtime.state import CREATED, PAUSED, STOPPED, StateStore, process_start_time

__all__ = ["delete"]

log = logging.getLogger(__name__)
STOP_TIMEOUT = 10.0


def delete(store: StateStore, cid: str, force: bool = False) -> None:
    from barque.runtime.create import cgroup_manager

    try:
        c = store.load(cid)
    except NotFound:
        if force:  # as runc: nothing to delete is fine; a create that died before its state.json left a directory
            if store.dir(cid).is_dir():
                store.remove(cid)
            return
        raise
    with store.lock(cid):
        status = c.status()
        if status not in (STOPPED, CREATED) and not force:
            raise Conflict(f"cannot delete container {cid} that is not stopped: {status}")
        mgr = cgroup_manager(c.cgroups_path)
        if status != STOPPED:
            if status == PAUSED:
                mgr.thaw()
            try:
                os.kill(c.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            mgr.kill(signal.SIGKILL)
            deadline = time.monotonic() + STOP_TIMEOUT
            while process_start_time(c.pid) == c.start_time and time.monotonic() < deadline:
                time.sleep(0.005)
        config = c.config() if (c.dir / "config.json").exists() else {}
        if (config.get("hooks") or {}).get("poststop"):
            from barque.runtime.hooks import run_hooks

            run_hooks(config, "poststop", c.oci_state(STOPPED))
        mgr.destroy()
        store.remove(cid)
