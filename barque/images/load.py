"""`load`: images from a Docker `save` archive or an OCI image layout (tar, gzip/zstd tar, or directory)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from barque.errors import DataCorruption, InvalidArgument
from barque.images.archive import ArchiveContents
from barque.images.register import NewImage, Registered, layer_refs, oci_manifest, register
from barque.images.unpack import LayerRef, stored_compression
from barque.oci import mediatypes as mt
from barque.oci.digest import Digest
from barque.oci.image import Manifest, parse_config, parse_manifest
from barque.oci.reference import Reference, parse_reference

log = logging.getLogger(__name__)

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"


@dataclass(frozen=True)
class LoadResult:
    registered: list[Registered]

    def messages(self) -> list[str]:
        """What `docker load` prints."""
        out = []
        for r in self.registered:
            for ref, old in r.untagged_from:
                out.append(f"The image {ref.familiar()} already exists, renaming the old one with ID {old} "
                           "to empty string")
            if r.names:
                out.extend(f"Loaded image: {ref.familiar()}" for ref in r.names)
            else:
                out.append(f"Loaded image ID: {r.image.id}")
        return out


def load(engine, source: BinaryIO | Path) -> LoadResult:
    """Load every image in the archive. Either all of them become visible or none does."""
    with engine.lock.shared():
        contents = ArchiveContents(engine.content)
        if isinstance(source, Path) and source.is_dir():
            contents.read_dir(source)
        elif _plain_file(source):
            contents.read_tar(source, seekable=True)
        else:
            from barque.layers import open_decompressed

            contents.read_tar(open_decompressed(source))
        if contents.has("manifest.json"):
            new = _docker_images(contents)
        elif contents.has("index.json"):
            new = _oci_images(engine, contents)
        else:
            raise InvalidArgument(
                "invalid archive: it has neither manifest.json (docker save) nor index.json (OCI layout)"
            )
        if not new:
            raise InvalidArgument("invalid archive: no images found in it")
        registered = register(engine, new)
    from barque.images.events import image_event

    for r in registered:
        image_event(engine, "load", str(r.image.id), str(r.image.id), r.image)
    return LoadResult(registered)


def _plain_file(f: BinaryIO) -> bool:
    """An uncompressed regular file we can seek in (left at offset 0)."""
    import os
    import stat

    from barque.layers import detect_compression

    try:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return False
        start = f.tell()
        head = f.read(4)
        f.seek(start)
        return start == 0 and detect_compression(head) == ""
    except (OSError, AttributeError, ValueError):
        return False


def _json(contents: ArchiveContents, name: str, what: str):
    try:
        return json.loads(contents.read(name))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"invalid archive: {what} {name} is not valid JSON: {e}") from e


def _docker_images(contents: ArchiveContents) -> list[NewImage]:
    entries = _json(contents, "manifest.json", "manifest")
    if not isinstance(entries, list):
        raise InvalidArgument("invalid archive: manifest.json must be a list")
    images = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise InvalidArgument(f"invalid archive: manifest.json entry {n + 1} has no Config")
        config_name = entry["Config"]
        config = _config(contents, config_name)
        config_digest, config_size = contents.blob(config_name)
        layer_names = entry.get("Layers") or []
        sources = entry.get("LayerSources") or {}
        diff_ids = config["rootfs"]["diff_ids"]
        if len(layer_names) != len(diff_ids):
            raise InvalidArgument(
                f"invalid archive: {config_name} has {len(diff_ids)} diff IDs but manifest.json lists "
                f"{len(layer_names)} layers"
            )
        descs = []
        for i, (layer_name, diff_id) in enumerate(zip(layer_names, diff_ids)):
            if not contents.has(layer_name):
                raise InvalidArgument(f"invalid archive: layer {layer_name} is listed in manifest.json but missing")
            digest, size = contents.blob(layer_name)
            media_type = _layer_media_type(contents, digest)
            if diff_id in sources:
                media_type = {"": mt.OCI_LAYER_NONDIST, "gzip": mt.OCI_LAYER_NONDIST_GZIP}.get(
                    mt.LAYERS.get(media_type, ""), media_type)
            if mt.LAYERS[media_type] == "" and str(digest) != diff_id:
                raise DataCorruption(
                    f"invalid archive: layer {i + 1} ({layer_name}) has digest {digest}, "
                    f"but the config says its diff ID is {diff_id}"
                )
            descs.append((media_type, digest, size))
        manifest = oci_manifest(config_digest, config_size, descs)
        info = contents.content.add(manifest)
        names = []
        for tag in entry.get("RepoTags") or []:
            try:
                names.append(parse_reference(tag))
            except InvalidArgument as e:
                raise InvalidArgument(f"invalid archive: invalid tag {tag!r} in manifest.json: {e}") from e
        images.append(NewImage(
            manifest_digest=info.digest, manifest_media_type=mt.OCI_MANIFEST, manifest_size=info.size,
            config_digest=config_digest, config=config,
            layers=[LayerRef(d, m, Digest.parse(diff)) for (m, d, _), diff in zip(descs, diff_ids)],
            names=names,
        ))
    return images


def _layer_media_type(contents: ArchiveContents, digest: Digest) -> str:
    return mt.OCI_LAYER_FOR[stored_compression(contents.content, digest)]


def _config(contents: ArchiveContents, name: str) -> dict:
    try:
        parse_config(contents.read(name))  # strict validation; the raw JSON is what barque keeps
    except InvalidArgument as e:
        raise InvalidArgument(f"invalid archive: image config {name}: {e}") from e
    config = _json(contents, name, "image config")
    if not isinstance(config, dict) or not isinstance(config.get("rootfs"), dict):
        raise InvalidArgument(f"invalid archive: image config {name} has no rootfs")
    rootfs = config["rootfs"]
    if rootfs.get("type") != "layers" or not isinstance(rootfs.get("diff_ids"), list):
        raise InvalidArgument(f"invalid archive: image config {name}: rootfs must be of type layers with diff_ids")
    for d in rootfs["diff_ids"]:
        Digest.parse(d)
    return config


def _oci_images(engine, contents: ArchiveContents) -> list[NewImage]:
    index = _json(contents, "index.json", "index")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise InvalidArgument("invalid archive: index.json has no manifests list")
    images = []
    for desc in index["manifests"]:
        names = _names_from_annotations(desc.get("annotations") or {})
        manifest_desc = _select_manifest(contents, desc)
        images.append(_oci_image(contents, manifest_desc, names))
    return images


def _blob_name(desc: dict) -> str:
    digest = Digest.parse(str(desc.get("digest", "")))
    return f"blobs/{digest.algorithm}/{digest.encoded}"


def _select_manifest(contents: ArchiveContents, desc: dict) -> dict:
    """Follow an index (or manifest list) down to the image manifest for this host's platform."""
    for _ in range(8):
        media_type = desc.get("mediaType", "")
        if media_type in mt.MANIFESTS:
            return desc
        if media_type not in mt.INDEXES:
            raise InvalidArgument(f"invalid archive: unsupported manifest media type {media_type!r}")
        name = _blob_name(desc)
        if not contents.has(name):
            raise InvalidArgument(f"invalid archive: index {desc['digest']} is not in the archive")
        child = json.loads(contents.read(name))
        desc = select_for_host(child.get("manifests") or [], str(desc["digest"]))
    raise InvalidArgument("invalid archive: indexes nested too deeply")


