"""Attach and start — together, because Docker's clients attach to a container *before* starting it (`docker run`:
create, attach, wait, start) and must not miss a byte of its output.

Attach to a running container connects to its monitor. Attach to a container that has not started is held; the
container's start then passes the monitor a socket whose other end the server keeps, with that attach's hello
already sent — the monitor serves it from the container's first instruction. The same born socket carries the exit
frame to anyone waiting (`wait?condition=next-exit|removed`), so a container that lives a millisecond is seen to
exit, and with which code, even when --rm removes it at once.

An attach is held (or joined to the monitor) before its client is answered: a client may start the container the
moment the answer comes. `attach/ws` is the same attach over a WebSocket (attach_ws): the same session core, `_serve`.
"""

from __future__ import annotations

import asyncio
import json
import socket

from aiohttp import web

from barque.api.app import api_version, query_bool, query_int, state_of
from barque.api.errors import ApiError, BadParameter, ConflictError
from barque.api.hijack import MULTIPLEXED, RAW, hijack
from barque.api.routes.containers import brief
from barque.api.sessions import ERR, OUT, PendingAttach, connect_monitor, frame, relay, resize_frame, serve_held

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q


def detach_keys(text: str | None) -> bytes:
    from barque.container.attach import parse_detach_keys
    from barque.errors import InvalidArgument

    try:
        return parse_detach_keys(text) if text else DEFAULT_DETACH_KEYS
    except InvalidArgument as e:
        raise BadParameter(e.message) from None


def _content_type(request: web.Request, tty: bool) -> str:
    return RAW if tty or api_version(request) < (1, 42) else MULTIPLEXED


