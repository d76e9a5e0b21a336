"""`commit`: a container's changes become one more layer over its image's, with the container's settings as the new
image's config — stored the way `import` and `load` store images (content store, unpack, names in one transaction).

The config follows dockerd's commit: start from the container's Config (which already holds what it inherited from
the image), apply the `--change` instructions, then fill what they emptied from the container's Config again
(dockerd's `merge`). The image config is built as Docker's NewChildImage builds it: architecture and OS of the parent,
the parent's history plus one entry (created_by = the container's Cmd joined by spaces, as Docker writes it), the
container's ID and Config as `container` / `container_config`. When nothing changed, no layer is added and the
history entry says `empty_layer`, as in Docker.

A running container is paused while its changes are read (Docker's default, `--pause=false` to skip), so the layer
is a consistent picture of one moment. One that is not running (or exits just then) is not paused, and a pause that
fails is no error: dockerd ignores it too.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from typing import Sequence

from barque.errors import Conflict, FailedPrecondition, InvalidArgument

__all__ = ["commit", "committed_config", "merge_config"]

log = logging.getLogger(__name__)


def merge_config(user: dict, container: dict) -> dict:
    """dockerd's commit `merge`: what the changes left empty comes from the container's Config."""
    out = copy.deepcopy(user)
    if not out.get("User"):
        out["User"] = container.get("User") or ""
    ports = dict(out.get("ExposedPorts") or {})
    for port in container.get("ExposedPorts") or {}:
        ports.setdefault(port, {})
    out["ExposedPorts"] = ports or None
    env = list(out.get("Env") or [])
    keys = {e.partition("=")[0] for e in env}
    env += [e for e in container.get("Env") or [] if e.partition("=")[0] not in keys]
    out["Env"] = env or None
    labels = dict(container.get("Labels") or {})
    labels.update(out.get("Labels") or {})
    out["Labels"] = labels
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = container.get("Cmd")
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = container.get("Entrypoint")
    if container.get("Healthcheck"):
        hc = dict(container["Healthcheck"])
        hc.update({k: v for k, v in (out.get("Healthcheck") or {}).items() if v})
        out["Healthcheck"] = hc
    if not out.get("WorkingDir"):
        out["WorkingDir"] = container.get("WorkingDir") or ""
    volumes = dict(out.get("Volumes") or {})
    volumes.update(container.get("Volumes") or {})
    out["Volumes"] = volumes or None
    if not out.get("StopSignal") and container.get("StopSignal"):
        out["StopSignal"] = container["StopSignal"]
    return out


def committed_config(base: dict, container_id: str, container_cfg: dict, new_cfg: dict, diff_id: str | None,
                     created: str, author: str = "", message: str = "") -> dict:
    """The new image's config (Docker's NewChildImage); `diff_id` None: nothing changed, no layer added."""
    from barque.images.importer import host_architecture, image_config

    entry: dict = {"created": created}
    if author:
        entry["author"] = author
    created_by = " ".join(container_cfg.get("Cmd") or [])
    if created_by:
        entry["created_by"] = created_by
    if message:
        entry["comment"] = message
    if diff_id is None:
        entry["empty_layer"] = True
    diff_ids = list((base.get("rootfs") or {}).get("diff_ids") or []) + ([diff_id] if diff_id else [])
    extra: dict = {"architecture": base.get("architecture") or host_architecture(), "os": base.get("os") or "linux"}
    if base.get("variant"):
        extra["variant"] = base["variant"]
    if author:
        extra["author"] = author
    extra["container"] = container_id
    extra["container_config"] = container_cfg
    for key in ("os.version", "os.features"):
        if base.get(key):
            extra[key] = base[key]
    history = list(base.get("history") or []) + [entry]
    return image_config(diff_ids, new_cfg, history, created, extra)


def oci_layer_type(media_type: str) -> str:
    """The OCI media type of a parent's layer (a Docker-made parent lists Docker's types)."""
    from barque.oci import mediatypes as mt

    if media_type.startswith("application/vnd.oci."):
        return media_type
    if media_type == mt.DOCKER_LAYER_FOREIGN_GZIP:
        return mt.OCI_LAYER_NONDIST_GZIP
    return mt.OCI_LAYER_FOR[mt.LAYERS.get(media_type, "gzip")]


def _pack(engine, c):
    """The container's changes as a gzip layer blob in the content store; None when nothing changed."""
    from barque.container.changes import layer_changes
    from barque.container.userns import container_ids
    from barque.layers import pack_layer

    changes = layer_changes(engine, c)
    if not changes:
        return None
    with engine.content.writer() as w:
        packed = pack_layer(changes, w, "gzip", ids=container_ids(c))
        info = w.commit()
    if info.digest != packed.digest:  # pragma: no cover - the writer digests what pack_layer digested
        raise InvalidArgument(f"commit: layer written as {info.digest}, packed as {packed.digest}")
    return packed


