"""The server's side of containers' monitors: attach sessions relayed to hijacked client connections, and exit
waiters (`wait`, and `start` of a container someone is attached or waiting on).

A monitor speaks frames with Docker's 8-byte header (barque/container/monitor.py): stdout (1) and stderr (2) frames
are passed to a client without a TTY as they are — that *is* Docker's multiplexed stream — and unwrapped for one
with a TTY; the exit frame (3) ends the session and wakes the waiters. `attach/ws` (dockerd's MuxStreams false: the
WebSocket's messages are the streams) is served the payloads alone, TTY or not: `relay(multiplexed=False)`.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from barque.container.monitor import ERR, EXIT, HEADER, OUT, RESIZE, STDIN, STDIN_CLOSE

__all__ = ["PendingAttach", "serve_held", "connect_monitor", "relay", "ExitBoard", "frame"]


@dataclass
class PendingAttach:
    """An attach to a container that has not started yet: it is served from the container's birth.

    It is registered before its client is answered (a client that starts the container as soon as its attach is
    answered must find it there); `ready` then gives the client's connection (hijack.Hijacked or
    hijack.WebSocketStream) once the answer and any `logs` are sent — None when the client went before — and the
    session the start begins (`serve_held`) waits for it."""
    streams: dict                    # the hello: stdin, stdout, stderr
    tty: bool
    detach_keys: bytes
    multiplexed: bool | None = None  # None: as the TTY says (not tty); attach/ws: False
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    ready: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


async def serve_held(pending: PendingAttach, sock: socket.socket, on_exit=None) -> dict | None:
    """The session of a held attach on its monitor connection `sock`, once the attach is ready. When its client has
    gone meanwhile, the connection is still read to its exit frame for `on_exit` (the waiters)."""
    conn = await pending.ready
    if conn is None or conn.gone:
        got = await wait_exit(sock)
        if got is not None and on_exit is not None:
            on_exit(got)
        return None
    return await relay(conn, sock, tty=pending.tty, stdin=pending.streams["stdin"], detach_keys=pending.detach_keys,
                       on_exit=on_exit, multiplexed=pending.multiplexed)


class ExitBoard:
    """Who waits for which container's next exit. The session that reads a monitor's exit frame posts it here."""

    def __init__(self) -> None:
        self._waiters: dict[str, list[asyncio.Future]] = {}

    def waiter(self, cid: str) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(cid, []).append(fut)
        return fut

    def forget(self, cid: str, fut: asyncio.Future) -> None:
        waiters = self._waiters.get(cid)
        if waiters and fut in waiters:
            waiters.remove(fut)
            if not waiters:
                del self._waiters[cid]

    def waiting(self, cid: str) -> bool:
        return bool(self._waiters.get(cid))

    def post(self, cid: str, exit_info: dict) -> None:
        for fut in self._waiters.pop(cid, []):
            if not fut.done():
                fut.set_result(exit_info)


def connect_monitor(run_dir: Path, hello: dict) -> socket.socket | None:
    """A connection to a running container's monitor, the hello sent; None when it does not serve (not running)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    dir_fd = -1
    try:  # through /proc/self/fd: a unix socket path is limited to 108 bytes, the run directory's path is not
        dir_fd = os.open(run_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        sock.connect(f"/proc/self/fd/{dir_fd}/attach.sock")
        sock.sendall(json.dumps(hello).encode() + b"\n")
    except OSError:
        sock.close()
        return None
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)
    sock.setblocking(False)
    return sock


async def read_frames(reader: asyncio.StreamReader):
    """(kind, payload) frames until the monitor closes."""
    while True:
        try:
            head = await reader.readexactly(HEADER.size)
            kind, size = HEADER.unpack(head)
            payload = await reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        yield kind, payload


async def wait_exit(sock: socket.socket) -> dict | None:
    """Read a monitor connection (a waiting or stream-less hello) to its exit frame."""
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    try:
        async for kind, payload in read_frames(reader):
            if kind == EXIT:
                return json.loads(payload)
        return None
    finally:
        writer.close()


def _split_detach(data: bytes, keys: bytes, matched: int) -> tuple[bytes, int, bool]:
    """Docker's detach keys in a TTY's input: (what to pass on, how much of `keys` is matched so far, detached)."""
    out = bytearray()
    for b in data:
        if keys and b == keys[matched]:
            matched += 1
            if matched == len(keys):
                return bytes(out), 0, True
            continue
        if matched:
            out += keys[:matched]
            matched = 0
        out.append(b)
    return bytes(out), matched, False


async def relay(conn, sock: socket.socket, *, tty: bool, stdin: bool, detach_keys: bytes = b"",
                on_exit=None, multiplexed: bool | None = None) -> dict | None:
    """Join a client connection (hijack.Hijacked, or hijack.WebSocketStream) and a monitor connection until the
    container exits, the client goes, or the client detaches. Returns the exit frame's content when the container
    exited. The output is Docker's multiplexed stream when `multiplexed` (by default: without a TTY), else the
    payloads alone; detach keys are looked for in a TTY's input only (dockerd's copyEscapable)."""
    mux = (not tty) if multiplexed is None else multiplexed
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    exit_info: dict | None = None

    async def outward() -> None:
        nonlocal exit_info
        async for kind, payload in read_frames(reader):
            if kind == EXIT:
                exit_info = json.loads(payload)
                if on_exit is not None:
                    on_exit(exit_info)
                return
            if kind in (OUT, ERR) and not conn.gone:
                try:
                    await conn.write(frame(kind, payload) if mux else payload)
                except ConnectionError:
                    return

    async def inward() -> None:
        matched = 0
        while True:
            data = await conn.read()
            if not data:
                if conn.gone:
                    return  # the client went away: detach (the container keeps running)
                if stdin:  # half-closed: the container's stdin ends, its output still flows to the client
                    writer.write(frame(STDIN_CLOSE, b""))
                    await writer.drain()
                await asyncio.Future()
            if not stdin:
                continue
            if tty and detach_keys:
                data, matched, detached = _split_detach(data, detach_keys, matched)
                if data:
                    writer.write(frame(STDIN, data))
                if detached:
                    return
            else:
                writer.write(frame(STDIN, data))
            await writer.drain()

    out_task = asyncio.ensure_future(outward())
    in_task = asyncio.ensure_future(inward())
    try:
        await asyncio.wait([out_task, in_task, conn.closed], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (out_task, in_task):
            t.cancel()
        for t in (out_task, in_task):
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        writer.close()
        conn.close()
    return exit_info


def frame(kind: int, payload: bytes) -> bytes:
    """One frame of the monitor's protocol: Docker's multiplexed stream (stdout 1, stderr 2) is made of these."""
    return HEADER.pack(kind, len(payload)) + payload


def resize_frame(rows: int, cols: int) -> bytes:
    return frame(RESIZE, f"{rows} {cols}".encode())
