"""Docker-shaped views of an image: `image inspect` JSON and `history` entries."""

from __future__ import annotations

import json
from dataclasses import dataclass

from barque.images.store import Image
from barque.images.unpack import chain_ids, layer_records
from barque.oci.digest import Digest
from barque.oci.reference import parse_reference

# Docker's container config as it appears in an image's inspect output, in Docker's field order
_CONFIG_FIELDS = [
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False), ("AttachStdout", False),
    ("AttachStderr", False), ("ExposedPorts", None), ("Tty", False), ("OpenStdin", False), ("StdinOnce", False),
    ("Env", None), ("Cmd", None), ("Healthcheck", None), ("ArgsEscaped", None), ("Image", ""), ("Volumes", None),
    ("WorkingDir", ""), ("Entrypoint", None), ("OnBuild", None), ("Labels", None), ("StopSignal", None),
    ("StopTimeout", None), ("Shell", None),
]
_OMIT_WHEN_EMPTY = {"ExposedPorts", "Healthcheck", "ArgsEscaped", "StopSignal", "StopTimeout", "Shell"}


def docker_config(cfg: dict | None) -> dict:
    cfg = cfg or {}
    out = {}
    for key, default in _CONFIG_FIELDS:
        value = cfg.get(key, default)
        if key in _OMIT_WHEN_EMPTY and value in (None, "", {}, []):
            continue
        out[key] = value
    return out


def image_config(engine, image: Image) -> dict:
    return json.loads(engine.content.read(image.id))


def inspect_image(engine, image: Image, graph_driver: dict | None = None) -> dict:
    config = image_config(engine, image)
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    result = {
        "Id": str(image.id),
        "RepoTags": [parse_reference(t).familiar() for t in image.tags],
        "RepoDigests": [_familiar_digest(d) for d in image.digests],
        "Parent": image.parent,
        "Comment": _comment(config),
        "Created": config.get("created") or "0001-01-01T00:00:00Z",
        "Container": config.get("container", ""),
        "ContainerConfig": docker_config(config.get("container_config")),
        "DockerVersion": config.get("docker_version", ""),
        "Author": config.get("author", ""),
        "Config": docker_config(config.get("config")),
        "Architecture": config.get("architecture", ""),
    }
    if config.get("variant"):
        result["Variant"] = config["variant"]
    result.update({
        "Os": config.get("os", ""),
        "Size": image.size,
        "VirtualSize": image.size,
        "GraphDriver": graph_driver or {"Data": None, "Name": ""},
        "RootFS": {"Type": "layers", "Layers": diff_ids},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    })
    return result


def _familiar_digest(name: str) -> str:
    repo, _, digest = name.partition("@")
    return f"{parse_reference(repo).familiar_name}@{digest}"


def _comment(config: dict) -> str:
    history = config.get("history") or []
    return (history[-1].get("comment") or "") if history else ""


@dataclass(frozen=True)
class HistoryEntry:
    id: str            # the image ID for the top entry, "<missing>" for the rest (as Docker)
    created: str
    created_by: str
    size: int
    comment: str
    empty_layer: bool


def history(engine, image: Image) -> list[HistoryEntry]:
    """Newest first, each non-empty entry paired with its layer's unpacked size."""
    config = image_config(engine, image)
    diff_ids = [Digest.parse(d) for d in (config.get("rootfs") or {}).get("diff_ids") or []]
    chains = chain_ids(diff_ids)
    records = layer_records(engine.db, chains)
    sizes = [records[str(c)].size if str(c) in records else 0 for c in chains]
    entries = []
    layer = 0
    hist = config.get("history") or [{} for _ in diff_ids]
    for h in hist:
        empty = bool(h.get("empty_layer"))
        size = 0
        if not empty and layer < len(sizes):
            size = sizes[layer]
            layer += 1
        entries.append(HistoryEntry("<missing>", h.get("created", ""), h.get("created_by", ""), size,
                                    h.get("comment", ""), empty))
    entries.reverse()
    if entries:
        top = entries[0]
        entries[0] = HistoryEntry(str(image.id), top.created, top.created_by, top.size, top.comment, top.empty_layer)
    return entries
