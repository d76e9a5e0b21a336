"""`pull`: an image from a registry into the content store, unpacked, and named — as `docker pull` does it.

The manifest (an index is followed to the entry for the platform) names a config and layers. Layers already in the
store are skipped ("Already exists"); the others download three at a time, each written through a verifying
content-store writer (digest and size), resumed with an HTTP Range request when the connection drops. Each layer is
unpacked as soon as it and the layers below it are in (in a worker thread, while later layers still download);
then one transaction (`register`) makes the image visible with its tag and its repository digest. The store's
shared lock is held throughout, as every command that adds content holds it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field

from barque.errors import BarqueError, DataCorruption, InvalidArgument, NotFound, Unavailable
from barque.oci.digest import Digest
from barque.oci.image import Descriptor, parse_config
from barque.oci.reference import Reference, parse_reference
from barque.registry.client.auth import scope_for
from barque.registry.client.progress import Progress
from barque.registry.client.transport import Client, Remote, TooLarge, Unauthorized, read_body

__all__ = ["pull", "PullResult", "CONCURRENT_DOWNLOADS"]

log = logging.getLogger(__name__)

CONCURRENT_DOWNLOADS = 3        # Docker's max-concurrent-downloads
MAX_RESUMES = 5
_CHUNK = 1 << 20
TAG_LIST_MAX = 32 << 20         # one page of a tag list (Hub's largest repositories list a few MB)


@dataclass
class PullResult:
    reference: Reference          # as pulled: with its tag, or its digest
    image_id: Digest
    digest: Digest                # the manifest (or index) digest the reference resolved to
    downloaded: bool              # False: the image was already there under that name


@dataclass
class _Layer:
    desc: Descriptor
    ident: str
    present: bool
    done: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None


def pull(engine, text: str, progress: Progress, *, platform: str | None = None, all_tags: bool = False,
         client: Client | None = None, credentials=None) -> list[PullResult]:
    """Pull `text` (``NAME[:TAG|@DIGEST]``) and print Docker's story of it through `progress`. `credentials` (an
    object with `get(host) -> Credentials`, as `CredentialStore`) replaces the user's config.json: the API server
    passes the client's X-Registry-Auth this way."""
    ref = parse_reference(text)
    if all_tags and not ref.is_name_only:
        raise InvalidArgument("tag can't be used with --all-tags/-a")
    if ref.tag is not None and ref.digest is not None:
        ref = Reference(ref.domain, ref.path, None, ref.digest)   # the digest pins it: Docker drops the tag
    if ref.is_name_only and not all_tags:
        progress.message("Using default tag: latest")
        ref = ref.tag_or_latest()
    with engine.lock.shared():
        results = asyncio.run(_pull(engine, ref, progress, platform, all_tags, client, credentials))
    if all_tags:
        newer = any(r.downloaded for r in results)
        status = "Downloaded newer image for" if newer else "Image is up to date for"
        progress.message(f"Status: {status} {ref.familiar()}")
        progress.result(str(ref))
    return results


async def _pull(engine, ref: Reference, progress: Progress, platform: str | None, all_tags: bool,
                client: Client | None, credentials=None) -> list[PullResult]:
    from barque.registry.client.resolve import platform_matcher

    matcher = platform_matcher(platform)
    own = client is None
    client = client or Client(credentials=credentials)
    if own:
        await client.__aenter__()
    try:
        if not all_tags:
            return [await _pull_one(engine, client, ref, progress, matcher, platform)]
        _, tags = await from_sources(client, ref, lambda r: list_tags(r, ref.familiar_name))
        if not tags:
            raise NotFound(f"repository {ref.familiar_name} has no tags")
        return [await _pull_one(engine, client, ref.with_tag(t), progress, matcher, platform, quiet_status=True)
                for t in tags]
    finally:
        if own:
            await client.__aexit__(None, None, None)


async def from_sources(client: Client, ref: Reference, attempt):
    """Run `attempt(remote)` on the mirrors of the registry in order, then on the registry itself; a mirror that
    fails in any way is passed over. Returns (remote, attempt's result)."""
    from barque.registry.client.hosts import DOCKER_HUB

    scopes = (scope_for(ref.path, "pull"),)
    for ep in client.hosts.mirror_endpoints(ref.domain):
        try:
            remote = await client.open([ep], ref.path, scopes)
            return remote, await attempt(remote)
        except BarqueError as e:
            log.info("mirror %s of %s failed, trying the next source: %s", ep.url, ref.domain, e)
    remote = await client.open(client.hosts.origin_endpoints(ref.domain), ref.path, scopes,
                               hub=ref.domain == DOCKER_HUB)
    try:
        return remote, await attempt(remote)
    except Unauthorized as e:
        raise Unauthorized(f"pull access denied for {ref.familiar_name}, repository does not exist or may require "
                           f"'docker login': {_tail(e.message)}") from e


