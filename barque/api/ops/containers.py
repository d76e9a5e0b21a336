"""Container operations of the API: create, start (optionally born attached to the server), stop, restart, kill,
remove, pause, unpause, rename, prune."""

from __future__ import annotations

import socket

from barque.api.errors import ApiError
from barque.api.zygote import op
from barque.errors import Conflict, NotFound


def _get(engine, ref: str):
    return engine.containers.get(ref)


@op("container.create")
def create(engine, args, chan):
    from barque.container.create import create as do_create

    c = do_create(engine, args["body"], args.get("name") or None)
    return {"Id": c.id, "Warnings": []}


@op("container.start")
def start(engine, args, chan):
    """With `attach` (the hello the server already sent on the socket it passed), the container's monitor serves
    that socket from birth: nothing the container prints is missed."""
    from barque.container.start import start as do_start

    c = _get(engine, args["id"])
    if c.refresh().get("Status") in ("running", "paused"):
        raise ApiError(304, "container already started")
    peer = socket.socket(fileno=chan.fds[0]) if args.get("attach") and chan.fds else None
    # the client's terminal size, sent with the create (API 1.42+): the TTY has it from the first instruction on
    size = c.record["HostConfig"].get("ConsoleSize") if c.record["Config"].get("Tty") else None
    size = (int(size[0]), int(size[1])) if isinstance(size, list) and len(size) == 2 and all(size) else None
    do_start(engine, c, peer=peer, size=size)  # a --rm container that cannot start is removed by it
    return {"Id": c.id}


@op("container.stop")
def stop(engine, args, chan):
    from barque.container.stop import stop as do_stop

    c = _get(engine, args["id"])
    if c.refresh().get("Status") not in ("running", "paused", "restarting"):
        raise ApiError(304, "container already stopped")
    do_stop(c, args.get("t"), args.get("signal") or None)
    return None


@op("container.restart")
def restart(engine, args, chan):
    from barque.container.stop import restart as do_restart

    do_restart(engine, _get(engine, args["id"]), args.get("t"), args.get("signal") or None)
    return None


@op("container.kill")
def kill(engine, args, chan):
    from barque.container.stop import kill as do_kill

    do_kill(_get(engine, args["id"]), args.get("signal") or "SIGKILL")
    return None


@op("container.remove")
def remove(engine, args, chan):
    from barque.container.names import link_target, remove_link
    from barque.container.remove import remove as do_remove

    if args.get("link"):
        remove_link(engine, args["id"])
        return None
    try:
        c = _get(engine, args["id"])
    except NotFound:
        found = link_target(engine, args["id"])  # dockerd finds a container by a link name too
        if found is None:
            raise
        c = _get(engine, found[2])
    if c.refresh().get("Status") == "removing":
        raise Conflict(f"removal of container {args['id']} is already in progress")
    do_remove(engine, c, force=bool(args.get("force")), volumes=bool(args.get("volumes")))
    return None


@op("container.pause")
def pause(engine, args, chan):
    from barque.container.stop import pause as do_pause

    do_pause(_get(engine, args["id"]))
    return None


@op("container.unpause")
def unpause(engine, args, chan):
    from barque.container.stop import unpause as do_unpause

    do_unpause(_get(engine, args["id"]))
    return None


@op("container.rename")
def rename(engine, args, chan):
    from barque.container.names import rename as do_rename

    do_rename(engine, _get(engine, args["id"]), args["name"])
    return None


@op("container.prune")
def prune(engine, args, chan):
    from barque.container.prune import parse_prune_filters, prune_containers

    report = prune_containers(engine, parse_prune_filters(args.get("filters") or []))
    return {"ContainersDeleted": list(report.deleted) or None, "SpaceReclaimed": report.reclaimed}
