"""barque's registry client against Debian's docker-registry (the reference implementation), on loopback."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from tests.conftest import FIXTURE_ID, FIXTURES, Barque
from tests.integration.imagetree import image_rootfs, tree_listing
from tests.registry_support_peers import FaultyProxy, available, docker_registry

pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")



@pytest.fixture
def registry(tmp_path):
    with docker_registry(tmp_path / "registry") as reg:
        yield reg



@pytest.fixture
def pusher(roots, registry):
    c = roots("pusher", registry.env())
    c("load", "-i", FIXTURES / "docker-save-layers.tar")
    return c


def layer_lines(out: str) -> dict[str, list[str]]:
    lines: dict[str, list[str]] = {}
    for line in out.splitlines():
        ident, sep, status = line.partition(": ")
        if sep and len(ident) == 12 and all(c in "0123456789abcdef" for c in ident):
            lines.setdefault(ident, []).append(status)
    return lines


def tree(client: Barque, name: str) -> dict:
    with image_rootfs(client.engine(), name) as root:
        return tree_listing(root)


def test_push_then_pull_into_a_fresh_root_gives_the_same_image(registry, pusher, roots):
    name = f"{registry.host}/fixture/layers:1"
    pusher("tag", "fixture/layers:1", name)
    out = pusher("push", name).stdout.splitlines()
    assert out[0] == f"The push refers to repository [{registry.host}/fixture/layers]"
    statuses = layer_lines("\n".join(out))
    assert len(statuses) == 5 and all(s[0] == "Preparing" and s[-1] == "Pushed" for s in statuses.values())
    assert out[-1].startswith("1: digest: sha256:") and " size: " in out[-1]
    pushed_digest = out[-1].split()[2]

    puller = roots("puller", registry.env())
    result = puller("pull", name)
    lines = result.stdout.splitlines()
    assert lines[0] == "1: Pulling from fixture/layers"
    assert all(s[0] == "Pulling fs layer" and s[-1] == "Pull complete" for s in layer_lines(result.stdout).values())
    assert f"Digest: {pushed_digest}" in lines
    assert f"Status: Downloaded newer image for {name}" in lines
    assert lines[-1] == name
    a = json.loads(pusher("image", "inspect", name).stdout)[0]
    b = json.loads(puller("image", "inspect", name).stdout)[0]
    assert a["Id"] == b["Id"] == FIXTURE_ID
    assert a["RootFS"]["Layers"] == b["RootFS"]["Layers"]
    assert b["RepoDigests"] == [f"{registry.host}/fixture/layers@{pushed_digest}"]
    assert f"{registry.host}/fixture/layers@{pushed_digest}" in a["RepoDigests"]
    assert tree(pusher, name) == tree(puller, name)
    # the pulled image runs
    assert puller("run", "--rm", name).stdout == "alpha\n"


def test_pull_again_is_up_to_date_and_layers_already_exist(registry, pusher, roots):
    name = f"{registry.host}/again/layers:v1"
    pusher("tag", "fixture/layers:1", name)
    pusher("push", name)
    puller = roots("puller", registry.env())
    puller("pull", name)
    again = puller("pull", name).stdout
    # the image is held already: Docker lists no layers at all
    assert layer_lines(again) == {}
    assert again.splitlines() == ["v1: Pulling from again/layers", again.splitlines()[1],
                                  f"Status: Image is up to date for {name}", name]
    # another tag of the same content: the new name makes it "newer" as Docker says, still no layer listed
    pusher("tag", "fixture/layers:1", f"{registry.host}/again/layers:v2")
    out = pusher("push", f"{registry.host}/again/layers:v2").stdout
    assert set(s[-1] for s in layer_lines(out).values()) == {"Layer already exists"}
    out = puller("pull", f"{registry.host}/again/layers:v2").stdout
    assert layer_lines(out) == {}
    assert f"Status: Downloaded newer image for {registry.host}/again/layers:v2" in out


def test_layers_of_another_image_already_exist(registry, pusher, roots, tmp_path):
    """An image built on one the puller holds: the shared layers say "Already exists", only the new one downloads."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM fixture/layers:1\nCOPY extra.txt /extra.txt\n")
    (ctx / "extra.txt").write_text("extra\n")
    base, child = f"{registry.host}/shared/base:1", f"{registry.host}/shared/child:1"
    pusher("build", "-q", "-t", child, ctx)
    pusher("tag", "fixture/layers:1", base)
    pusher("push", base)
    out = pusher("push", child).stdout
    assert sorted(s[-1].split(" from ")[0] for s in layer_lines(out).values()) == ["Mounted", "Mounted", "Mounted",
                                                                                    "Mounted", "Mounted", "Pushed"]
    puller = roots("puller", registry.env())
    puller("pull", base)
    out = puller("pull", child).stdout
    statuses = layer_lines(out)
    assert len(statuses) == 6
    assert sorted(s[0] for s in statuses.values()) == ["Already exists"] * 5 + ["Pulling fs layer"]
    new = [s for s in statuses.values() if s[0] == "Pulling fs layer"][0]
    assert new[-1] == "Pull complete"
    assert puller("run", "--rm", child, "cat", "/extra.txt").stdout == "extra\n"


