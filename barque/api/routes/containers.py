"""Containers: create, list, inspect, start, stop, restart, kill, wait, remove, pause, unpause, rename, prune, logs.

Reads run in a thread with an Engine of their own; everything that changes a container runs in a zygote child.
Attach (and start of a container someone is attached or waiting on) is in attach.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from aiohttp import web

from barque.api.app import json_body, json_response, query_bool, query_int, state_of
from barque.api.errors import ApiError, BadParameter
from barque.api.filters import as_cli_filters, parse_filters
from barque.api.streams import stream_thread


def brief(engine, ref: str) -> dict:
    """What the server needs to know of a container to serve a request on it."""
    c = engine.containers.get(ref)
    state = c.refresh()
    cfg = c.record["Config"]
    return {"id": c.id, "name": c.name, "status": state.get("Status", "created"), "running": bool(state.get("Running")),
            "exit_code": state.get("ExitCode", 0), "finished": state.get("FinishedAt"),
            "tty": bool(cfg.get("Tty")), "open_stdin": bool(cfg.get("OpenStdin")),
            "run_dir": str(c.run_dir), "log_path": c.record.get("LogPath") or "",
            "log_driver": (c.record["HostConfig"].get("LogConfig") or {}).get("Type", "json-file"),
            "auto_remove": bool(c.record["HostConfig"].get("AutoRemove"))}


def exists(engine, cid: str) -> bool:
    return bool(engine.db.query("SELECT 1 FROM containers WHERE id=?", (cid,)))


# ---- create ---------------------------------------------------------------------------------------------------

async def create(request: web.Request) -> web.StreamResponse:
    from barque.api.schema import check_create_body

    body = await json_body(request, required=True)
    if not isinstance(body, dict):
        raise BadParameter("invalid JSON: the body must be an object (Docker's container config)")
    check_create_body(body)
    name = request.query.get("name") or None
    result = await state_of(request).op("container.create", {"body": body, "name": name})
    return json_response(result, status=201)


# ---- list and inspect -----------------------------------------------------------------------------------------

def _listing(engine, view, flt: list[str], all_: bool, limit: int, size: bool, encode: bool = False):
    """The entries of `GET /containers/json`; with `encode`, the response body itself (JSON bytes: the rows kept
    from earlier listings are kept encoded, but for STATUS)."""
    from barque.container.listing import filter_containers, parse_ps_filters, status_text
    from barque.network.manage import Prefetched

    wanted = parse_ps_filters(flt)
    out = []
    sized = []  # (row, STATUS, container): measured once the view is let go (a size walks the container's files)
    with view.lock:
        # the server's view of the containers (container/view.py): states and records kept current by events; a
        # row is made again only when something it was made from changed — the record (the very object the store
        # reuses while the database text is unchanged), the state, the network namespace, the endpoints and
        # published ports; only STATUS ("Up 3 minutes") is made anew each time
        everything, _ = view.refresh(engine, lambda found: Prefetched(engine) if found else None)
        prefetched = view.extra
        chosen = filter_containers(engine, wanted, all_=all_, last=limit if limit > 0 else -1, among=everything)
        rows = view.rows
        for c in chosen:
            rec, state = c.record, c.state
            basis = (state, prefetched.endpoints.get(c.id), prefetched.mappings.get(c.id),
                     view.netns_watched or os.path.exists(f"{engine.settings.run_root}/netns/{c.id}"))
            hit = rows.get(c.id)
            if hit is None or hit[0] is not rec or not _same(hit[1], basis):
                item = _row(engine, c, prefetched)
                del item["Status"]
                hit = rows[c.id] = (rec, basis, item, json.dumps(item)[:-1])  # without its closing brace
            status = status_text(state)
            if size:  # never kept: the container writes when it likes
                sized.append((hit[2], status, c))
            elif encode:
                out.append(f'{hit[3]}, "Status": {json.dumps(status)}}}')
            else:
                out.append({**hit[2], "Status": status})
    for row, status, c in sized:
        item = {**row, "Status": status, **_size(engine, c)}
        out.append(json.dumps(item) if encode else item)
    return ("[" + ", ".join(out) + "]\n").encode() if encode else out


def _same(a: tuple, b: tuple) -> bool:
    return all(x is y or x == y for x, y in zip(a, b))


def _row(engine, c, prefetched) -> dict:
    """One container's entry in `GET /containers/json`."""
    from barque.container.inspect import command_text
    from barque.container.listing import status_text
    from barque.network.manage import network_settings
    from barque.network.portspec import port_list
    from barque.oci.times import parse_time

    rec, state = c.record, c.state
    running = state.get("Status") in ("running", "paused")
    net = network_settings(engine, c, running, prefetched)
    ports = port_list(net["Ports"]) if running else []
    for key in (rec["Config"].get("ExposedPorts") or {}):
        number, _, proto = key.partition("/")
        if not number.isdigit():
            continue  # a range ("8000-8010/tcp"): no one port to list
        if not any(p["PrivatePort"] == int(number) and p["Type"] == (proto or "tcp") for p in ports):
            ports.append({"PrivatePort": int(number), "Type": proto or "tcp"})
    mode = rec["HostConfig"].get("NetworkMode") or "default"
    item = {
        "Id": c.id,
        "Names": ["/" + c.name],
        "Image": rec["Config"].get("Image") or rec["Image"],
        "ImageID": rec["Image"],
        "Command": command_text(c),
        "Created": int(parse_time(rec["Created"]) or 0),
        "Ports": ports,
        "Labels": rec["Config"].get("Labels") or {},
        "State": state.get("Status", "created"),
        "Status": status_text(state),
        "HostConfig": {"NetworkMode": "bridge" if mode == "default" else mode},
        "NetworkSettings": {"Networks": net.get("Networks") or {}},
        "Mounts": _mount_points(rec.get("Mounts") or []),
    }
    return item


