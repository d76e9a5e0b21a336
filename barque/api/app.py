"""The aiohttp application: Docker's paths (unversioned and `/v1.NN/…`), version negotiation, common headers, and
errors as Docker's `{"message": …}` bodies.

Route modules (barque/api/routes/*.py) each define `ROUTES = [(METHOD, PATH, handler), …]`; every path is served
both as given and under `/v{version}`. Handlers read the negotiated version from `api_version(request)`.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

from barque import __version__
from barque.errors import BarqueError
from barque.api.errors import ApiError, from_exception

__all__ = ["make_app", "ApiState", "state_of", "api_version", "json_body", "query_bool", "query_int",
           "MIN_VERSION", "MAX_VERSION", "SERVER_VERSION", "json_response", "ROUTE_MODULES"]

log = logging.getLogger(__name__)

MIN_VERSION = (1, 24)
MAX_VERSION = (1, 43)
#: what `/version` says the engine is (Docker Engine 24.0 is the release whose API is 1.43)
SERVER_VERSION = "24.0.7"
BODY_LIMIT = 64 << 20  # JSON bodies; archives and build contexts are streamed, not read whole

ROUTE_MODULES = ("system", "containers", "attach", "exec", "archive", "images", "build", "networks", "volumes",
                 "swarm", "container_extras")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ApiState:
    settings: Any
    zygote: Any
    #: container ID → attaches waiting for the container's start (sessions.PendingAttach)
    pending_attach: dict[str, list] = field(default_factory=dict)
    #: who waits for which container's exit (sessions.ExitBoard)
    exits: Any = None
    #: exec ID → the exec's configuration (exec create → start → inspect)
    execs: dict[str, dict] = field(default_factory=dict)
    #: what the reader threads' Engines parsed (records, states, listing rows), shared by them (Engine.reader_caches)
    reader_caches: dict = field(default_factory=dict)
    _view: Any = field(default=None, repr=False)
    _view_lock: Any = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.exits is None:
            from barque.api.sessions import ExitBoard

            self.exits = ExitBoard()

    async def read(self, fn: Callable[..., Any], *args, **kwargs) -> Any:
        """Run a read-only engine function (listings, inspect, logs) in one of the server's reader threads, each
        with an Engine of its own kept for the thread's life (its database connection is opened once, not per
        request)."""
        return await asyncio.get_running_loop().run_in_executor(None, self._in_thread, fn, args, kwargs)

    def _in_thread(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        engine = getattr(_READERS, "engine", None)
        if engine is None:
            from barque.engine import Engine

            engine = _READERS.engine = Engine(self.settings)
            engine.reader_caches = self.reader_caches  # its readers treat records as read-only
        return fn(engine, *args, **kwargs)

    @property
    def listing_view(self):
        """The containers as listings see them, kept current by events (container/view.py), made at first use."""
        if self._view is None:
            with self._view_lock:
                if self._view is None:
                    from barque.container.view import ContainerView
                    from barque.metadata.db import Database

                    path = self.settings.root / "barque.db"
                    Database(path).close()  # a fresh root: made (and migrated) as an engine would
                    self._view = ContainerView(path, self.settings.run_root)
        return self._view

    def close(self) -> None:
        if self._view is not None:
            self._view.close()

    async def op(self, name: str, args: dict | None = None) -> Any:
        """Run an engine operation in a child of the zygote; its result, or ApiError."""
        return await self.zygote.run(name, args)

    async def call(self, name: str, args: dict | None = None, fds: tuple[int, ...] = ()):
        return await self.zygote.call(name, args, fds)


#: the reader threads' own Engines (threading.local: an Engine's database connection belongs to one thread)
_READERS = threading.local()


def state_of(request: web.Request) -> ApiState:
    return request.app["barque"]


_VERSION = re.compile(r"^1\.(\d+)$")


def parse_version(text: str) -> tuple[int, int] | None:
    m = _VERSION.match(text)
    return (1, int(m.group(1))) if m else None


def api_version(request: web.Request) -> tuple[int, int]:
    text = request.match_info.get("version")
    if not text:
        return MAX_VERSION
    return parse_version(text) or MAX_VERSION


def version_text(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


async def json_body(request: web.Request, *, required: bool = False) -> Any:
    """The request's JSON body (None when empty and not required); Docker's 400 messages for bad JSON."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise ApiError(400, "bad parameter: request body is empty")
        return None
    try:
        return json.loads(raw)
    except ValueError as e:
        raise ApiError(400, f"invalid JSON: {e}") from None


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """Docker's boolean query values: absent → default; "", "0", "no", "false", "none" → false; anything else true."""
    if name not in request.query:
        return default
    return request.query[name].strip().lower() not in ("", "0", "no", "false", "none")


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    value = request.query.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, f"invalid value for {name}: {value!r}: not an integer") from None


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(data).encode() + b"\n", content_type="application/json")


