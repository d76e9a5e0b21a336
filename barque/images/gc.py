"""Garbage collection: blobs no image reaches, layer snapshots no image uses, leftovers of killed processes.

It runs under the store lock held exclusive, so nothing is mid-ingest while it decides what is unreachable.
"""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack
from dataclasses import dataclass, field

from barque.errors import NotFound, Unavailable
from barque.images.unpack import UNPACK_PREFIX, chain_ids
from barque.oci import mediatypes as mt
from barque.oci.digest import Digest

log = logging.getLogger(__name__)


@dataclass
class GCResult:
    blobs_removed: list[Digest] = field(default_factory=list)
    bytes_removed: int = 0
    layers_removed: list[str] = field(default_factory=list)   # chain IDs, top-most first
    layer_bytes_removed: int = 0


def reachable_blobs(engine) -> set[str]:
    seen: set[str] = set()
    pending = [img.target_digest for img in engine.images.list()] + _build_cache_manifests(engine)
    while pending:
        d = pending.pop()
        if str(d) in seen:
            continue
        seen.add(str(d))
        try:
            doc = json.loads(engine.content.read(d))
        except (NotFound, json.JSONDecodeError, UnicodeDecodeError):
            continue
        media_type = doc.get("mediaType", "")
        if "config" in doc and isinstance(doc.get("config"), dict):
            seen.add(doc["config"]["digest"])
            seen.update(layer["digest"] for layer in doc.get("layers") or [])
        if media_type in mt.INDEXES or "manifests" in doc:
            pending.extend(Digest.parse(m["digest"]) for m in doc.get("manifests") or [])
    return seen


def _build_cache_manifests(engine) -> list[Digest]:
    return [Digest.parse(r["manifest"]) for r in engine.db.query("SELECT manifest FROM build_cache")]


def _build_cache_configs(engine) -> list[Digest]:
    return [Digest.parse(r["config"]) for r in engine.db.query("SELECT config FROM build_cache")]


def used_chains(engine) -> set[str]:
    used: set[str] = set()
    for config_digest in [img.id for img in engine.images.list()] + _build_cache_configs(engine):
        try:
            config = json.loads(engine.content.read(config_digest))
        except NotFound:
            continue
        diff_ids = [Digest.parse(d) for d in (config.get("rootfs") or {}).get("diff_ids") or []]
        used.update(str(c) for c in chain_ids(diff_ids))
    return used


def collect(engine, timeout: float = 30.0) -> GCResult:
    result = GCResult()
    with ExitStack() as stack:
        try:
            stack.enter_context(engine.lock.exclusive(timeout=timeout))
        except Unavailable:
            log.info("garbage collection skipped: the store is busy")
            return result
        _collect_snapshots(engine, result)
        keep = reachable_blobs(engine)
        for blob in list(engine.content.walk()):
            if str(blob.digest) not in keep:
                try:
                    engine.content.delete(blob.digest)
                except NotFound:
                    continue
                result.blobs_removed.append(blob.digest)
                result.bytes_removed += blob.size
        engine.content.sweep_ingest(older_than=0)
    return result


def _collect_snapshots(engine, result: GCResult) -> None:
    snap = engine.snapshotter
    used = used_chains(engine)
    infos = list(snap.walk())
    for info in infos:
        if info.name.startswith(UNPACK_PREFIX):
            _remove(snap, info.name)
    _collect_orphan_containers(engine, infos)
    from barque.build.worktree import sweep

    sweep(engine)  # builds hold the shared lock while they run: a build snapshot seen now was left by a killed one
    # remove unused layer snapshots from the top down: a parent goes once its children are gone
    while True:
        infos = list(snap.walk())
        parents = {i.parent for i in infos if i.parent}
        victims = [i for i in infos if i.name.startswith("sha256:") and i.name not in used and i.name not in parents]
        if not victims:
            break
        for info in victims:
            row = engine.db.query("SELECT size FROM layers WHERE chain_id=?", (info.name,))
            if _remove(snap, info.name):
                result.layers_removed.append(info.name)
                result.layer_bytes_removed += row[0]["size"] if row else 0
    if result.layers_removed:
        with engine.db.transaction() as conn:
            for chain in result.layers_removed:
                conn.execute("DELETE FROM layers WHERE chain_id=?", (chain,))


def _collect_orphan_containers(engine, infos) -> None:
    """What a `create` killed half-way left: a container snapshot, or a container directory, with no record. A
    create holds the shared store lock until its record is written, so under the exclusive lock none is in the
    making."""
    import shutil

    from barque.container.create import SNAPSHOT_PREFIX

    known = {r["id"] for r in engine.db.query("SELECT id FROM containers")}
    for info in infos:
        if info.name.startswith(SNAPSHOT_PREFIX) and info.name[len(SNAPSHOT_PREFIX):] not in known:
            log.info("removing the snapshot of a container that was never recorded: %s", info.name)
            _remove(engine.snapshotter, info.name)
    top = engine.containers.root
    if top.is_dir():
        for d in top.iterdir():
            if d.is_dir() and len(d.name) == 64 and d.name not in known:
                log.info("removing the files of a container that was never recorded: %s", d.name)
                shutil.rmtree(d, ignore_errors=True)


def _remove(snap, key: str) -> bool:
    try:
        snap.remove(key)
        return True
    except Exception as e:  # noqa: BLE001 - a snapshot in use by a container stays; GC goes on with the rest
        log.debug("snapshot %s kept: %s", key, e)
        return False
