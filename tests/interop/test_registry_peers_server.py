"""Real clients against `barque registry serve`: skopeo copies images in and out (no auth, htpasswd, tokens, TLS) and
the round trip keeps the manifest and layers byte for byte; Debian's dockerd pushes to it, pulls back and runs the
image (no auth, and with the registry's token auth after `docker login`)."""

from __future__ import annotations

import json
import pytest

from tests import registry_support
from tests.conftest import FIXTURES, unique

pytestmark = pytest.mark.interop

registry_factory = registry_support.registry_factory   # fixture


def _auth_args(reg, direction: str, creds: bool = True) -> list[str]:
    """skopeo flags for `direction` ("src"/"dest") of a copy involving `reg`."""
    args = []
    if reg.scheme == "https":
        args += [f"--{direction}-cert-dir", str(reg.cert_dir)]
    else:
        args += [f"--{direction}-tls-verify=false"]
    if reg.users and creds:
        args += [f"--{direction}-creds", f"{reg.user}:{reg.password}"]
    return args


def _inspect_args(reg) -> list[str]:
    args = ["--cert-dir", str(reg.cert_dir)] if reg.scheme == "https" else ["--tls-verify=false"]
    if reg.users:
        args += ["--creds", f"{reg.user}:{reg.password}"]
    return args


def _blobs(manifest: dict) -> list[str]:
    return [manifest["config"]["digest"]] + [layer["digest"] for layer in manifest["layers"]]


@pytest.mark.parametrize("options", [
    {},
    {"auth": "htpasswd"},
    {"auth": "token", "tls": True},
    {"tls": True},
], ids=["plain", "htpasswd", "token-tls", "tls"])
@pytest.mark.parametrize("source", ["busybox", "docker-made"])
def test_skopeo_round_trip(skopeo, registry_factory, busybox_tar, tmp_path, options, source):
    reg = registry_factory(**options)
    archive = busybox_tar if source == "busybox" else FIXTURES / "docker-save-layers.tar"
    ref = f"docker://{reg.host}/interop/{source}:v1"
    skopeo("copy", *_auth_args(reg, "dest"), f"docker-archive:{archive}", ref)
    raw = skopeo("inspect", "--raw", *_inspect_args(reg), ref).stdout
    manifest = json.loads(raw)
    # out again, to a directory: the same manifest bytes and the same blobs
    out = tmp_path / "out"
    skopeo("copy", *_auth_args(reg, "src"), ref, f"dir:{out}")
    assert (out / "manifest.json").read_text() == raw
    for digest in _blobs(manifest):
        assert (out / digest.split(":")[1]).is_file(), digest
    # registry to registry, within the server (a cross-repository mount or HEAD-skip), by digest
    digest = json.loads(skopeo("inspect", *_inspect_args(reg), ref).stdout)["Digest"]
    copy = f"docker://{reg.host}/interop/copy:v1"
    skopeo("copy", *_auth_args(reg, "src"), *_auth_args(reg, "dest"), f"docker://{reg.host}/interop/{source}@{digest}",
           copy)
    assert skopeo("inspect", "--raw", *_inspect_args(reg), copy).stdout == raw
    tags = json.loads(skopeo("list-tags", *_inspect_args(reg), f"docker://{reg.host}/interop/{source}").stdout)
    assert tags["Tags"] == ["v1"]
    if options.get("auth"):
        # without credentials the registry refuses
        proc = skopeo("copy", *_auth_args(reg, "dest", creds=False),
                      f"docker-archive:{archive}", f"docker://{reg.host}/interop/denied:v1", check=False)
        assert proc.returncode != 0 and ("unauthorized" in proc.stderr.lower() or "401" in proc.stderr)


@pytest.mark.parametrize("auth", [None, "token"])
def test_docker_push_pull_run(docker, registry_factory, busybox_tar, auth):
    reg = registry_factory(auth=auth) if auth else registry_factory()
    loaded = docker.docker("load", "-i", busybox_tar).stdout
    assert "busybox:latest" in loaded
    image = f"{reg.host}/interop/{unique('bb')}:t"
    docker.docker("tag", "busybox:latest", image)
    if auth:
        out = docker.docker("login", "-u", reg.user, "--password-stdin", reg.host, input=reg.password)
        assert "Login Succeeded" in out.stdout
    try:
        pushed = docker.docker("push", image).stdout
        assert "digest: sha256:" in pushed
        docker.docker("rmi", image)
        pulled = docker.docker("pull", image).stdout
        assert "Downloaded newer image" in pulled or "Image is up to date" in pulled
        out = docker.docker("run", "--rm", "--network", "none", image, "echo", "hello from the barque registry")
        assert out.stdout.strip() == "hello from the barque registry"
        repo_digests = docker.inspect("image", image)["RepoDigests"]
        assert any(d.startswith(f"{reg.host}/interop/") for d in repo_digests)
        digest = repo_digests[0].split("@")[1]
        r = reg.request("HEAD", f"/v2/{image.split('/', 1)[1].split(':')[0]}/manifests/{digest}",
                        auth="token" if auth else None,
                        scope=f"repository:{image.split('/', 1)[1].split(':')[0]}:pull")
        assert r.status == 200
    finally:
        docker.docker("rmi", "-f", image, check=False)
        if auth:
            docker.docker("logout", reg.host, check=False)

