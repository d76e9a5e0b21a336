"""Docker's hijacked connections (attach, exec start): the HTTP exchange ends with `101 UPGRADED` (or, for clients
that do not ask for an upgrade, `200 OK`) and the connection becomes a raw byte stream both ways.

After the status line and headers, the transport is taken from aiohttp's protocol: our own protocol receives the
client's bytes (stdin) and — this is the care half-close needs — keeps the connection open when the client shuts
down its writing side (`docker run -i` sends stdin's end that way and still reads the output).

`attach/ws` serves the same sessions over a WebSocket: `WebSocketStream` gives an aiohttp WebSocketResponse the
hijacked connection's interface (`read`, `write`, `gone`, `closed`, `close`), so one relay serves both.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

__all__ = ["Hijacked", "hijack", "RAW", "MULTIPLEXED", "WebSocketStream"]

RAW = "application/vnd.docker.raw-stream"
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"


class _RawResponse(web.StreamResponse):
    def __init__(self, status: int, reason: str | None = None) -> None:
        super().__init__(status=status, reason=reason)
        self._length_check = False  # no chunked framing: the body is the raw stream (as aiohttp's WebSockets)


class Hijacked(asyncio.Protocol):
    """The client's side of a hijacked connection: `read()` its bytes (b"" at its half-close), `write()` to it."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._eof = False
        self.closed = asyncio.get_running_loop().create_future()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._pending = b""

    # asyncio.Protocol
    def data_received(self, data: bytes) -> None:
        self._queue.put_nowait(data)

    def eof_received(self) -> bool:
        self._eof = True
        self._queue.put_nowait(b"")
        return True  # keep our writing side open: the output still flows

    def connection_lost(self, exc) -> None:
        if not self._eof:
            self._queue.put_nowait(b"")
        self._can_write.set()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # ours
    async def read(self) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        return await self._queue.get()

    def unread(self, data: bytes) -> None:
        self._pending = data + self._pending

    async def write(self, data: bytes) -> None:
        if self.transport.is_closing():
            raise ConnectionResetError("the client has gone")
        self.transport.write(data)
        await self._can_write.wait()

    @property
    def gone(self) -> bool:
        """The connection is closed (a half-close — the client done sending — is not gone)."""
        return self.closed.done() or self.transport.is_closing()

    def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    async def aclose(self) -> None:
        self.close()


class WebSocketStream:
    """A prepared WebSocketResponse as a client connection of the attach relay, as dockerd's `attach/ws` uses its
    websocket.Conn: each write is one message — binary (API ≥ 1.28) or text (older: the bytes as they are, as Go's
    x/net/websocket sends them) — and the client's messages, text or binary, are the container's stdin.

    The client's messages are read all along (as a hijacked connection's protocol receives them), so a client that
    goes away — a close frame, or its connection simply lost — is seen at once, also while the attach waits for the
    container's start: `closed` is then done and `read()` gives b"". A WebSocket has no half-close: its close ends
    the session."""

    def __init__(self, ws, *, binary: bool) -> None:
        from aiohttp import WSMsgType

        self.ws = ws
        self._opcode = WSMsgType.BINARY if binary else WSMsgType.TEXT
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = asyncio.get_running_loop().create_future()
        self._pump = asyncio.ensure_future(self._receive())
        self._closing: asyncio.Future | None = None

    async def _receive(self) -> None:
        from aiohttp import WSMsgType

        try:
            while True:
                msg = await self.ws.receive()
                if msg.type == WSMsgType.BINARY:
                    self._queue.put_nowait(bytes(msg.data))
                elif msg.type == WSMsgType.TEXT:
                    self._queue.put_nowait(msg.data.encode())
                else:  # CLOSE (aiohttp has answered it), CLOSING (our close), CLOSED, ERROR: the client has gone
                    return
        finally:
            if not self.closed.done():
                self.closed.set_result(None)
            self._queue.put_nowait(b"")

    async def read(self) -> bytes:
        return await self._queue.get()

    async def write(self, data: bytes) -> None:
        if self.gone:
            raise ConnectionResetError("the client has gone")
        try:
            await self.ws.send_frame(bytes(data), self._opcode)
        except ConnectionError:
            raise
        except Exception as e:  # noqa: BLE001 - aiohttp's "closing transport" and kin
            raise ConnectionResetError(str(e)) from e

    @property
    def gone(self) -> bool:
        return self.closed.done() or self.ws.closed

    def close(self) -> None:
        """Begin the closing handshake (a close frame, 1000); `aclose()` waits for its end."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())

    async def _close(self) -> None:
        try:
            await self.ws.close()
        except Exception:  # noqa: BLE001 - the client has gone meanwhile
            pass
        if not self._pump.done():
            self._pump.cancel()
        try:
            await self._pump
        except (asyncio.CancelledError, Exception):  # noqa: BLE001
            pass

    async def aclose(self) -> None:
        self.close()
        await asyncio.shield(self._closing)


def upgrading(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "tcp" and "upgrade" in \
        request.headers.get("Connection", "").lower()


async def hijack(request: web.Request, content_type: str) -> tuple[web.StreamResponse, Hijacked, bytes]:
    """Answer `request` with 101 (when it asked to upgrade) or 200 and take its connection over. Also returns the
    request's body when it came with an upgrade: aiohttp leaves such a body in the stream (exec start has one)."""
    upgrade = upgrading(request)
    # aiohttp's C parser upgrades only WebSockets: for `Upgrade: tcp` it reads the body as any request's (its pure
    # Python parser leaves it in the stream, taken below); read it before the connection is ours
    early = await request.read() if upgrade and request.can_read_body else None
    resp = _RawResponse(101, "UPGRADED") if upgrade else _RawResponse(200)
    resp.content_type = content_type
    if upgrade:
        resp.headers["Connection"] = "Upgrade"
        resp.headers["Upgrade"] = "tcp"
    resp.force_close()
    await resp.prepare(request)
    transport = request.transport
    protocol = request.protocol
    tail = bytes(getattr(protocol, "_message_tail", b"") or b"")
    try:
        protocol._message_tail = b""
    except AttributeError:
        pass
    ours = Hijacked(transport)
    transport.set_protocol(ours)
    if tail:
        ours.data_received(tail)
    body = b""
    want = int(request.headers.get("Content-Length") or 0) if upgrade and early is None else 0
    while len(body) < want:
        chunk = await ours.read()
        if not chunk:
            break
        body += chunk
    if len(body) > want:
        ours.unread(body[want:])  # what followed the body is the client's stdin
        body = body[:want]
    return resp, ours, body if early is None else early
