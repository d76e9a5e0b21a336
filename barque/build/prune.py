"""The build cache's share of the disk (`system df`), and dropping it (`builder prune`, `system prune`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from barque.build.cache import BuildCache
from barque.errors import NotFound
from barque.oci.digest import Digest

__all__ = ["cache_usage", "prune_cache"]


def _chains(engine, config: Digest) -> list[str]:
    from barque.images.unpack import chain_ids

    try:
        doc = json.loads(engine.content.read(config))
    except NotFound:
        return []
    return [str(c) for c in chain_ids([Digest.parse(d) for d in (doc.get("rootfs") or {}).get("diff_ids") or []])]


def _image_chains(engine) -> set[str]:
    used: set[str] = set()
    for image in engine.images.list():
        used.update(_chains(engine, image.id))
    return used


def cache_usage(engine) -> dict:
    """Docker's BuildCache row: entries, and the bytes of the layers only the cache keeps."""
    entries = BuildCache(engine).entries()
    images = _image_chains(engine)
    only_cache: set[str] = set()
    for e in entries:
        only_cache.update(c for c in _chains(engine, e.config) if c not in images)
    size = 0
    if only_cache:
        marks = ",".join("?" * len(only_cache))
        size = sum(r["size"] for r in engine.db.query(f"SELECT size FROM layers WHERE chain_id IN ({marks})",
                                                        tuple(only_cache)))
    return {"TotalCount": len(entries), "Active": 0, "Size": size, "Reclaimable": size}


def prune_cache(engine) -> tuple[list[str], int]:
    """Drop every cache entry and the RUN cache mounts, then collect what only the entries kept; (the entries'
    keys, bytes freed)."""
    from barque.images.gc import collect

    cache = BuildCache(engine)
    keys = [e.key for e in cache.entries()]
    cache.drop(keys)
    with engine.db.transaction() as conn:
        conn.execute("DELETE FROM build_hashes")
    mounts = Path(engine.settings.root) / "build-cache-mounts"  # RUN --mount=type=cache directories
    freed = 0
    if mounts.is_dir():
        freed = sum(f.stat().st_size for f in mounts.rglob("*") if f.is_file() and not f.is_symlink())
        shutil.rmtree(mounts, ignore_errors=True)
    gc = collect(engine)
    return keys, gc.layer_bytes_removed + gc.bytes_removed + freed