def _size(engine, c) -> dict:
    try:
        rw = engine.snapshotter.usage(c.private["snapshot"]).size
    except Exception:  # noqa: BLE001 - a size is best effort, as Docker's
        rw = 0
    return {"SizeRw": rw, "SizeRootFs": rw}


def _mount_points(mounts: list[dict]) -> list[dict]:
    from barque.container.mounts import inspect_mounts

    return inspect_mounts(mounts)


async def list_containers(request: web.Request) -> web.StreamResponse:
    from barque.container.listing import FILTER_KEYS
    from barque.errors import InvalidArgument

    flt = parse_filters(request.query.get("filters"))
    for key in flt:
        if key not in FILTER_KEYS:
            raise BadParameter(f"invalid filter '{key}'")
    limit = query_int(request, "limit", -1) or -1
    try:
        api = state_of(request)
        body = await api.read(_listing, api.listing_view, as_cli_filters(flt), query_bool(request, "all"), limit,
                              query_bool(request, "size"), encode=True)
    except InvalidArgument as e:
        raise BadParameter(e.message) from None
    return web.Response(body=body, content_type="application/json")


def _inspect(engine, ref: str, size: bool) -> dict:
    from barque.container.inspect import inspect

    return inspect(engine, engine.containers.get(ref), size=size)


