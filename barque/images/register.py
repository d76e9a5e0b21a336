"""Turning verified content into a visible image: blobs stored, layers unpacked, then one transaction names it.

Everything an image needs is in place before the transaction that makes it visible, so a process killed at any
point leaves either no image or a whole one (blobs stored before that point are swept by garbage collection).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Sequence

from barque.errors import DataCorruption, InvalidArgument
from barque.images.store import Image, ImageStore
from barque.images.unpack import LayerRef, unpack
from barque.oci import mediatypes as mt
from barque.oci.digest import Digest
from barque.oci.reference import Reference

log = logging.getLogger(__name__)


@dataclass
class NewImage:
    """An image whose blobs (config, layers, manifest) are already in the content store."""

    manifest_digest: Digest
    manifest_media_type: str
    manifest_size: int
    config_digest: Digest
    config: dict
    layers: list[LayerRef]
    names: list[Reference] = field(default_factory=list)
    parent: str = ""


@dataclass(frozen=True)
class Registered:
    image: Image
    names: list[Reference]
    untagged_from: list[tuple[Reference, Digest]]   # tags that moved away from another image


def layer_refs(manifest: dict, config: dict) -> list[LayerRef]:
    """Pair a manifest's layer descriptors with the config's diff IDs, checking they agree in number and type."""
    descs = manifest.get("layers") or []
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if (config.get("rootfs") or {}).get("type") != "layers":
        raise InvalidArgument("invalid image config: rootfs.type must be \"layers\"")
    if len(descs) != len(diff_ids):
        raise InvalidArgument(
            f"invalid image: manifest lists {len(descs)} layers but the config has {len(diff_ids)} diff IDs"
        )
    refs = []
    for i, (d, diff) in enumerate(zip(descs, diff_ids)):
        media_type = d.get("mediaType", "")
        if media_type not in mt.LAYERS:
            raise InvalidArgument(f"layer {i + 1}: unsupported layer media type {media_type!r}")
        refs.append(LayerRef(Digest.parse(d["digest"]), media_type, Digest.parse(diff)))
    return refs


def oci_manifest(config_digest: Digest, config_size: int, layers: Sequence[tuple[str, Digest, int]],
                 annotations: dict | None = None) -> bytes:
    """Serialise an OCI image manifest (barque writes OCI). Key order is fixed, so equal inputs give equal digests."""
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": str(config_digest), "size": config_size},
        "layers": [{"mediaType": m, "digest": str(d), "size": s} for m, d, s in layers],
    }
    if annotations:
        doc["annotations"] = annotations
    return json.dumps(doc, separators=(",", ":")).encode()


def register(engine, new: Sequence[NewImage]) -> list[Registered]:
    """Unpack every image's layers, then record all of them and their names in one transaction."""
    prepared: list[tuple[NewImage, int]] = []
    for item in new:
        for blob in [item.manifest_digest, item.config_digest, *(layer.digest for layer in item.layers)]:
            if not engine.content.exists(blob):
                raise DataCorruption(f"image {item.config_digest.short}: blob {blob} is missing from the store")
        records = unpack(engine.content, engine.snapshotter, engine.db, item.layers)
        prepared.append((item, sum(r.size for r in records)))

    results = []
    store: ImageStore = engine.images
    with engine.db.transaction() as conn:
        for item, size in prepared:
            image = Image(
                id=item.config_digest,
                target_digest=item.manifest_digest,
                target_media_type=item.manifest_media_type,
                target_size=item.manifest_size,
                created=str(item.config.get("created") or ""),
                size=size,
                parent=item.parent,
                added=time.time(),
            )
            store.put(conn, image)
            moved = []
            for ref in item.names:
                old = store.set_tag(conn, ref, item.config_digest)
                if old is not None:
                    moved.append((ref, old))
            results.append((image, item.names, moved))
    return [Registered(store.by_id(img.id), names, moved) for img, names, moved in results]
