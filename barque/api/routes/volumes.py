"""Volumes: list (with dockerd's filters), create, inspect, remove, prune — the local driver's store.

Reads run in a thread; create, remove and prune in a zygote child (barque/api/ops/volumes.py). A prune removes only
anonymous volumes for clients of API 1.42 and later unless the filter `all=true` asks for every unused one; older
clients get what they expect of their dockerd: every unused volume (and no `all` filter).
"""

from __future__ import annotations

from aiohttp import web

from barque.api.app import api_version, json_body, json_response, query_bool, state_of
from barque.api.errors import BadParameter
from barque.api.filters import check_keys, parse_filters
from barque.api.schema import _DICT, _STR, check_fields, go_type, string_map

CREATE = {"Name": _STR, "Driver": _STR, "DriverOpts": _DICT, "Labels": _DICT, "ClusterVolumeSpec": _DICT}


def _listing(engine, flt: dict[str, list[str]]) -> list[dict]:
    from barque.container.volume_listing import natural_key, select_volumes

    return sorted(select_volumes(engine.volumes, flt), key=lambda v: natural_key(v["Name"]))


async def list_volumes(request: web.Request) -> web.StreamResponse:
    from barque.container.volume_listing import LS_FILTERS
    from barque.errors import InvalidArgument

    flt = parse_filters(request.query.get("filters"))
    check_keys(flt, set(LS_FILTERS))
    try:
        volumes = await state_of(request).read(_listing, flt)
    except InvalidArgument as e:
        raise BadParameter(e.message) from None
    return json_response({"Volumes": volumes, "Warnings": []})


async def create(request: web.Request) -> web.StreamResponse:
    body = await json_body(request) or {}
    if not isinstance(body, dict):
        raise BadParameter(f"json: cannot unmarshal {go_type(body)} into Go value of type "
                           "volume.CreateOptions")
    check_fields(body, CREATE, "CreateOptions")
    if body.get("ClusterVolumeSpec"):
        raise BadParameter("cluster volumes are a swarm feature, which barque does not have")
    args = {"name": body.get("Name") or None, "driver": body.get("Driver") or "local",
            "labels": string_map(body.get("Labels"), "CreateOptions.Labels"),
            "options": string_map(body.get("DriverOpts"), "CreateOptions.DriverOpts")}
    return json_response(await state_of(request).op("volume.create", args), status=201)


def _inspect(engine, name: str) -> dict:
    return engine.volumes.get(name)


async def inspect(request: web.Request) -> web.StreamResponse:
    return json_response(await state_of(request).read(_inspect, request.match_info["name"]))


async def remove(request: web.Request) -> web.StreamResponse:
    await state_of(request).op("volume.remove", {"name": request.match_info["name"],
                                                 "force": query_bool(request, "force")})
    return web.Response(status=204)


async def prune(request: web.Request) -> web.StreamResponse:
    from barque.container.volume_listing import PRUNE_FILTERS, bool_filter
    from barque.errors import InvalidArgument

    flt = parse_filters(request.query.get("filters"))
    modern = api_version(request) >= (1, 42)
    check_keys(flt, set(PRUNE_FILTERS) if modern else set(PRUNE_FILTERS) - {"all"})
    try:
        every = bool(bool_filter(flt, "all")) if modern else True
    except InvalidArgument as e:
        raise BadParameter(e.message) from None
    return json_response(await state_of(request).op("volume.prune", {"all": every, "label": flt.get("label") or [],
                                                                     "label!": flt.get("label!") or []}))


ROUTES = [
    ("GET", "/volumes", list_volumes),
    ("POST", "/volumes/create", create),
    ("GET", "/volumes/{name}", inspect),
    ("DELETE", "/volumes/{name}", remove),
    ("POST", "/volumes/prune", prune),
]