def _tail(message: str) -> str:
    return message.split('": ', 1)[-1]


async def list_tags(remote: Remote, name: str) -> list[str]:
    """Every tag of the repository, following Link pagination (bounded)."""
    tags: list[str] = []
    url = "tags/list"
    for _ in range(1000):
        resp = await remote.request("GET", url)
        if resp.status == 404:
            err = await remote.fail(resp)
            raise NotFound(f"repository {name} not found: {_tail(err.message)}")
        if resp.status != 200:
            raise await remote.fail(resp, f"listing the tags of {name}")
        try:
            doc = json.loads(await read_body(resp, TAG_LIST_MAX))
            link = resp.headers.get("Link", "")
        except TooLarge as e:
            raise InvalidArgument(f"registry sent a tag list for {name} that is too large ({e})") from None
        except ValueError as e:
            raise InvalidArgument(f"registry sent an invalid tag list for {name}: {e}") from e
        finally:
            resp.close()
        listed = doc.get("tags") if isinstance(doc, dict) else None
        if not isinstance(listed, (list, type(None))):
            raise InvalidArgument(f"registry sent an invalid tag list for {name}: tags is not a list")
        tags += [t for t in listed or [] if isinstance(t, str)]
        if 'rel="next"' not in link:
            return tags
        url = link.split(";", 1)[0].strip().lstrip("<").rstrip(">")
    raise Unavailable(f"tag list of {name} does not end")


async def _pull_one(engine, client: Client, ref: Reference, progress: Progress, matcher_info,
                    platform: str | None, quiet_status: bool = False) -> PullResult:
    from barque.registry.client.resolve import resolve

    matcher, wanted, explicit = matcher_info
    reference = str(ref.digest) if ref.digest is not None else ref.tag
    remote, resolved = await from_sources(client, ref, lambda r: resolve(r, reference, ref.familiar(), matcher, wanted))
    # Docker says where it pulls from once the manifest is in (a missing tag prints nothing on stdout)
    progress.message(f"{reference}: Pulling from {ref.path}")
    manifest = resolved.manifest
    content = engine.content
    # an image already held (its config is an image here): Docker lists no layers, it only names it
    known = _image_known(engine, manifest.config.digest)

    # the config first: it says how many layers there are and what they unpack to
    config_fetched = not content.exists(manifest.config.digest)
    if config_fetched:
        await _download(remote, content, manifest.config, None, progress, ref)
    config_raw = content.read(manifest.config.digest)
    try:
        parsed_config = parse_config(config_raw)
    except InvalidArgument as e:
        raise InvalidArgument(f"{ref.familiar()}: invalid image config {manifest.config.digest}: {e}") from e
    config = json.loads(config_raw)
    from barque.images.register import layer_refs

    refs = layer_refs(json.loads(manifest.raw), config)
    if resolved.index is None and explicit is not None and not matcher.matches(parsed_config.platform):
        progress.warning(f"The requested image's platform ({parsed_config.platform}) does not match the "
                         f"requested platform ({wanted})")

    layers = [_Layer(d, d.digest.short, content.exists(d.digest)) for d in manifest.layers]
    for layer in layers:
        if layer.present:
            if not known:
                progress.layer(layer.ident, "Already exists")
            layer.done.set()
        else:
            progress.layer(layer.ident, "Pulling fs layer")
    sem = asyncio.Semaphore(CONCURRENT_DOWNLOADS)

    async def fetch(layer: _Layer) -> None:
        try:
            if sem.locked():
                progress.layer(layer.ident, "Waiting")
            async with sem:
                await _download(remote, content, layer.desc, layer.ident, progress, ref)
        except BaseException as e:  # noqa: BLE001 - handed to the unpacker, which raises it in order
            layer.error = e
        finally:
            layer.done.set()

    tasks = [asyncio.create_task(fetch(layer)) for layer in layers if not layer.present]
    try:
        await _unpack_in_order(engine, refs, layers, progress)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    content.add(manifest.raw, manifest.digest)
    from barque.images.register import NewImage, register

    repo = ref.repository()
    names = [ref] if ref.tag is not None else []
    names.append(repo.with_digest(resolved.digest))
    previous = engine.images.tag_owner(ref) if ref.tag is not None else _digest_owner(engine, repo, resolved.digest)
    downloaded = config_fetched or any(not layer.present for layer in layers)
    register(engine, [NewImage(
        manifest_digest=manifest.digest, manifest_media_type=manifest.media_type, manifest_size=manifest.size,
        config_digest=manifest.config.digest, config=config, layers=refs, names=names,
    )])
    from barque.registry.client import sources

    sources.remember(engine.db, ref.domain, ref.path, [manifest.config.digest, *(d.digest for d in manifest.layers)])
    from barque.images.events import image_event

    image_event(engine, "pull", ref.familiar(), ref.familiar_name, engine.images.by_id(manifest.config.digest))
    newer = downloaded or previous != manifest.config.digest
    progress.message(f"Digest: {resolved.digest}")
    if not quiet_status:
        status = "Downloaded newer image for" if newer else "Image is up to date for"
        progress.message(f"Status: {status} {ref.familiar()}")
        progress.result(str(ref))
    return PullResult(ref, manifest.config.digest, resolved.digest, newer)


