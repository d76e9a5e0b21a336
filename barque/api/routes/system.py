"""System endpoints: _ping, version, info, events (streamed, with filters), system/df."""

from __future__ import annotations

import json
import platform
import time

from aiohttp import web

from barque import __version__
from barque.api.app import (MAX_VERSION, MIN_VERSION, SERVER_VERSION, api_version, json_response, state_of,
                            version_text)
from barque.api.errors import BadParameter
from barque.api.filters import check_keys, parse_filters
from barque.api.streams import stream_thread


async def ping(request: web.Request) -> web.StreamResponse:
    resp = web.Response(text="OK", content_type="text/plain")
    resp.headers["Cache-Control"] = "no-cache, no-store, must-revalidate"
    resp.headers["Pragma"] = "no-cache"
    resp.headers["Builder-Version"] = "1"
    if request.method == "HEAD":
        resp = web.Response(status=200, headers=resp.headers)
    return resp


def version_body() -> dict:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    details = {"ApiVersion": version_text(MAX_VERSION), "Arch": arch, "BuildTime": "", "Experimental": "false",
               "GitCommit": "", "GoVersion": "", "KernelVersion": platform.release(),
               "MinAPIVersion": version_text(MIN_VERSION), "Os": "linux"}
    return {
        "Platform": {"Name": f"barque {__version__}"},
        "Components": [{"Name": "Engine", "Version": SERVER_VERSION, "Details": details},
                       {"Name": "barque", "Version": __version__, "Details": {}}],
        "Version": SERVER_VERSION,
        "ApiVersion": version_text(MAX_VERSION),
        "MinAPIVersion": version_text(MIN_VERSION),
        "GitCommit": "barque",
        "GoVersion": "go1.20.10",
        "Os": "linux",
        "Arch": arch,
        "KernelVersion": platform.release(),
        "BuildTime": "",
    }


async def version(request: web.Request) -> web.StreamResponse:
    return json_response(version_body())


def _info(engine) -> dict:
    from barque.sysinfo import docker_info

    return docker_info(engine, SERVER_VERSION)


async def info(request: web.Request) -> web.StreamResponse:
    return json_response(await state_of(request).read(_info))


# ---- events -----------------------------------------------------------------------------------------------------

def _event_time(request: web.Request, name: str, now: float) -> float | None:
    """`since`/`until`: Unix seconds with an optional fraction, as clients send them (RFC 3339 times and Go
    durations are taken too, as the CLI reads them)."""
    from barque.container.logs import parse_since

    text = request.query.get(name)
    if not text:
        return None
    try:
        return parse_since(text, now)
    except Exception as e:  # noqa: BLE001 - the client's value
        raise BadParameter(f"invalid value for {name}: {getattr(e, 'message', e)}") from None


#: what dockerd's events accept (its acceptedEventFilterTags)
EVENT_FILTERS = frozenset({"container", "daemon", "event", "image", "label", "network", "plugin", "scope", "type",
                           "volume", "node", "service", "secret", "config"})


async def events(request: web.Request) -> web.StreamResponse:
    """Docker's event stream: the recorded events between `since` and `until` that pass the filters, then (unless
    `until` is past) new ones as they happen, one JSON object a line, until `until` or the client goes. Without
    `since` or `until`, only events from now on, as dockerd's subscription."""
    state = state_of(request)
    now = time.time()
    since = _event_time(request, "since", now)
    until = _event_time(request, "until", now)
    if since is not None and until is not None and until < since:
        raise BadParameter(f"`since` time ({request.query['since']}) cannot be after `until` time "
                           f"({request.query['until']})")
    flt = parse_filters(request.query.get("filters"))
    check_keys(flt, EVENT_FILTERS)
    if since is None and until is None:
        since = now
    follow = until is None or until >= now
    resp = web.StreamResponse(status=200)
    resp.content_type = "application/json"
    await resp.prepare(request)  # the headers now: a client waits for them before it starts what it watches
    root = state.settings.root

    def produce(put, stopped) -> None:
        from barque.container.events import read

        for event in read(root, since, until, flt, follow=follow, stop=stopped):
            if stopped():
                break
            put(json.dumps(event, separators=(",", ":")).encode() + b"\n")

    await stream_thread(resp, produce, "events: reading the event log")
    await resp.write_eof()
    return resp


# ---- system/df --------------------------------------------------------------------------------------------------

DF_TYPES = ("container", "image", "volume", "build-cache")


def _df(engine, view, kinds: set[str], old: bool) -> dict:
    from barque.sysinfo import df_build_cache, df_images, df_volumes

    out: dict = {"LayersSize": 0, "Images": None, "Containers": None, "Volumes": None, "BuildCache": None}
    if "image" in kinds:
        out["LayersSize"], out["Images"] = df_images(engine)
    if "container" in kinds:
        from barque.api.routes.containers import _listing

        out["Containers"] = _listing(engine, view, [], True, -1, True)
    if "volume" in kinds:
        out["Volumes"] = df_volumes(engine)
    if "build-cache" in kinds:
        out["BuildCache"] = df_build_cache(engine)
    if old:  # clients before API 1.42 read the build cache's total from BuilderSize
        out["BuilderSize"] = sum(b["Size"] for b in out["BuildCache"] or [])
    return out


async def system_df(request: web.Request) -> web.StreamResponse:
    old = api_version(request) < (1, 42)
    asked = request.query.getall("type", [])
    if old or not asked:
        kinds = set(DF_TYPES)
    else:
        for kind in asked:
            if kind not in DF_TYPES:
                raise BadParameter(f"unknown object type: {kind}")
        kinds = set(asked)
    api = state_of(request)
    return json_response(await api.read(_df, api.listing_view, kinds, old))


ROUTES = [
    ("GET", "/_ping", ping),
    ("HEAD", "/_ping", ping),
    ("GET", "/version", version),
    ("GET", "/info", info),
    ("GET", "/events", events),
    ("GET", "/system/df", system_df),
]
