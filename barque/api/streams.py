"""What a zygote call streams after its answer (an archive, a build's or a pull's JSON lines), passed to the client as
it comes: one loop for every streaming endpoint, with one way of handling a client that goes away."""

from __future__ import annotations

from aiohttp import web

__all__ = ["stream_call", "CHUNK"]

CHUNK = 1 << 16


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