def _image_known(engine, image_id: Digest) -> bool:
    try:
        engine.images.by_id(image_id)
    except NotFound:
        return False
    return True


def _digest_owner(engine, repo: Reference, digest: Digest) -> Digest | None:
    rows = engine.db.query("SELECT image_id FROM digests WHERE name=?", (f"{repo.name}@{digest}",))
    return Digest.parse(rows[0]["image_id"]) if rows else None


async def _unpack_in_order(engine, refs, layers: list[_Layer], progress: Progress) -> None:
    """Unpack layer i as soon as layers 0..i are stored (in one worker thread: unpacking is blocking work)."""
    from concurrent.futures import ThreadPoolExecutor

    from barque.images.unpack import unpack

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="unpack") as pool:
        for i, layer in enumerate(layers):
            await layer.done.wait()
            if layer.error is not None:
                raise layer.error
            if layer.present:
                continue
            progress.layer(layer.ident, "Extracting")
            await loop.run_in_executor(pool, _unpack_prefix, unpack, engine, refs[: i + 1])
            progress.layer(layer.ident, "Pull complete")


def _unpack_prefix(unpack, engine, refs) -> None:
    try:
        unpack(engine.content, engine.snapshotter, engine.db, refs)
    finally:
        engine.db.close()  # this thread's connection (the database keeps one per thread)


async def _download(remote: Remote, content, desc: Descriptor, ident: str | None, progress: Progress,
                    ref: Reference) -> None:
    """One blob into the content store, verified; resumed with Range after a dropped connection."""
    import aiohttp

    what = f"layer {desc.digest}" if ident else f"config {desc.digest}"
    writer = content.writer(desc.digest, desc.size)
    try:
        resumes = 0
        while True:
            offset = writer.size
            headers = {"Range": f"bytes={offset}-"} if offset else None
            resp = await remote.request("GET", f"blobs/{desc.digest}", headers=headers)
            try:
                if resp.status == 404:
                    raise NotFound(f"{ref.familiar()}: {what} not found in the registry (blob unknown)")
                if offset and resp.status == 200:
                    # the server ignored the range: start the blob again
                    writer.abort()
                    writer = content.writer(desc.digest, desc.size)
                    offset = 0
                elif offset and resp.status == 206:
                    start = _range_start(resp.headers.get("Content-Range", ""))
                    if start != offset:
                        raise DataCorruption(f"{what}: the registry resumed at byte {start}, not {offset}")
                elif resp.status != 200:
                    raise await remote.fail(resp, f"fetching {what} of {ref.familiar()}")
                if ident:
                    progress.bytes(ident, "Downloading", writer.size, desc.size)
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    writer.write(chunk)
                    if ident:
                        progress.bytes(ident, "Downloading", writer.size, desc.size)
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError, ConnectionError) as e:
                resumes += 1
                if resumes > MAX_RESUMES:
                    raise Unavailable(f"{ref.familiar()}: downloading {what} failed {resumes} times, last: "
                                      f"{e or type(e).__name__}") from e
                log.info("%s: connection lost at byte %d (%s), resuming", what, writer.size, e)
                await asyncio.sleep(0.1 * resumes)
                continue
            finally:
                resp.release()
            break
        if ident:
            progress.layer(ident, "Verifying Checksum")
        try:
            writer.commit()
        except DataCorruption as e:
            raise DataCorruption(f"{ref.familiar()}: {what} failed verification: {e}") from e
        if ident:
            progress.layer(ident, "Download complete")
    finally:
        writer.abort()


def _range_start(header: str) -> int | None:
    # "bytes START-END/TOTAL"
    try:
        return int(header.split()[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return None
