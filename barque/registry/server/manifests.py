"""What the registry needs to know of a pushed manifest: its type, what it references, its subject.

Parsing and validation are barque's own (`barque.oci.image.parse_manifest`): OCI image manifests and indexes, Docker
schema 2 manifests and manifest lists, and OCI artifacts (any config media type, an ``artifactType``, a
``subject``). Schema 1 and unknown top-level media types are MANIFEST_INVALID, as in distribution 3.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from barque.errors import InvalidArgument
from barque.oci.digest import Digest
from barque.registry.server.errors import RegistryError

__all__ = ["ManifestFacts", "inspect_manifest", "MAX_MANIFEST_SIZE"]

MAX_MANIFEST_SIZE = 4 * 1024 * 1024  # as distribution and containerd


@dataclass(frozen=True)
class ManifestFacts:
    media_type: str
    blobs: tuple[Digest, ...]           # config and layers: must be blobs of the repository
    manifests: tuple[Digest, ...]       # an index's entries: must be manifests of the repository
    subject: Digest | None = None
    artifact_type: str | None = None    # what the referrers API reports for it
    annotations: dict[str, str] = field(default_factory=dict)


def inspect_manifest(data: bytes, content_type: str | None) -> ManifestFacts:
    """Validate `data` as a manifest of `content_type`; MANIFEST_INVALID naming the problem otherwise."""
    from barque.oci.image import Index, parse_manifest

    if len(data) > MAX_MANIFEST_SIZE:
        raise RegistryError("SIZE_INVALID", f"manifest is {len(data)} bytes, the limit is {MAX_MANIFEST_SIZE}",
                            status=413, message="manifest too large")
    try:
        doc = parse_manifest(data, content_type)
    except InvalidArgument as e:
        raise RegistryError("MANIFEST_INVALID", str(e)) from None
    subject = doc.subject.digest if doc.subject is not None else None
    if isinstance(doc, Index):
        return ManifestFacts(doc.media_type, (), tuple(d.digest for d in doc.manifests), subject,
                             doc.artifact_type, dict(doc.annotations))
    # layers with URLs (Windows base layers, "non-distributable") live elsewhere: the registry need not hold them
    layers = tuple(d.digest for d in doc.layers if not d.urls)
    return ManifestFacts(doc.media_type, (doc.config.digest, *layers), (), subject,
                         doc.artifact_type or doc.config.media_type, dict(doc.annotations))
