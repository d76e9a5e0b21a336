"""`import`: a flat root filesystem tar (as `export` writes) becomes a one-layer image."""

from __future__ import annotations

import json
import time
from typing import BinaryIO, Sequence

from barque.errors import DataCorruption
from barque.images.changes import apply_changes
from barque.images.register import NewImage, Registered, oci_manifest, register
from barque.images.unpack import LayerRef
from barque.oci import mediatypes as mt
from barque.oci.platform import host_architecture
from barque.oci.reference import Reference


def image_config(diff_ids: Sequence[str], container_config: dict, history: list[dict], created: str,
                 extra: dict | None = None) -> dict:
    """An OCI image config with Docker's field order."""
    config = {
        "architecture": host_architecture(),
        "config": container_config,
        "created": created,
        "history": history,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }
    if extra:
        config.update(extra)
    return config


def import_tar(engine, source: BinaryIO, source_name: str, ref: Reference | None, changes: Sequence[str] = (),
               message: str = "", now: float | None = None) -> Registered:
    from barque.oci.times import rfc3339
    from barque.layers import open_decompressed

    with engine.lock.shared():
        stream = open_decompressed(source)
        try:
            layer = engine.content.ingest(stream)
        except (EOFError, OSError) as e:
            raise DataCorruption(f"import: cannot read {source_name}: {e}") from e
        _check_tar(engine, layer.digest)
        created = rfc3339(time.time() if now is None else now)
        container_config = apply_changes({}, list(changes))
        config = image_config(
            [str(layer.digest)], container_config,
            [{"created": created, "comment": message or f"Imported from {source_name}"}], created,
        )
        config_bytes = json.dumps(config, separators=(",", ":")).encode()
        config_info = engine.content.add(config_bytes)
        manifest = oci_manifest(config_info.digest, config_info.size, [(mt.OCI_LAYER, layer.digest, layer.size)])
        manifest_info = engine.content.add(manifest)
        new = NewImage(
            manifest_digest=manifest_info.digest, manifest_media_type=mt.OCI_MANIFEST,
            manifest_size=manifest_info.size, config_digest=config_info.digest, config=config,
            layers=[LayerRef(layer.digest, mt.OCI_LAYER, layer.digest)], names=[ref] if ref else [],
        )
        registered = register(engine, [new])[0]
    from barque.images.events import image_event

    image_id = str(registered.image.id)
    for name in registered.names:
        image_event(engine, "tag", image_id, name.familiar(), registered.image)
    image_event(engine, "import", image_id, image_id, registered.image)
    return registered


def _check_tar(engine, digest) -> None:
    """Refuse what is not a tar before it becomes a layer (an empty or garbage upload)."""
    import tarfile

    with engine.content.open(digest) as f:
        head = f.read(1024)
    if len(head) < 512:
        raise DataCorruption("import: the input is not a tar archive (too short)")
    try:
        tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
    except tarfile.HeaderError as e:
        if head[:1024] != b"\0" * 1024:
            raise DataCorruption(f"import: the input is not a tar archive ({e})") from e
