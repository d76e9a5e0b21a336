"""A container's files as Docker's `/containers/{id}/archive` serves them: HEAD (the path's stat), GET (the path as a
tar) and PUT (a tar extracted into a directory), what `docker cp` uses both ways.

The stat goes in the `X-Docker-Container-Path-Stat` header (base64 of Docker's ContainerPathStat JSON). Tars are
streamed, never held whole: out of the zygote child to the client, and from the client into the child. A client that
goes away mid-stream ends the child's copy (its socket closes), and with it the mount of a stopped container.
"""

from __future__ import annotations

import asyncio
import base64
import json

from aiohttp import web

from barque.api.app import query_bool, state_of
from barque.api.errors import ApiError, BadParameter
from barque.api.streams import stream_call
from barque.api.zygote import error_of

CHUNK = 1 << 16
STAT_HEADER = "X-Docker-Container-Path-Stat"


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise BadParameter("bad parameter: pathcannot be empty")  # dockerd's words, missing space included
    return path


def _stat_header(st: dict) -> str:
    text = json.dumps({k: st[k] for k in ("name", "size", "mode", "mtime", "linkTarget")}, separators=(",", ":"))
    return base64.b64encode(text.encode()).decode()


async def head(request: web.Request) -> web.StreamResponse:
    st = await state_of(request).op("archive.stat", {"id": request.match_info["id"], "path": _path(request)})
    resp = web.Response(status=200)
    resp.headers[STAT_HEADER] = _stat_header(st)
    return resp


async def get(request: web.Request) -> web.StreamResponse:
    path = _path(request)
    call = await state_of(request).call("archive.get", {"id": request.match_info["id"], "path": path})
    try:
        info = await call.result()
        return await stream_call(request, call, "application/x-tar", {STAT_HEADER: _stat_header(info["stat"])})
    finally:
        call.close()  # a client gone mid-tar: the child's next write fails, it unwinds and unmounts


def _error_of(line: bytes) -> ApiError | None:
    """The last line of archive.put: None for success, else its error."""
    if not line:
        return ApiError(500, "the extraction ended without an answer (its process died)")
    msg = json.loads(line)
    return error_of(msg["error"]) if "error" in msg else None


async def put(request: web.Request) -> web.StreamResponse:
    path = _path(request)
    args = {"id": request.match_info["id"], "path": path,
            "no_overwrite_dir_non_dir": query_bool(request, "noOverwriteDirNonDir"),
            "copy_uid_gid": query_bool(request, "copyUIDGID")}
    call = await state_of(request).call("archive.put", args)
    try:
        await call.result()

        async def pump() -> None:
            while True:
                try:
                    chunk = await request.content.read(CHUNK)
                except Exception as e:  # noqa: BLE001 - the connection was lost before the body's end
                    raise ConnectionResetError("the client went away mid-upload") from e
                if not chunk:
                    break
                try:
                    call.writer.write(chunk)
                    await call.writer.drain()
                except ConnectionError:
                    return  # the child stopped reading: its answer says why
            try:
                call.writer.write_eof()
            except (ConnectionError, OSError):
                pass

        pumping = asyncio.ensure_future(pump())
        answer = asyncio.ensure_future(call.reader.readline())
        try:
            await asyncio.wait([pumping, answer], return_when=asyncio.FIRST_COMPLETED)
            if answer.done():
                pumping.cancel()  # it failed early: the rest of the upload is not wanted
            else:
                await pumping  # raises when the client went away mid-upload: the child sees the tar cut
                await answer
        except BaseException:
            for t in (pumping, answer):
                t.cancel()
            raise
        try:
            line = answer.result()
        except (ConnectionError, asyncio.IncompleteReadError):
            line = b""
        err = _error_of(line)
        if err is not None:
            raise err
        return web.Response(status=200)
    finally:
        call.close()


ROUTES = [
    ("HEAD", "/containers/{id}/archive", head),
    ("GET", "/containers/{id}/archive", get),
    ("PUT", "/containers/{id}/archive", put),
]
