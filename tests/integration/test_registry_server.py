"""`barque registry serve` driven over HTTP: a compact conformance-style suite of the OCI distribution spec 1.1
(push in all three styles, pull with Range, content discovery, referrers, management), its error cases, auth
(htpasswd Basic and the registry's own tokens), TLS, read-only mode and the config file."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time

import pytest

from tests import registry_support
from tests.registry_support import BARQUE, start_registry

registry = registry_support.registry                    # fixtures
registry_factory = registry_support.registry_factory

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'


def sha(data: bytes, alg: str = "sha256") -> str:
    return f"{alg}:{hashlib.new(alg, data).hexdigest()}"


def push_blob(reg, repo: str, data: bytes, alg: str = "sha256", **kw) -> str:
    d = sha(data, alg)
    r = reg.request("POST", f"/v2/{repo}/blobs/uploads/?digest={d}", data,
                    {"Content-Type": "application/octet-stream"}, **kw)
    assert r.status == 201, (r.status, r.body)
    return d


def desc(media_type: str, data: bytes, **extra) -> dict:
    return {"mediaType": media_type, "digest": sha(data), "size": len(data), **extra}


def manifest_doc(config: bytes = CONFIG, layers: tuple[bytes, ...] = (b"layer-one",), media_type: str = OCI_MANIFEST,
                 config_type: str = "application/vnd.oci.image.config.v1+json", **extra) -> bytes:
    layer_type = ("application/vnd.docker.image.rootfs.diff.tar.gzip" if media_type == DOCKER_MANIFEST
                  else "application/vnd.oci.image.layer.v1.tar")
    if media_type == DOCKER_MANIFEST:
        config_type = "application/vnd.docker.container.image.v1+json"
    doc = {"schemaVersion": 2, "mediaType": media_type, "config": desc(config_type, config),
           "layers": [desc(layer_type, layer) for layer in layers], **extra}
    return json.dumps(doc).encode()


def push_image(reg, repo: str, tag: str | None = "v1", layers: tuple[bytes, ...] = (b"layer-one",),
               media_type: str = OCI_MANIFEST, config: bytes = CONFIG, **extra) -> tuple[bytes, str]:
    for blob in (config, *layers):
        push_blob(reg, repo, blob)
    body = manifest_doc(config, layers, media_type, **extra)
    ref = tag or sha(body)
    r = reg.request("PUT", f"/v2/{repo}/manifests/{ref}", body, {"Content-Type": media_type})
    assert r.status == 201, (r.status, r.body)
    assert r.header("Docker-Content-Digest") == sha(body)
    return body, sha(body)


def error_code(r) -> str:
    assert r.header("Content-Type").startswith("application/json"), r.headers
    body = r.json()
    assert set(body["errors"][0]) <= {"code", "message", "detail"}
    return body["errors"][0]["code"]


# ------------------------------------------------------------------------------------------------- base

def test_base_endpoint_and_headers(registry):
    r = registry.request("GET", "/v2/")
    assert r.status == 200 and r.header("Docker-Distribution-API-Version") == "registry/2.0"
    r = registry.request("GET", "/v2/x/unknown/route/here")
    assert r.status == 404 and r.header("Docker-Distribution-API-Version") == "registry/2.0"
    r = registry.request("GET", f"/v2/x/blobs/{sha(b'none')}")
    assert r.status == 404 and error_code(r) == "BLOB_UNKNOWN"


# ------------------------------------------------------------------------------------------------- push

def test_monolithic_post_and_pull_with_range(registry):
    data = os.urandom(300_000)
    d = push_blob(registry, "mono/repo", data)
    r = registry.request("GET", f"/v2/mono/repo/blobs/{d}")
    assert r.status == 200 and r.body == data
    assert r.header("Docker-Content-Digest") == d and r.header("Content-Type") == "application/octet-stream"
    r = registry.request("HEAD", f"/v2/mono/repo/blobs/{d}")
    assert r.status == 200 and r.body == b"" and r.header("Content-Length") == str(len(data))
    r = registry.request("GET", f"/v2/mono/repo/blobs/{d}", headers={"Range": "bytes=1000-1999"})
    assert r.status == 206 and r.body == data[1000:2000]
    assert r.header("Content-Range") == f"bytes 1000-1999/{len(data)}"
    r = registry.request("GET", f"/v2/mono/repo/blobs/{d}", headers={"Range": "bytes=299000-"})
    assert r.status == 206 and r.body == data[299000:]
    r = registry.request("GET", f"/v2/mono/repo/blobs/{d}", headers={"Range": f"bytes={len(data) + 5}-"})
    assert r.status == 416


def test_post_then_put(registry):
    r = registry.request("POST", "/v2/pp/blobs/uploads/")
    assert r.status == 202
    location, uid = r.header("Location"), r.header("Docker-Upload-UUID")
    assert uid and location.endswith(uid) and r.header("Range") == "0-0"
    data = b"post then put"
    r = registry.request("PUT", f"{location}?digest={sha(data)}", data, {"Content-Type": "application/octet-stream"})
    assert r.status == 201 and r.header("Location") == f"/v2/pp/blobs/{sha(data)}"
    assert registry.request("GET", f"/v2/pp/blobs/{sha(data)}").body == data
    # without the trailing slash too
    assert registry.request("POST", "/v2/pp/blobs/uploads").status == 202


def test_chunked_upload_in_order_out_of_order_status(registry):
    data = os.urandom(3 * 1024 * 1024 + 7)
    a, b, c = data[:1_000_000], data[1_000_000:2_500_000], data[2_500_000:]
    r = registry.request("POST", "/v2/chunked/blobs/uploads/", headers={"Content-Length": "0"})
    location = r.header("Location")
    r = registry.request("PATCH", location, a, {"Content-Type": "application/octet-stream",
                                                "Content-Range": f"0-{len(a) - 1}"})
    assert r.status == 202 and r.header("Range") == f"0-{len(a) - 1}" and r.header("Location")
    location = r.header("Location")
    # out of order: 416, and the session is untouched
    r = registry.request("PATCH", location, c, {"Content-Range": f"{len(a) + len(b)}-{len(data) - 1}"})
    assert r.status == 416 and r.header("Range") == f"0-{len(a) - 1}"
    r = registry.request("GET", location)
    assert r.status == 204 and r.header("Range") == f"0-{len(a) - 1}"
    assert r.header("Docker-Upload-UUID") and r.header("Location")
    # a streamed chunk (no Content-Range) continues it
    r = registry.request("PATCH", location, b)
    assert r.status == 202 and r.header("Range") == f"0-{len(a) + len(b) - 1}"
    # the final chunk comes with the PUT
    r = registry.request("PUT", f"{location}?digest={sha(data)}", c,
                         {"Content-Range": f"{len(a) + len(b)}-{len(data) - 1}"})
    assert r.status == 201, r.body
    assert registry.request("GET", f"/v2/chunked/blobs/{sha(data)}").body == data
    # the session is gone
    assert error_code(registry.request("GET", location)) == "BLOB_UPLOAD_UNKNOWN"


def test_cancel_upload(registry):
    location = registry.request("POST", "/v2/cancel/blobs/uploads/").header("Location")
    registry.request("PATCH", location, b"partial")
    r = registry.request("DELETE", location)
    assert r.status == 204
    r = registry.request("GET", location)
    assert r.status == 404 and error_code(r) == "BLOB_UPLOAD_UNKNOWN"
    assert list((registry.root / "uploads").iterdir()) == []


def test_sha512_blob_and_manifest(registry):
    data = b"sha512 content"
    d = push_blob(registry, "s512", data, alg="sha512")
    assert d.startswith("sha512:")
    r = registry.request("GET", f"/v2/s512/blobs/{d}")
    assert r.body == data and r.header("Docker-Content-Digest") == d
    push_blob(registry, "s512", CONFIG)
    push_blob(registry, "s512", b"layer-one")
    body = manifest_doc()
    r = registry.request("PUT", f"/v2/s512/manifests/{sha(body, 'sha512')}", body, {"Content-Type": OCI_MANIFEST})
    assert r.status == 201 and r.header("Docker-Content-Digest") == sha(body, "sha512")
    assert registry.request("GET", f"/v2/s512/manifests/{sha(body, 'sha512')}").body == body


def test_cross_repository_mount(registry):
    d = push_blob(registry, "src/repo", b"mount me")
    # a blob is visible only where it was pushed
    assert registry.request("HEAD", f"/v2/dst/repo/blobs/{d}").status == 404
    r = registry.request("POST", f"/v2/dst/repo/blobs/uploads/?mount={d}&from=src/repo")
    assert r.status == 201 and r.header("Location") == f"/v2/dst/repo/blobs/{d}"
    assert registry.request("GET", f"/v2/dst/repo/blobs/{d}").body == b"mount me"
    # unknown blob, or unknown source: an ordinary session instead
    r = registry.request("POST", f"/v2/dst/repo/blobs/uploads/?mount={sha(b'nope')}&from=src/repo")
    assert r.status == 202 and r.header("Docker-Upload-UUID")


# -------------------------------------------------------------------------------------------- manifests

def test_manifest_push_pull_by_tag_and_digest(registry):
    body, d = push_image(registry, "img/oci", "v1")
    for ref in ("v1", d):
        r = registry.request("GET", f"/v2/img/oci/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert r.status == 200 and r.body == body
        assert r.header("Content-Type") == OCI_MANIFEST and r.header("Docker-Content-Digest") == d
        r = registry.request("HEAD", f"/v2/img/oci/manifests/{ref}")
        assert r.status == 200 and r.header("Content-Length") == str(len(body)) and r.body == b""
    # the manifest is a blob of the repository too (as in distribution)
    assert registry.request("GET", f"/v2/img/oci/blobs/{d}").body == body
    # Docker schema 2, stored and returned with its own media type
    body2, d2 = push_image(registry, "img/docker", "latest", media_type=DOCKER_MANIFEST)
    r = registry.request("GET", "/v2/img/docker/manifests/latest")
    assert r.body == body2 and r.header("Content-Type") == DOCKER_MANIFEST
    r = registry.request("GET", "/v2/img/oci/manifests/nosuchtag")
    assert r.status == 404 and error_code(r) == "MANIFEST_UNKNOWN"


def test_index_and_manifest_list(registry):
    _, child1 = push_image(registry, "multi", None, layers=(b"amd64-layer",))
    _, child2 = push_image(registry, "multi", None, layers=(b"arm64-layer",))
    for media_type, child_type in ((OCI_INDEX, OCI_MANIFEST), (DOCKER_LIST, DOCKER_MANIFEST)):
        sizes = {d: int(registry.request("HEAD", f"/v2/multi/manifests/{d}").header("Content-Length"))
                 for d in (child1, child2)}
        doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": d, "size": sizes[d],
             "platform": {"architecture": arch, "os": "linux"}}
            for d, arch in ((child1, "amd64"), (child2, "arm64"))]}
        body = json.dumps(doc).encode()
        r = registry.request("PUT", "/v2/multi/manifests/list", body, {"Content-Type": media_type})
        assert r.status == 201, r.body
        r = registry.request("GET", "/v2/multi/manifests/list")
        assert r.body == body and r.header("Content-Type") == media_type
    # an index naming a manifest the repository lacks
    doc["manifests"][0]["digest"] = sha(b"missing")
    r = registry.request("PUT", "/v2/multi/manifests/bad", json.dumps(doc).encode(), {"Content-Type": DOCKER_LIST})
    assert r.status == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"


def test_manifest_errors_store_nothing(registry):
    push_blob(registry, "bad", CONFIG)
    # a layer the repository does not have
    body = manifest_doc(layers=(b"never pushed",))
    r = registry.request("PUT", "/v2/bad/manifests/v1", body, {"Content-Type": OCI_MANIFEST})
    assert r.status == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    assert r.json()["errors"][0]["detail"] == sha(b"never pushed")
    # a blob of another repository does not count
    push_blob(registry, "other", b"elsewhere")
    r = registry.request("PUT", "/v2/bad/manifests/v1", manifest_doc(layers=(b"elsewhere",)),
                         {"Content-Type": OCI_MANIFEST})
    assert error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    # invalid JSON, wrong shape, schema 1
    for junk, ctype in ((b"{not json", OCI_MANIFEST), (b'{"schemaVersion": 2, "mediaType": "%s"}' % OCI_MANIFEST.encode(),
                                                      OCI_MANIFEST),
                        (b'{"schemaVersion": 1, "name": "x"}', "application/vnd.docker.distribution.manifest.v1+json")):
        r = registry.request("PUT", "/v2/bad/manifests/v1", junk, {"Content-Type": ctype})
        assert r.status == 400 and error_code(r) == "MANIFEST_INVALID", r.body
    # a digest reference that does not match the body
    push_blob(registry, "bad", b"layer-one")
    body = manifest_doc()
    r = registry.request("PUT", f"/v2/bad/manifests/{sha(b'other')}", body, {"Content-Type": OCI_MANIFEST})
    assert r.status == 400 and error_code(r) == "DIGEST_INVALID"
    # bigger than 4 MiB
    r = registry.request("PUT", "/v2/bad/manifests/huge", b" " * (4 * 1024 * 1024 + 1), {"Content-Type": OCI_MANIFEST})
    assert r.status == 413 and error_code(r) == "SIZE_INVALID"
    assert registry.request("GET", "/v2/bad/tags/list").json()["tags"] == []
    assert registry.request("GET", f"/v2/bad/manifests/{sha(body)}").status == 404


def test_digest_mismatch_stores_nothing(registry):
    r = registry.request("POST", f"/v2/dm/blobs/uploads/?digest={sha(b'claimed')}", b"actual content")
    assert r.status == 400 and error_code(r) == "DIGEST_INVALID"
    assert registry.request("HEAD", f"/v2/dm/blobs/{sha(b'actual content')}").status == 404
    assert registry.request("HEAD", f"/v2/dm/blobs/{sha(b'claimed')}").status == 404
    assert not any((registry.root / "blobs").rglob("*.*")) and not any((registry.root / "blobs").glob("*/*"))
    assert list((registry.root / "uploads").iterdir()) == []
    # a malformed digest
    r = registry.request("POST", "/v2/dm/blobs/uploads/?digest=sha256:xyz", b"x")
    assert r.status == 400 and error_code(r) == "DIGEST_INVALID"
    r = registry.request("GET", "/v2/dm/blobs/md5:abc")
    assert r.status == 400 and error_code(r) == "DIGEST_INVALID"


def test_names_refused(registry):
    d = sha(b"x")
    for name in ("UPPER/case", "a//b", "-lead", "trail-", "a/b/", "a..b", "a/./b", "a%2F..%2Fb", "%2e%2e/x",
                 "a" * 256, "a/" + "b" * 254):
        r = registry.request("GET", f"/v2/{name}/blobs/{d}")
        assert r.status in (400, 404), (name, r.status)
        if r.status == 400:
            assert error_code(r) == "NAME_INVALID"
    r = registry.request("POST", "/v2/Bad/blobs/uploads/")
    assert r.status == 400 and error_code(r) == "NAME_INVALID"
    r = registry.request("POST", "/v2/" + "a" * 256 + "/blobs/uploads/")
    assert r.status == 400 and error_code(r) == "NAME_INVALID"
    assert list((registry.root / "uploads").iterdir()) == []
    # the longest valid name and the separators of the grammar
    for name in ("a" * 255, "a.b_c__d---e/f0/9z"):
        assert registry.request("POST", f"/v2/{name}/blobs/uploads/").status == 202


def test_oversized_blob_refused(registry_factory):
    reg = registry_factory(extra_args=["--max-blob-size", "1000"])
    r = reg.request("POST", f"/v2/big/blobs/uploads/?digest={sha(b'x' * 2000)}", b"x" * 2000)
    assert r.status == 413 and error_code(r) == "SIZE_INVALID"
    location = reg.request("POST", "/v2/big/blobs/uploads/").header("Location")
    assert reg.request("PATCH", location, b"y" * 600).status == 202
    r = reg.request("PATCH", location, b"y" * 600)
    assert r.status == 413
    assert reg.request("GET", location).status == 404   # the session is discarded
    assert list((reg.root / "uploads").iterdir()) == []


# ------------------------------------------------------------------------------------- content discovery

def test_tags_list_pagination(registry):
    for tag in ("c", "a", "e", "b", "d"):
        push_image(registry, "paged", tag)
    r = registry.request("GET", "/v2/paged/tags/list")
    assert r.json() == {"name": "paged", "tags": ["a", "b", "c", "d", "e"]} and r.header("Link") is None
    r = registry.request("GET", "/v2/paged/tags/list?n=2")
    assert r.json()["tags"] == ["a", "b"]
    assert r.header("Link") == '</v2/paged/tags/list?n=2&last=b>; rel="next"'
    r = registry.request("GET", r.header("Link")[1:].split(">")[0])
    assert r.json()["tags"] == ["c", "d"]
    r = registry.request("GET", "/v2/paged/tags/list?n=2&last=d")
    assert r.json()["tags"] == ["e"] and r.header("Link") is None
    assert registry.request("GET", "/v2/paged/tags/list?last=b").json()["tags"] == ["c", "d", "e"]
    assert registry.request("GET", "/v2/paged/tags/list?n=0").json()["tags"] == []
    assert registry.request("GET", "/v2/paged/tags/list?n=-1").status == 400
    r = registry.request("GET", "/v2/never/pushed/tags/list")
    assert r.status == 404 and error_code(r) == "NAME_UNKNOWN"


def test_catalog_pagination(registry):
    for repo in ("zeta", "alpha/one", "beta"):
        push_image(registry, repo, "t")
    push_blob(registry, "only/blobs", b"no manifest here")
    assert registry.request("GET", "/v2/_catalog").json() == {"repositories": ["alpha/one", "beta", "zeta"]}
    r = registry.request("GET", "/v2/_catalog?n=1")
    assert r.json()["repositories"] == ["alpha/one"]
    assert r.header("Link") == '</v2/_catalog?n=1&last=alpha%2Fone>; rel="next"'
    assert registry.request("GET", "/v2/_catalog?n=5&last=beta").json()["repositories"] == ["zeta"]


def test_referrers_and_subject(registry):
    subject_body, subject = push_image(registry, "ref", "v1")
    r = registry.request("GET", f"/v2/ref/referrers/{subject}")
    assert r.status == 200 and r.header("Content-Type") == OCI_INDEX
    assert r.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    empty = b"{}"
    push_blob(registry, "ref", empty)
    subj = {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(subject_body)}
    refs = {}
    for artifact_type, blob in (("application/vnd.example.sbom", b"sbom"), ("application/vnd.example.sig", b"sig")):
        push_blob(registry, "ref", blob)
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
               "config": desc("application/vnd.oci.empty.v1+json", empty),
               "layers": [desc("application/octet-stream", blob)], "subject": subj,
               "annotations": {"org.example.kind": artifact_type}}
        body = json.dumps(doc).encode()
        r = registry.request("PUT", f"/v2/ref/manifests/{sha(body)}", body, {"Content-Type": OCI_MANIFEST})
        assert r.status == 201 and r.header("OCI-Subject") == subject
        refs[artifact_type] = (sha(body), len(body))
    # an artifact typed by its config media type only
    cfg = b'{"kind":"custom"}'
    push_blob(registry, "ref", cfg)
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": desc("application/vnd.example.config+json", cfg), "layers": [],
                       "subject": subj}).encode()
    assert registry.request("PUT", f"/v2/ref/manifests/{sha(body)}", body,
                            {"Content-Type": OCI_MANIFEST}).status == 201
    r = registry.request("GET", f"/v2/ref/referrers/{subject}")
    found = {m["digest"]: m for m in r.json()["manifests"]}
    assert len(found) == 3 and r.header("OCI-Filters-Applied") is None
    sig = found[refs["application/vnd.example.sig"][0]]
    assert sig == {"mediaType": OCI_MANIFEST, "digest": refs["application/vnd.example.sig"][0],
                   "size": refs["application/vnd.example.sig"][1], "artifactType": "application/vnd.example.sig",
                   "annotations": {"org.example.kind": "application/vnd.example.sig"}}
    assert found[sha(body)]["artifactType"] == "application/vnd.example.config+json"
    r = registry.request("GET", f"/v2/ref/referrers/{subject}?artifactType=application/vnd.example.sbom")
    assert [m["digest"] for m in r.json()["manifests"]] == [refs["application/vnd.example.sbom"][0]]
    assert r.header("OCI-Filters-Applied") == "artifactType"
    assert registry.request("GET", "/v2/ref/referrers/sha256:bad").status == 400


# -------------------------------------------------------------------------------------------- management

def test_deletes(registry):
    body, d = push_image(registry, "del", "v1")
    r = registry.request("PUT", "/v2/del/manifests/v2", body, {"Content-Type": OCI_MANIFEST})
    assert r.status == 201
    # delete a tag: the other tag and the digest stay
    assert registry.request("DELETE", "/v2/del/manifests/v2").status == 202
    assert registry.request("GET", "/v2/del/tags/list").json()["tags"] == ["v1"]
    assert registry.request("GET", f"/v2/del/manifests/{d}").status == 200
    # delete by digest: the manifest and its tags
    assert registry.request("DELETE", f"/v2/del/manifests/{d}").status == 202
    assert registry.request("GET", f"/v2/del/manifests/{d}").status == 404
    assert registry.request("GET", "/v2/del/manifests/v1").status == 404
    r = registry.request("DELETE", f"/v2/del/manifests/{d}")
    assert r.status == 404 and error_code(r) == "MANIFEST_UNKNOWN"
    layer = sha(b"layer-one")
    assert registry.request("DELETE", f"/v2/del/blobs/{layer}").status == 202
    assert registry.request("GET", f"/v2/del/blobs/{layer}").status == 404
    r = registry.request("DELETE", f"/v2/del/blobs/{layer}")
    assert r.status == 404 and error_code(r) == "BLOB_UNKNOWN"


def test_delete_disabled_and_read_only(registry_factory, tmp_path):
    reg = registry_factory()
    _, d = push_image(reg, "nodel", "v1")
    for path in (f"/v2/nodel/manifests/{d}", "/v2/nodel/manifests/v1", f"/v2/nodel/blobs/{sha(b'layer-one')}"):
        r = reg.request("DELETE", path)
        assert r.status == 405 and error_code(r) == "UNSUPPORTED"
    assert reg.request("GET", f"/v2/nodel/manifests/{d}").status == 200
    root = reg.root
    reg.stop()
    ro = registry_factory(read_only=True, root=root)
    assert ro.request("GET", "/v2/nodel/manifests/v1").status == 200
    for method, path in (("POST", "/v2/nodel/blobs/uploads/"), ("PUT", "/v2/nodel/manifests/v2"),
                         ("DELETE", "/v2/nodel/manifests/v1")):
        r = ro.request(method, path, b"{}")
        assert r.status == 405 and error_code(r) == "UNSUPPORTED"


# ---------------------------------------------------------------------------------------------------- auth

def test_htpasswd_basic_auth(registry_factory):
    reg = registry_factory(auth="htpasswd")
    for headers in ({}, {"Authorization": "Basic " + __import__("base64").b64encode(b"alice:wrong").decode()},
                    {"Authorization": "Basic !!!"}):
        r = reg.request("GET", "/v2/", headers=headers)
        assert r.status == 401 and error_code(r) == "UNAUTHORIZED"
        assert r.header("WWW-Authenticate") == 'Basic realm="barque-registry"'
    r = reg.request("POST", "/v2/secure/blobs/uploads/")
    assert r.status == 401 and r.header("WWW-Authenticate").startswith("Basic ")
    assert reg.request("GET", "/v2/", auth="basic").status == 200
    push_blob(reg, "secure", b"authorised", auth="basic")
    assert reg.request("GET", f"/v2/secure/blobs/{sha(b'authorised')}", auth="basic").body == b"authorised"
    assert reg.request("GET", f"/v2/secure/blobs/{sha(b'authorised')}").status == 401


def test_token_auth(registry_factory):
    reg = registry_factory(auth="token", anonymous_pull=True)
    r = reg.request("GET", "/v2/")
    assert r.status == 401
    assert r.header("WWW-Authenticate") == f'Bearer realm="{reg.url}/token",service="barque-registry"'
    r = reg.request("POST", "/v2/tok/repo/blobs/uploads/")
    assert r.status == 401 and error_code(r) == "UNAUTHORIZED"
    assert r.header("WWW-Authenticate") == (f'Bearer realm="{reg.url}/token",service="barque-registry",'
                                            'scope="repository:tok/repo:pull,push"')
    # the token endpoint
    r = reg.request("GET", "/token?service=barque-registry&scope=repository:tok/repo:pull,push", auth="basic")
    assert r.status == 200
    answer = r.json()
    assert answer["token"] == answer["access_token"] and answer["expires_in"] == 300 and answer["issued_at"]
    claims = json.loads(__import__("base64").urlsafe_b64decode(answer["token"].split(".")[1] + "=="))
    assert claims["access"] == [{"type": "repository", "name": "tok/repo", "actions": ["pull", "push"]}]
    bad = reg.request("GET", "/token?service=barque-registry&scope=repository:tok/repo:pull", auth=("alice", "x"))
    assert bad.status == 401
    # push with the token, pull anonymously with a pull-only token
    d = push_blob(reg, "tok/repo", b"token pushed", auth="token", scope="repository:tok/repo:pull,push")
    anon = reg.token("repository:tok/repo:pull,push", user=None)
    assert json.loads(__import__("base64").urlsafe_b64decode(anon.split(".")[1] + "=="))["access"] == [
        {"type": "repository", "name": "tok/repo", "actions": ["pull"]}]
    r = reg.request("GET", f"/v2/tok/repo/blobs/{d}", headers={"Authorization": f"Bearer {anon}"})
    assert r.status == 200 and r.body == b"token pushed"
    r = reg.request("POST", "/v2/tok/repo/blobs/uploads/", headers={"Authorization": f"Bearer {anon}"})
    assert r.status == 401 and 'error="insufficient_scope"' in r.header("WWW-Authenticate")
    # a token for one repository does not open another
    r = reg.request("GET", f"/v2/other/blobs/{d}", auth="token", scope="repository:tok/repo:pull")
    assert r.status == 401
    # a tampered token
    head, payload, sig = reg.token("repository:tok/repo:pull").split(".")
    forged = __import__("base64").urlsafe_b64encode(json.dumps(
        {"iss": "barque-registry", "aud": "barque-registry", "exp": time.time() + 99, "sub": "mallory",
         "access": [{"type": "repository", "name": "tok/repo", "actions": ["push"]}]}).encode()).decode().rstrip("=")
    r = reg.request("POST", "/v2/tok/repo/blobs/uploads/", headers={"Authorization": f"Bearer {head}.{forged}.{sig}"})
    assert r.status == 401 and 'error="invalid_token"' in r.header("WWW-Authenticate")
    # OAuth2 password grant (POST), as containerd uses
    form = b"grant_type=password&username=alice&password=secret&service=barque-registry&scope=repository:tok/repo:pull"
    r = reg.request("POST", "/token", form, {"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 200 and r.json()["access_token"]
    # the key is kept private in the root
    assert (reg.root / "token.key").stat().st_mode & 0o777 == 0o600


def test_tls(registry_factory):
    reg = registry_factory(tls=True, auth="htpasswd")
    assert reg.url.startswith("https://127.0.0.1:")
    assert reg.request("GET", "/v2/", auth="basic").status == 200
    push_blob(reg, "tls/repo", b"over tls", auth="basic")
    assert reg.request("GET", f"/v2/tls/repo/blobs/{sha(b'over tls')}", auth="basic").body == b"over tls"
    # plain HTTP to the TLS port is refused
    import urllib.request
    with pytest.raises(Exception):
        urllib.request.urlopen(f"http://{reg.host}/v2/", timeout=5).read()


# ------------------------------------------------------------------------------------------ server process

def test_sigterm_stops_cleanly_and_config_file(tmp_path):
    cfg = tmp_path / "registry.yaml"
    cfg.write_text(f"addr: 127.0.0.1:1\nroot: {tmp_path / 'cfgroot'}\nread-only: true\ndelete-enabled: true\n")
    reg = start_registry(tmp_path / "w", extra_args=["--config", str(cfg)], root=tmp_path / "cfgroot")
    try:
        # --addr from the command line (127.0.0.1:0) overrode the file's; read-only came from the file
        assert reg.request("GET", "/v2/").status == 200
        assert reg.request("POST", "/v2/x/blobs/uploads/").status == 405
        assert (tmp_path / "cfgroot" / "registry.db").is_file()
    finally:
        assert reg.stop() == 0
    cfg.write_text("no-such-setting: 1\n")
    proc = subprocess.run(BARQUE + ["registry", "serve", "--config", str(cfg)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0 and "unknown setting 'no-such-setting'" in proc.stderr