def _headers(response: web.StreamResponse, *, preparing: bool = False) -> None:
    if response.prepared and not preparing:  # (during on_response_prepare aiohttp already counts it prepared)
        return
    response.headers["Api-Version"] = version_text(MAX_VERSION)
    response.headers["Docker-Experimental"] = "false"
    response.headers["Ostype"] = "linux"
    response.headers["Server"] = f"Docker/{SERVER_VERSION} (linux) barque/{__version__}"


def error_response(status: int, message: str) -> web.Response:
    response = json_response({"message": message}, status=status)
    _headers(response)
    return response


@web.middleware
async def timing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """With `--log-level debug`: each request, its status and how long it took (the server's side of latency)."""
    start = time.perf_counter()
    status = "-"
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        log.debug("%s %s %s %.1f ms", request.method, request.path_qs, status, (time.perf_counter() - start) * 1000)


@web.middleware
async def docker_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    text = request.match_info.get("version")
    if text is not None:
        v = parse_version(text)
        if v is None:
            return error_response(400, f"invalid API version: {text}")  # never matched by the router's pattern
        if v > MAX_VERSION:
            return error_response(400, f"client version {text} is too new. Maximum supported API version is "
                                       f"{version_text(MAX_VERSION)}")
        if v < MIN_VERSION:
            return error_response(400, f"client version {text} is too old. Minimum supported API version is "
                                       f"{version_text(MIN_VERSION)}, please upgrade your client to a newer version")
    try:
        response = await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):  # dockerd's router answers a wrong method as a wrong path
        return error_response(404, "page not found")
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, f"request body too large: at most {BODY_LIMIT >> 20} MiB of JSON is accepted")
    except web.HTTPException as e:
        if e.status < 400:
            _headers(e)
            raise
        return error_response(e.status, e.text or e.reason)
    except ApiError as e:
        if e.status == 304:
            response = web.Response(status=304)
            _headers(response)
            return response
        return error_response(e.status, e.message)
    except asyncio.CancelledError:
        raise
    except ConnectionResetError:  # the client went away mid-answer: nothing to tell anyone
        return web.Response(status=499)
    except BarqueError as e:  # a read in the server itself (listings, inspect, logs) refused
        err = from_exception(e)
        return error_response(err.status, err.message)
    except Exception as e:  # noqa: BLE001 - a fault of the server: 500 with what it was, and keep serving
        log.exception("%s %s failed", request.method, request.path)
        err = from_exception(e)
        return error_response(err.status, err.message)
    _headers(response)
    return response


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    _headers(response, preparing=True)


def make_app(state: ApiState) -> web.Application:
    middlewares = [docker_middleware]
    if log.isEnabledFor(logging.DEBUG):
        middlewares.insert(0, timing_middleware)
    app = web.Application(middlewares=middlewares, client_max_size=BODY_LIMIT)
    app["barque"] = state
    app.on_response_prepare.append(_on_prepare)
    for name in ROUTE_MODULES:
        module = importlib.import_module(f"barque.api.routes.{name}")
        for method, path, handler in module.ROUTES:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, r"/v{version:[0-9]+\.[0-9]+}" + path, handler)
    return app
