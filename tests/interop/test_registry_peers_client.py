"""barque's registry client with real peers: what barque pushes to docker-registry, skopeo reads; what skopeo puts
into docker-registry (Docker schema 2 and OCI, gzip and zstd), barque pulls."""

from __future__ import annotations

import json

import pytest

from tests.conftest import FIXTURES
from tests.integration.imagetree import image_rootfs, tree_listing
from tests.registry_support_peers import available, docker_registry

pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")

OCI_LAYOUT = FIXTURES / "oci-layout-layers"


@pytest.fixture
def registry(tmp_path):
    with docker_registry(tmp_path / "registry") as reg:
        yield reg


def test_skopeo_reads_what_barque_pushed(registry, barque, skopeo):
    env = registry.env()
    barque("load", "-i", FIXTURES / "docker-save-layers.tar")
    for fmt in ("gzip", "zstd"):
        name = f"{registry.host}/pushed/{fmt}:1"
        barque("tag", "fixture/layers:1", name)
        out = barque("push", "--compression-format", fmt, name, env=env).stdout
        digest = out.splitlines()[-1].split()[2]
        info = skopeo.json("inspect", "--tls-verify=false", f"docker://{name}")
        assert info["Digest"] == digest
        assert len(info["Layers"]) == 5
        config = skopeo.json("inspect", "--tls-verify=false", "--config", f"docker://{name}")
        assert config["config"]["Cmd"] == ["cat", "/data/a.txt"]
        # skopeo copies it out, verifying every blob against its digest
        skopeo("copy", "--src-tls-verify=false", f"docker://{name}", f"oci:{skopeo.work / fmt}:x")


def _layout_config_digest() -> str:
    index = json.loads((OCI_LAYOUT / "index.json").read_text())
    algorithm, encoded = index["manifests"][0]["digest"].split(":")
    manifest = json.loads((OCI_LAYOUT / "blobs" / algorithm / encoded).read_text())
    return manifest["config"]["digest"]


@pytest.mark.parametrize("dest_args", [
    [],                                                       # as in the layout: OCI, gzip
    ["--format", "v2s2"],                                     # Docker schema 2
    ["--dest-compress-format", "zstd", "--format", "oci"],   # OCI with zstd layers
])
def test_barque_pulls_what_skopeo_copied_in(registry, barque, skopeo, dest_args):
    name = f"{registry.host}/copied/layers:1"
    skopeo("copy", "--dest-tls-verify=false", *dest_args, f"oci:{OCI_LAYOUT}:1", f"docker://{name}")
    digest = skopeo.json("inspect", "--tls-verify=false", f"docker://{name}")["Digest"]
    out = barque("pull", name, env=registry.env()).stdout
    assert f"Digest: {digest}" in out
    inspect = json.loads(barque("image", "inspect", name).stdout)[0]
    assert inspect["Id"] == _layout_config_digest()
    assert inspect["RepoDigests"] == [f"{registry.host}/copied/layers@{digest}"]
    with image_rootfs(barque.engine(), name) as root:
        listing = tree_listing(root)
        assert (root / "data/a.txt").read_text() == "alpha\n"
    assert "data/b.txt" not in listing
