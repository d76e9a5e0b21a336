"""Chunked blob uploads (PATCH with Content-Range) of barque's registry client: a layer bigger than the single-PUT
limit pushed to docker-registry and to barque's own registry, through a recording proxy, and pulled back."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from barque.registry.client.push import CHUNK_SIZE, MONOLITHIC_MAX
from tests.integration.imagetree import image_rootfs, tree_listing
from tests.registry_support_peers import FaultyProxy, available, docker_registry

pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")

BIG = 40 << 20          # random, so gzip cannot bring it under MONOLITHIC_MAX
MIN_CHUNK = 20 << 20    # what the proxy announces as OCI-Chunk-Min-Length (above barque's CHUNK_SIZE)



@pytest.fixture(scope="module")
def big_tar(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("big")
    payload = work / "payload.bin"
    with open(payload, "wb") as f:
        for _ in range(BIG >> 20):
            f.write(os.urandom(1 << 20))
    (work / "small.txt").write_text("small\n")
    tar = work / "big.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(payload, arcname="data/payload.bin")
        tf.add(work / "small.txt", arcname="data/small.txt")
    payload.unlink()
    return tar


def _patches(proxy: FaultyProxy) -> list[dict]:
    return [r for r in proxy.requests if r["method"] == "PATCH"]


def _check_chunks(patches: list[dict], size: int, chunk: int) -> None:
    """Content-Range of the PATCHes: contiguous from 0 to size-1, each `chunk` bytes but the last, which is
    shorter; the body sizes match the ranges."""
    assert patches, "no PATCH: the blob went in one PUT"
    offset = 0
    for i, p in enumerate(patches):
        start, _, end = p["headers"]["Content-Range"].partition("-")
        assert int(start) == offset, f"chunk {i} starts at {start}, expected {offset}"
        assert int(end) - int(start) + 1 == p["body_size"]
        if i < len(patches) - 1:
            assert p["body_size"] == chunk
        else:
            assert 0 < p["body_size"] <= chunk
        offset = int(end) + 1
    assert offset == size


def _check_locations(proxy: FaultyProxy) -> None:
    from urllib.parse import urlsplit

    upload = [r for r in proxy.requests if r["method"] in ("POST", "PATCH")
              or (r["method"] == "PUT" and "digest=" in r["path"] and r["body_size"] == 0)]
    start = max(i for i, r in enumerate(upload) if r["method"] == "POST" and i + 1 < len(upload)
                and upload[i + 1]["method"] == "PATCH")
    chain = upload[start:start + len(_patches(proxy)) + 2]
    for before, after in zip(chain, chain[1:]):
        loc = urlsplit(before["response_headers"]["Location"])
        assert after["path"].split("?")[0] == loc.path
        if loc.query:
            assert after["path"].startswith(f"{loc.path}?{loc.query}")


def _push_through(proxy: FaultyProxy, pusher, name_via: str) -> tuple[int, str]:
    out = pusher("push", name_via).stdout
    assert out.splitlines()[-1].startswith("1: digest: sha256:")
    # the big layer's PUT closes its upload: the digest it names, the size the PATCHes added up to
    big = [r for r in proxy.requests if r["method"] == "PUT" and "digest=" in r["path"] and r["body_size"] == 0]
    assert len(big) == 1, [(r["method"], r["path"], r["body_size"]) for r in proxy.requests]
    return sum(p["body_size"] for p in _patches(proxy)), out.splitlines()[-1].split()[2]


def _pull_and_compare(pusher, puller, pushed_name: str, pulled_name: str, digest: str) -> None:
    out = puller("pull", pulled_name).stdout
    assert f"Digest: {digest}" in out
    a = json.loads(pusher("image", "inspect", pushed_name).stdout)[0]
    b = json.loads(puller("image", "inspect", pulled_name).stdout)[0]
    assert a["Id"] == b["Id"]
    assert a["RootFS"]["Layers"] == b["RootFS"]["Layers"]
    with image_rootfs(pusher.engine(), pushed_name) as ra, image_rootfs(puller.engine(), pulled_name) as rb:
        assert tree_listing(ra) == tree_listing(rb)
        assert (rb / "data/payload.bin").stat().st_size == BIG
        assert (rb / "data/small.txt").read_text() == "small\n"


def test_big_layer_to_docker_registry_in_chunks_of_the_servers_minimum(big_tar, roots, tmp_path):
    assert MIN_CHUNK > CHUNK_SIZE and BIG > MONOLITHIC_MAX
    with docker_registry(tmp_path / "registry") as reg, FaultyProxy(reg.url) as proxy:
        proxy.add_headers.append(("POST", "/blobs/uploads", {"OCI-Chunk-Min-Length": str(MIN_CHUNK)}))
        pusher = roots("pusher", reg.env())
        pusher("import", str(big_tar), "big/img:1")
        via = f"{proxy.host}/big/img:1"
        pusher("tag", "big/img:1", via)
        size, digest = _push_through(proxy, pusher, via)
        assert size > MONOLITHIC_MAX
        _check_chunks(_patches(proxy), size, MIN_CHUNK)
        # each PATCH and the closing PUT go to the Location the answer before gave (docker-registry's state token)
        _check_locations(proxy)
        puller = roots("puller", reg.env())
        _pull_and_compare(pusher, puller, via, f"{reg.host}/big/img:1", digest)


def test_big_layer_to_barques_registry_in_chunks(big_tar, roots, registry_factory, tmp_path):
    reg = registry_factory()
    env = {"DOCKER_CONFIG": str(tmp_path / "docker-config"), "BARQUE_REGISTRIES_CONF": str(tmp_path / "none.json"),
           "BARQUE_CERTS_D": str(tmp_path / "certs.d")}
    with FaultyProxy(reg.url) as proxy:
        pusher = roots("pusher", env)
        pusher("import", str(big_tar), "big/img:1")
        via = f"{proxy.host}/big/img:1"
        pusher("tag", "big/img:1", via)
        size, digest = _push_through(proxy, pusher, via)
        announced = [int(r["response_headers"].get("OCI-Chunk-Min-Length", 0)) for r in proxy.requests
                     if r["method"] == "POST"]
        assert size > MONOLITHIC_MAX
        _check_chunks(_patches(proxy), size, max([CHUNK_SIZE, *announced]))
    puller = roots("puller", env)
    _pull_and_compare(pusher, puller, via, f"{reg.host}/big/img:1", digest)
