"""The rest of the container operations of the API: top (runs the host's ps), changes, export (a streamed tar of a
filesystem that may have to be mounted), update (the record and the running cgroup)."""

from __future__ import annotations

from barque.api.zygote import op
from barque.errors import Conflict

CHUNK = 1 << 16


def _container(engine, ref: str):
    return engine.containers.get(ref)


@op("container.top")
def top(engine, args, chan):
    from barque.container.stats import processes

    c = _container(engine, args["id"])
    status = c.refresh().get("Status")
    if status not in ("running", "paused", "restarting"):
        raise Conflict(f"Container {c.id} is not running")  # dockerd's words (capital C)
    titles, rows = processes(engine.runtime_root, c, args.get("ps_args") or "")
    return {"Titles": titles, "Processes": rows}


@op("container.changes")
def changes(engine, args, chan):
    from barque.container.changes import diff

    kinds = {"C": 0, "A": 1, "D": 2}
    listed = diff(engine, _container(engine, args["id"]))
    return [{"Path": path, "Kind": kinds[letter]} for letter, path in listed] or None


@op("container.export")
def export(engine, args, chan):
    from barque.container.export import export as do_export

    c = _container(engine, args["id"])
    out = chan.sock.makefile("wb", buffering=CHUNK)
    chan.reply({})
    try:
        do_export(engine, c, out)
        out.close()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client went away: the tar is cut, as dockerd's
    return None


@op("container.update")
def update(engine, args, chan):
    from barque.container.stats import update as do_update

    do_update(engine, _container(engine, args["id"]), args["changes"])
    return {"Warnings": None}
