"""Loading images made by real Docker (and skopeo), on every storage driver."""

from __future__ import annotations

import json
import os
import stat


from tests.conftest import FIXTURES, FIXTURE_ID
from tests.integration.imagetree import image_rootfs



def check_fixture_tree(root) -> None:
    """What the fixture README says `docker run` shows."""
    assert (root / "bin/busybox").is_file()
    assert (root / "data/a.txt").read_text() == "alpha\n"
    assert not (root / "data/b.txt").exists(), "the whiteout in layer 4 must delete b.txt"
    assert sorted(os.listdir(root / "data/dir")) == ["d.txt"]
    assert (root / "data/dir/d.txt").read_text() == "delta\n"
    assert os.readlink(root / "data/link-a") == "/data/a.txt"
    hard = (root / "data/hard-a").stat()
    assert hard.st_nlink == 2
    assert hard.st_ino == (root / "data/a.txt").stat().st_ino
    empty = (root / "data/empty").lstat()
    assert stat.S_ISDIR(empty.st_mode) and stat.S_IMODE(empty.st_mode) == 0o750


def check_fixture_config(inspect: dict) -> None:
    expected = json.loads((FIXTURES / "docker-inspect-layers.json").read_text())[0]
    assert inspect["Id"] == FIXTURE_ID
    assert "GREETING=hello" in inspect["Config"]["Env"]
    assert inspect["Config"]["WorkingDir"] == "/data"
    assert inspect["Config"]["Labels"] == {"org.example.fixture": "layers"}
    assert inspect["Config"]["Cmd"] == ["cat", "/data/a.txt"]
    assert inspect["RootFS"]["Layers"] == expected["RootFS"]["Layers"]
    assert len(inspect["RootFS"]["Layers"]) == 5
    assert inspect["Size"] > 0


def test_load_docker_save_archive(barque_driver):
    out = barque_driver("load", "-i", FIXTURES / "docker-save-layers.tar")
    assert out.stdout.strip() == "Loaded image: fixture/layers:1"
    inspect = json.loads(barque_driver("image", "inspect", "fixture/layers:1").stdout)[0]
    check_fixture_config(inspect)
    assert inspect["RepoTags"] == ["fixture/layers:1"]
    with image_rootfs(barque_driver.engine(), "fixture/layers:1") as root:
        check_fixture_tree(root)


def test_load_docker_save_from_stdin_gzip(barque, tmp_path):
    import gzip

    data = gzip.compress((FIXTURES / "docker-save-layers.tar").read_bytes(), 1)
    out = barque("load", input=data)
    assert "Loaded image: fixture/layers:1" in out.stdout


def oci_fixture_id() -> str:
    """skopeo rewrote Docker's config as an OCI config, so the layout's image ID is its own config digest."""
    layout = FIXTURES / "oci-layout-layers"
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((layout / "blobs/sha256" / manifest_digest).read_text())
    return manifest["config"]["digest"]


def test_load_oci_layout_directory(barque_driver):
    out = barque_driver("load", "-i", FIXTURES / "oci-layout-layers")
    image_id = oci_fixture_id()
    # the layout names the image only by the bare tag "1": no repository, so it loads by ID as Docker does
    assert out.stdout.strip() == f"Loaded image ID: {image_id}"
    inspect = json.loads(barque_driver("image", "inspect", image_id).stdout)[0]
    check_fixture_config(dict(inspect, Id=FIXTURE_ID))
    with image_rootfs(barque_driver.engine(), image_id) as root:
        check_fixture_tree(root)


def test_load_oci_layout_as_tar(barque, tmp_path):
    import tarfile

    tar = tmp_path / "oci.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(FIXTURES / "oci-layout-layers", arcname=".")
    assert barque("load", "-i", tar).stdout.strip() == f"Loaded image ID: {oci_fixture_id()}"


def test_history_matches_docker(barque):
    barque("load", "-i", FIXTURES / "docker-save-layers.tar")
    out = barque("history", "--no-trunc", "--format", "{{.CreatedBy}}", "fixture/layers:1").stdout
    expected = (FIXTURES / "docker-history-layers.txt").read_text()
    assert out.strip().splitlines()[: len(expected.strip().splitlines())] == expected.strip().splitlines()


def test_load_twice_is_idempotent(barque):
    barque("load", "-i", FIXTURES / "docker-save-layers.tar")
    blobs_before = sorted(p.name for p in (barque.root / "content/blobs/sha256").iterdir())
    barque("load", "-i", FIXTURES / "docker-save-layers.tar")
    blobs_after = sorted(p.name for p in (barque.root / "content/blobs/sha256").iterdir())
    assert blobs_before == blobs_after
    assert barque("images", "-q").stdout.split() == [FIXTURE_ID.split(":")[1][:12]]