async def inspect(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    data = await state.read(_inspect, request.match_info["id"], query_bool(request, "size"))
    # the execs this server runs in the container (they live in the server's memory, as dockerd's do)
    ids = [e.id for e in state.execs.values() if e.inspect.get("ContainerID") == data["Id"] and e.inspect.get("Running")]
    data["ExecIDs"] = ids or None
    return json_response(data)


# ---- lifecycle --------------------------------------------------------------------------------------------------

def _timeout(request: web.Request) -> int | None:
    return query_int(request, "t", None)


async def stop(request: web.Request) -> web.StreamResponse:
    await state_of(request).op("container.stop", {"id": request.match_info["id"], "t": _timeout(request),
                                                  "signal": request.query.get("signal")})
    return web.Response(status=204)


async def restart(request: web.Request) -> web.StreamResponse:
    await state_of(request).op("container.restart", {"id": request.match_info["id"], "t": _timeout(request),
                                                     "signal": request.query.get("signal")})
    return web.Response(status=204)


async def kill(request: web.Request) -> web.StreamResponse:
    await state_of(request).op("container.kill", {"id": request.match_info["id"],
                                                  "signal": request.query.get("signal") or "SIGKILL"})
    return web.Response(status=204)


async def remove(request: web.Request) -> web.StreamResponse:
    await state_of(request).op("container.remove", {"id": request.match_info["id"],
                                                    "force": query_bool(request, "force"),
                                                    "volumes": query_bool(request, "v"),
                                                    "link": query_bool(request, "link")})
    return web.Response(status=204)


async def pause(request: web.Request) -> web.StreamResponse:
    await state_of(request).op("container.pause", {"id": request.match_info["id"]})
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.StreamResponse:
    await state_of(request).op("container.unpause", {"id": request.match_info["id"]})
    return web.Response(status=204)


async def rename(request: web.Request) -> web.StreamResponse:
    name = request.query.get("name")
    if not name:
        raise BadParameter("name cannot be empty")
    await state_of(request).op("container.rename", {"id": request.match_info["id"], "name": name})
    return web.Response(status=204)


async def prune(request: web.Request) -> web.StreamResponse:
    flt = parse_filters(request.query.get("filters"))
    for key in flt:
        if key not in ("until", "label", "label!"):
            raise BadParameter(f"invalid filter '{key}'")
    return json_response(await state_of(request).op("container.prune", {"filters": as_cli_filters(flt)}))


# ---- wait -------------------------------------------------------------------------------------------------------

CONDITIONS = ("not-running", "next-exit", "removed")


async def wait(request: web.Request) -> web.StreamResponse:
    """Docker's wait: the headers go out at once (the client starts the container only after it has them), the
    body — `{"StatusCode": N}` — when the condition is met."""
    condition = request.query.get("condition") or "not-running"
    if condition not in CONDITIONS:
        raise BadParameter(f'invalid condition: "{condition}"')
    state = state_of(request)
    info = await state.read(brief, request.match_info["id"])
    resp = web.StreamResponse(status=200)
    resp.content_type = "application/json"
    await resp.prepare(request)
    code = await wait_for(state, info, condition)
    await resp.write(b'{"StatusCode":%d}\n' % code)
    await resp.write_eof()
    return resp


async def wait_for(state, info: dict, condition: str) -> int:
    """The exit code once `condition` holds for the container `info` describes."""
    from barque.api.sessions import connect_monitor, wait_exit

    cid = info["id"]
    if condition == "not-running" and not info["running"] and info["status"] not in ("paused", "restarting"):
        return int(info["exit_code"] or 0)
    baseline = info["finished"] if not info["running"] else None
    code: int | None = None
    while code is None:
        fut = state.exits.waiter(cid)
        try:
            now = await _brief_or_none(state, cid)
            if now is None:
                return int(info["exit_code"] or 0)
            if now["running"] or now["status"] in ("paused", "restarting"):
                sock = connect_monitor(now["run_dir"], {"wait": True})
                if sock is not None:
                    done = await wait_exit(sock)
                    if done is not None:
                        code = int(done.get("ExitCode", 0))
                        break
            elif now["finished"] != baseline and now["status"] in ("exited", "dead"):
                code = int(now["exit_code"] or 0)
                break
            elif condition == "not-running" and now["status"] == "created":
                return 0
            try:
                got = await asyncio.wait_for(asyncio.shield(fut), 0.2)
                code = int(got.get("ExitCode", 0))
            except asyncio.TimeoutError:
                pass
        finally:
            state.exits.forget(cid, fut)
    if condition == "removed":
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and await state.read(exists, cid):
            if not info["auto_remove"]:
                deadline = time.monotonic() + 3600.0  # until someone removes it
            await asyncio.sleep(0.05)
    return code


async def _brief_or_none(state, cid: str) -> dict | None:
    from barque.errors import NotFound

    try:
        return await state.read(brief, cid)
    except NotFound:
        return None


# ---- logs -------------------------------------------------------------------------------------------------------

async def logs(request: web.Request) -> web.StreamResponse:
    """Docker's logs: multiplexed frames (stream 1 stdout, 2 stderr) unless the container has a TTY, raw then."""
    state = state_of(request)
    info = await state.read(brief, request.match_info["id"])
    stdout, stderr = query_bool(request, "stdout"), query_bool(request, "stderr")
    if not (stdout or stderr):
        raise BadParameter("Bad parameters: you must choose at least one stream")
    if info["log_driver"] == "none" or not info["log_path"]:
        raise ApiError(501, "configured logging driver does not support reading")
    tail_text = request.query.get("tail", "all")
    if tail_text in ("all", ""):
        tail = None
    else:
        try:
            tail = int(tail_text)
        except ValueError:
            raise BadParameter(f'invalid value for "tail": "{tail_text}"') from None
        if tail < 0:
            tail = None
    now = time.time()
    try:
        since = _time_param(request.query.get("since"), now)
        until = _time_param(request.query.get("until"), now)
    except Exception as e:  # noqa: BLE001 - parse errors of the user's value
        raise BadParameter(str(getattr(e, "message", e))) from None
    follow = query_bool(request, "follow")
    timestamps = query_bool(request, "timestamps")
    resp = web.StreamResponse(status=200)
    resp.content_type = "application/vnd.docker.raw-stream" if info["tty"] else \
        "application/vnd.docker.multiplexed-stream"
    await resp.prepare(request)
    tty = info["tty"]
    settings = state.settings

    def produce(put, stopped) -> None:
        from barque.api.sessions import ERR, OUT, frame
        from barque.container.logs import format_entry, read_logs
        from barque.engine import Engine
        from barque.errors import NotFound

        with Engine(settings) as engine:
            try:
                c = engine.containers.get(info["id"])
            except NotFound:
                return  # removed meanwhile: nothing more to follow

            def running() -> bool:
                if stopped():
                    return False
                return c.refresh().get("Status") in ("running", "paused", "restarting")

            for entry in read_logs(info["log_path"], tail=tail, since=since, until=until, follow=follow,
                                   still_running=running):
                if stopped():
                    break
                if (entry.stream == "stderr" and not stderr) or (entry.stream != "stderr" and not stdout):
                    continue
                data = format_entry(entry, timestamps)
                if not tty:
                    data = frame(ERR if entry.stream == "stderr" else OUT, data)
                put(data)

    if os.path.exists(info["log_path"]) or follow:
        await stream_thread(resp, produce, f"logs of {info['id'][:12]}")
    await resp.write_eof()
    return resp


def _time_param(text: str | None, now: float) -> float | None:
    from barque.container.logs import parse_since

    if not text or text == "0":
        return None
    return parse_since(text, now)


ROUTES = [
    ("POST", "/containers/create", create),
    ("GET", "/containers/json", list_containers),
    ("GET", "/containers/{id}/json", inspect),
    ("POST", "/containers/{id}/stop", stop),
    ("POST", "/containers/{id}/restart", restart),
    ("POST", "/containers/{id}/kill", kill),
    ("POST", "/containers/{id}/wait", wait),
    ("DELETE", r"/containers/{id:.+}", remove),  # dockerd's {name:.*}: a link's name is parent/alias
    ("POST", "/containers/{id}/pause", pause),
    ("POST", "/containers/{id}/unpause", unpause),
    ("POST", "/containers/{id}/rename", rename),
    ("POST", "/containers/prune", prune),
    ("GET", "/containers/{id}/logs", logs),
]
