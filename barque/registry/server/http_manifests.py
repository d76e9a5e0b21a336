"""Manifest GET/HEAD/PUT/DELETE by tag or digest."""

from __future__ import annotations

from aiohttp import web

from barque.oci.digest import Digest
from barque.registry.server.bodies import read_chunk
from barque.registry.server.errors import RegistryError
from barque.registry.server.manifests import MAX_MANIFEST_SIZE, inspect_manifest
from barque.registry.server.names import check_tag, parse_ref


async def read_limited(request: web.Request, limit: int, timeout: float = 0) -> bytes:
    """The whole body, or 413 SIZE_INVALID past `limit` bytes (checked on Content-Length first, then as read);
    408 when it stalls for `timeout` seconds."""
    length = request.content_length
    if length is not None and length > limit:
        raise RegistryError("SIZE_INVALID", f"body of {length} bytes exceeds the limit of {limit}", status=413,
                            message="payload too large")
    pieces, total = [], 0
    while chunk := await read_chunk(request, timeout, "MANIFEST_INVALID"):
        total += len(chunk)
        if total > limit:
            raise RegistryError("SIZE_INVALID", f"body exceeds the limit of {limit} bytes", status=413,
                                message="payload too large")
        pieces.append(chunk)
    return b"".join(pieces)


async def get(request: web.Request, st, name: str, reference: str) -> web.StreamResponse:
    tag, digest = parse_ref(reference)
    m = await st.run(st.storage.get_manifest, name, tag, digest)
    return web.Response(body=m.data, headers={"Content-Type": m.media_type, "Docker-Content-Digest": str(m.digest),
                                              "ETag": f'"{m.digest}"'})


async def put(request: web.Request, st, name: str, reference: str) -> web.StreamResponse:
    """A push by tag, or by digest with any number of ``?tag=`` parameters (distribution-spec 1.1+dev: the tags are
    set with the manifest, in one step, and the response lists them in ``OCI-Tag``)."""
    tag, digest = parse_ref(reference, for_push=True)
    params = [check_tag(t) for t in request.query.getall("tag", [])]
    tags = tuple(dict.fromkeys(([tag] if tag is not None else []) + params))
    data = await read_limited(request, MAX_MANIFEST_SIZE, st.config.body_timeout)
    facts = inspect_manifest(data, request.headers.get("Content-Type"))
    actual = Digest.from_bytes(data, digest.algorithm if digest else "sha256")
    if digest is not None and actual != digest:
        raise RegistryError("DIGEST_INVALID", f"manifest has digest {actual}, not {digest}")
    await st.run(st.storage.put_manifest, name, tags, actual, data, facts)
    headers = {"Location": f"/v2/{name}/manifests/{actual}", "Docker-Content-Digest": str(actual),
               "Content-Length": "0"}
    if facts.subject is not None:
        headers["OCI-Subject"] = str(facts.subject)
    if params:
        headers["OCI-Tag"] = ", ".join(params)
    return web.Response(status=201, headers=headers)


async def delete(request: web.Request, st, name: str, reference: str) -> web.StreamResponse:
    tag, digest = parse_ref(reference)
    if digest is not None:
        await st.run(st.storage.delete_manifest, name, digest)
    else:
        await st.run(st.storage.delete_tag, name, tag)
    return web.Response(status=202, headers={"Content-Length": "0"})