async def attach(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    info = await state.read(brief, request.match_info["id"])
    keys = detach_keys(request.query.get("detachKeys"))
    if not query_bool(request, "stream") and not query_bool(request, "logs"):
        raise BadParameter("at least one of stream or logs must be set")
    _refuse_paused(info)
    streams = {"stdin": query_bool(request, "stdin") and info["open_stdin"], "stdout": query_bool(request, "stdout"),
               "stderr": query_bool(request, "stderr")}
    answered: list[web.StreamResponse] = []

    async def upgrade():
        resp, conn, _ = await hijack(request, _content_type(request, info["tty"]))
        answered.append(resp)
        return conn

    await _serve(state, info, upgrade, streams, keys, logs=query_bool(request, "logs"),
                 stream=query_bool(request, "stream"), multiplexed=None)
    return answered[0]


#: how long a closing handshake waits for the client's close frame (dockerd's x/net/websocket does not wait at all)
WS_CLOSE_TIMEOUT = 2.0


async def attach_ws(request: web.Request) -> web.StreamResponse:
    """`GET /containers/{id}/attach/ws`: the attach over a WebSocket, as dockerd's wsContainersAttach. The container
    is looked up (404), its detach keys parsed (400) and a paused one refused (409) before the upgrade; then the
    output goes as the payloads alone — never Docker's multiplexed stream, TTY or not (dockerd's MuxStreams false) —
    one message per chunk, binary from API 1.28 on and text before; the client's messages are the container's stdin.
    Before API 1.42 the stdin/stdout/stderr parameters are not read: all three are attached. `logs` and `stream` are
    as attach's (neither: an upgrade and at once a close). When the session ends — the container exits, the client
    detaches, or the client goes — the server closes the WebSocket (1000)."""
    from barque.api.hijack import WebSocketStream

    state = state_of(request)
    info = await state.read(brief, request.match_info["id"])
    keys = detach_keys(request.query.get("detachKeys"))
    _refuse_paused(info)
    version = api_version(request)
    if version >= (1, 42):
        streams = {name: query_bool(request, name) for name in ("stdin", "stdout", "stderr")}
    else:
        streams = {"stdin": True, "stdout": True, "stderr": True}
    streams["stdin"] = streams["stdin"] and info["open_stdin"]
    ws = web.WebSocketResponse(timeout=WS_CLOSE_TIMEOUT, compress=False, max_msg_size=32 << 20)
    if not ws.can_prepare(request).ok:
        raise BadParameter("not websocket protocol")  # x/net/websocket's ErrNotWebSocket, its 400

    async def upgrade():
        await ws.prepare(request)
        return WebSocketStream(ws, binary=version >= (1, 28))

    await _serve(state, info, upgrade, streams, keys, logs=query_bool(request, "logs"),
                 stream=query_bool(request, "stream"), multiplexed=False)
    return ws


def _refuse_paused(info: dict) -> None:
    if info["status"] == "paused":
        raise ConflictError("You cannot attach to a paused container, unpause it first")


async def _serve(state, info: dict, upgrade, streams: dict, keys: bytes, *, logs: bool, stream: bool,
                 multiplexed: bool | None) -> None:
    """An attach's session, until it ends: `upgrade()` answers the client and gives its connection (hijacked or
    WebSocket); then the log so far (`logs`), then (`stream`) the live output — from the monitor of a running
    container, or held until the start of one that is not running — and at the end the connection is closed.

    What the live output comes from is joined *before* the client is answered, as dockerd attaches the streams
    before it takes the connection: `docker run` and docker-py start the container as soon as the attach is
    answered, and the start must find the attach held (or the monitor must already be sending to it) — else the
    start serves nobody and the attach waits for a start that has been."""
    sock = pending = conn = None
    if stream and info["running"]:
        sock = connect_monitor(info["run_dir"], streams)  # None: it has exited meanwhile
    elif stream:  # not running (created, or exited: Docker holds such an attach too): held until a start serves it
        pending = PendingAttach(streams=streams, tty=info["tty"], detach_keys=keys, multiplexed=multiplexed)
        state.pending_attach.setdefault(info["id"], []).append(pending)
    try:
        conn = await upgrade()
        if logs:
            try:
                await _replay_logs(state, info, conn, streams, multiplexed=(not info["tty"]) if multiplexed is None
                                   else multiplexed)
            except ConnectionError:
                return  # the client has gone
        if sock is not None:
            ours, sock = sock, None
            await relay(conn, ours, tty=info["tty"], stdin=streams["stdin"], detach_keys=keys,
                        on_exit=lambda e: state.exits.post(info["id"], e), multiplexed=multiplexed)
            return
        if pending is None:
            return
        pending.ready.set_result(conn)
        await asyncio.wait([pending.done, conn.closed], return_when=asyncio.FIRST_COMPLETED)
        if pending.done.done() and pending.done.result() is not None:
            await pending.done.result()  # the session the start began
    finally:
        if sock is not None:
            sock.close()
        if pending is not None:
            waiting = state.pending_attach.get(info["id"], [])
            if pending in waiting:
                waiting.remove(pending)
                if not waiting:
                    del state.pending_attach[info["id"]]
            if not pending.ready.done():
                pending.ready.set_result(None)  # gone before it was ready: a start's session only waits the exit
        if conn is not None:
            await conn.aclose()


async def _replay_logs(state, info: dict, conn, streams: dict, *, multiplexed: bool) -> None:
    """`logs=1`: what the container printed so far, before the live stream."""
    if info["log_driver"] == "none" or not info["log_path"]:
        return

    def read(engine) -> list[tuple[str, bytes]]:
        from barque.container.logs import read_logs

        return [(e.stream, e.data) for e in read_logs(info["log_path"])]

    try:
        entries = await state.read(read)
    except Exception:  # noqa: BLE001 - no log yet
        return
    for stream, data in entries:
        kind = ERR if stream == "stderr" else OUT
        if not streams["stderr" if kind == ERR else "stdout"]:
            continue
        await conn.write(frame(kind, data) if multiplexed else data)


async def start(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    if request.can_read_body:
        body = await request.read()
        if body.strip() not in (b"", b"null", b"{}"):
            try:
                cfg = json.loads(body)
            except ValueError:
                cfg = None
            if cfg:  # Docker ≥ 1.24 refuses a HostConfig at start
                raise BadParameter("starting container with non-empty request body was deprecated since API v1.22 "
                                   "and removed in v1.24")
    info = await state.read(brief, request.match_info["id"])
    cid = info["id"]
    if info["running"] or info["status"] == "paused":
        return web.Response(status=304)
    pending: list[PendingAttach] = list(state.pending_attach.get(cid, []))
    first = pending[0] if pending else None
    ours = theirs = None
    if first is not None or state.exits.waiting(cid):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        hello = dict(first.streams) if first is not None else {"stdin": False, "stdout": False, "stderr": False}
        ours.sendall(json.dumps(hello).encode() + b"\n")
    try:
        call = await state.call("container.start", {"id": cid, "attach": ours is not None},
                                fds=(theirs.fileno(),) if theirs is not None else ())
    finally:
        if theirs is not None:
            theirs.close()
    try:
        await call.result()
    except BaseException:
        if ours is not None:
            ours.close()
        for p in pending:  # nothing will come: their connections end
            if not p.done.done():
                p.done.set_result(None)
        raise
    finally:
        call.close()
    if ours is not None:
        ours.setblocking(False)
        if first is not None:
            session = _keep(serve_held(first, ours, on_exit=lambda e: state.exits.post(cid, e)))
            if not first.done.done():
                first.done.set_result(session)
        else:
            _watch_exit(state, cid, ours)
    for other in pending[1:]:  # more than one attach before the start: each its own connection
        sock = connect_monitor(info["run_dir"], other.streams)
        if sock is not None and not other.done.done():
            other.done.set_result(_keep(serve_held(other, sock)))
        elif not other.done.done():
            other.done.set_result(None)
    return web.Response(status=204)


def _watch_exit(state, cid: str, sock: socket.socket) -> None:
    from barque.api.sessions import wait_exit

    async def watch() -> None:
        try:
            got = await wait_exit(sock)
        except Exception:  # noqa: BLE001
            got = None
        if got is not None:
            state.exits.post(cid, got)

    _keep(watch())


#: the server's own tasks (exit watchers, sessions of held attaches whose handler may have gone): asyncio keeps only
#: weak references to tasks
_TASKS: set = set()


def _keep(coro) -> asyncio.Future:
    task = asyncio.ensure_future(coro)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
    return task


async def resize(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    info = await state.read(brief, request.match_info["id"])
    h, w = query_int(request, "h", 0), query_int(request, "w", 0)
    if not info["running"]:
        raise ConflictError(f"Container {info['id']} is not running")
    if not info["tty"]:
        return web.Response(status=200)
    sock = connect_monitor(info["run_dir"], {"stdin": False, "stdout": False, "stderr": False})
    if sock is None:
        raise ApiError(409, f"Container {info['id']} is not running")
    try:
        sock.setblocking(True)
        sock.sendall(resize_frame(h, w))
    finally:
        sock.close()
    return web.Response(status=200)


ROUTES = [
    ("POST", "/containers/{id}/attach", attach),
    ("GET", "/containers/{id}/attach/ws", attach_ws),
    ("POST", "/containers/{id}/start", start),
    ("POST", "/containers/{id}/resize", resize),
]
