"""The OCI distribution-spec conformance suite (github.com/opencontainers/distribution-spec, conformance/), replayed
against `barque registry serve`: the same requests in the same order, the same data (setup.go's configs, manifests
with ``data`` and ``newUnspecifiedField`` descriptor fields, the base64 layer tarball, the referrers artifacts), and
the same assertions (accepted statuses, required headers) as 01_pull_test.go, 02_push_test.go,
03_discovery_test.go and 04_management_test.go.

The suite is run as its CI runs it: all four workflows in one namespace, in order, once with
OCI_DELETE_MANIFEST_BEFORE_BLOBS on (the default) and once off. barque mounts a blob without ``from`` when a
repository the client may pull holds it (run the suite with OCI_AUTOMATIC_CROSSMOUNT=1: that request answers 201).

A second part replays requests of the suite's newer runner (conformance/run.go, api.go) where they ask more of a
registry: Range GETs of blobs, sha512 blobs in every upload style, the empty blob, bad digests, uploads sent with
``Transfer-Encoding: chunked`` (what Go's client sends for a body of unknown length), and manifest pushes with
``?tag=``.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import random
import string
import urllib.parse
import uuid
from dataclasses import dataclass, field

import pytest

from tests import registry_support

registry_factory = registry_support.registry_factory   # fixture

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
ERROR_CODES = {"BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
               "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "MANIFEST_UNVERIFIED",
               "NAME_INVALID", "NAME_UNKNOWN", "SIZE_INVALID", "TAG_INVALID", "UNAUTHORIZED", "DENIED",
               "UNSUPPORTED"}
# setup.go's layerBase64String: a gzipped tarball of one text file
LAYER = base64.b64decode(
    "H4sIAAAAAAAAA+3OQQrCMBCF4a49xXgBSUnaHMCTRBptQRNpp6i3t0UEV7oqIv7fYgbmzeJpHHSjVy0"
    "WZCa1c/MufWVe94N3RWlrZ72x3k/30nhbFWKWLPU0Dhp6keJ8im//PuU/6pZH2WVtYx8b0Sz7LjWSR5VLG6YRBumSzOlGtjkd+qD"
    "jMWiX07Befbs7AAAAAAAAAAAAAAAAAPyzO34MnqoAKAAA")
NONEXISTENT_MANIFEST = ".INVALID_MANIFEST_NAME"
TEST_TAG = "tagtest0"
EMPTY_LAYER_TAG = "emptylayer"
ANNOTATION = "org.opencontainers.conformance.test"
ART_A = "application/vnd.nhl.peanut.butter.bagel"
ART_B = "application/vnd.nba.strawberry.jam.croissant"
ART_INDEX = "application/vnd.food.stand"


def sha(data: bytes, alg: str = "sha256") -> str:
    return f"{alg}:{hashlib.new(alg, data).hexdigest()}"


def go_json(doc) -> bytes:
    """json.MarshalIndent(v, "", "\\t") as the suite serialises its documents."""
    return json.dumps(doc, indent="\t", ensure_ascii=False).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def descriptor(media_type: str, data: bytes, *, data_field: bytes | None = None, unspecified: bytes | None = None,
               **extra) -> dict:
    """image.go's descriptor: mediaType, digest, size, [annotations], [data], newUnspecifiedField (null if nil)."""
    d = {"mediaType": media_type, "digest": sha(data), "size": len(data), **extra}
    if data_field is not None:
        d["data"] = b64(data_field)
    d["newUnspecifiedField"] = b64(unspecified) if unspecified is not None else None
    return d


def subject_of(manifest: bytes) -> dict:
    return descriptor(OCI_MANIFEST, manifest)


@dataclass
class Blob:
    content: bytes

    @property
    def digest(self) -> str:
        return sha(self.content)

    @property
    def length(self) -> str:
        return str(len(self.content))


@dataclass
class Data:
    """setup.go's init(): five configs and five manifests (one per workflow), the push test's manifest without
    layers, the chunked blob, and the referrers artifacts whose subject is manifests[4] (C's is manifests[3])."""

    configs: list[Blob] = field(default_factory=list)
    manifests: list[Blob] = field(default_factory=list)

    def __post_init__(self) -> None:
        letters = string.ascii_letters + string.digits + "-"
        for _ in range(5):
            author = "".join(random.choice(letters) for _ in range(16))
            cfg = {"author": author, "architecture": "amd64", "os": "linux",
                   "rootfs": {"type": "layers", "diff_ids": []}}
            self.configs.append(Blob(go_json(cfg)))
        layers = [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", LAYER)]
        for i in range(5):
            m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                 "config": descriptor(OCI_CONFIG, self.configs[i].content, data_field=self.configs[i].content,
                                      unspecified=b"hello world"),
                 "layers": layers}
            self.manifests.append(Blob(go_json(m)))
        self.empty_layer_manifest = Blob(go_json({
            "schemaVersion": 2,
            "config": descriptor(OCI_CONFIG, self.configs[1].content, data_field=self.configs[1].content,
                                 unspecified=b"hello world"),
            "layers": []}))
        self.blob_a = Blob(random.randbytes(42))
        self.set_chunked_blob(42)
        self.empty_json = Blob(b"{}")
        self.ref_blob_a = Blob(b"NHL Peanut Butter on my NHL bagel")
        self.ref_blob_b = Blob(b"NBA Strawberry Jam on my NBA croissant")
        empty = descriptor(OCI_EMPTY, b"{}")
        subject4 = subject_of(self.manifests[4].content)
        self.annotation_values: dict[str, str] = {}

        def artifact(config: dict, layers: list, subject: dict, note: str | None, artifact_type: str | None = None):
            doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
            if artifact_type:
                doc["artifactType"] = artifact_type
            doc.update({"config": config, "layers": layers, "subject": subject})
            if note:
                doc["annotations"] = {ANNOTATION: note}
            blob = Blob(go_json(doc))
            if note:
                self.annotation_values[blob.digest] = note
            return blob

        self.refs_a_config = artifact(descriptor(ART_A, self.ref_blob_a.content), [empty], subject4, "test config a")
        self.refs_b_config = artifact(descriptor(ART_B, self.ref_blob_b.content), [empty], subject4, "test config b")
        self.refs_a_layer = artifact(empty, [descriptor(ART_A, self.ref_blob_a.content)], subject4, "test layer a",
                                     ART_A)
        self.refs_b_layer = artifact(empty, [descriptor(ART_B, self.ref_blob_b.content)], subject4, "test layer b",
                                     ART_B)
        self.refs_c_layer = artifact(empty, [descriptor(ART_B, self.ref_blob_b.content)],
                                     subject_of(self.manifests[3].content), None, ART_B)
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": ART_INDEX,
                 "manifests": [descriptor(OCI_MANIFEST, self.refs_a_config.content),
                               descriptor(OCI_MANIFEST, self.refs_a_layer.content)],
                 "subject": subject4, "annotations": {ANNOTATION: "test index"}}
        self.refs_index = Blob(go_json(index))
        self.annotation_values[self.refs_index.digest] = "test index"
        self.dummy_digest = sha(b"hello world")

    def set_chunked_blob(self, size: int) -> None:
        self.blob_b = Blob(random.randbytes(size))
        half = size // 2 + 1
        self.chunk1, self.chunk2 = self.blob_b.content[:half], self.blob_b.content[half:]
        self.chunk1_range = f"0-{len(self.chunk1) - 1}"
        self.chunk2_range = f"{len(self.chunk1)}-{size - 1}"


