"""Bad input gets a clear error, a non-zero exit, and leaves the store as it was."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time

import pytest

from tests.conftest import BARQUE, FIXTURES


def store_state(barque) -> dict:
    engine = barque.engine()
    return {
        "images": sorted(str(i.id) for i in engine.images.list()),
        "tags": sorted(t for i in engine.images.list() for t in i.tags),
        "snapshots": sorted(i.name for i in engine.snapshotter.walk()),
    }


def blobs(barque) -> set[str]:
    return {str(b.digest) for b in barque.engine().content.walk()}


def rewrite_archive(src, dst, edit) -> None:
    """Copy a docker-save tar, letting `edit(name, data)` change (or drop, returning None) each member."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read() if m.isreg() else None
            if data is not None:
                data = edit(m.name, data)
                if data is None:
                    continue
                m.size = len(data)
                tout.addfile(m, io.BytesIO(data))
            else:
                tout.addfile(m)


@pytest.fixture
def seeded(barque, busybox_tar):
    barque("load", "-i", busybox_tar)
    return barque


def assert_unchanged(barque, before_state, before_blobs):
    assert store_state(barque) == before_state
    # blobs a failed load stored are unreachable; garbage collection removes them
    barque("image", "prune", "-f")
    assert blobs(barque) == before_blobs


def test_truncated_archive(seeded, tmp_path):
    before, before_blobs = store_state(seeded), blobs(seeded)
    data = (FIXTURES / "docker-save-layers.tar").read_bytes()
    bad = tmp_path / "cut.tar"
    bad.write_bytes(data[: len(data) // 2])
    res = seeded("load", "-i", bad, check=False)
    assert res.returncode == 1
    assert "truncated" in res.stderr or "invalid archive" in res.stderr
    assert_unchanged(seeded, before, before_blobs)


def test_not_a_tar(seeded, tmp_path):
    bad = tmp_path / "junk.tar"
    bad.write_bytes(os.urandom(5000))
    res = seeded("load", "-i", bad, check=False)
    assert res.returncode == 1 and "invalid archive" in res.stderr


def test_corrupt_layer_is_refused_by_diff_id(seeded, tmp_path):
    before, before_blobs = store_state(seeded), blobs(seeded)
    manifest = json.loads(tarfile.open(FIXTURES / "docker-save-layers.tar").extractfile("manifest.json").read())
    target = manifest[0]["Layers"][-1]

    def edit(name, data):
        if name == target:
            return data.replace(b"alpha", b"omega") if b"alpha" in data else data[:-1024] + b"\0" * 1024
        return data

    bad = tmp_path / "corrupt.tar"
    rewrite_archive(FIXTURES / "docker-save-layers.tar", bad, edit)
    res = seeded("load", "-i", bad, check=False)
    assert res.returncode == 1
    assert "diff ID" in res.stderr
    assert_unchanged(seeded, before, before_blobs)


def test_manifest_naming_a_missing_layer(seeded, tmp_path):
    before, before_blobs = store_state(seeded), blobs(seeded)
    manifest = json.loads(tarfile.open(FIXTURES / "docker-save-layers.tar").extractfile("manifest.json").read())
    missing = manifest[0]["Layers"][2]
    bad = tmp_path / "missing.tar"
    rewrite_archive(FIXTURES / "docker-save-layers.tar", bad, lambda n, d: None if n == missing else d)
    res = seeded("load", "-i", bad, check=False)
    assert res.returncode == 1 and missing in res.stderr
    assert_unchanged(seeded, before, before_blobs)


def test_wrong_blob_digest_in_oci_layout(seeded, tmp_path):
    before, before_blobs = store_state(seeded), blobs(seeded)
    layout = tmp_path / "layout"
    shutil.copytree(FIXTURES / "oci-layout-layers", layout)
    victim = max((layout / "blobs/sha256").iterdir(), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    os.chmod(victim, 0o644)
    victim.write_bytes(bytes(data))
    res = seeded("load", "-i", layout, check=False)
    assert res.returncode == 1 and "digest mismatch" in res.stderr and victim.name in res.stderr
    assert_unchanged(seeded, before, before_blobs)


def test_unknown_media_type(seeded, tmp_path):
    layout = tmp_path / "layout"
    shutil.copytree(FIXTURES / "oci-layout-layers", layout)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["mediaType"] = "application/vnd.example.unknown+json"
    os.chmod(layout / "index.json", 0o644)
    (layout / "index.json").write_text(json.dumps(index))
    res = seeded("load", "-i", layout, check=False)
    assert res.returncode == 1 and "unsupported manifest media type 'application/vnd.example.unknown+json'" in res.stderr


def test_hostile_layer_is_refused(seeded, tmp_path):
    """A layer that writes through ../ is refused and nothing lands outside the root."""
    before = store_state(seeded)
    victim = tmp_path / "victim.txt"
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tf:
        ti = tarfile.TarInfo("../../../../../../../../.." + str(victim))
        ti.size = 5
        tf.addfile(ti, io.BytesIO(b"owned"))
    import hashlib

    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    archive = tmp_path / "hostile.tar"
    with tarfile.open(archive, "w") as tf:
        for name, data in [("layer/layer.tar", layer_bytes), ("config.json", config),
                           ("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": ["evil:1"],
                                                          "Layers": ["layer/layer.tar"]}]).encode())]:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    res = seeded("load", "-i", archive, check=False)
    assert res.returncode == 1
    assert ".." in res.stderr or "outside" in res.stderr
    assert not victim.exists()
    assert store_state(seeded) == before


