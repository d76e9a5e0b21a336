"""Layers compressed with gzip and zstd, in an OCI layout made here, load and save back."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import pytest
import zstandard

from tests.integration.imagetree import image_rootfs

MT = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip", "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
      "": "application/vnd.oci.image.layer.v1.tar"}


def _layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def make_layout(path, compression: str) -> str:
    blobs = path / "blobs/sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        h = hashlib.sha256(data).hexdigest()
        (blobs / h).write_bytes(data)
        return "sha256:" + h

    plain = [_layer({"hello.txt": b"hello\n"}), _layer({"big.bin": bytes(range(256)) * 8192, ".wh.hello.txt": b""})]
    compress = {"gzip": lambda d: gzip.compress(d, 6), "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
                "": lambda d: d}[compression]
    layers = [(put(compress(p)), len(compress(p))) for p in plain]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers",
                                    "diff_ids": ["sha256:" + hashlib.sha256(p).hexdigest() for p in plain]}}).encode()
    cfg = put(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg,
                                      "size": len(config)},
                           "layers": [{"mediaType": MT[compression], "digest": d, "size": s} for d, s in layers]
                           }).encode()
    m = put(manifest)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": len(manifest),
         "annotations": {"org.opencontainers.image.ref.name": f"example.com/comp/{compression or 'none'}:1"}}]}))
    return cfg


@pytest.mark.parametrize("compression", ["gzip", "zstd", ""])
def test_compressed_layers_load_and_save(barque, tmp_path, compression):
    cfg = make_layout(tmp_path / "layout", compression)
    name = f"example.com/comp/{compression or 'none'}:1"
    assert barque("load", "-i", tmp_path / "layout").stdout.strip() == f"Loaded image: {name}"
    assert json.loads(barque("image", "inspect", name).stdout)[0]["Id"] == cfg
    with image_rootfs(barque.engine(), name) as root:
        assert not (root / "hello.txt").exists()
        assert (root / "big.bin").stat().st_size == 256 * 8192
    out = tmp_path / "saved.tar"
    barque("save", "-o", out, name)
    with tarfile.open(out) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))[0]
        for layer in manifest["Layers"]:
            data = tf.extractfile(layer).read()
            assert data[257:262] == b"ustar", "docker archives hold plain tars"
            assert "sha256:" + hashlib.sha256(data).hexdigest() in json.load(tf.extractfile(manifest["Config"]))[
                "rootfs"]["diff_ids"]