@dataclass
class Resp:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name) or ""

    def relative_location(self) -> str:
        """reggie's GetRelativeLocation: the path and query of the Location header."""
        u = urllib.parse.urlsplit(self.header("Location"))
        return u.path + ("?" + u.query if u.query else "")

    def errors(self) -> list[dict]:
        return json.loads(self.body)["errors"]

    def tags(self) -> list[str]:
        try:
            return json.loads(self.body).get("tags") or []
        except ValueError:
            return []


class Client:
    """reggie's requests: `<name>` is the default namespace unless `name` is given; query parameters are added to
    the path's own. A body goes with Content-Length, or chunked (Go's client for a body of unknown length)."""

    def __init__(self, host: str, namespace: str) -> None:
        self.host, self.namespace = host, namespace

    def do(self, method: str, path: str, *, name: str | None = None, ref: str | None = None,
           query: dict | None = None, headers: dict | None = None, body: bytes | None = None,
           chunked: bool = False) -> Resp:
        path = path.replace("<name>", name or self.namespace)
        if ref is not None:
            path = path.replace("<reference>", ref).replace("<digest>", ref)
        if query:
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(query)
        headers = dict(headers or {})
        conn = http.client.HTTPConnection(self.host, timeout=30)
        try:
            if chunked and body is not None:
                headers.pop("Content-Length", None)
                headers["Transfer-Encoding"] = "chunked"
                conn.putrequest(method, path, skip_accept_encoding=True)
                for k, v in headers.items():
                    conn.putheader(k, v)
                conn.endheaders()
                for i in range(0, len(body), 7):
                    piece = body[i:i + 7]
                    conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                conn.send(b"0\r\n\r\n")
            else:
                if body is None and method in ("PUT", "POST", "PATCH"):
                    body = b""
                if body is not None:
                    headers["Content-Length"] = str(len(body))
                conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return Resp(r.status, r.headers, r.read())
        finally:
            conn.close()


def ok(status: int) -> bool:
    return 200 <= status < 300


# ---------------------------------------------------------------------------------------------------- the suite


def push_blob(c: Client, blob: Blob) -> None:
    """The setups' POST, then PUT of the whole blob to the session's Location."""
    r = c.do("POST", "/v2/<name>/blobs/uploads/")
    r = c.do("PUT", r.relative_location(), query={"digest": blob.digest},
             headers={"Content-Type": "application/octet-stream", "Content-Length": blob.length}, body=blob.content)
    assert ok(r.status), (r.status, r.body)


def put_manifest(c: Client, ref: str, blob: Blob, media_type: str = OCI_MANIFEST) -> Resp:
    return c.do("PUT", "/v2/<name>/manifests/<reference>", ref=ref, headers={"Content-Type": media_type},
                body=blob.content)


def assert_deleted(r: Resp, *also: int) -> None:
    assert ok(r.status) or r.status in (405, *also), (r.status, r.body)


def pull_workflow(c: Client, d: Data, delete_manifest_before_blobs: bool) -> None:
    # Setup
    push_blob(c, d.configs[0])
    push_blob(c, d.configs[1])
    push_blob(c, Blob(LAYER))
    tag = TEST_TAG
    r = put_manifest(c, tag, d.manifests[0])
    assert ok(r.status), (r.status, r.body)
    r = put_manifest(c, d.manifests[1].digest, d.manifests[1])
    assert ok(r.status), (r.status, r.body)
    # Pull blobs
    assert c.do("HEAD", "/v2/<name>/blobs/<digest>", ref=d.dummy_digest).status == 404
    r = c.do("HEAD", "/v2/<name>/blobs/<digest>", ref=d.configs[0].digest)
    assert r.status == 200
    assert r.header("Docker-Content-Digest") in ("", d.configs[0].digest)
    assert c.do("GET", "/v2/<name>/blobs/<digest>", ref=d.dummy_digest).status == 404
    assert c.do("GET", "/v2/<name>/blobs/<digest>", ref=d.configs[0].digest).status == 200
    # Pull manifests
    accept = {"Accept": OCI_MANIFEST}
    assert c.do("HEAD", "/v2/<name>/manifests/<reference>", ref=NONEXISTENT_MANIFEST).status == 404
    for m in d.manifests[:2]:
        r = c.do("HEAD", "/v2/<name>/manifests/<digest>", ref=m.digest, headers=accept)
        assert r.status == 200
        assert r.header("Docker-Content-Digest") in ("", m.digest)
    r = c.do("HEAD", "/v2/<name>/manifests/<reference>", ref=tag, headers=accept)
    assert r.status == 200
    assert r.header("Docker-Content-Digest") in ("", d.manifests[0].digest)
    assert c.do("GET", "/v2/<name>/manifests/<reference>", ref=NONEXISTENT_MANIFEST).status == 404
    for m in d.manifests[:2]:
        assert c.do("GET", "/v2/<name>/manifests/<digest>", ref=m.digest, headers=accept).status == 200
    assert c.do("GET", "/v2/<name>/manifests/<reference>", ref=tag, headers=accept).status == 200
    # Error codes
    r = c.do("GET", "/v2/<name>/manifests/<reference>", ref="sha256:totallywrong",
             headers={"Content-Type": OCI_MANIFEST}, body=b"blablabla")
    assert r.status in (400, 404), (r.status, r.body)
    if r.status == 400:
        assert r.errors() and r.errors()[0]["code"] in ERROR_CODES
    # Teardown
    if delete_manifest_before_blobs:
        for m in d.manifests[:2]:
            assert_deleted(c.do("DELETE", "/v2/<name>/manifests/<digest>", ref=m.digest))
    for blob in (d.configs[0], d.configs[1], Blob(LAYER)):
        assert_deleted(c.do("DELETE", "/v2/<name>/blobs/<digest>", ref=blob.digest), 404)
    if not delete_manifest_before_blobs:
        for m in d.manifests[:2]:
            assert_deleted(c.do("DELETE", "/v2/<name>/manifests/<digest>", ref=m.digest))