def test_pull_by_digest_and_quiet(registry, pusher, roots):
    name = f"{registry.host}/bydigest/img"
    pusher("tag", "fixture/layers:1", name + ":t")
    digest = pusher("push", name + ":t").stdout.splitlines()[-1].split()[2]
    puller = roots("puller", registry.env())
    out = puller("pull", "-q", f"{name}@{digest}").stdout
    assert out == f"{name}@{digest}\n"
    inspect = json.loads(puller("image", "inspect", f"{name}@{digest}").stdout)[0]
    assert inspect["Id"] == FIXTURE_ID and inspect["RepoTags"] == []
    assert inspect["RepoDigests"] == [f"{name}@{digest}"]
    # a tag and a digest: the digest wins, as in Docker
    out = puller("pull", f"{name}:whatever@{digest}").stdout
    assert out.splitlines()[0] == f"{digest}: Pulling from bydigest/img"


def test_push_of_a_bare_name_pushes_every_tag_and_pull_all_tags(registry, pusher, roots):
    repo = f"{registry.host}/multi/img"
    for t in ("a", "b", "c"):
        pusher("tag", "fixture/layers:1", f"{repo}:{t}")
    # a bare name is `latest` (Docker 20.10 on); -a pushes every tag
    r = pusher("push", repo, check=False)
    assert r.returncode == 1 and r.stdout.splitlines()[0] == "Using default tag: latest"
    assert r.stderr == f"An image does not exist locally with the tag: {repo}\n"
    out = pusher("push", "-a", repo).stdout
    assert [line.split(":")[0] for line in out.splitlines() if ": digest: " in line] == ["a", "b", "c"]
    puller = roots("puller", registry.env())
    out = puller("pull", "--all-tags", repo).stdout
    assert "Using default tag" not in out
    assert out.splitlines()[-1] == repo
    tags = sorted(json.loads(puller("image", "inspect", f"{repo}:a").stdout)[0]["RepoTags"])
    assert tags == [f"{repo}:a", f"{repo}:b", f"{repo}:c"]
    r = pusher("pull", "-a", f"{repo}:a", check=False)
    assert r.returncode == 1 and "tag can't be used with --all-tags/-a" in r.stderr


