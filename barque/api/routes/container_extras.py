"""The remaining container endpoints: export (a tar stream), changes, top, stats (streamed or one reading) and update.

Stats are file reads (the cgroup's, /proc's) and run in a thread, one reading a second while a client streams them;
the others run in zygote children (top runs ps, export may mount a stopped container's filesystem, update changes
the record and the cgroup).
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from barque.api.app import json_body, json_response, query_bool, state_of
from barque.api.errors import BadParameter
from barque.api.schema import go_type
from barque.api.streams import stream_call

STATS_INTERVAL = 1.0  # dockerd's collector reads every second


# ---- export -----------------------------------------------------------------------------------------------------

async def export(request: web.Request) -> web.StreamResponse:
    call = await state_of(request).call("container.export", {"id": request.match_info["id"]})
    try:
        await call.result()
        return await stream_call(request, call, "application/octet-stream")
    finally:
        call.close()  # a client gone mid-tar: the child's next write fails and it unwinds (unmounting)


# ---- changes, top -----------------------------------------------------------------------------------------------

async def changes(request: web.Request) -> web.StreamResponse:
    return json_response(await state_of(request).op("container.changes", {"id": request.match_info["id"]}))


async def top(request: web.Request) -> web.StreamResponse:
    return json_response(await state_of(request).op("container.top", {"id": request.match_info["id"],
                                                                      "ps_args": request.query.get("ps_args", "")}))


# ---- stats ------------------------------------------------------------------------------------------------------

def _reading(engine, ref: str, prev: dict | None) -> dict:
    from barque.container.docker_stats import docker_stats

    return docker_stats(engine.containers.get(ref), engine.runtime_root, prev)


async def stats(request: web.Request) -> web.StreamResponse:
    from barque.container.docker_stats import ZERO_TIME
    from barque.errors import NotFound

    state = state_of(request)
    ref = request.match_info["id"]
    stream = query_bool(request, "stream", True)
    one_shot = query_bool(request, "one-shot")
    if stream and one_shot:
        raise BadParameter("cannot have stream=true and one-shot=true")
    first = await state.read(_reading, ref, None)
    ref = first["id"]  # the same container from now on, whatever its name becomes
    if not stream:
        if not one_shot and first["read"] != ZERO_TIME:
            await asyncio.sleep(STATS_INTERVAL)  # two readings, as dockerd: CPU use needs a previous one
            first = await state.read(_reading, ref, first)
        return json_response(first)
    resp = web.StreamResponse(status=200)
    resp.content_type = "application/json"
    await resp.prepare(request)
    prev = first
    try:
        await resp.write(json.dumps(prev).encode() + b"\n")
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            try:
                cur = await state.read(_reading, ref, prev)
            except NotFound:
                break  # removed: the stream ends
            await resp.write(json.dumps(cur).encode() + b"\n")
            prev = cur
    except ConnectionError:
        return resp  # the client stopped reading
    await resp.write_eof()
    return resp


# ---- update -----------------------------------------------------------------------------------------------------

#: the UpdateConfig fields barque applies, with their JSON types (Go's int64 / string)
_INTS = ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota",
         "PidsLimit")
_STRINGS = ("CpusetCpus", "CpusetMems")


def _go_type_error(key: str, value, go: str) -> BadParameter:
    return BadParameter(f"json: cannot unmarshal {go_type(value)} into Go struct field UpdateConfig.{key} of type {go}")


def update_changes(body: dict) -> dict:
    """Docker's update body → the changes barque.container.stats.update applies. Zero values mean "unchanged",
    as dockerd reads them (the docker CLI sends every field); a non-zero field barque cannot apply is refused."""
    from barque.container.options import parse_restart
    from barque.errors import InvalidArgument

    changes: dict = {}
    for key, value in body.items():
        if value is None or value == 0 or value == "" or value == [] or value == {}:
            continue
        if key in _INTS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise _go_type_error(key, value, "int64")
            changes[key] = value
        elif key in _STRINGS:
            if not isinstance(value, str):
                raise _go_type_error(key, value, "string")
            changes[key] = value
        elif key == "RestartPolicy":
            if not isinstance(value, dict):
                raise _go_type_error(key, value, "container.RestartPolicy")
            name, count = value.get("Name") or "", value.get("MaximumRetryCount") or 0
            if not isinstance(name, str) or isinstance(count, bool) or not isinstance(count, int):
                raise BadParameter("json: RestartPolicy needs a string Name and an integer MaximumRetryCount")
            if name:
                try:
                    changes[key] = parse_restart(f"{name}:{count}" if count else name)
                except InvalidArgument as e:
                    raise BadParameter(e.message) from None
        else:
            changes[key] = value  # refused with barque's message ("cannot update …") by the engine
    if "PidsLimit" in body and body["PidsLimit"] is not None and "PidsLimit" not in changes:
        changes["PidsLimit"] = 0  # an explicit 0 lifts the limit (-1 too): a *int64 in Docker's body
    return changes


async def update(request: web.Request) -> web.StreamResponse:
    body = await json_body(request, required=True)
    if not isinstance(body, dict):
        raise BadParameter("invalid JSON: the body must be an object (Docker's container update config)")
    result = await state_of(request).op("container.update", {"id": request.match_info["id"],
                                                             "changes": update_changes(body)})
    return json_response(result)


ROUTES = [
    ("GET", "/containers/{id}/export", export),
    ("GET", "/containers/{id}/changes", changes),
    ("GET", "/containers/{id}/top", top),
    ("GET", "/containers/{id}/stats", stats),
    ("POST", "/containers/{id}/update", update),
]