def push_workflow(c: Client, d: Data, delete_manifest_before_blobs: bool, crossmount: str) -> None:
    octet = {"Content-Type": "application/octet-stream"}
    # Blob Upload Streamed
    r = c.do("POST", "/v2/<name>/blobs/uploads/")
    assert r.header("Location")
    r = c.do("PATCH", r.relative_location(), headers=octet, body=d.blob_a.content)
    assert r.status == 202, (r.status, r.body)
    r = c.do("PUT", r.relative_location(), query={"digest": d.blob_a.digest},
             headers={**octet, "Content-Length": d.blob_a.length})
    assert r.status == 201, (r.status, r.body)
    assert r.header("Location")
    # Blob Upload Monolithic
    assert c.do("GET", "/v2/<name>/blobs/<digest>", ref=d.dummy_digest).status == 404
    cfg = d.configs[1]
    r = c.do("POST", "/v2/<name>/blobs/uploads/", query={"digest": cfg.digest},
             headers={**octet, "Content-Length": cfg.length}, body=cfg.content)
    assert r.header("Location")
    assert r.status in (201, 202), (r.status, r.body)
    monolithic = r.status
    r = c.do("GET", "/v2/<name>/blobs/<digest>", ref=cfg.digest)
    assert r.status == (404 if monolithic == 202 else 200)
    r = c.do("POST", "/v2/<name>/blobs/uploads/")
    assert r.status == 202
    r = c.do("PUT", r.relative_location(), query={"digest": cfg.digest},
             headers={**octet, "Content-Length": cfg.length}, body=cfg.content)
    assert r.header("Location")
    assert r.status == 201
    assert c.do("GET", "/v2/<name>/blobs/<digest>", ref=cfg.digest).status == 200
    r = c.do("POST", "/v2/<name>/blobs/uploads/")
    r = c.do("PUT", r.relative_location(), query={"digest": sha(LAYER)},
             headers={**octet, "Content-Length": str(len(LAYER))}, body=LAYER)
    assert r.header("Location")
    assert r.status == 201
    assert c.do("GET", "/v2/<name>/blobs/<digest>", ref=sha(LAYER)).status == 200
    # Blob Upload Chunked
    r = c.do("POST", "/v2/<name>/blobs/uploads/", headers={"Content-Length": "0"})
    assert r.header("Location")
    min_length = r.header("OCI-Chunk-Min-Length")
    if min_length and int(min_length) > len(d.chunk1):
        d.set_chunked_blob(int(min_length) * 2 - 2)
    r = c.do("PATCH", r.relative_location(), headers={**octet, "Content-Range": d.chunk2_range},
             body=d.chunk2)
    assert r.status == 416, (r.status, r.body)
    prev = c.do("POST", "/v2/<name>/blobs/uploads/", headers={"Content-Length": "0"})
    assert prev.header("Location")
    r = c.do("PATCH", prev.relative_location(), headers={**octet, "Content-Range": d.chunk1_range},
             body=d.chunk1)
    assert r.status == 202, (r.status, r.body)
    assert r.header("Range") == d.chunk1_range
    r = c.do("PATCH", prev.relative_location(), headers={**octet, "Content-Range": d.chunk1_range},
             body=d.chunk1)
    assert r.status == 416, (r.status, r.body)
    r = c.do("GET", prev.relative_location())
    assert r.status == 204
    assert r.header("Location")
    assert r.header("Range") == d.chunk1_range
    r = c.do("PATCH", r.relative_location(), headers={**octet, "Content-Range": d.chunk2_range},
             body=d.chunk2)
    assert r.status == 202, (r.status, r.body)
    assert r.header("Location")
    r = c.do("PUT", r.relative_location(), query={"digest": d.blob_b.digest},
             headers={**octet, "Content-Length": "0"})
    assert r.status == 201, (r.status, r.body)
    assert r.header("Location")
    # Cross-Repository Blob Mount
    r = c.do("POST", "/v2/<name>/blobs/uploads/", name=crossmount, query={"mount": d.dummy_digest})
    assert r.status == 202
    assert r.header("Location")
    last = c.do("POST", "/v2/<name>/blobs/uploads/", name=crossmount,
                query={"mount": d.blob_a.digest, "from": c.namespace})
    assert last.status in (201, 202)
    if last.status == 201:
        assert last.relative_location() == f"/v2/{crossmount}/blobs/{d.blob_a.digest}"
        assert c.do("GET", last.relative_location()).status == 200
        # OCI_AUTOMATIC_CROSSMOUNT=1: barque mounts without `from` from a repository the client may pull
        r = c.do("POST", "/v2/<name>/blobs/uploads/", name=crossmount, query={"mount": d.blob_a.digest})
        assert r.status == 201
    else:
        assert last.relative_location().startswith(f"/v2/{crossmount}/blobs/uploads/")
    # Manifest Upload
    assert c.do("GET", "/v2/<name>/manifests/<reference>", ref=NONEXISTENT_MANIFEST).status == 404
    for i in range(4):
        r = put_manifest(c, f"test{i}", d.manifests[1])
        assert r.header("Location")
        assert r.status == 201, (r.status, r.body)
    r = put_manifest(c, EMPTY_LAYER_TAG, d.empty_layer_manifest)
    # the suite only warns when refused; barque accepts it
    assert r.status == 201, (r.status, r.body)
    assert r.header("Location")
    r = c.do("GET", "/v2/<name>/manifests/<digest>", ref=d.manifests[1].digest, headers={"Accept": OCI_MANIFEST})
    assert r.status == 200
    # Teardown
    if delete_manifest_before_blobs:
        assert_deleted(c.do("DELETE", "/v2/<name>/manifests/<digest>", ref=d.manifests[1].digest))
        assert_deleted(c.do("DELETE", "/v2/<name>/manifests/<reference>", ref=d.empty_layer_manifest.digest))
    assert_deleted(c.do("DELETE", "/v2/<name>/blobs/<digest>", ref=d.configs[1].digest), 404)
    assert_deleted(c.do("DELETE", "/v2/<name>/blobs/<digest>", ref=sha(LAYER)), 404)
    if not delete_manifest_before_blobs:
        assert_deleted(c.do("DELETE", "/v2/<name>/manifests/<digest>", ref=d.manifests[1].digest))
        assert_deleted(c.do("DELETE", "/v2/<name>/manifests/<reference>", ref=d.empty_layer_manifest.digest))


