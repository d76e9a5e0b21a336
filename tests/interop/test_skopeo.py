"""skopeo (containers/image, the library of podman, buildah and CRI-O) reads what `barque save` writes, and barque
loads what skopeo writes: docker-archive, OCI layout and oci-archive, both ways, on a barque-made image (busybox) and
a Docker-made one (the fixture)."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from tests.conftest import FIXTURE_ID
from tests.integration.imagetree import image_rootfs, tree_listing

pytestmark = pytest.mark.interop

IMAGES = ["busybox:latest", "fixture/layers:1"]
OCI_RUNTIME_CONFIG = {"User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
                      "StopSignal", "ArgsEscaped"}



def inspect(b, name: str) -> dict:
    return json.loads(b("image", "inspect", name).stdout)[0]


def tree(b, name: str) -> dict:
    with image_rootfs(b.engine(), name) as root:
        return tree_listing(root)


def save(b, name: str, out: Path, fmt: str = "docker-archive") -> Path:
    b("save", "--format", fmt, "-o", out, name)
    return out


def layout_manifest(layout: Path, ref: str) -> tuple[dict, dict]:
    """(index entry, manifest) for the manifest an OCI layout directory names `ref`."""
    index = json.loads((layout / "index.json").read_text())
    [entry] = [m for m in index["manifests"]
               if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref]
    algo, hexd = entry["digest"].split(":")
    return entry, json.loads((layout / "blobs" / algo / hexd).read_bytes())


def blob(layout: Path, digest: str) -> bytes:
    algo, hexd = digest.split(":")
    return (layout / "blobs" / algo / hexd).read_bytes()


@pytest.mark.parametrize("name", IMAGES)
def test_skopeo_inspects_barque_docker_archive(loaded, skopeo, tmp_path, name):
    archive = save(loaded, name, tmp_path / "image.tar")
    ours = inspect(loaded, name)
    ref = f"docker-archive:{archive}"

    raw = skopeo.json("inspect", "--raw", ref)
    assert raw["config"]["digest"] == ours["Id"]
    # the archive's layers are uncompressed, so their digests are the diff IDs, and the sizes are the members'
    assert [layer["digest"] for layer in raw["layers"]] == ours["RootFS"]["Layers"]
    with tarfile.open(archive) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))[0]
        sizes = [tf.getmember(p).size for p in manifest["Layers"]]
    assert [layer["size"] for layer in raw["layers"]] == sizes

    config = skopeo("inspect", "--config", "--raw", ref).stdout.encode()
    assert "sha256:" + hashlib.sha256(config).hexdigest() == ours["Id"], "the config travels byte for byte"
    assert json.loads(config)["rootfs"]["diff_ids"] == ours["RootFS"]["Layers"]

    summary = skopeo.json("inspect", ref)
    assert summary["Layers"] == ours["RootFS"]["Layers"]
    assert (summary["Architecture"], summary["Os"]) == (ours["Architecture"], ours["Os"])
    assert summary["Env"] == ours["Config"]["Env"]
    assert (summary.get("Labels") or {}) == (ours["Config"].get("Labels") or {})

    # the same file is an OCI layout too (index.json + oci-layout), which skopeo's oci-archive reads by the tag
    tag = name.rsplit(":", 1)[1]
    as_oci = skopeo.json("inspect", "--raw", f"oci-archive:{archive}:{tag}")
    assert as_oci["config"]["digest"] == ours["Id"]
    assert [layer["digest"] for layer in as_oci["layers"]] == ours["RootFS"]["Layers"]


def test_skopeo_picks_each_image_of_a_multi_image_archive(loaded, skopeo, tmp_path):
    archive = tmp_path / "both.tar"
    loaded("save", "-o", archive, *IMAGES)
    for name in IMAGES:
        raw = skopeo.json("inspect", "--raw", f"docker-archive:{archive}:{name}")
        assert raw["config"]["digest"] == inspect(loaded, name)["Id"]
    for i, name in enumerate(IMAGES):  # skopeo's @N indexes manifest.json, in the order the images were named
        raw = skopeo.json("inspect", "--raw", f"docker-archive:{archive}:@{i}")
        assert raw["config"]["digest"] == inspect(loaded, name)["Id"]


@pytest.mark.parametrize("name", IMAGES)
def test_skopeo_copy_to_oci_layout_loads_back(loaded, skopeo, other_barque, tmp_path, name):
    """skopeo converts a docker-archive image to OCI on the way: it gzips the layers and rewrites the config in
    OCI's schema (dropping Docker-only fields such as container_config), so the image ID it writes differs from
    barque's. What must hold: barque loads the layout with the ID skopeo wrote, the same layers (diff IDs), the
    same runtime config and history, and the same files."""
    archive = save(loaded, name, tmp_path / "image.tar")
    ours = inspect(loaded, name)
    layout = tmp_path / "layout"
    skopeo("copy", f"docker-archive:{archive}", f"oci:{layout}:v1")
    _, manifest = layout_manifest(layout, "v1")
    assert {layer["mediaType"] for layer in manifest["layers"]} == {"application/vnd.oci.image.layer.v1.tar+gzip"}
    new_id = manifest["config"]["digest"]
    converted = json.loads(blob(layout, new_id))
    original = json.loads(loaded.engine().content.read(loaded.engine().images.resolve(name).id))
    for key in ("rootfs", "history", "architecture", "os"):
        assert converted.get(key) == original.get(key), key
    # OCI's runtime config is a subset of Docker's, and empty fields are left out
    kept = {k: v for k, v in original["config"].items() if k in OCI_RUNTIME_CONFIG and v}
    assert converted["config"] == kept

    other = other_barque()
    out = other("load", "-i", layout).stdout
    assert out.strip() == f"Loaded image ID: {new_id}", "the ref name `v1` is no image name: it loads untagged"
    theirs = inspect(other, new_id)
    assert theirs["RootFS"]["Layers"] == ours["RootFS"]["Layers"]
    assert theirs["Config"]["Env"] == ours["Config"]["Env"] and theirs["Config"]["Cmd"] == ours["Config"]["Cmd"]
    assert tree(other, new_id) == tree(loaded, name)


@pytest.mark.parametrize("name", IMAGES)
def test_skopeo_copy_preserving_digests_loads_back_with_the_same_id(loaded, skopeo, other_barque, tmp_path, name):
    """With --preserve-digests skopeo keeps the Docker schema 2 manifest it builds for a docker-archive, inside an
    OCI layout, and labels the uncompressed layers `tar.gzip` (it never looked): barque has to go by the bytes,
    as `docker load` does, on load and on saving the image again."""
    archive = save(loaded, name, tmp_path / "image.tar")
    layout = tmp_path / "layout"
    skopeo("copy", "--preserve-digests", f"docker-archive:{archive}", f"oci:{layout}:kept")
    entry, manifest = layout_manifest(layout, "kept")
    assert entry["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    ours = inspect(loaded, name)
    assert manifest["config"]["digest"] == ours["Id"]

    other = other_barque()
    assert other("load", "-i", layout).stdout.strip() == f"Loaded image ID: {ours['Id']}"
    assert inspect(other, ours["Id"])["RootFS"]["Layers"] == ours["RootFS"]["Layers"]
    assert tree(other, ours["Id"]) == tree(loaded, name)
    again = save(other, ours["Id"], tmp_path / "again.tar")
    assert skopeo.json("inspect", "--raw", f"docker-archive:{again}")["layers"] == \
        skopeo.json("inspect", "--raw", f"docker-archive:{archive}")["layers"]


@pytest.mark.parametrize("name", IMAGES)
def test_skopeo_reads_barque_oci_archive(loaded, skopeo, other_barque, tmp_path, name):
    archive = save(loaded, name, tmp_path / "image-oci.tar", fmt="oci-archive")
    ours = inspect(loaded, name)
    with tarfile.open(archive) as tf:
        [entry] = json.load(tf.extractfile("index.json"))["manifests"]
        stored = json.load(tf.extractfile("blobs/sha256/" + entry["digest"].split(":")[1]))
    tag = name.rsplit(":", 1)[1]
    # skopeo finds an image in an OCI layout by org.opencontainers.image.ref.name alone, which barque sets to the tag
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == tag
    summary = skopeo.json("inspect", f"oci-archive:{archive}:{tag}")
    assert summary["Digest"] == entry["digest"]
    assert summary["Layers"] == [layer["digest"] for layer in stored["layers"]]
    assert skopeo.json("inspect", "--raw", f"oci-archive:{archive}:{tag}")["config"]["digest"] == ours["Id"]
    missing = skopeo("inspect", f"oci-archive:{archive}:no-such-tag", check=False)
    assert missing.returncode != 0 and "no-such-tag" in missing.stderr

    # OCI to OCI: the config is not converted, so barque gets its own image ID back (skopeo gzips the layers
    # that are stored uncompressed, so the manifest may change; the diff IDs may not)
    layout = tmp_path / "layout"
    skopeo("copy", f"oci-archive:{archive}:{tag}", f"oci:{layout}:{tag}")
    assert layout_manifest(layout, tag)[1]["config"]["digest"] == ours["Id"]
    other = other_barque()
    assert other("load", "-i", layout).stdout.strip() == f"Loaded image ID: {ours['Id']}"
    assert tree(other, ours["Id"]) == tree(loaded, name)


@pytest.mark.parametrize("name", IMAGES)
def test_barque_loads_skopeo_docker_archive(loaded, skopeo, other_barque, tmp_path, name):
    """skopeo writes the legacy layout of `docker save` (a directory per layer, layer.tar as a symlink to
    `<diff id>.tar`, config as `<id>.json`, repositories) and names images fully qualified."""
    archive = save(loaded, name, tmp_path / "image.tar")
    ours = inspect(loaded, name)
    theirs_file = tmp_path / "skopeo.tar"
    skopeo("copy", f"docker-archive:{archive}", f"docker-archive:{theirs_file}:interop/from-skopeo:2")
    with tarfile.open(theirs_file) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))
        assert manifest[0]["RepoTags"] == ["docker.io/interop/from-skopeo:2"]
        assert "index.json" not in tf.getnames()

    other = other_barque()
    assert other("load", "-i", theirs_file).stdout.strip() == "Loaded image: interop/from-skopeo:2"
    theirs = inspect(other, "interop/from-skopeo:2")
    assert theirs["Id"] == ours["Id"] and theirs["RootFS"]["Layers"] == ours["RootFS"]["Layers"]
    assert tree(other, "interop/from-skopeo:2") == tree(loaded, name)
    if name == "fixture/layers:1":
        assert theirs["Id"] == FIXTURE_ID