def test_pull_errors_say_what_is_missing_and_store_nothing(registry, pusher, roots):
    puller = roots("puller", registry.env())
    r = puller("pull", f"{registry.host}/nothing/here", check=False)
    assert r.returncode == 1
    assert "Using default tag: latest" in r.stdout
    assert f"manifest for {registry.host}/nothing/here:latest not found: manifest unknown" in r.stderr
    pusher("tag", "fixture/layers:1", f"{registry.host}/some/img:1")
    pusher("push", f"{registry.host}/some/img:1")
    r = puller("pull", f"{registry.host}/some/img:2", check=False)
    assert r.returncode == 1 and "not found: manifest unknown" in r.stderr
    r = puller("pull", f"{registry.host}/some/img@sha256:{'0' * 64}", check=False)
    assert r.returncode == 1 and "not found" in r.stderr
    assert puller("images", "-q").stdout == ""
    r = puller("push", f"{registry.host}/not/local:1", check=False)
    assert r.returncode == 1
    assert f"An image does not exist locally with the tag: {registry.host}/not/local" in r.stderr
    r = puller("pull", "127.0.0.1:1/nobody/listens", check=False)
    assert r.returncode == 1 and "127.0.0.1:1" in r.stderr


def test_unqualified_names_say_docker_hub_cannot_be_reached(roots, registry):
    c = roots("hub", registry.env())
    r = c("pull", "busybox", check=False, timeout=120)
    assert r.returncode == 1
    assert "Docker Hub" in r.stderr and "registry-1.docker.io" in r.stderr


def _import_big_image(client: Barque, tmp_path: Path, name: str, size: int = 6 << 20) -> None:
    data = tmp_path / "big.tar"
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(size))
    with tarfile.open(data, "w") as tf:
        tf.add(payload, arcname="payload.bin")
    client("import", str(data), name)


def test_a_dropped_connection_resumes_with_range(registry, roots, tmp_path):
    pusher = roots("pusher", registry.env())
    name = f"{registry.host}/big/img:1"
    _import_big_image(pusher, tmp_path, name)
    pusher("push", name)
    with FaultyProxy(registry.url) as proxy:
        proxy.rules.append(["GET", "/blobs/sha256:", "drop", 1])
        puller = roots("puller", registry.env())
        via = f"{proxy.host}/big/img:1"
        puller("pull", via)
        ranges = [r for m, p, r in proxy.seen if m == "GET" and "/blobs/" in p and r]
        assert ranges and ranges[0].startswith("bytes=") and not ranges[0].startswith("bytes=0-")
        a = json.loads(pusher("image", "inspect", name).stdout)[0]["Id"]
        b = json.loads(puller("image", "inspect", via).stdout)[0]["Id"]
        assert a == b


def test_5xx_answers_are_retried(registry, pusher, roots):
    name = f"{registry.host}/retry/img:1"
    pusher("tag", "fixture/layers:1", name)
    pusher("push", name)
    with FaultyProxy(registry.url) as proxy:
        proxy.rules += [["GET", "/manifests/", "503", 2], ["GET", "/blobs/", "503", 2]]
        puller = roots("puller", registry.env())
        puller("pull", f"{proxy.host}/retry/img:1")
        assert sum(1 for m, p, _ in proxy.seen if m == "GET" and "/manifests/" in p) >= 3
        # a registry that keeps failing: a bounded number of attempts, then a clear error
        proxy.rules.append(["GET", "/manifests/", "503", 1000])
        r = puller("pull", f"{proxy.host}/retry/img:1", check=False, timeout=120)
        assert r.returncode == 1 and "503" in r.stderr


def test_a_blob_that_does_not_match_its_digest_is_refused_and_nothing_is_stored(registry, pusher, roots):
    name = f"{registry.host}/corrupt/img:1"
    pusher("tag", "fixture/layers:1", name)
    pusher("push", name)
    with FaultyProxy(registry.url) as proxy:
        proxy.rules.append(["GET", "/blobs/sha256:", "corrupt", 1000])
        puller = roots("puller", registry.env())
        r = puller("pull", f"{proxy.host}/corrupt/img:1", check=False)
        assert r.returncode == 1
        assert "digest mismatch" in r.stderr or "failed verification" in r.stderr
        assert puller("images", "-aq").stdout == ""
        engine = puller.engine()
        assert list(engine.content.walk()) == []
        assert list(engine.content.ingest_dir.iterdir()) == []


