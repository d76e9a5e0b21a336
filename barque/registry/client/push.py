"""`push`: an image's blobs and manifest to a registry, as `docker push` does it.

The image's stored manifest is pushed unchanged when its layers are already compressed as asked (so a pulled image
pushed again keeps its digest). A layer stored uncompressed is gzip-compressed (isal) for the push, and with
``--compression-format zstd`` every layer is sent as zstd under OCI media types — the manifest is then a new one
(an OCI manifest, or a Docker one for gzip layers of a Docker image), and the image's ID does not change since the
config is untouched. A compressed blob made for a push stays in the content store (remembered in
``compressed_blobs``) so the next push sends the same bytes without compressing again.

Each blob is first looked for (HEAD: "Layer already exists"), then mounted from another repository of the same
registry known to hold it ("Mounted from …"), and only then uploaded: in one PUT when small, in PATCH chunks (at
least the server's ``OCI-Chunk-Min-Length``) when large. Five blobs move at a time, as in Docker.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from barque.errors import InvalidArgument, NotFound
from barque.oci import mediatypes as mt
from barque.oci.digest import Digest
from barque.oci.image import OCI_FOR_DOCKER, Descriptor, Manifest, parse_manifest
from barque.oci.reference import Reference, parse_reference
from barque.registry.client.auth import scope_for
from barque.registry.client.progress import Progress
from barque.registry.client.transport import Client, Remote

__all__ = ["push", "PushResult", "NoLocalImage", "CONCURRENT_UPLOADS", "MONOLITHIC_MAX", "CHUNK_SIZE"]

log = logging.getLogger(__name__)

CONCURRENT_UPLOADS = 5          # Docker's max-concurrent-uploads
MONOLITHIC_MAX = 16 << 20       # blobs up to this size go in a single PUT
CHUNK_SIZE = 16 << 20           # PATCH size for larger ones (raised to the server's minimum)
COMPRESSIONS = ("gzip", "zstd")


@dataclass
class PushResult:
    reference: Reference
    digest: Digest
    size: int


@dataclass
class _Blob:
    digest: Digest
    size: int
    ident: str | None            # shown in progress (layers), None for the config


class NoLocalImage(NotFound):
    """Nothing to push under that name (Docker prints this one without an "Error" prefix)."""


def push(engine, text: str, progress: Progress, *, compression: str | None = None, all_tags: bool = False,
         client: Client | None = None, credentials=None) -> list[PushResult]:
    """Push `text` (``NAME[:TAG]``; a bare name pushes ``latest``, or every tag with `all_tags`). `credentials`
    replaces the user's config.json (see `pull`)."""
    if compression is not None and compression not in COMPRESSIONS:
        raise InvalidArgument(f"invalid compression format {compression!r}: use gzip or zstd")
    ref = parse_reference(text)
    if ref.digest is not None:
        raise InvalidArgument("cannot push a digest reference")
    if all_tags and ref.tag is not None:
        raise InvalidArgument("tag can't be used with --all-tags/-a")
    if ref.tag is None and not all_tags:
        progress.message("Using default tag: latest")
        ref = ref.tag_or_latest()
    progress.message(f"The push refers to repository [{ref.name}]")
    if ref.tag is None:
        tags = sorted(t for t in _tags_of(engine, ref))
        if not tags:
            raise NoLocalImage(f"An image does not exist locally with the tag: {ref.familiar_name}")
    else:
        if engine.images.tag_owner(ref) is None:
            raise NoLocalImage(f"An image does not exist locally with the tag: {ref.familiar_name}")
        tags = [ref.tag]
    with engine.lock.shared():
        results = asyncio.run(_push(engine, ref, tags, progress, compression, client, credentials))
    return results


