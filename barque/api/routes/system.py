"""System endpoints: _ping, version, info."""

from __future__ import annotations

import platform

from aiohttp import web

from barque import __version__
from barque.api.app import MAX_VERSION, MIN_VERSION, SERVER_VERSION, json_response, state_of, version_text


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
    from barque.sysinfo import system_info

    return system_info(engine)


async def info(request: web.Request) -> web.StreamResponse:
    data = await state_of(request).read(_info)
    data["ServerVersion"] = SERVER_VERSION
    return json_response(data)


ROUTES = [
    ("GET", "/_ping", ping),
    ("HEAD", "/_ping", ping),
    ("GET", "/version", version),
    ("GET", "/info", info),
]
