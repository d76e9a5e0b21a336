"""Unpack an image's layers into committed snapshots named by chain ID (one per layer, shared between images)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Sequence

from barque.content import ContentStore
from barque.content.reader import CountingReader, DigestingReader
from barque.errors import AlreadyExists, DataCorruption
from barque.metadata import Database
from barque.oci.digest import Digest

log = logging.getLogger(__name__)

UNPACK_PREFIX = "unpack-"


@dataclass(frozen=True)
class LayerRef:
    digest: Digest         # the blob in the content store
    media_type: str
    diff_id: Digest        # from the image config


@dataclass(frozen=True)
class LayerRecord:
    chain_id: Digest
    diff_id: Digest
    size: int
    tar_size: int


def stored_compression(content: ContentStore, digest: Digest) -> str:
    """How a stored layer blob is really compressed ("", "gzip" or "zstd"), from its first bytes."""
    from barque.layers import detect_compression

    with content.open(digest) as f:
        return detect_compression(f.read(16))


def chain_ids(diff_ids: Sequence[Digest]) -> list[Digest]:
    """OCI image spec: ChainID(L0) = DiffID(L0); ChainID(L0|…|Ln) = sha256(ChainID(L0|…|Ln-1) + " " + DiffID(Ln))."""
    out: list[Digest] = []
    for d in diff_ids:
        out.append(d if not out else Digest.from_bytes(f"{out[-1]} {d}".encode()))
    return out


def layer_records(db: Database, chains: Sequence[Digest]) -> dict[str, LayerRecord]:
    if not chains:
        return {}
    marks = ",".join("?" * len(chains))
    rows = db.query(f"SELECT * FROM layers WHERE chain_id IN ({marks})", tuple(str(c) for c in chains))
    return {
        r["chain_id"]: LayerRecord(Digest.parse(r["chain_id"]), Digest.parse(r["diff_id"]), r["size"], r["tar_size"])
        for r in rows
    }


def unpack(content: ContentStore, snapshotter, db: Database, layers: Sequence[LayerRef]) -> list[LayerRecord]:
    """Make sure every layer's chain snapshot exists and is recorded; returns the records, bottom layer first.

    A layer whose tar does not hash to its diff ID is refused (DataCorruption) and nothing of it is kept.
    """
    chains = chain_ids([layer.diff_id for layer in layers])
    known = layer_records(db, chains)
    records: list[LayerRecord] = []
    for i, (layer, chain) in enumerate(zip(layers, chains)):
        parent = str(chains[i - 1]) if i else None
        record = known.get(str(chain))
        if snapshotter.exists(str(chain)) and record is not None:
            records.append(record)
            continue
        if snapshotter.exists(str(chain)):
            # snapshot made by this driver before, record lost (or made by another process): re-derive sizes
            record = _measure(content, layer, chain)
        else:
            record = _apply(content, snapshotter, layer, chain, parent, i)
        with db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO layers(chain_id, diff_id, parent, size, tar_size) VALUES (?,?,?,?,?)",
                (str(chain), str(layer.diff_id), parent or "", record.size, record.tar_size),
            )
        records.append(record)
    return records


def _apply(content: ContentStore, snapshotter, layer: LayerRef, chain: Digest, parent: str | None,
           index: int) -> LayerRecord:
    from barque.layers import apply_layer, open_decompressed

    key = f"{UNPACK_PREFIX}{os.urandom(16).hex()}-{chain.short}"
    snapshotter.prepare(key, parent)
    committed = False
    try:
        with snapshotter.apply_target(key) as (target, whiteouts, lowers):
            with content.open(layer.digest) as raw:
                # sniffed, not taken from the media type: docker-archive sources (and skopeo copies of them)
                # label uncompressed layers as gzip
                stream = CountingReader(open_decompressed(raw))
                result = apply_layer(stream, target, whiteouts=whiteouts, lowers=lowers)  # digests all it reads
                stream.drain()
        if result.diff_id != layer.diff_id:
            raise DataCorruption(
                f"layer {index + 1} ({layer.digest}): content has diff ID {result.diff_id}, "
                f"the image config says {layer.diff_id}"
            )
        try:
            snapshotter.commit(str(chain), key)
            committed = True
        except AlreadyExists:
            log.debug("layer %s unpacked concurrently by another process", chain)
        return LayerRecord(chain, layer.diff_id, result.size, stream.size)
    finally:
        if not committed and snapshotter.exists(key):
            snapshotter.remove(key)


def _measure(content: ContentStore, layer: LayerRef, chain: Digest) -> LayerRecord:
    """Sizes of a layer without unpacking it: walk its tar."""
    import tarfile

    from barque.layers import open_decompressed

    with content.open(layer.digest) as raw:
        stream = DigestingReader(open_decompressed(raw))
        size = 0
        with tarfile.open(fileobj=stream, mode="r|") as tf:
            for member in tf:
                if member.isreg():
                    size += member.size
        stream.drain()
    return LayerRecord(chain, layer.diff_id, size, stream.size)