def discovery_workflow(c: Client, d: Data, delete_manifest_before_blobs: bool) -> None:
    # Setup
    push_blob(c, d.configs[2])
    push_blob(c, Blob(LAYER))
    for i in range(4):
        r = put_manifest(c, f"test{i}", d.manifests[2])
        assert ok(r.status), (r.status, r.body)
    # References setup
    assert d.empty_json.digest == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    push_blob(c, d.empty_json)
    push_blob(c, d.ref_blob_a)
    subject4 = d.manifests[4].digest
    for blob in (d.refs_a_config, d.refs_a_layer):
        r = put_manifest(c, blob.digest, blob)
        assert ok(r.status), (r.status, r.body)
        assert r.header("OCI-Subject") == subject4
    r = put_manifest(c, d.refs_index.digest, d.refs_index, OCI_INDEX)
    assert ok(r.status), (r.status, r.body)
    assert r.header("OCI-Subject") == subject4
    push_blob(c, d.configs[4])
    push_blob(c, Blob(LAYER))
    r = put_manifest(c, TEST_TAG, d.manifests[4])
    assert ok(r.status), (r.status, r.body)
    push_blob(c, d.ref_blob_b)
    for blob in (d.refs_b_config, d.refs_b_layer):
        r = put_manifest(c, blob.digest, blob)
        assert ok(r.status), (r.status, r.body)
        assert r.header("OCI-Subject") == subject4
    r = put_manifest(c, d.refs_c_layer.digest, d.refs_c_layer)
    assert ok(r.status), (r.status, r.body)
    assert r.header("OCI-Subject") == d.manifests[3].digest
    # listing tags
    r = c.do("GET", "/v2/<name>/tags/list")
    assert r.status == 200
    num_tags = len(r.tags())
    n = num_tags // 2
    r = c.do("GET", "/v2/<name>/tags/list", query={"n": n})
    assert r.status == 200
    assert len(r.tags()) == n
    tag_list = c.do("GET", "/v2/<name>/tags/list", query={"n": n}).tags()
    r = c.do("GET", "/v2/<name>/tags/list", query={"n": n, "last": tag_list[n - 1]})
    assert r.status == 200
    assert len(tag_list) <= n and tag_list[n - 1] in tag_list
    # (what the suite means: the page after `last` starts after it)
    assert tag_list[n - 1] not in r.tags() and len(r.tags()) <= n
    # listing references
    r = c.do("GET", "/v2/<name>/referrers/<digest>", ref=d.dummy_digest)
    assert r.status == 200
    assert r.header("Content-Type") == OCI_INDEX
    assert json.loads(r.body)["manifests"] == []
    r = c.do("GET", "/v2/<name>/referrers/<digest>", ref=subject4)
    assert r.status == 200
    assert r.header("Content-Type") == OCI_INDEX
    found = json.loads(r.body)["manifests"]
    assert len(found) == 5
    assert found[0]["digest"] != found[1]["digest"]
    for m in found:
        assert len(m["annotations"]) == 1
        assert m["annotations"][ANNOTATION] == d.annotation_values[m["digest"]]
    r = c.do("GET", "/v2/<name>/referrers/<digest>", ref=subject4, query={"artifactType": ART_A})
    assert r.status == 200
    assert r.header("Content-Type") == OCI_INDEX
    found = json.loads(r.body)["manifests"]
    # barque filters: the suite then wants exactly the two of type A and the header naming the filter
    assert r.header("OCI-Filters-Applied") == "artifactType"
    assert len(found) == 2
    for m in found:
        assert len(m["annotations"]) == 1
        assert m["annotations"][ANNOTATION] == d.annotation_values[m["digest"]]
    r = c.do("GET", "/v2/<name>/referrers/<digest>", ref=d.manifests[3].digest)
    assert r.status == 200
    assert r.header("Content-Type") == OCI_INDEX
    found = json.loads(r.body)["manifests"]
    assert [m["digest"] for m in found] == [d.refs_c_layer.digest]
    # Teardown
    references = [d.refs_index.digest, d.manifests[2].digest, d.manifests[4].digest, d.refs_a_config.digest,
                  d.refs_a_layer.digest, TEST_TAG, d.refs_b_config.digest, d.refs_b_layer.digest,
                  d.refs_c_layer.digest]
    if delete_manifest_before_blobs:
        for ref in references:
            assert_deleted(c.do("DELETE", "/v2/<name>/manifests/<digest>", ref=ref), 404)
    r = c.do("DELETE", "/v2/<name>/blobs/<digest>", ref=d.configs[2].digest)
    assert ok(r.status) or r.status == 405, (r.status, r.body)
    r = c.do("DELETE", "/v2/<name>/blobs/<digest>", ref=sha(LAYER))
    assert ok(r.status) or r.status == 405, (r.status, r.body)
    if not delete_manifest_before_blobs:
        for ref in references:
            assert_deleted(c.do("DELETE", "/v2/<name>/manifests/<digest>", ref=ref), 404)
    # References teardown
    manifests = [d.refs_index, d.refs_a_config, d.refs_a_layer, d.manifests[4], d.refs_b_config, d.refs_b_layer]
    if delete_manifest_before_blobs:
        for m in manifests:
            assert_deleted(c.do("DELETE", "/v2/<name>/manifests/<reference>", ref=m.digest), 404)
    for blob in (d.configs[4], d.ref_blob_a, d.ref_blob_b, d.empty_json):
        assert_deleted(c.do("DELETE", "/v2/<name>/blobs/<digest>", ref=blob.digest), 404)
    if not delete_manifest_before_blobs:
        for m in manifests:
            assert_deleted(c.do("DELETE", "/v2/<name>/manifests/<reference>", ref=m.digest), 404)


