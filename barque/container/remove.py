"""`rm`: a container and what it holds — its runtime state and cgroup, its mounted rootfs, its writable snapshot, its
record and files, and with `-v` its anonymous volumes. A running container is refused unless forced (then killed
first). Every step tolerates having been done already, so a removal interrupted half-way can simply be repeated,
and a removal racing the monitor's own --rm cleanup does no harm."""

from __future__ import annotations

import logging

from barque.errors import Conflict, NotFound

__all__ = ["remove"]

log = logging.getLogger(__name__)


def remove(engine, c, *, force: bool = False, volumes: bool = False, exited_already: bool = False) -> None:
    from barque.container.exit import release
    from barque.container.stop import kill, wait_stopped

    state = c.refresh()
    if not exited_already and state.get("Status") in ("running", "paused", "restarting"):
        if not force:
            what = "paused" if state["Status"] == "paused" else "running"
            raise Conflict(f"You cannot remove a {what} container {c.id}. "
                           f"{'Unpause and then stop' if what == 'paused' else 'Stop'} the container before "
                           "attempting removal or force remove")
        if state["Status"] == "restarting":
            from barque.container.stop import stop

            stop(c, timeout=0)
        else:
            try:
                kill(c, "SIGKILL")
            except Conflict:
                pass
            wait_stopped(c, 30.0)
    release(str(engine.runtime_root), c.id, str(c.run_dir / "rootfs"))
    from barque.network import sandbox

    sandbox.leave(engine.settings.root, engine.settings.run_root, c.id, engine=engine)
    sandbox.release(engine, c.id)
    key = c.private.get("snapshot")
    if key:
        try:
            engine.snapshotter.remove(key)
        except NotFound:
            pass
    engine.containers.delete(c)
    from barque.container.events import container_event

    container_event(engine.settings.root, c.record, "destroy")
    if volumes:
        for m in c.record.get("Mounts") or []:
            if m.get("Type") == "volume" and m.get("Name"):
                _remove_anonymous(engine, m["Name"])


def _remove_anonymous(engine, name: str) -> None:
    try:
        vol = engine.volumes.get(name)
    except NotFound:
        return
    if "com.docker.volume.anonymous" not in (vol.get("Labels") or {}):
        return
    try:
        engine.volumes.remove(name)
    except (Conflict, NotFound) as e:
        log.info("volume %s kept: %s", name, e)