def _tags_of(engine, ref: Reference) -> list[str]:
    prefix = ref.name + ":"
    rows = engine.db.query("SELECT name FROM tags WHERE name LIKE ? ESCAPE '\\'",
                           (prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",))
    return [r["name"][len(prefix):] for r in rows if "/" not in r["name"][len(prefix):]]


async def _push(engine, ref: Reference, tags: list[str], progress: Progress, compression: str | None,
                client: Client | None, credentials=None) -> list[PushResult]:
    own = client is None
    client = client or Client(credentials=credentials)
    if own:
        await client.__aenter__()
    try:
        remote = await client.open(client.hosts.origin_endpoints(ref.domain), ref.path,
                                   (scope_for(ref.path, "pull,push"),))
        out = []
        for tag in tags:
            out.append(await _push_tag(engine, remote, ref.with_tag(tag), progress, compression))
        return out
    finally:
        if own:
            await client.__aexit__(None, None, None)


async def _push_tag(engine, remote: Remote, ref: Reference, progress: Progress,
                    compression: str | None) -> PushResult:
    image = engine.images.by_id(engine.images.tag_owner(ref))
    raw = engine.content.read(image.target_digest)
    manifest = parse_manifest(raw, image.target_media_type)
    if not isinstance(manifest, Manifest):
        raise InvalidArgument(f"image {ref.familiar()} is stored as an index; barque pushes image manifests")
    loop = asyncio.get_running_loop()
    from concurrent.futures import ThreadPoolExecutor

    # what to send for each layer (compressing where needed, in threads: isal and zstd release the GIL)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="compress") as pool:
        planned = await asyncio.gather(*(loop.run_in_executor(pool, _plan_layer, engine, d, compression,
                                                              manifest.is_docker)
                                         for d in manifest.layers))
    from barque.registry.client import sources

    for original, (desc, made) in zip(manifest.layers, planned):
        if made:
            sources.remember_compressed(engine.db, original.digest, mt.LAYERS.get(desc.media_type, ""),
                                        desc.digest, desc.size)
    layers = [desc for desc, _ in planned]
    if all(a.digest == b.digest and a.media_type == b.media_type for a, b in zip(layers, manifest.layers)):
        body, media_type = raw, manifest.media_type
    else:
        body, media_type = _new_manifest(manifest, layers)

    blobs = [_Blob(d.digest, d.size, d.digest.short) for d in reversed(layers)]
    for b in blobs:
        progress.layer(b.ident, "Preparing")
    sem = asyncio.Semaphore(CONCURRENT_UPLOADS)

    async def one(blob: _Blob) -> None:
        if sem.locked() and blob.ident:
            progress.layer(blob.ident, "Waiting")
        async with sem:
            await _push_blob(engine, remote, ref, blob, progress)

    await _gather_or_cancel([one(b) for b in blobs])
    await _push_blob(engine, remote, ref, _Blob(manifest.config.digest, manifest.config.size, None), progress)

    resp = await remote.request("PUT", f"manifests/{ref.tag}", headers={"Content-Type": media_type}, data=body)
    if resp.status not in (200, 201, 202):
        raise await remote.fail(resp, f"pushing the manifest of {ref.familiar()}")
    resp.release()
    digest = Digest.from_bytes(body)
    if body is not raw:
        engine.content.add(body, digest)
    with engine.db.transaction() as conn:
        engine.images.set_tag(conn, ref.repository().with_digest(digest), image.id)
    sources.remember(engine.db, ref.domain, ref.path, [manifest.config.digest, *(d.digest for d in layers)])
    from barque.images.events import image_event

    image_event(engine, "push", ref.familiar(), ref.familiar_name, image)
    progress.message(f"{ref.tag}: digest: {digest} size: {len(body)}")
    return PushResult(ref, digest, len(body))


async def _gather_or_cancel(coros) -> None:
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _plan_layer(engine, desc: Descriptor, compression: str | None, docker: bool) -> tuple[Descriptor, bool]:
    """The descriptor to push for a stored layer, and whether a new blob was made for it."""
    from barque.images.unpack import stored_compression
    from barque.registry.client import sources

    stored = stored_compression(engine.content, desc.digest)
    target = compression or stored or "gzip"
    declared = mt.LAYERS.get(desc.media_type, mt.LAYERS.get(OCI_FOR_DOCKER.get(desc.media_type, ""), None))
    keep_docker = docker and target == "gzip"
    if stored == target:
        if declared == target:
            return desc, False
        return _desc(desc, target, keep_docker, desc.digest, desc.size), False
    cached = sources.compressed(engine.db, engine.content, desc.digest, target)
    engine.db.close()  # this worker thread's connection
    if cached is not None:
        return _desc(desc, target, keep_docker, *cached), False
    digest, size = _compress(engine.content, desc.digest, stored, target)
    return _desc(desc, target, keep_docker, digest, size), True


def _desc(old: Descriptor, compression: str, docker: bool, digest: Digest, size: int) -> Descriptor:
    nondist = "nondistributable" in old.media_type or "foreign" in old.media_type
    if docker:
        media_type = mt.DOCKER_LAYER_FOREIGN_GZIP if nondist else mt.DOCKER_LAYER_GZIP
    elif nondist:
        media_type = {"": mt.OCI_LAYER_NONDIST, "gzip": mt.OCI_LAYER_NONDIST_GZIP,
                      "zstd": mt.OCI_LAYER_NONDIST_ZSTD}[compression]
    else:
        media_type = mt.OCI_LAYER_FOR[compression]
    return Descriptor(media_type, digest, size, old.urls, old.annotations)


class _WriterFile:
    """A content-store writer as the file `open_compressor` writes into."""

    def __init__(self, writer) -> None:
        self._w = writer

    def write(self, data) -> int:
        return self._w.write(data)

    def flush(self) -> None:
        pass


def _compress(content, source: Digest, stored: str, target: str) -> tuple[Digest, int]:
    from barque.layers import open_compressor, open_decompressed

    with content.open(source) as raw, content.writer() as w:
        src = open_decompressed(raw, stored) if stored else raw
        comp = open_compressor(_WriterFile(w), target)
        while chunk := src.read(1 << 20):
            comp.write(chunk)
        comp.close()
        info = w.commit()
    return info.digest, info.size


def _new_manifest(old: Manifest, layers: list[Descriptor]) -> tuple[bytes, str]:
    docker = old.is_docker and all(d.media_type.startswith("application/vnd.docker.") for d in layers)
    if docker:
        m = Manifest.create(old.config, layers, annotations=old.annotations or None, media_type=mt.DOCKER_MANIFEST)
    else:
        config = old.config
        if config.media_type in OCI_FOR_DOCKER:
            config = Descriptor(OCI_FOR_DOCKER[config.media_type], config.digest, config.size, config.urls,
                                config.annotations)
        m = Manifest.create(config, layers, annotations=old.annotations or None, subject=old.subject,
                            artifact_type=old.artifact_type)
    return m.raw, m.media_type


async def _push_blob(engine, remote: Remote, ref: Reference, blob: _Blob, progress: Progress) -> None:
    from barque.registry.client import sources

    def say(status: str) -> None:
        if blob.ident:
            progress.layer(blob.ident, status)

    resp = await remote.request("HEAD", f"blobs/{blob.digest}")
    resp.release()
    if resp.status == 200:
        say("Layer already exists")
        return
    if resp.status != 404:
        raise await remote.fail(resp, f"checking blob {blob.digest} in {ref.familiar_name}")
    location = None
    for source in sources.repositories_with(engine.db, ref.domain, blob.digest, ref.path):
        scopes = (scope_for(ref.path, "pull,push"), scope_for(source, "pull"))
        resp = await remote.request("POST", "blobs/uploads/", params={"mount": str(blob.digest), "from": source},
                                    scopes=scopes)
        if resp.status == 201:
            resp.release()
            say(f"Mounted from {source}")
            return
        if resp.status == 202:
            location = resp.headers.get("Location")
            resp.release()
            break
        resp.release()
        log.debug("mount of %s from %s refused (%d)", blob.digest, source, resp.status)
    min_chunk = 0
    if location is None:
        resp = await remote.request("POST", "blobs/uploads/")
        if resp.status != 202 or not resp.headers.get("Location"):
            raise await remote.fail(resp, f"starting the upload of {blob.digest} to {ref.familiar_name}")
        location = resp.headers["Location"]
        min_chunk = _int(resp.headers.get("OCI-Chunk-Min-Length"))
        resp.release()
    say("Pushing")
    if blob.size <= MONOLITHIC_MAX:
        resp = await remote.request("PUT", _with_digest(location, blob.digest),
                                    headers={"Content-Type": "application/octet-stream"},
                                    data=lambda: engine.content.open(blob.digest))
    else:
        location = await _patch_chunks(engine, remote, location, blob, max(CHUNK_SIZE, min_chunk), progress)
        resp = await remote.request("PUT", _with_digest(location, blob.digest), headers={"Content-Length": "0"})
    if resp.status not in (201, 204):
        raise await remote.fail(resp, f"uploading blob {blob.digest} to {ref.familiar_name}")
    resp.release()
    say("Pushed")


async def _patch_chunks(engine, remote: Remote, location: str, blob: _Blob, chunk: int,
                        progress: Progress) -> str:
    offset = 0
    with engine.content.open(blob.digest) as f:
        while offset < blob.size:
            data = f.read(chunk)
            if not data:
                break
            end = offset + len(data) - 1
            resp = await remote.request("PATCH", location, data=data, headers={
                "Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{end}",
                "Content-Length": str(len(data))}, retry=False)
            if resp.status != 202:
                raise await remote.fail(resp, f"uploading blob {blob.digest} (bytes {offset}-{end})")
            location = resp.headers.get("Location") or location
            resp.release()
            offset = end + 1
            if blob.ident:
                progress.bytes(blob.ident, "Pushing", offset, blob.size)
    return location


def _with_digest(location: str, digest: Digest) -> str:
    parts = urlsplit(location)
    query = parse_qsl(parts.query, keep_blank_values=True) + [("digest", str(digest))]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _int(text: str | None) -> int:
    try:
        return max(int(text or 0), 0)
    except ValueError:
        return 0

