"""Streamed answers: what a zygote call streams after its answer (an archive, a build's or a pull's JSON lines), and
what a reader in a thread of the server produces (a container's log, the event log), passed to the client as it
comes, each with one way of handling a client that goes away."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Callable

from aiohttp import web

__all__ = ["stream_call", "stream_thread", "CHUNK"]

log = logging.getLogger(__name__)

CHUNK = 1 << 16
#: items a thread's reader may be ahead of the client
QUEUE = 256
#: how often a reader waiting for room in the queue looks whether its client went away
POLL = 0.5


async def stream_call(request: web.Request, call, content_type: str,
                      headers: dict[str, str] | None = None) -> web.StreamResponse:
    """A 200 of `content_type` (and `headers`) whose body is the rest of `call`'s stream, to its end. The call's answer
    must have been read (`await call.result()`): its errors are the HTTP status, not part of this stream.

    A client that goes away closes the call (aiohttp raises ConnectionError on a write to a closed transport, and
    RuntimeError once it is done with the response): the child's next write fails and it unwinds — unmounting,
    stopping a build, making no image. A client gone while the loop waits for the child cancels the handler; the
    caller's `finally: call.close()` covers that."""
    resp = web.StreamResponse(status=200, headers=headers)
    resp.content_type = content_type
    await resp.prepare(request)
    try:
        while True:
            chunk = await call.reader.read(CHUNK)
            if not chunk:
                break
            await resp.write(chunk)
        await resp.write_eof()
    except (ConnectionError, RuntimeError):
        call.close()
    return resp


async def stream_thread(resp: web.StreamResponse, produce: Callable[[Callable[[bytes], None], Callable[[], bool]], None],
                        what: str) -> None:
    """Write to the prepared `resp` what `produce(put, stopped)` puts, until it returns; `produce` runs in a thread of
    its own, not the executor's: a followed stream may last for hours, and the executor's few threads serve every
    read of the server (`ApiState.read`) — a handful of `docker logs -f` would stall them all.

    `put(data)` waits while the client is QUEUE items behind. When the client goes away (a failed write, or the
    handler cancelled), `stopped()` turns true and a waiting `put` returns: `produce` must then end (look at
    `stopped()` between items, and pass it on to a loop that waits for new ones). An exception of `produce` ends the
    stream (the headers are out: as dockerd's, the stream just ends) and is logged, with `what` the reader's name."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE)
    stopped = threading.Event()

    def put(item) -> None:
        if stopped.is_set():
            return
        fut = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while not stopped.is_set():
            try:
                fut.result(timeout=POLL)
                return
            except TimeoutError:
                continue
        fut.cancel()

    def run() -> None:
        try:
            produce(put, stopped.is_set)
        except Exception as e:  # noqa: BLE001 - reported by the handler, which ends the stream
            put(e)
        finally:
            put(None)

    threading.Thread(target=run, name=what, daemon=True).start()
    try:
        while True:
            item = await queue.get()
            if item is None:
                break
            if isinstance(item, Exception):
                log.error("%s failed: %s", what, item)
                break
            await resp.write(item)
    finally:
        stopped.set()  # the reader sees it within one poll, and stops