def management_workflow(c: Client, d: Data) -> None:
    # Setup
    push_blob(c, d.configs[3])
    push_blob(c, Blob(LAYER))
    r = put_manifest(c, TEST_TAG, d.manifests[3])
    assert ok(r.status), (r.status, r.body)
    r = c.do("GET", "/v2/<name>/tags/list")
    assert r.status == 200
    num_tags = len(json.loads(r.body)["tags"])
    # Manifest delete
    r = c.do("DELETE", "/v2/<name>/manifests/<reference>", ref=TEST_TAG)
    assert r.status in (400, 202, 405), (r.status, r.body)
    if r.status == 400:
        assert r.errors()[0]["code"] == "UNSUPPORTED"
    r = c.do("DELETE", "/v2/<name>/manifests/<digest>", ref=d.manifests[3].digest)
    assert r.status in (202, 404), (r.status, r.body)
    r = c.do("GET", "/v2/<name>/manifests/<digest>", ref=d.manifests[3].digest)
    assert r.status in (404, 200)
    assert r.status == 404   # barque deletes
    r = c.do("GET", "/v2/<name>/tags/list")
    assert r.status == 200
    assert len(json.loads(r.body)["tags"] or []) < num_tags
    # Blob delete
    r = c.do("DELETE", "/v2/<name>/blobs/<digest>", ref=d.configs[3].digest)
    assert r.status in (202, 404, 405), (r.status, r.body)
    r = c.do("DELETE", "/v2/<name>/blobs/<digest>", ref=sha(LAYER))
    assert r.status in (202, 404, 405), (r.status, r.body)
    assert r.status != 405
    assert c.do("GET", "/v2/<name>/blobs/<digest>", ref=d.configs[3].digest).status == 404


@pytest.mark.parametrize("delete_manifest_before_blobs", [True, False], ids=["manifests-first", "blobs-first"])
def test_conformance_suite_workflows(registry_factory, delete_manifest_before_blobs):
    reg = registry_factory(delete_enabled=True)
    c = Client(reg.host, "conformance/myorg/myrepo")
    d = Data()
    crossmount = f"conformance-{uuid.uuid4()}"
    pull_workflow(c, d, delete_manifest_before_blobs)
    push_workflow(c, d, delete_manifest_before_blobs, crossmount)
    discovery_workflow(c, d, delete_manifest_before_blobs)
    management_workflow(c, d)


# ------------------------------------------------------------------------------------ the newer runner (run.go)

CHUNK_MIN = 1024   # config.go's chunkMin


@pytest.fixture
def reg(registry_factory):
    return registry_factory(delete_enabled=True)


def rand_blob(size: int = 512) -> bytes:
    return random.randbytes(size)


def blob_exists(c: Client, repo: str, data: bytes, alg: str = "sha256") -> None:
    """BlobHeadExists and BlobGetExistsFull: 200, the digest header if any, an exact Content-Length, the bytes (an
    empty body for the HEAD)."""
    d = sha(data, alg)
    r = c.do("HEAD", f"/v2/{repo}/blobs/{d}")
    assert r.status == 200 and r.body == b"", (r.status, r.body)
    assert r.header("Content-Length") == str(len(data))
    assert r.header("Docker-Content-Digest") == d
    r = c.do("GET", f"/v2/{repo}/blobs/{d}")
    assert r.status == 200 and r.body == data
    assert r.header("Content-Length") == str(len(data))
    assert r.header("Docker-Content-Digest") == d


def blob_delete(c: Client, repo: str, d: str) -> None:
    """BlobDelete then the atomic check: 202, and a HEAD at once answers 404."""
    r = c.do("DELETE", f"/v2/{repo}/blobs/{d}")
    assert r.status == 202, (r.status, r.body)
    assert c.do("HEAD", f"/v2/{repo}/blobs/{d}").status == 404


def verify_location(c: Client, r: Resp, data: bytes) -> None:
    assert r.header("Location")
    g = c.do("GET", r.relative_location())
    assert g.status == 200 and g.body == data


def post_only(c: Client, repo: str, data: bytes, d: str) -> Resp:
    return c.do("POST", f"/v2/{repo}/blobs/uploads/", query={"digest": d},
                headers={"Content-Type": "application/octet-stream"}, body=data)


def post_put(c: Client, repo: str, data: bytes, d: str) -> Resp:
    r = c.do("POST", f"/v2/{repo}/blobs/uploads/")
    assert r.status == 202 and r.header("Location")
    return c.do("PUT", r.relative_location(), query={"digest": d},
                headers={"Content-Type": "application/octet-stream"}, body=data)


