"""The aiohttp application: routing of /v2 paths, access checks, the spec's error bodies and common headers.

Repository names contain slashes, so /v2 paths are matched from their end (``…/blobs/uploads/ID``,
``…/blobs/DIGEST``, ``…/manifests/REF``, ``…/tags/list``, ``…/referrers/DIGEST``) and what precedes is the name,
checked against the spec's grammar (NAME_INVALID) before anything else looks at it.

Blocking work (SQLite, file I/O, bcrypt) runs on a thread pool through `RegistryState.run`, so one big upload or a
garbage collection never stalls the event loop; blob GETs are sent with sendfile (`web.FileResponse`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

from barque.registry.server.auth import Access, BasicAccess, Need, OpenAccess, Policy, TokenAccess
from barque.registry.server.config import RegistryConfig
from barque.registry.server.errors import RegistryError, error_body
from barque.registry.server.names import check_name
from barque.registry.server.storage import Storage

__all__ = ["RegistryState", "make_app", "API_VERSION_HEADER"]

log = logging.getLogger(__name__)

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
BODY_LIMIT = 1 << 20   # JSON bodies other than manifests (token requests)


@dataclass
class RegistryState:
    config: RegistryConfig
    storage: Storage
    access: Access
    executor: ThreadPoolExecutor
    gc_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    token: Any = None   # (TokenIssuer, Htpasswd, Policy) when token auth is on

    async def run(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    async def collect_garbage(self):
        """One online collection with the configured policy (serialised: a second request waits for the first)."""
        c = self.config
        async with self.gc_lock:
            report = await self.run(self.storage.collect_garbage, c.gc_grace, c.gc_delete_untagged, False,
                                    c.upload_expiry)
        log.info("garbage collection: %d manifests, %d blobs (%d bytes) deleted, %d uploads removed",
                 len(report.manifests_deleted), len(report.blobs_deleted), report.bytes_freed, report.uploads_removed)
        return report


def state_of(request: web.Request) -> RegistryState:
    return request.app["registry"]


Handler = Callable[..., Awaitable[web.StreamResponse]]


def _routes() -> list[tuple[re.Pattern, dict[str, tuple[str, str]]]]:
    """(path pattern, {method: (handler "module:function", action)})."""
    return [
        (re.compile(r"(?P<name>.+)/blobs/uploads(?:/(?P<upload>[^/]*))?"), {
            "POST": ("http_uploads:start", "push"), "GET": ("http_uploads:status", "push"),
            "PATCH": ("http_uploads:patch", "push"), "PUT": ("http_uploads:put", "push"),
            "DELETE": ("http_uploads:cancel", "push")}),
        (re.compile(r"(?P<name>.+)/blobs/(?P<digest>[^/]+)"), {
            "GET": ("http_blobs:get", "pull"), "HEAD": ("http_blobs:get", "pull"),
            "DELETE": ("http_blobs:delete", "delete")}),
        (re.compile(r"(?P<name>.+)/manifests/(?P<reference>[^/]+)"), {
            "GET": ("http_manifests:get", "pull"), "HEAD": ("http_manifests:get", "pull"),
            "PUT": ("http_manifests:put", "push"), "DELETE": ("http_manifests:delete", "delete")}),
        (re.compile(r"(?P<name>.+)/tags/list"), {"GET": ("http_lists:tags", "pull")}),
        (re.compile(r"(?P<name>.+)/referrers/(?P<digest>[^/]+)"), {"GET": ("http_referrers:referrers", "pull")}),
    ]


_ROUTES = _routes()
_WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def _handler(spec: str) -> Handler:
    import importlib

    module, _, fn = spec.partition(":")
    return getattr(importlib.import_module(f"barque.registry.server.{module}"), fn)


async def dispatch(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    tail = request.match_info.get("tail", "")
    if tail in ("", "/"):
        if request.method not in ("GET", "HEAD"):
            raise RegistryError("UNSUPPORTED", f"{request.method} /v2/")
        await st.access.check(request, Need())
        return web.json_response({})
    if tail == "_catalog":
        if request.method != "GET":
            raise RegistryError("UNSUPPORTED", f"{request.method} /v2/_catalog")
        await st.access.check(request, Need("registry", "catalog", "*"))
        return await _handler("http_lists:catalog")(request, st)
    for pattern, methods in _ROUTES:
        m = pattern.fullmatch(tail)
        if not m:
            continue
        params = {k: v or "" for k, v in m.groupdict().items()}
        name = check_name(params.pop("name"))
        if request.method not in methods:
            raise RegistryError("UNSUPPORTED", f"{request.method} is not supported here")
        spec, action = methods[request.method]
        identity = await st.access.check(request, Need("repository", name, action))
        if request.method in _WRITES and st.config.read_only:
            raise RegistryError("UNSUPPORTED", "registry is in read-only mode", message="registry is in read-only mode")
        if action == "delete" and not st.config.delete_enabled:
            raise RegistryError("UNSUPPORTED", "deletes are disabled (start the registry with --delete-enabled)",
                                message="the operation is unsupported")
        request["identity"] = identity
        return await _handler(spec)(request, st, name, **params)
    raise RegistryError("NAME_UNKNOWN", f"no route for /v2/{tail}", message="not found")


@web.middleware
async def errors_and_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except RegistryError as e:
        response = web.Response(status=e.status, body=error_body(e), content_type="application/json",
                                headers=e.headers)
        if e.status == 408:
            response.force_close()   # the rest of a stalled body is not waited for
    except web.HTTPException as e:
        e.headers[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
        raise
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        response = web.Response(status=500, content_type="application/json",
                                body=b'{"errors":[{"code":"UNKNOWN","message":"unknown error"}]}')
    response.headers[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
    return response


def make_access(config: RegistryConfig, run_blocking) -> tuple[Access, Any]:
    mode = config.auth_mode
    if mode == "none":
        return OpenAccess(), None
    from barque.registry.server.htpasswd import Htpasswd

    users = Htpasswd(config.htpasswd)
    policy = Policy(config.anonymous_pull)
    if mode == "htpasswd":
        return BasicAccess(users, policy, run_blocking), None
    from barque.registry.server.tokens import TokenIssuer, load_key

    issuer = TokenIssuer(load_key(config.root), config.token_service, ttl=config.token_ttl)
    return TokenAccess(issuer, users, policy, config.token_realm), (issuer, users, policy)


def make_app(config: RegistryConfig, storage: Storage, workers: int = 16) -> web.Application:
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="registry")
    holder: dict[str, RegistryState] = {}

    async def run_blocking(fn, *args):
        return await holder["state"].run(fn, *args)

    access, token = make_access(config, run_blocking)
    app = web.Application(middlewares=[errors_and_headers], client_max_size=BODY_LIMIT)
    state = RegistryState(config, storage, access, executor, token=token)
    holder["state"] = state
    app["registry"] = state
    app.router.add_route("*", "/v2", _redirect_v2)
    app.router.add_route("*", "/v2/{tail:.*}", dispatch)
    if token is not None:
        from barque.registry.server.http_token import token_get, token_post

        app.router.add_get("/token", token_get)
        app.router.add_post("/token", token_post)

    async def shutdown(app: web.Application) -> None:
        executor.shutdown(wait=True, cancel_futures=True)

    app.on_cleanup.append(shutdown)
    return app


async def _redirect_v2(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/v2/")