def test_zstd_push_then_pull(registry, pusher, roots):
    name = f"{registry.host}/zstd/img:1"
    pusher("tag", "fixture/layers:1", name)
    out = pusher("push", "--compression-format", "zstd", name).stdout
    digest = out.splitlines()[-1].split()[2]
    manifest = json.loads(_get(registry, f"/v2/zstd/img/manifests/{digest}",
                               accept="application/vnd.oci.image.manifest.v1+json"))
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert {layer["mediaType"] for layer in manifest["layers"]} == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    puller = roots("puller", registry.env())
    puller("pull", name)
    assert json.loads(puller("image", "inspect", name).stdout)[0]["Id"] == FIXTURE_ID
    assert tree(pusher, name) == tree(puller, name)
    assert f"{registry.host}/zstd/img@{digest}" in json.loads(pusher("image", "inspect", name).stdout)[0]["RepoDigests"]
    # pushed again: the zstd blobs kept from the first push are sent as they are, so the digest is the same
    again = pusher("push", "--compression-format", "zstd", name).stdout
    assert again.splitlines()[-1].split()[2] == digest


def test_cross_repository_mount(registry, pusher):
    pusher("tag", "fixture/layers:1", f"{registry.host}/first/img:1")
    pusher("push", f"{registry.host}/first/img:1")
    pusher("tag", "fixture/layers:1", f"{registry.host}/second/img:1")
    out = pusher("push", f"{registry.host}/second/img:1").stdout
    assert set(s[-1] for s in layer_lines(out).values()) == {"Mounted from first/img"}