def stream(c: Client, repo: str, data: bytes, d: str) -> Resp:
    """BlobPatchStream: the PATCH body has no Content-Length (Go sends it chunked), then an empty PUT."""
    r = c.do("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    assert r.status == 202 and r.header("Location")
    r = c.do("PATCH", r.relative_location(), headers={"Content-Type": "application/octet-stream"}, body=data,
             chunked=True)
    assert r.status == 202 and r.header("Location"), (r.status, r.body)
    return c.do("PUT", r.relative_location(), query={"digest": d},
                headers={"Content-Type": "application/octet-stream"})


def chunked(c: Client, repo: str, data: bytes, d: str, *, put_last: bool = False, out_of_order: bool = False
            ) -> Resp:
    """BlobPatchChunked, with its PutLastChunk and OutOfOrderChunks variants."""
    r = c.do("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    assert r.status == 202
    loc = r.header("Location")
    size = max(len(data) // 3 + 1, int(r.header("OCI-Chunk-Min-Length") or 0), CHUNK_MIN)
    size = min(size, len(data))
    last = -1
    octet = {"Content-Type": "application/octet-stream"}
    while last < len(data) - 1:
        path = urllib.parse.urlsplit(loc)
        path = path.path + ("?" + path.query if path.query else "")
        if out_of_order:
            bad_start = last + 1 + size
            if bad_start >= len(data):
                bad_start = 0
            bad_last = min(bad_start + size - 1, len(data) - 1)
            method, query = "PATCH", None
            if put_last and bad_last == len(data) - 1:
                method, query = "PUT", {"digest": d}
            r = c.do(method, path, query=query, headers={**octet, "Content-Range": f"{bad_start}-{bad_last}"},
                     body=data[bad_start:bad_last + 1])
            assert r.status == 416, (r.status, r.body)
            loc = r.header("Location") or loc
            g = c.do("GET", path)
            assert g.status == 204, (g.status, g.body)
            loc = g.header("Location") or loc
            assert g.header("Range").startswith("0-")
            if last >= 0:
                assert int(g.header("Range")[2:]) == last
            path = urllib.parse.urlsplit(loc)
            path = path.path + ("?" + path.query if path.query else "")
        start = last + 1
        last = min(start + size - 1, len(data) - 1)
        if put_last and last == len(data) - 1:
            return c.do("PUT", path, query={"digest": d}, headers={**octet, "Content-Range": f"{start}-{last}"},
                        body=data[start:last + 1])
        r = c.do("PATCH", path, headers={**octet, "Content-Range": f"{start}-{last}"}, body=data[start:last + 1])
        assert r.status == 202, (r.status, r.body)
        loc = r.header("Location")
        assert loc
    path = urllib.parse.urlsplit(loc)
    return c.do("PUT", path.path + ("?" + path.query if path.query else ""), query={"digest": d},
                headers={**octet, "Content-Length": "0"})


UPLOADS = {"post only": post_only, "post+put": post_put, "stream": stream, "chunked": chunked,
           "chunked put last": lambda *a: chunked(*a, put_last=True),
           "chunked out-of-order": lambda *a: chunked(*a, out_of_order=True),
           "chunked out-of-order put last": lambda *a: chunked(*a, put_last=True, out_of_order=True)}


@pytest.mark.parametrize("alg", ["sha256", "sha512"])
def test_runner_blob_uploads(reg, alg):
    """TestBlobAPIs: every upload style with each digest algorithm, each blob then HEAD, GET (its Location too)
    and DELETE; the chunked ones span three chunks of at least chunkMin bytes."""
    c = Client(reg.host, "conformance/repo1")
    repo = c.namespace
    r = c.do("GET", f"/v2/{repo}/blobs/{sha(b'never pushed', alg)}")
    assert r.status == 404
    for name, upload in UPLOADS.items():
        data = rand_blob(512 if not name.startswith("chunked") else CHUNK_MIN * 3 - 5)
        d = sha(data, alg)
        r = upload(c, repo, data, d)
        assert r.status == 201, (name, r.status, r.body)
        assert r.header("Docker-Content-Digest") == d, name
        verify_location(c, r, data)
        blob_exists(c, repo, data, alg)
        blob_delete(c, repo, d)
    # the well-known contents: the empty blob and the empty JSON object, in every style
    for data in (b"", b"{}"):
        for name in ("post only", "post+put", "stream"):
            d = sha(data, alg)
            r = UPLOADS[name](c, repo, data, d)
            assert r.status == 201, (name, data, r.status, r.body)
            blob_exists(c, repo, data, alg)
            blob_delete(c, repo, d)
    # a cancelled upload
    r = c.do("POST", f"/v2/{repo}/blobs/uploads/")
    assert r.status == 202
    assert c.do("DELETE", r.relative_location(), headers={"Content-Length": "0"}).status == 204
    assert c.do("GET", r.relative_location()).status == 404


@pytest.mark.parametrize("alg", ["sha256", "sha512"])
def test_runner_bad_digests(reg, alg):
    """A blob whose bytes do not match the digest: 400 in every style, and nothing stored."""
    c = Client(reg.host, "conformance/repo1")
    repo = c.namespace
    for name in ("post only", "post+put", "stream", "chunked", "chunked put last"):
        good = rand_blob(CHUNK_MIN * 3 - 5)
        d = sha(good, alg)
        r = UPLOADS[name](c, repo, good + b"oh no", d)
        assert r.status == 400, (name, r.status, r.body)
        assert r.errors()[0]["code"] == "DIGEST_INVALID"
        assert c.do("HEAD", f"/v2/{repo}/blobs/{d}").status == 404


def test_runner_mounts(reg):
    """mount (from repo2), mount anonymous (no `from`: barque finds the blob in a repository the client may pull,
    as the spec allows), mount missing (202 and an ordinary upload), each verified at its Location."""
    c = Client(reg.host, "conformance/repo1")
    repo, repo2 = "conformance/repo1", "conformance/repo2"
    for source in (repo2, None):
        data = rand_blob()
        d = sha(data)
        assert post_put(c, repo2, data, d).status == 201
        query = {"mount": d, **({"from": source} if source else {})}
        r = c.do("POST", f"/v2/{repo}/blobs/uploads/", query=query)
        assert r.status == 201, (source, r.status, r.body)
        assert r.header("Docker-Content-Digest") == d
        assert r.relative_location() == f"/v2/{repo}/blobs/{d}"
        verify_location(c, r, data)
        blob_exists(c, repo, data)
        blob_delete(c, repo, d)
        blob_delete(c, repo2, d)
    data = rand_blob()
    d = sha(data)
    r = c.do("POST", f"/v2/{repo}/blobs/uploads/", query={"mount": d, "from": repo2})
    assert r.status == 202 and r.relative_location().startswith(f"/v2/{repo}/blobs/uploads/")
    r = c.do("PUT", r.relative_location(), query={"digest": d}, headers={"Content-Type": "application/octet-stream"},
             body=data)
    assert r.status == 201
    verify_location(c, r, data)


def test_runner_range_requests(reg):
    c = Client(reg.host, "conformance/repo1")
    repo = c.namespace
    data = rand_blob(2048)
    d = sha(data)
    assert post_put(c, repo, data, d).status == 201
    cases = [("bytes=500-1499", 206, data[500:1500], "bytes 500-1499/2048"),
             ("bytes=500-", 206, data[500:], "bytes 500-2047/2048"),
             ("bytes=-500", 206, data[-500:], "bytes 1548-2047/2048"),
             ("bytes=2000-5000", 206, data[2000:], "bytes 2000-2047/2048"),
             ("bytes=500-0", 416, None, None),
             ("bytes=5000-10000", 416, None, None)]
    for value, status, body, content_range in cases:
        r = c.do("GET", f"/v2/{repo}/blobs/{d}", headers={"Range": value})
        assert r.status == status, (value, r.status)
        if body is not None:
            assert r.body == body and r.header("Content-Length") == str(len(body)), value
            assert r.header("Content-Range") == content_range, value
    blob_delete(c, repo, d)


def push_manifest(c: Client, repo: str, ref: str, body: bytes, *, query: dict | None = None) -> Resp:
    """ManifestPut: the body sent chunked (Go's client, body of unknown length), Content-Type from its
    mediaType; 201 with a Location that GETs back the same bytes, type and length."""
    media_type = json.loads(body).get("mediaType") or OCI_MANIFEST
    r = c.do("PUT", f"/v2/{repo}/manifests/{ref}", query=query, headers={"Content-Type": media_type}, body=body,
             chunked=True)
    assert r.status == 201, (r.status, r.body)
    alg = ref.split(":")[0] if ":" in ref else "sha256"
    assert r.header("Docker-Content-Digest") == sha(body, alg)
    subject = json.loads(body).get("subject")
    if subject:
        assert r.header("OCI-Subject") == subject["digest"]
    g = c.do("GET", r.relative_location(), headers={"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"})
    assert g.status == 200 and g.body == body
    assert g.header("Content-Type") == media_type and g.header("Content-Length") == str(len(body))
    return r


def manifest_exists(c: Client, repo: str, ref: str, body: bytes, alg: str = "sha256") -> None:
    media_type = json.loads(body).get("mediaType") or OCI_MANIFEST
    for method in ("HEAD", "GET"):
        conn = http.client.HTTPConnection(c.host, timeout=30)
        try:   # two Accept header lines, as Go's Header.Add sends them
            conn.putrequest(method, f"/v2/{repo}/manifests/{ref}")
            conn.putheader("Accept", OCI_INDEX)
            conn.putheader("Accept", OCI_MANIFEST)
            conn.endheaders()
            r = conn.getresponse()
            got = r.read()
        finally:
            conn.close()
        assert r.status == 200, (method, ref, r.status)
        assert got == (b"" if method == "HEAD" else body)
        assert r.headers["Content-Type"] == media_type and r.headers["Content-Length"] == str(len(body))
        assert r.headers["Docker-Content-Digest"] == sha(body, alg)


def image(c: Client, repo: str, alg: str = "sha256", layers: int = 2, **extra) -> tuple[bytes, list[bytes]]:
    """genManifestFull: gzip layers and an image config pushed, the manifest's bytes returned (not pushed)."""
    blobs = [rand_blob(300) for _ in range(layers)]
    config = json.dumps({"author": "OCI Conformance Test", "architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    for b in (*blobs, config):
        assert post_put(c, repo, b, sha(b, alg)).status == 201
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": OCI_CONFIG, "digest": sha(config, alg), "size": len(config)},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(b, alg),
                       "size": len(b)} for b in blobs], **extra}
    return json.dumps(doc, separators=(",", ":")).encode(), [*blobs, config]


@pytest.mark.parametrize("alg", ["sha256", "sha512"])
def test_runner_index_push_pull_delete(reg, alg):
    """An index of two images (sha512: everything sha512, pushed by digest only), pulled by tag and digest, then
    tag delete, manifest deletes (index first) and blob deletes, each checked at once with a HEAD."""
    c = Client(reg.host, "conformance/repo1")
    repo = c.namespace
    children, blobs = [], []
    for _ in range(2):
        body, bl = image(c, repo, alg)
        blobs += bl
        push_manifest(c, repo, sha(body, alg), body)
        children.append(body)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha(b, alg), "size": len(b),
         "platform": {"architecture": arch, "os": "linux"}} for b, arch in zip(children, ("amd64", "arm64"))]}
    ).encode()
    push_manifest(c, repo, sha(index, alg), index)
    tags = []
    if alg == "sha256":
        push_manifest(c, repo, "index", index)
        tags = ["index"]
        r = c.do("GET", f"/v2/{repo}/tags/list")
        assert r.status == 200 and "index" in r.tags()
    for body in (*children, index):
        manifest_exists(c, repo, sha(body, alg), body, alg)
    for tag in tags:
        manifest_exists(c, repo, tag, index, alg)
        r = c.do("DELETE", f"/v2/{repo}/manifests/{tag}")
        assert r.status == 202
        assert c.do("HEAD", f"/v2/{repo}/manifests/{tag}").status == 404
    for body in (index, *reversed(children)):
        r = c.do("DELETE", f"/v2/{repo}/manifests/{sha(body, alg)}")
        assert r.status == 202, (r.status, r.body)
        assert c.do("HEAD", f"/v2/{repo}/manifests/{sha(body, alg)}").status == 404
    for b in blobs:
        r = c.do("DELETE", f"/v2/{repo}/blobs/{sha(b, alg)}")
        assert r.status in (202, 404)
        assert c.do("HEAD", f"/v2/{repo}/blobs/{sha(b, alg)}").status == 404


