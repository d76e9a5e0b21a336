"""The classic builder's endpoints: `POST /build`, `POST /build/prune`, `POST /build/cancel`.

`POST /build`: the body (a tar of the context, plain or gzip/bzip2/xz/zstd-compressed) is streamed as it arrives
into the zygote child that builds (barque.api.ops.build), which unpacks it under the engine's root — it is never
held whole here. The query is checked here first (Docker's 400s); then the child's answer decides the status: an
error before the build printed anything (no Dockerfile, a parse error, an unknown target) is an HTTP error, as
dockerd answers it; after that, the 200 stream of JSON lines carries the build's output and, in-band, its error.
A client that goes away closes the child's socket; the child sees the hang-up and stops the build, which cleans up
as on Ctrl-C (the RUN step's process killed, its snapshot and mounts removed, nothing tagged).

Parameters taken: dockerfile, t (repeated), buildargs, labels, target, nocache, q, pull, rm/forcerm (barque never
leaves intermediate containers; forcerm only adds dockerd's "Removing intermediate container" line after a failed
RUN, whose container dockerd keeps without it), platform (this machine's only), networkmode
(default/bridge, none, host, container:NAME, a network's name or ID — one that does not exist fails the first RUN
step, in the stream, as dockerd's does), extrahosts, memory, memswap, cpushares, cpuperiod, cpuquota, cpusetcpus,
cpusetmems, shmsize, ulimits (applied to RUN steps), cachefrom (as the classic builder: only steps the named
images were built from come from the cache, or from a named image's own history — one loaded or pulled; names that
resolve to nothing are skipped), remote (a git URL — git://, ssh://, git@, file://, http(s)://….git,
github.com/… with #REF:DIR — or an http(s) URL of a tar or a Dockerfile), the X-Registry-Config header
(credentials for the FROM images a build pulls). Accepted and ignored: cgroupparent, session, buildid, outputs.
Refused as dockerd refuses them: squash (not experimental), securityopt, an isolation other than default, and
version=2 (BuildKit).
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from barque.api.app import api_version, json_response, query_bool, query_int, state_of
from barque.api.errors import BadParameter
from barque.api.streams import stream_call

log = logging.getLogger(__name__)

CHUNK = 1 << 20
#: what dockerd's build prune takes
PRUNE_FILTERS = frozenset({"until", "unused-for", "id", "parent", "type", "description", "inuse", "shared", "private"})


def _json_param(request: web.Request, name: str, what: str, kind: type):
    text = request.query.get(name, "")
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as e:
        raise BadParameter(f"error reading {what}: {e}") from None
    if value is not None and not isinstance(value, kind):
        raise BadParameter(f"error reading {what}: expected a JSON {'object' if kind is dict else 'array'}")
    return value


def _registry_config(request: web.Request) -> dict:
    """X-Registry-Config: base64url JSON {registry: AuthConfig}; unreadable is ignored, as dockerd does."""
    from barque.api.routes.images import decode_auth

    return {k: v for k, v in decode_auth(request.headers.get("X-Registry-Config")).items() if isinstance(v, dict)}


def _host_config(request: web.Request) -> dict:
    """The RUN steps' resources, as the HostConfig the builder gives them."""
    from barque.container import options as o
    from barque.errors import InvalidArgument

    host: dict = {}
    for param, key in (("memory", "Memory"), ("memswap", "MemorySwap"), ("cpushares", "CpuShares"),
                       ("cpuperiod", "CpuPeriod"), ("cpuquota", "CpuQuota"), ("shmsize", "ShmSize")):
        value = query_int(request, param, 0)
        if value:
            if value < 0 and key != "MemorySwap":
                raise BadParameter(f"invalid value for {param}: {value}: it cannot be negative")
            host[key] = value
    try:
        for param, key, flag in (("cpusetcpus", "CpusetCpus", "--cpuset-cpus"),
                                 ("cpusetmems", "CpusetMems", "--cpuset-mems")):
            if request.query.get(param):
                host[key] = o.parse_cpuset(request.query[param], flag)
    except InvalidArgument as e:
        raise BadParameter(e.message) from None
    ulimits = _json_param(request, "ulimits", "ulimit settings", list)
    if ulimits:
        checked = []
        for u in ulimits:
            if not isinstance(u, dict) or not isinstance(u.get("Name"), str) or \
                    not all(isinstance(u.get(k, 0), int) for k in ("Soft", "Hard")):
                raise BadParameter("error reading ulimit settings: each needs a Name, Soft and Hard")
            try:
                o.parse_ulimit(f"{u['Name']}={u.get('Soft', 0)}:{u.get('Hard', 0)}")
            except InvalidArgument as e:
                raise BadParameter(e.message) from None
            checked.append({"Name": u["Name"], "Soft": u.get("Soft", 0), "Hard": u.get("Hard", 0)})
        host["Ulimits"] = checked
    return host


