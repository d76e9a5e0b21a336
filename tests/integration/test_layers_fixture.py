"""The layers of an image Docker built (../shared/fixtures/docker-made), applied by barque: the result must be what
`docker run` shows (the fixture's README) and each layer's digest must be the diff ID in Docker's config."""

from __future__ import annotations

import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from barque.layers import apply_layer
from tests.conftest import FIXTURES
from tests.integration.test_layers_overlay import overlay

SAVE = FIXTURES / "docker-save-layers.tar"
pytestmark = [pytest.mark.skipif(not SAVE.exists(), reason="Docker-made fixture not present"),
              pytest.mark.usefixtures("no_leaked_mounts")]


def docker_layers(tmp_path: Path) -> tuple[list[Path], list[str]]:
    """The layer tars in order (from manifest.json) and the diff IDs the image config lists."""
    out = tmp_path / "save"
    with tarfile.open(SAVE) as tf:
        tf.extractall(out, filter="data")
    manifest = json.loads((out / "manifest.json").read_text())[0]
    config = json.loads((out / manifest["Config"]).read_text())
    return [out / p for p in manifest["Layers"]], config["rootfs"]["diff_ids"]


def check_docker_view(root: Path) -> None:
    data = root / "data"
    assert (data / "a.txt").read_text() == "alpha\n"
    assert not os.path.lexists(data / "b.txt")
    assert sorted(os.listdir(data / "dir")) == ["d.txt"]
    assert (data / "dir/d.txt").read_text() == "delta\n"
    assert (data / "link-a").is_symlink() and os.readlink(data / "link-a") == "/data/a.txt"
    assert (data / "hard-a").stat().st_nlink == 2
    assert (data / "hard-a").stat().st_ino == (data / "a.txt").stat().st_ino
    assert (data / "empty").is_dir() and stat.S_IMODE((data / "empty").stat().st_mode) == 0o750
    assert (root / "bin/busybox").stat().st_size > 1_000_000
    assert os.readlink(root / "bin/sh") == "busybox"
    assert sorted(os.listdir(data)) == ["a.txt", "dir", "empty", "hard-a", "link-a"]


def test_docker_layers_applied_in_one_directory(tmp_path: Path) -> None:
    layers, diff_ids = docker_layers(tmp_path)
    assert len(layers) == 5
    root = tmp_path / "rootfs"
    root.mkdir()
    for layer, diff_id in zip(layers, diff_ids):
        with open(layer, "rb") as f:
            result = apply_layer(f, root, whiteouts="delete")
        assert str(result.diff_id) == diff_id
    check_docker_view(root)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="mounts overlayfs: needs root")
def test_docker_layers_as_overlay_uppers(tmp_path: Path) -> None:
    layers, diff_ids = docker_layers(tmp_path)
    dirs: list[Path] = []
    for i, (layer, diff_id) in enumerate(zip(layers, diff_ids)):
        upper = tmp_path / f"layer{i}"
        upper.mkdir()
        with open(layer, "rb") as f:
            result = apply_layer(f, upper, whiteouts="overlay", lowers=list(reversed(dirs)))
        assert str(result.diff_id) == diff_id
        dirs.append(upper)
    # the deletions are overlayfs whiteouts in the uppers, not gone files
    assert stat.S_ISCHR((dirs[3] / "data/b.txt").lstat().st_mode)
    assert os.getxattr(dirs[3] / "data/dir", "trusted.overlay.opaque") == b"y"
    with overlay(tmp_path / "merged", list(reversed(dirs))) as merged:
        check_docker_view(merged)