def test_invalid_references(seeded):
    res = seeded("tag", "busybox", "Upper/Case:1", check=False)
    assert res.returncode == 1 and "must be lowercase" in res.stderr
    res = seeded("tag", "busybox", "bad::tag", check=False)
    assert res.returncode == 1 and "invalid reference format" in res.stderr
    res = seeded("image", "inspect", "nothing-here", check=False)
    assert res.returncode == 1 and "No such image: nothing-here" in res.stderr


def test_unknown_flag_is_a_usage_error(barque):
    res = barque("images", "--bogus", check=False)
    assert res.returncode == 125 and "unknown flag: --bogus" in res.stderr


@pytest.mark.parametrize("driver,reason", [("devicemapper", "device-mapper"), ("aufs", "AUFS is not in mainline")])
def test_unavailable_storage_drivers(barque, driver, reason):
    res = barque("--storage-driver", driver, "images", check=False)
    assert res.returncode != 0 and reason in res.stderr


def test_two_concurrent_loads_both_succeed(barque, busybox_tar):
    cmds = [BARQUE + barque.args() + ["load", "-i", str(src)]
            for src in (busybox_tar, FIXTURES / "docker-save-layers.tar")] * 2
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in cmds]
    results = [(p.wait(timeout=300), p.stdout.read().decode(), p.stderr.read().decode()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert all(rc == 0 for rc, _, _ in results), results
    names = sorted(barque("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split())
    assert names == ["busybox:latest", "fixture/layers:1"]
    engine = barque.engine()
    assert [i.name for i in engine.snapshotter.walk() if not i.name.startswith("sha256:")] == []


def test_killed_load_leaves_no_half_visible_image(seeded):
    before = store_state(seeded)
    data = (FIXTURES / "docker-save-layers.tar").read_bytes()
    proc = subprocess.Popen(BARQUE + seeded.args() + ["load"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.stdin.write(data[: len(data) * 3 // 4])
    proc.stdin.flush()
    time.sleep(1.0)  # it has ingested what it got and is blocked reading the rest
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdin.close()
    assert store_state(seeded) == before
    seeded("image", "prune", "-f")
    seeded("load", "-i", FIXTURES / "docker-save-layers.tar")
    assert "fixture/layers" in seeded("images").stdout