def build_args(request: web.Request) -> dict:
    """The query as the child's arguments; Docker's 400s for what it refuses."""
    from barque.build.flags import check_platform, extra_host, run_network
    from barque.errors import InvalidArgument
    from barque.oci.reference import parse_reference

    version = request.query.get("version", "")
    if version not in ("", "1"):
        if version == "2":
            raise BadParameter("buildkit not supported by daemon: barque has the classic builder only (version=1)")
        raise BadParameter(f"invalid BuilderVersion: {version}")
    if query_bool(request, "squash"):
        raise BadParameter("squash is only supported with experimental mode")
    if request.query.getall("securityopt", []):
        raise BadParameter("The daemon on this platform does not support setting security options on build")
    isolation = request.query.get("isolation", "")
    if isolation not in ("", "default"):
        raise BadParameter(f"Unsupported isolation: \"{isolation}\"")
    tags = []
    for t in request.query.getall("t", []):
        if not t:
            continue
        try:
            ref = parse_reference(t)
        except InvalidArgument as e:
            raise BadParameter(e.message) from None
        if ref.digest is not None:
            raise BadParameter(f"invalid reference format: {t}: a tag can not hold a digest")
        tags.append(t)
    args = _json_param(request, "buildargs", "build args", dict) or {}
    for k, v in args.items():
        if not isinstance(v, (str, type(None))):
            raise BadParameter(f"error reading build args: the value of {k} is not a string")
    labels = _json_param(request, "labels", "labels", dict) or {}
    for k, v in labels.items():
        if not isinstance(v, str):
            raise BadParameter(f"error reading labels: the value of {k} is not a string")
    cache_from = _json_param(request, "cachefrom", "cache-from", list) or []
    if not all(isinstance(c, str) for c in cache_from):
        raise BadParameter("error reading cache-from: expected a JSON array of strings")
    try:
        platform = request.query.get("platform", "")
        if platform:
            check_platform(platform, "platform")
        network = run_network(request.query.get("networkmode") or "default")
        hosts = []
        for value in request.query.getall("extrahosts", []):
            hosts += [extra_host(h.strip()) for h in value.split(",") if h.strip()]
    except InvalidArgument as e:
        raise BadParameter(e.message) from None
    return {
        "dockerfile": request.query.get("dockerfile") or "",
        "remote": request.query.get("remote") or "",
        "tags": tags,
        "build_args": {k: v for k, v in args.items() if v is not None},
        "labels": labels,
        "target": request.query.get("target") or None,
        "no_cache": query_bool(request, "nocache"),
        "quiet": query_bool(request, "q"),
        "pull": query_bool(request, "pull"),
        "cache_from": cache_from,
        "force_rm": query_bool(request, "forcerm"),
        "network": network,
        "extra_hosts": hosts,
        "host": _host_config(request),
        "auths": _registry_config(request),
        "aux": api_version(request) >= (1, 30),
    }


async def _send_body(request: web.Request, call, send: bool) -> None:
    """The request's body into the child's socket as it arrives, then end-of-file."""
    writer = call.writer
    if send:
        async for chunk in request.content.iter_chunked(CHUNK):
            writer.write(chunk)
            await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


async def build(request: web.Request) -> web.StreamResponse:
    args = build_args(request)
    state = state_of(request)
    call = await state.call("build.run", args)
    sending = asyncio.ensure_future(_send_body(request, call, send=not args["remote"]))
    try:
        answer = asyncio.ensure_future(call.result())
        try:
            await asyncio.wait({sending, answer}, return_when=asyncio.FIRST_COMPLETED)
            if sending.done() and sending.exception() is not None and not answer.done():
                err = sending.exception()
                raise BadParameter(f"error reading the build context: {err or type(err).__name__}")
            await answer  # the child read the whole context before it answers
        finally:
            answer.cancel()
        return await stream_call(request, call, "application/json")
    finally:
        # a client gone (cancelled), an error, or the end: the child sees its socket close (and stops a build)
        if not sending.done():
            sending.cancel()
        elif not sending.cancelled():
            sending.exception()  # retrieved: a body cut short is the child's error to report
        call.close()


async def prune(request: web.Request) -> web.StreamResponse:
    """Docker's {"CachesDeleted", "SpaceReclaimed"}. barque's cache has no dangling/unused distinction, so
    `all` and the filters change nothing: the whole cache goes, as `barque builder prune` does."""
    from barque.api.filters import check_keys, parse_filters

    check_keys(parse_filters(request.query.get("filters")), PRUNE_FILTERS)
    query_int(request, "keep-storage", 0)
    result = await state_of(request).op("build.prune", {})
    return json_response(result)


async def cancel(request: web.Request) -> web.StreamResponse:
    """BuildKit's build IDs do not exist here: a classic build is stopped by closing its connection."""
    return web.Response(status=200, content_type="application/json")


ROUTES = [
    ("POST", "/build", build),
    ("POST", "/build/prune", prune),
    ("POST", "/build/cancel", cancel),
]