def select_for_host(manifests: list[dict], index_digest: str) -> dict:
    """The entry of an index that best fits this host (containerd's default platform matcher)."""
    from barque.oci.platform import Platform, host_matcher

    platforms = [Platform.from_dict(m["platform"]) if isinstance(m.get("platform"), dict) else None
                 for m in manifests]
    if len(manifests) == 1 and platforms[0] is None:
        return manifests[0]
    best = host_matcher().best(platforms)
    if best is None:
        raise InvalidArgument(f"index {index_digest} has no image for this platform")
    return manifests[best]


def _oci_image(contents: ArchiveContents, desc: dict, names: list[Reference]) -> NewImage:
    name = _blob_name(desc)
    if not contents.has(name):
        raise InvalidArgument(f"invalid archive: manifest {desc['digest']} is not in the archive")
    digest, size = contents.blob(name)
    raw = contents.read(name)
    try:
        parsed = parse_manifest(raw, desc.get("mediaType"))
    except InvalidArgument as e:
        raise InvalidArgument(f"invalid archive: manifest {digest}: {e}") from e
    if not isinstance(parsed, Manifest):
        raise InvalidArgument(f"invalid archive: {digest} is an index where an image manifest was expected")
    manifest = json.loads(raw)
    media_type = parsed.media_type
    config_desc = manifest.get("config") or {}
    config_name = _blob_name(config_desc)
    if not contents.has(config_name):
        raise InvalidArgument(f"invalid archive: manifest {digest} references config {config_desc.get('digest')}, "
                              "which is not in the archive")
    config = _config(contents, config_name)
    config_digest, _ = contents.blob(config_name)
    for layer in manifest.get("layers") or []:
        layer_name = _blob_name(layer)
        if not contents.has(layer_name):
            raise InvalidArgument(f"invalid archive: manifest {digest} references layer {layer.get('digest')}, "
                                  "which is not in the archive")
        contents.blob(layer_name)
    return NewImage(
        manifest_digest=digest, manifest_media_type=media_type, manifest_size=size,
        config_digest=config_digest, config=config, layers=layer_refs(manifest, config), names=names,
    )


def _names_from_annotations(annotations: dict) -> list[Reference]:
    for key in (ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME):
        value = annotations.get(key)
        if not value:
            continue
        # a bare tag ("1", "latest") names no repository: such an image loads untagged, by ID
        if key == ANNOTATION_REF_NAME and "/" not in value and ":" not in value and "." not in value:
            continue
        try:
            return [parse_reference(value)]
        except InvalidArgument:
            continue
    return []
