"""`save`: images to an archive — Docker's format (which is also an OCI layout) or a plain OCI layout.

The Docker archive holds uncompressed layer tars named by diff ID, `manifest.json` and `repositories` for
`docker load` and skopeo's docker-archive, plus `index.json`/`oci-layout` so OCI tools read the same file
(Docker 25 writes the same combination).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import BinaryIO, Sequence

from barque.errors import InvalidArgument
from barque.images.store import Image
from barque.images.tarout import TarOut
from barque.images.unpack import chain_ids, layer_records, stored_compression
from barque.oci import mediatypes as mt
from barque.oci.digest import Digest
from barque.oci.reference import Reference, parse_reference

FORMATS = ("docker-archive", "oci-archive")


@dataclass
class Selected:
    image: Image
    names: list[Reference] = field(default_factory=list)


def select(engine, names: Sequence[str]) -> list[Selected]:
    """Resolve the command's arguments as Docker does: a tag saves that tag, a bare repository name all its tags,
    an ID the image without names."""
    chosen: dict[str, Selected] = {}
    for text in names:
        image, ref = engine.images.lookup(text)  # ref None: found by ID ("sha256:…" included), saved without a name
        sel = chosen.setdefault(str(image.id), Selected(image))
        if ref is None or (ref.tag is None and ref.digest is None and not _is_named(image, ref)):
            continue
        if ref.tag is None and ref.digest is None:
            wanted = [parse_reference(t) for t in image.tags if t.startswith(ref.name + ":")]
        elif ref.digest is not None:
            wanted = []
        else:
            wanted = [ref]
        for w in wanted:
            if w not in sel.names:
                sel.names.append(w)
    return list(chosen.values())


def _is_named(image: Image, ref: Reference) -> bool:
    return any(t.startswith(ref.name + ":") for t in image.tags)


def save(engine, selected: Sequence[Selected], out: BinaryIO, fmt: str = "docker-archive",
         mtime: int = 0) -> None:
    if fmt not in FORMATS:
        raise InvalidArgument(f"unknown archive format {fmt!r}: use one of {', '.join(FORMATS)}")
    tar = TarOut(out, mtime)
    written: set[str] = set()
    index_entries = []
    docker_manifest = []
    repositories: dict[str, dict[str, str]] = {}

    def blob(digest: Digest, size: int, src_digest: Digest | None = None, decompress: str = "") -> str:
        name = f"blobs/{digest.algorithm}/{digest.encoded}"
        if name not in written:
            written.add(name)
            with engine.content.open(src_digest or digest) as f:
                if decompress:
                    from barque.layers import open_decompressed

                    tar.add_file(name, open_decompressed(f, decompress), size)
                else:
                    tar.add_file(name, f, size)
        return name

    for sel in selected:
        image = sel.image
        manifest = json.loads(engine.content.read(image.target_digest))
        config_desc = manifest["config"]
        config_digest = Digest.parse(config_desc["digest"])
        config_name = blob(config_digest, engine.content.info(config_digest).size)
        config = json.loads(engine.content.read(config_digest))
        diff_ids = [Digest.parse(d) for d in config["rootfs"]["diff_ids"]]
        if fmt == "oci-archive":
            for layer in manifest.get("layers") or []:
                blob(Digest.parse(layer["digest"]), layer["size"])
            blob(image.target_digest, image.target_size)
            entries = [_index_entry(image.target_media_type, image.target_digest, image.target_size, n)
                       for n in sel.names] or [_index_entry(image.target_media_type, image.target_digest,
                                                            image.target_size, None)]
            index_entries.extend(entries)
            continue
        records = layer_records(engine.db, chain_ids(diff_ids))
        layer_names, layer_descs = [], []
        for layer, diff_id, chain in zip(manifest.get("layers") or [], diff_ids, chain_ids(diff_ids)):
            compression = stored_compression(engine.content, Digest.parse(layer["digest"]))
            if compression == "":
                size = layer["size"]
            else:
                rec = records.get(str(chain))
                size = rec.tar_size if rec else _uncompressed_size(engine, Digest.parse(layer["digest"]), compression)
            layer_names.append(blob(diff_id, size, Digest.parse(layer["digest"]), compression))
            layer_descs.append({"mediaType": mt.OCI_LAYER, "digest": str(diff_id), "size": size})
        archive_manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": str(config_digest), "size": config_desc["size"]},
            "layers": layer_descs,
        }, separators=(",", ":")).encode()
        m_digest = Digest.from_bytes(archive_manifest)
        m_name = f"blobs/sha256/{m_digest.encoded}"
        if m_name not in written:
            written.add(m_name)
            tar.add_bytes(m_name, archive_manifest)
        for n in sel.names or [None]:
            index_entries.append(_index_entry(mt.OCI_MANIFEST, m_digest, len(archive_manifest), n))
        docker_manifest.append({
            "Config": config_name,
            "RepoTags": [n.familiar() for n in sel.names] or None,
            "Layers": layer_names,
        })
        for n in sel.names:
            repositories.setdefault(n.familiar_name, {})[n.tag or "latest"] = diff_ids[-1].encoded if diff_ids else ""

    tar.add_bytes("oci-layout", json.dumps({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}).encode())
    tar.add_bytes("index.json", json.dumps({
        "schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": index_entries,
    }, separators=(",", ":")).encode())
    if fmt == "docker-archive":
        tar.add_bytes("manifest.json", json.dumps(docker_manifest, separators=(",", ":")).encode())
        if repositories:
            tar.add_bytes("repositories", json.dumps(repositories, separators=(",", ":")).encode())
    tar.close()
    from barque.images.events import image_event

    for sel in selected:
        image_event(engine, "save", str(sel.image.id), str(sel.image.id), sel.image)


def _index_entry(media_type: str, digest: Digest, size: int, name: Reference | None) -> dict:
    entry = {"mediaType": media_type, "digest": str(digest), "size": size}
    if name is not None:
        entry["annotations"] = {
            "io.containerd.image.name": str(name),
            "org.opencontainers.image.ref.name": name.tag or "latest",
        }
    return entry


def _uncompressed_size(engine, digest: Digest, compression: str) -> int:
    from barque.layers import open_decompressed

    total = 0
    with engine.content.open(digest) as f:
        stream = open_decompressed(f, compression)
        while chunk := stream.read(1 << 20):
            total += len(chunk)
    return total
