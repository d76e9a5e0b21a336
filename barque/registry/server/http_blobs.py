"""Blob GET/HEAD (with Range, sent by sendfile) and DELETE."""

from __future__ import annotations

from aiohttp import web

from barque.registry.server.names import parse_digest


async def get(request: web.Request, st, name: str, digest: str) -> web.StreamResponse:
    d = parse_digest(digest)
    # a HEAD is how a pushing client learns it may skip an upload: it refreshes the blob for the GC grace period
    stat = await st.run(st.storage.stat_blob, name, d, request.method == "HEAD")
    headers = {"Docker-Content-Digest": str(d), "Content-Type": "application/octet-stream", "ETag": f'"{d}"',
               "Cache-Control": "max-age=31536000"}
    if stat.url is not None:
        raise web.HTTPTemporaryRedirect(stat.url, headers=headers)
    # FileResponse serves Range requests (206 + Content-Range, 416 with "bytes */SIZE") and uses sendfile
    return web.FileResponse(stat.path, chunk_size=1 << 20, headers=headers)


async def delete(request: web.Request, st, name: str, digest: str) -> web.StreamResponse:
    d = parse_digest(digest)
    await st.run(st.storage.delete_blob, name, d)
    return web.Response(status=202, headers={"Docker-Content-Digest": str(d), "Content-Length": "0"})