def _get(registry, path: str, accept: str = "") -> bytes:
    import urllib.request

    req = urllib.request.Request(registry.url + path, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read()


def test_push_uncompressed_layers_gzips_them(registry, roots, tmp_path, busybox_tar):
    c = roots("pusher", registry.env())
    c("load", "-i", busybox_tar)
    name = f"{registry.host}/bb/busybox:1"
    c("tag", "busybox:latest", name)
    digest = c("push", name).stdout.splitlines()[-1].split()[2]
    manifest = json.loads(_get(registry, f"/v2/bb/busybox/manifests/{digest}",
                               accept="application/vnd.oci.image.manifest.v1+json"))
    for layer in manifest["layers"]:
        assert layer["mediaType"].endswith("gzip")
        blob = _get(registry, f"/v2/bb/busybox/blobs/{layer['digest']}")
        assert blob[:2] == b"\x1f\x8b"


def test_run_create_and_build_pull_a_missing_image(registry, pusher, roots, tmp_path):
    name = f"{registry.host}/run/img:1"
    pusher("tag", "fixture/layers:1", name)
    pusher("push", name)
    c = roots("runner", registry.env())
    r = c("run", "--rm", name)
    assert r.stdout == "alpha\n"
    assert r.stderr.splitlines()[0] == f"Unable to find image '{name}' locally"
    assert "1: Pulling from run/img" in r.stderr and f"Status: Downloaded newer image for {name}" in r.stderr
    assert "Using default tag" not in r.stderr
    r = c("run", "--rm", name)
    assert r.stdout == "alpha\n" and "Unable to find" not in r.stderr and "Pulling" not in r.stderr
    r = c("create", "--pull", "always", name)
    assert f"Status: Image is up to date for {name}" in r.stderr and len(r.stdout.strip()) == 64
    r = c("run", "--rm", "--pull", "never", f"{registry.host}/run/other:1", check=False)
    assert r.returncode == 125 and f"No such image: {registry.host}/run/other:1" in r.stderr
    r = c("run", "--rm", f"{registry.host}/run/other:1", check=False)
    assert r.returncode == 125 and "not found: manifest unknown" in r.stderr
    assert c("ps", "-aq").stdout.count("\n") == 1   # the created container only

    b = roots("builder", registry.env())
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {name}\nLABEL pulled=yes\n")
    out = b("build", "-t", "built:1", str(ctx)).stdout
    assert f"Status: Downloaded newer image for {name}" in out
    assert json.loads(b("image", "inspect", "built:1").stdout)[0]["Config"]["Labels"]["pulled"] == "yes"
    out = b("build", "--pull", "-t", "built:1", str(ctx)).stdout
    assert f"Status: Image is up to date for {name}" in out


def _request(registry, method: str, path: str, data: bytes | None = None, headers: dict | None = None):
    import urllib.request

    url = path if path.startswith("http") else registry.url + path
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, dict(resp.headers), resp.read()


def _put_blob(registry, repo: str, data: bytes) -> str:
    import hashlib

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _, headers, _ = _request(registry, "POST", f"/v2/{repo}/blobs/uploads/")
    location = headers["Location"]
    sep = "&" if "?" in location else "?"
    _request(registry, "PUT", f"{location}{sep}digest={digest}", data,
             {"Content-Type": "application/octet-stream"})
    return digest


def test_multi_platform_index_picks_the_host_or_the_asked_platform(registry, pusher, roots):
    import hashlib

    from barque.oci.platform import host_platform

    host = host_platform()
    other_arch = "arm64" if host.architecture != "arm64" else "amd64"
    repo = "multi/arch"
    pusher("tag", "fixture/layers:1", f"{registry.host}/{repo}:base")
    base_digest = pusher("push", f"{registry.host}/{repo}:base").stdout.splitlines()[-1].split()[2]
    _, headers, base_raw = _request(registry, "GET", f"/v2/{repo}/manifests/{base_digest}",
                                    headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                                             "application/vnd.docker.distribution.manifest.v2+json"})
    base = json.loads(base_raw)
    _, _, config_raw = _request(registry, "GET", f"/v2/{repo}/blobs/{base['config']['digest']}")
    config = json.loads(config_raw)
    config["architecture"] = other_arch
    config.pop("variant", None)
    other_config = json.dumps(config).encode()
    other_config_digest = _put_blob(registry, repo, other_config)
    other = dict(base)
    other["config"] = {**base["config"], "digest": other_config_digest, "size": len(other_config)}
    other_raw = json.dumps(other).encode()
    media_type = headers["Content-Type"]
    _request(registry, "PUT", f"/v2/{repo}/manifests/{other_arch}", other_raw, {"Content-Type": media_type})
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(other_raw).hexdigest(),
         "size": len(other_raw), "platform": {"os": "linux", "architecture": other_arch}},
        {"mediaType": media_type, "digest": base_digest, "size": len(base_raw),
         "platform": {"os": "linux", "architecture": host.architecture}},
    ]}
    index_raw = json.dumps(index).encode()
    index_digest = "sha256:" + hashlib.sha256(index_raw).hexdigest()
    _request(registry, "PUT", f"/v2/{repo}/manifests/multi", index_raw,
             {"Content-Type": "application/vnd.oci.image.index.v1+json"})

    name = f"{registry.host}/{repo}:multi"
    puller = roots("puller", registry.env())
    out = puller("pull", name).stdout
    assert f"Digest: {index_digest}" in out
    inspect = json.loads(puller("image", "inspect", name).stdout)[0]
    assert inspect["Id"] == FIXTURE_ID and inspect["RepoDigests"] == [f"{registry.host}/{repo}@{index_digest}"]

    other_root = roots("other", registry.env())
    other_root("pull", "--platform", f"linux/{other_arch}", name)
    inspect = json.loads(other_root("image", "inspect", name).stdout)[0]
    assert inspect["Id"] == other_config_digest and inspect["Architecture"] == other_arch
    r = other_root("pull", "--platform", "linux/s390x", name, check=False)
    assert r.returncode == 1 and "no matching manifest for linux/s390x" in r.stderr
