"""Blob uploads: POST (session, monolithic with ?digest=, or cross-repository ?mount=&from=), PATCH chunks, status
GET, completing PUT, cancelling DELETE.

Request bodies are streamed to the session's file in 1 MiB pieces from a worker thread; nothing is held whole in
memory and the event loop never waits on the disk.
"""

from __future__ import annotations

from aiohttp import web

from barque.registry.server.auth import Need
from barque.registry.server.bodies import read_chunk
from barque.registry.server.errors import RegistryError
from barque.registry.server.names import check_name, parse_digest
from barque.registry.server.ranges import check_chunk_start, parse_content_range, progress_range

PIECE = 1 << 20
MOUNT_CANDIDATES = 50   # repositories tried for a mount without `from`


def _location(name: str, upload_id: str) -> str:
    return f"/v2/{name}/blobs/uploads/{upload_id}"


def _session_headers(name: str, upload_id: str, offset: int) -> dict[str, str]:
    return {"Location": _location(name, upload_id), "Range": progress_range(offset),
            "Docker-Upload-UUID": upload_id, "Content-Length": "0"}


def _created(name: str, digest) -> web.Response:
    return web.Response(status=201, headers={"Location": f"/v2/{name}/blobs/{digest}",
                                             "Docker-Content-Digest": str(digest), "Content-Length": "0"})


async def _stream(request: web.Request, st, name: str, upload_id: str, expect: tuple[int, int] | None) -> int:
    """Append the request body to the session; returns the session's size after it. An oversized body discards
    the whole session (413)."""
    try:
        return await _append(request, st, name, upload_id, expect)
    except RegistryError as e:
        if e.status == 413:
            await st.run(_cancel_quietly, st, name, upload_id)
        raise


async def _append(request: web.Request, st, name: str, upload_id: str, expect: tuple[int, int] | None) -> int:
    writer = await st.run(st.storage.open_upload, name, upload_id)
    try:
        if expect is not None:
            check_chunk_start(expect[0], writer.offset, _location(name, upload_id), upload_id)
            length = request.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) != expect[1] - expect[0] + 1:
                raise RegistryError("RANGE_INVALID", f"Content-Range {expect[0]}-{expect[1]} does not match "
                                    f"Content-Length {length}", status=416, message="requested range not satisfiable",
                                    headers=_session_headers(name, upload_id, writer.offset))
        limit = st.config.max_blob_size
        pieces: list[bytes] = []
        held = 0
        while True:
            try:
                chunk = await read_chunk(request, st.config.body_timeout, "BLOB_UPLOAD_INVALID")
            except RegistryError:
                if held:   # keep what did arrive: the session's Range tells the client where to resume
                    await st.run(writer.write, b"".join(pieces))
                raise
            if chunk:
                pieces.append(chunk)
                held += len(chunk)
                if limit and writer.offset + held > limit:
                    raise RegistryError("SIZE_INVALID", f"blob larger than {limit} bytes", status=413,
                                        message="blob too large")
            if held >= PIECE or (not chunk and held):
                await st.run(writer.write, b"".join(pieces))
                pieces.clear()
                held = 0
            if not chunk:
                break
        return writer.offset
    finally:
        await st.run(writer.close)


async def start(request: web.Request, st, name: str, upload: str) -> web.StreamResponse:
    if upload:
        raise RegistryError("UNSUPPORTED", "POST to an existing upload")
    q = request.query
    mount, from_repo = q.get("mount"), q.get("from")
    if mount and from_repo:
        d = parse_digest(mount)
        if await _mount(request, st, name, from_repo, d):
            return _created(name, d)
        # not mountable: an ordinary upload session, as the spec says
    elif mount:
        # no `from`: the spec lets a registry find the blob itself ("automatic content discovery"); any
        # repository holding it that this client may pull will do, the target itself included
        try:
            d = parse_digest(mount)
        except RegistryError:
            d = None
        if d is not None:
            for source in await st.run(st.storage.blob_repositories, d, MOUNT_CANDIDATES):
                if await _mount(request, st, name, source, d):
                    return _created(name, d)
    digest = q.get("digest")
    if digest is not None:
        d = parse_digest(digest)
        state = await st.run(st.storage.start_upload, name)
        try:
            await _stream(request, st, name, state.id, None)
            await st.run(st.storage.finish_upload, name, state.id, d)
        except BaseException:
            await st.run(_cancel_quietly, st, name, state.id)
            raise
        return _created(name, d)
    state = await st.run(st.storage.start_upload, name)
    return web.Response(status=202, headers=_session_headers(name, state.id, 0))


async def _mount(request: web.Request, st, name: str, source: str, d) -> bool:
    """Link blob `d` of `source` into `name` if the client may pull `source` and it holds the blob."""
    try:
        check_name(source)
        allowed = st.access.allows(request["identity"], Need("repository", source, "pull"))
    except RegistryError:
        allowed = False
    return allowed and await st.run(st.storage.mount_blob, name, source, d) is not None


def _cancel_quietly(st, name: str, upload_id: str) -> None:
    try:
        st.storage.cancel_upload(name, upload_id)
    except RegistryError:
        pass


def _upload_id(upload: str) -> str:
    if not upload:
        raise RegistryError("BLOB_UPLOAD_UNKNOWN", "no upload id")
    return upload


async def status(request: web.Request, st, name: str, upload: str) -> web.StreamResponse:
    state = await st.run(st.storage.get_upload, name, _upload_id(upload))
    return web.Response(status=204, headers=_session_headers(name, state.id, state.offset))


async def patch(request: web.Request, st, name: str, upload: str) -> web.StreamResponse:
    upload_id = _upload_id(upload)
    header = request.headers.get("Content-Range")
    expect = parse_content_range(header) if header else None
    offset = await _stream(request, st, name, upload_id, expect)
    return web.Response(status=202, headers=_session_headers(name, upload_id, offset))


async def put(request: web.Request, st, name: str, upload: str) -> web.StreamResponse:
    upload_id = _upload_id(upload)
    digest = request.query.get("digest")
    if not digest:
        raise RegistryError("DIGEST_INVALID", "the completing PUT needs ?digest=")
    d = parse_digest(digest)
    header = request.headers.get("Content-Range")
    expect = parse_content_range(header) if header else None
    has_body = request.body_exists and (request.content_length or 0) > 0 or request.headers.get(
        "Transfer-Encoding", "").lower() == "chunked"
    if has_body or expect is not None:
        await _stream(request, st, name, upload_id, expect)
    else:
        await st.run(st.storage.get_upload, name, upload_id)
    await st.run(st.storage.finish_upload, name, upload_id, d)
    return _created(name, d)


async def cancel(request: web.Request, st, name: str, upload: str) -> web.StreamResponse:
    await st.run(st.storage.cancel_upload, name, _upload_id(upload))
    return web.Response(status=204, headers={"Content-Length": "0"})