def test_runner_data_shapes(reg):
    """The runner's data sets: uncompressed layers, a manifest near the 4 MiB limit (390 annotations of 10000
    bytes), an empty index, a nested index, an artifact (empty config, artifactType), non-distributable layers
    (with URLs, never pushed), custom fields, no layers, descriptors with `data`."""
    c = Client(reg.host, "conformance/repo1")
    repo = c.namespace
    large, _ = image(c, repo, annotations={f"large-annotation-{i}": "A" * 10000 for i in range(390)})
    push_manifest(c, repo, "large-manifest", large)
    manifest_exists(c, repo, "large-manifest", large)
    empty_index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
    push_manifest(c, repo, "empty-index", empty_index)
    child, _ = image(c, repo)
    push_manifest(c, repo, sha(child), child)
    inner = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                        "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha(child), "size": len(child)}]}).encode()
    push_manifest(c, repo, sha(inner), inner)
    outer = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                        "manifests": [{"mediaType": OCI_INDEX, "digest": sha(inner), "size": len(inner)}]}).encode()
    push_manifest(c, repo, "index-of-index", outer)
    assert post_put(c, repo, b"{}", sha(b"{}")).status == 201
    layer = rand_blob()
    assert post_put(c, repo, layer, sha(layer)).status == 201
    artifact = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "artifactType": "application/vnd.example.oci.conformance.v1",
                           "config": {"mediaType": OCI_EMPTY, "digest": sha(b"{}"), "size": 2, "data": "e30="},
                           "layers": [{"mediaType": "application/vnd.example.oci.conformance.v1",
                                       "digest": sha(layer), "size": len(layer), "data": b64(layer)}],
                           "x-custom": {"nested": [1, 2, 3]}}).encode()
    push_manifest(c, repo, "artifact", artifact)
    foreign = {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
               "digest": sha(b"elsewhere"), "size": 123456,
               "urls": ["https://store.example.com/blobs/sha256/" + sha(b"elsewhere")[7:]]}
    nondist, _ = image(c, repo, layers=1)
    doc = json.loads(nondist)
    doc["layers"].insert(0, foreign)
    nondist = json.dumps(doc).encode()
    push_manifest(c, repo, "non-distributable-image", nondist)
    no_layers, _ = image(c, repo, layers=0)
    push_manifest(c, repo, "no-layers", no_layers)
    r = c.do("GET", f"/v2/{repo}/tags/list")
    tags = sorted(r.tags())
    assert tags == sorted(["large-manifest", "empty-index", "index-of-index", "artifact", "non-distributable-image",
                           "no-layers"])
    # TestList's `last`: the tags after it, and none before
    end = len(tags) // 2
    r = c.do("GET", f"/v2/{repo}/tags/list", query={"last": tags[end - 1]})
    assert r.status == 200 and r.tags() == tags[end:]