def commit(engine, c, ref=None, *, author: str = "", message: str = "", changes: Sequence[str] = (),
           pause: bool = True, now: float | None = None, config: dict | None = None):
    """Commit container `c` as a new image, named `ref` (a Reference) when given; returns the `Registered` image.

    `config` (the API's request body) replaces the container's Config as the start of the new image's config, as
    dockerd's commit takes it: the changes are applied to it, and what it leaves empty comes from the container's."""
    from barque.container.stop import pause as pause_container, unpause
    from barque.images.changes import apply_changes
    from barque.images.register import NewImage, layer_refs, oci_manifest, register
    from barque.images.unpack import LayerRef
    from barque.oci import mediatypes as mt
    from barque.oci.times import rfc3339

    if ref is not None and ref.digest is not None:
        raise InvalidArgument("refusing to create a tag with a digest reference")
    container_cfg = c.record["Config"]
    start = container_cfg if config is None else config
    new_cfg = merge_config(apply_changes(start, list(changes)), container_cfg)  # bad --change: fail first
    image = engine.images.by_id(c.record["Image"])
    base = json.loads(engine.content.read(image.id))
    manifest = json.loads(engine.content.read(image.target_digest))
    parents = layer_refs(manifest, base)

    with engine.lock.shared():
        paused = False
        if pause and c.refresh().get("Status") == "running":
            try:
                pause_container(c)
                paused = True
            except (Conflict, FailedPrecondition):
                pass  # it exited meanwhile: nothing left to hold still (dockerd ignores the pause's error too)
        try:
            packed = _pack(engine, c)
        finally:
            if paused:
                try:
                    unpause(c)
                except (Conflict, FailedPrecondition):
                    pass
        created = rfc3339(time.time() if now is None else now)
        config = committed_config(base, c.id, container_cfg, new_cfg, str(packed.diff_id) if packed else None,
                                  created, author, message)
        config_bytes = json.dumps(config, separators=(",", ":")).encode()
        config_info = engine.content.add(config_bytes)
        descs = [(oci_layer_type(layer.media_type), layer.digest, engine.content.info(layer.digest).size)
                 for layer in parents]
        layers = list(parents)
        if packed is not None:
            descs.append((packed.media_type, packed.digest, packed.size))
            layers.append(LayerRef(packed.digest, packed.media_type, packed.diff_id))
        manifest_bytes = oci_manifest(config_info.digest, config_info.size, descs)
        manifest_info = engine.content.add(manifest_bytes)
        new = NewImage(
            manifest_digest=manifest_info.digest, manifest_media_type=mt.OCI_MANIFEST,
            manifest_size=manifest_info.size, config_digest=config_info.digest, config=config, layers=layers,
            names=[ref] if ref is not None else [], parent=str(image.id),
        )
        registered = register(engine, [new])[0]
    from barque.container.events import container_event
    from barque.images.events import image_event

    image_id = str(registered.image.id)
    for name in registered.names:
        image_event(engine, "tag", image_id, name.familiar(), registered.image)
    container_event(engine.settings.root, c.record, "commit", comment=message, imageID=image_id,
                    imageRef=ref.familiar() if ref is not None else "")
    return registered
