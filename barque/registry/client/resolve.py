"""From a reference to the image manifest to pull: the manifest (or index) by tag or digest, verified, and the
index entry for the wanted platform."""

from __future__ import annotations

from dataclasses import dataclass

from barque.errors import DataCorruption, InvalidArgument, NotFound
from barque.oci import mediatypes as mt
from barque.oci.digest import Digest
from barque.oci.image import MAX_MANIFEST_SIZE, Index, Manifest, parse_manifest
from barque.oci.platform import Platform, PlatformMatcher, format_platform
from barque.registry.client.transport import TooLarge, read_body

__all__ = ["Resolved", "fetch_manifest", "resolve", "MANIFEST_ACCEPT"]

MANIFEST_ACCEPT = ", ".join([mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST,
                             mt.DOCKER_SCHEMA1_SIGNED, mt.DOCKER_SCHEMA1])
_MAX_NESTING = 4


@dataclass(frozen=True)
class Resolved:
    manifest: Manifest          # the image manifest to pull
    digest: Digest              # what the reference names (an index's digest for a multi-platform image)
    index: Index | None = None


async def fetch_manifest(remote, reference: str, name: str) -> Manifest | Index:
    """GET a manifest by tag or digest; a digest reference is verified against the bytes received."""
    resp = await remote.request("GET", f"manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT})
    if resp.status == 404:
        err = await remote.fail(resp)
        raise NotFound(f"manifest for {name} not found: {_detail(err.message)}")
    if resp.status != 200:
        raise await remote.fail(resp, f"fetching the manifest of {name}")
    try:
        try:
            raw = await read_body(resp, MAX_MANIFEST_SIZE)
        except TooLarge as e:
            raise InvalidArgument(f"manifest of {name} is too large: {e}") from None
        content_type = resp.headers.get("Content-Type")
        claimed = resp.headers.get("Docker-Content-Digest")
    except BaseException:
        resp.close()   # the rest of the body is unread: the connection cannot be reused
        raise
    resp.release()
    want = None
    if reference.count(":") == 1 and not reference.startswith(":"):
        try:
            want = Digest.parse(reference)
        except InvalidArgument:
            want = None
    what = "its digest"
    if want is None and claimed:
        # by tag: the bytes must be those the registry says the tag names (what is recorded as the repo digest)
        try:
            want, what = Digest.parse(claimed.strip()), "the Docker-Content-Digest the registry sent"
        except InvalidArgument:
            want = None
    if want is not None and Digest.from_bytes(raw, want.algorithm) != want:
        raise DataCorruption(f"manifest of {name} does not match {what}: the registry sent content with "
                             f"digest {Digest.from_bytes(raw, want.algorithm)}, expected {want}")
    try:
        return parse_manifest(raw, content_type)
    except InvalidArgument as e:
        raise InvalidArgument(f"{name}: {e}") from e


def _detail(message: str) -> str:
    return message.split('": ', 1)[-1]


async def resolve(remote, reference: str, name: str, matcher: PlatformMatcher, wanted: str) -> Resolved:
    """The image manifest `reference` names on this platform (`wanted` is the platform's text for messages)."""
    doc = await fetch_manifest(remote, reference, name)
    top = doc.digest
    index = None
    for _ in range(_MAX_NESTING):
        if isinstance(doc, Manifest):
            if not doc.is_image:
                raise InvalidArgument(f"{name} is not a container image: its config has media type "
                                      f"{doc.config.media_type}")
            return Resolved(doc, top, index)
        index = index or doc
        entry = doc.select(matcher)
        if entry is None:
            offered = ", ".join(sorted({format_platform(m.platform) for m in doc.manifests
                                        if m.platform is not None and m.platform.os != "unknown"}))
            raise NotFound(f"no matching manifest for {wanted} in the manifest list entries"
                           + (f" (the image has {offered})" if offered else ""))
        if entry.media_type not in mt.MANIFESTS and entry.media_type not in mt.INDEXES:
            raise InvalidArgument(f"{name}: index entry {entry.digest} has unsupported media type "
                                  f"{entry.media_type}")
        doc = await fetch_manifest(remote, str(entry.digest), name)
    raise InvalidArgument(f"{name}: indexes nested more than {_MAX_NESTING} deep")


def platform_matcher(text: str | None) -> tuple[PlatformMatcher, str, Platform | None]:
    """The matcher for ``--platform`` (None: this host), its text for messages, and the explicit platform."""
    from barque.oci.platform import host_matcher, host_platform, parse_platform

    if not text:
        host = host_platform()
        return host_matcher(host), format_platform(host), None
    p = parse_platform(text)
    return host_matcher(p), format_platform(p), p