def test_runner_tag_param(reg):
    """Manifest PUT by digest with ?tag= (1.1+dev): every tag set, and listed in OCI-Tag."""
    c = Client(reg.host, "conformance/repo1")
    repo = c.namespace
    body, _ = image(c, repo)
    d = sha(body)
    r = c.do("PUT", f"/v2/{repo}/manifests/{d}?tag=tag-param-0&tag=tag-param-1",
             headers={"Content-Type": OCI_MANIFEST}, body=body)
    assert r.status == 201, (r.status, r.body)
    tags = [t.strip() for v in r.headers.get_all("OCI-Tag") or [] for t in v.split(",")]
    assert sorted(tags) == ["tag-param-0", "tag-param-1"]
    for tag in tags:
        manifest_exists(c, repo, tag, body)
    r = c.do("PUT", f"/v2/{repo}/manifests/{d}?tag=-bad", headers={"Content-Type": OCI_MANIFEST}, body=body)
    assert r.status == 400 and r.errors()[0]["code"] == "TAG_INVALID"


def test_runner_referrers_and_errors(reg):
    """Referrers of an image (an artifact without artifactType reports its config type; annotations kept) with
    and without a filter, of a missing subject, of nothing; missing manifests; a malformed digest reference."""
    c = Client(reg.host, "conformance/repo1")
    repo = c.namespace
    r = c.do("GET", f"/v2/{repo}/tags/list")
    assert r.status in (200, 404)
    r = c.do("GET", f"/v2/{repo}/referrers/{sha(b'nothing')}")
    assert r.status == 200 and r.header("Content-Type") == OCI_INDEX
    doc = json.loads(r.body)
    assert doc["mediaType"] == OCI_INDEX and doc["schemaVersion"] == 2 and doc["manifests"] == []
    subject, _ = image(c, repo)
    push_manifest(c, repo, "image", subject)
    subj = {"mediaType": OCI_MANIFEST, "digest": sha(subject), "size": len(subject)}
    plain, _ = image(c, repo, subject=subj)
    push_manifest(c, repo, sha(plain), plain)
    assert post_put(c, repo, b"{}", sha(b"{}")).status == 201
    arts = []
    for at in ("application/vnd.example.oci.conformance.v1", "application/vnd.example.oci.conformance.v2"):
        layer = rand_blob()
        assert post_put(c, repo, layer, sha(layer)).status == 201
        art = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": at,
                          "config": {"mediaType": OCI_EMPTY, "digest": sha(b"{}"), "size": 2},
                          "layers": [{"mediaType": at, "digest": sha(layer), "size": len(layer)}],
                          "subject": subj, "annotations": {"org.opencontainers.conformance": "hello",
                                                           f"org.example.{uuid.uuid4().hex}": "x"}}).encode()
        push_manifest(c, repo, f"tagged-{at[-2:]}", art)
        arts.append((at, art))
    missing = {"mediaType": OCI_MANIFEST, "size": 123, "digest": sha(b"missing content")}
    orphan = json.loads(arts[0][1])
    orphan["subject"] = missing
    orphan = json.dumps(orphan).encode()
    push_manifest(c, repo, "tagged-artifact", orphan)
    goals = [(OCI_CONFIG, plain, {})] + [(at, art, json.loads(art)["annotations"]) for at, art in arts]
    r = c.do("GET", f"/v2/{repo}/referrers/{sha(subject)}")
    listed = json.loads(r.body)["manifests"]
    for at, body, ann in goals:
        assert {"mediaType": OCI_MANIFEST, "digest": sha(body), "size": len(body), "artifactType": at,
                **({"annotations": ann} if ann else {})} in listed
    for at, body, _ in goals:
        r = c.do("GET", f"/v2/{repo}/referrers/{sha(subject)}", query={"artifactType": at})
        assert r.status == 200 and r.header("OCI-Filters-Applied") == "artifactType"
        assert [m["digest"] for m in json.loads(r.body)["manifests"]] == [sha(body)]
    r = c.do("GET", f"/v2/{repo}/referrers/{missing['digest']}")
    assert [m["digest"] for m in json.loads(r.body)["manifests"]] == [sha(orphan)]
    # missing manifests by digest and by tag; "sha256:baddigeststring" refused on PUT, 400 or 404 on GET
    assert c.do("GET", f"/v2/{repo}/manifests/{sha(rand_blob(1024))}").status == 404
    assert c.do("GET", f"/v2/{repo}/manifests/missing-{uuid.uuid4().hex[:20]}").status == 404
    r = c.do("PUT", f"/v2/{repo}/manifests/sha256:baddigeststring", headers={"Content-Type": OCI_MANIFEST},
             body=subject, chunked=True)
    assert r.status == 400
    assert c.do("GET", f"/v2/{repo}/manifests/sha256:baddigeststring").status in (400, 404)
    # a manifest whose bytes do not match the digest it is pushed to ("bad-digest-image")
    r = c.do("PUT", f"/v2/{repo}/manifests/{sha(subject)}", headers={"Content-Type": OCI_MANIFEST},
             body=subject + b"  ")
    assert r.status == 400 and r.errors()[0]["code"] == "DIGEST_INVALID"


def test_mount_without_from_needs_pull_access_to_the_source(registry_factory):
    """The automatic mount looks only in repositories the client's token lets it pull: without a scope on the
    source the blob is not found there (202, an ordinary upload); with one it is mounted (201)."""
    reg = registry_factory(auth="token", delete_enabled=True)
    data = rand_blob()
    d = sha(data)
    r = reg.request("POST", f"/v2/secret/src/blobs/uploads/?digest={d}", data, auth="token",
                    scope="repository:secret/src:pull,push")
    assert r.status == 201, (r.status, r.body)
    r = reg.request("POST", f"/v2/mine/dst/blobs/uploads/?mount={d}", auth="token",
                    scope="repository:mine/dst:pull,push")
    assert r.status == 202 and "/blobs/uploads/" in r.header("Location")
    assert reg.request("HEAD", f"/v2/mine/dst/blobs/{d}", auth="token",
                       scope="repository:mine/dst:pull").status == 404
    token = reg.token("repository:mine/dst:pull,push repository:secret/src:pull")
    r = reg.request("POST", f"/v2/mine/dst/blobs/uploads/?mount={d}", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 201 and r.header("Location") == f"/v2/mine/dst/blobs/{d}"
