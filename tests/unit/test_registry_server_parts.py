"""The registry server's pure parts: name grammar, upload ranges, pagination, error bodies, JWT tokens and scopes,
the access policy, htpasswd files, manifest facts and the config file."""

from __future__ import annotations

import json
import time

import pytest

from barque.errors import InvalidArgument
from barque.registry.server.auth import Need, Policy, basic_credentials
from barque.registry.server.config import load_config, parse_addr
from barque.registry.server.errors import RegistryError, error_body
from barque.registry.server.htpasswd import Htpasswd, parse_htpasswd
from barque.registry.server.manifests import inspect_manifest
from barque.registry.server.names import check_name, parse_ref
from barque.registry.server.pagination import next_link, parse_page, split_page
from barque.registry.server.ranges import check_chunk_start, parse_content_range, progress_range
from barque.registry.server.tokens import Scope, TokenError, TokenIssuer, granted, load_key, parse_scopes


@pytest.mark.parametrize("name", ["a", "library/busybox", "a.b_c__d-e---f/g0", "x" * 255, "0/1/2/3"])
def test_valid_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "A", "a//b", "/a", "a/", "-a", "a-", "a..b", "../a", "a/./b", "a___b",
                                  "a b", "a\x00", "x" * 256, "a/" + "b" * 254, "é"])
def test_invalid_names(name):
    with pytest.raises(RegistryError) as e:
        check_name(name)
    assert e.value.code == "NAME_INVALID" and e.value.status == 400


def test_references():
    assert parse_ref("v1.0_rc-2") == ("v1.0_rc-2", None)
    tag, digest = parse_ref("sha512:" + "a" * 128)
    assert tag is None and digest.algorithm == "sha512"
    for bad in ("sha256:abc", "md5:" + "a" * 32):
        with pytest.raises(RegistryError) as e:
            parse_ref(bad)
        assert e.value.code == "DIGEST_INVALID"
    for bad in (".hidden", "-x", "t" * 129):
        with pytest.raises(RegistryError):
            parse_ref(bad)


def test_content_range():
    assert parse_content_range("0-1023") == (0, 1023)
    assert parse_content_range("bytes 1024-2047/4096") == (1024, 2047)
    assert parse_content_range("bytes=5-9") == (5, 9)
    assert parse_content_range("5-9/*") == (5, 9)
    for bad in ("", "5-", "-5", "9-5", "a-b", "0-1,2-3", "bytes 0-99999999999999999999"):
        with pytest.raises(RegistryError) as e:
            parse_content_range(bad)
        assert e.value.code == "BLOB_UPLOAD_INVALID"
    assert progress_range(0) == "0-0" and progress_range(1) == "0-0" and progress_range(1024) == "0-1023"
    check_chunk_start(10, 10, "/loc", "id")
    with pytest.raises(RegistryError) as e:
        check_chunk_start(20, 10, "/v2/x/blobs/uploads/id", "id")
    assert e.value.status == 416 and e.value.headers == {
        "Location": "/v2/x/blobs/uploads/id", "Range": "0-9", "Docker-Upload-UUID": "id"}


def test_pagination():
    assert parse_page({}) == (None, None)
    assert parse_page({"n": "2", "last": "b"}) == (2, "b")
    assert parse_page({"n": "99999999"})[0] == 10000
    for bad in ("x", "-1", "1.5"):
        with pytest.raises(RegistryError) as e:
            parse_page({"n": bad})
        assert e.value.status == 400
    assert split_page(["a", "b", "c"], 2) == (["a", "b"], True)
    assert split_page(["a", "b"], 2) == (["a", "b"], False)
    assert split_page(["a"], None) == (["a"], False)
    assert next_link("/v2/a/b/tags/list", 2, "v1") == '</v2/a/b/tags/list?n=2&last=v1>; rel="next"'


def test_error_body():
    body = json.loads(error_body(RegistryError("BLOB_UNKNOWN", "sha256:x")))
    assert body == {"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown to registry", "detail": "sha256:x"}]}
    e = RegistryError("UNSUPPORTED", message="registry is in read-only mode")
    assert e.status == 405 and json.loads(error_body(e))["errors"][0] == {
        "code": "UNSUPPORTED", "message": "registry is in read-only mode"}
    statuses = {code: RegistryError(code).status for code in (
        "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID", "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED",
        "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS")}
    assert statuses == {"BLOB_UNKNOWN": 404, "BLOB_UPLOAD_INVALID": 400, "BLOB_UPLOAD_UNKNOWN": 404,
                        "DIGEST_INVALID": 400, "MANIFEST_BLOB_UNKNOWN": 400, "MANIFEST_INVALID": 400,
                        "MANIFEST_UNKNOWN": 404, "NAME_INVALID": 400, "NAME_UNKNOWN": 404, "SIZE_INVALID": 400,
                        "UNAUTHORIZED": 401, "DENIED": 403, "UNSUPPORTED": 405, "TOOMANYREQUESTS": 429}


def test_scopes():
    assert parse_scopes(["repository:a/b:pull,push", "registry:catalog:* repository:c:pull"]) == [
        Scope("repository", "a/b", ("pull", "push")), Scope("registry", "catalog", ("*",)),
        Scope("repository", "c", ("pull",))]
    # a name with a host:port prefix keeps its colon
    assert parse_scopes(["repository:localhost:5000/x:pull"]) == [Scope("repository", "localhost:5000/x", ("pull",))]
    assert parse_scopes(["garbage", ""]) == []


def test_jwt_round_trip_and_refusals():
    issuer = TokenIssuer(b"k" * 32, "svc", ttl=60)
    answer = issuer.issue("alice", [Scope("repository", "a", ("pull", "push"))], now=1000)
    assert answer["token"] == answer["access_token"] and answer["expires_in"] == 60
    assert answer["issued_at"] == "1970-01-01T00:16:40Z"
    claims = issuer.decode(answer["token"], now=1030)
    assert claims["sub"] == "alice" and claims["aud"] == "svc"
    assert granted(claims, "repository", "a", "push") and not granted(claims, "repository", "b", "pull")
    assert not granted(claims, "repository", "a", "delete")
    with pytest.raises(TokenError, match="expired"):
        issuer.decode(answer["token"], now=2000)
    with pytest.raises(TokenError, match="signature"):
        TokenIssuer(b"x" * 32, "svc").decode(answer["token"], now=1030)
    with pytest.raises(TokenError, match="another service"):
        TokenIssuer(b"k" * 32, "other").decode(answer["token"], now=1030)
    head, payload, sig = answer["token"].split(".")
    import base64

    none_alg = base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=")
    with pytest.raises(TokenError, match="HS256"):
        issuer.decode(f"{none_alg}.{payload}.", now=1030)
    with pytest.raises(TokenError, match="malformed"):
        issuer.decode("a.b", now=1030)


def test_signing_key_is_private_and_stable(tmp_path):
    key = load_key(tmp_path)
    assert len(key) == 32 and load_key(tmp_path) == key
    assert (tmp_path / "token.key").stat().st_mode & 0o777 == 0o600


def test_policy():
    p = Policy(anonymous_pull=False)
    assert p.grant("alice", Scope("repository", "x", ("pull", "push", "bogus"))) == ("pull", "push")
    assert p.grant("", Scope("repository", "x", ("pull",))) == ()
    assert p.grant("alice", Scope("registry", "catalog", ("*",))) == ("*",)
    assert p.grant("", Scope("registry", "catalog", ("*",))) == ()
    assert Policy(anonymous_pull=True).grant("", Scope("repository", "x", ("pull", "push"))) == ("pull",)
    assert p.allows("alice", Need()) and not p.allows("", Need())
    assert Need("repository", "a", "push").scope() == "repository:a:pull,push"


def test_basic_credentials():
    import base64

    assert basic_credentials(None) is None and basic_credentials("Bearer x") is None
    assert basic_credentials("Basic " + base64.b64encode(b"u:p:w").decode()) == ("u", "p:w")
    with pytest.raises(RegistryError):
        basic_credentials("Basic !!!")
    with pytest.raises(RegistryError):
        basic_credentials("Basic " + base64.b64encode(b"nocolon").decode())


def test_htpasswd(tmp_path):
    import bcrypt

    hashed = bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4)).decode()
    path = tmp_path / "htpasswd"
    path.write_text(f"# users\nalice:{hashed.replace('$2b$', '$2y$', 1)}\n\n")
    users = Htpasswd(path)
    assert users.verify("alice", "secret") and users.verify("alice", "secret")   # the second from the cache
    assert not users.verify("alice", "wrong") and not users.verify("bob", "secret")
    # edits are picked up
    hashed2 = bcrypt.hashpw(b"pw2", bcrypt.gensalt(rounds=4)).decode()
    path.write_text(f"bob:{hashed2}\n")
    import os

    os.utime(path, (time.time() + 5, time.time() + 5))
    assert users.verify("bob", "pw2") and not users.verify("alice", "secret")
    with pytest.raises(InvalidArgument, match="f:2: user .carol. has no bcrypt hash"):
        parse_htpasswd("bob:" + hashed2 + "\ncarol:{SHA}abc\n", "f")
    with pytest.raises(InvalidArgument, match="USER:HASH"):
        parse_htpasswd("nocolon\n")


def test_manifest_facts():
    cfg = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "1" * 64, "size": 2}
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + "2" * 64, "size": 3}
    foreign = {**layer, "digest": "sha256:" + "3" * 64, "urls": ["https://example.invalid/x"]}
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cfg,
           "layers": [layer, foreign], "subject": {**cfg, "mediaType": "application/vnd.oci.image.manifest.v1+json"}}
    facts = inspect_manifest(json.dumps(doc).encode(), "application/vnd.oci.image.manifest.v1+json")
    assert [str(d) for d in facts.blobs] == [cfg["digest"], layer["digest"]]   # the foreign layer is not required
    assert str(facts.subject) == cfg["digest"] and facts.artifact_type == cfg["mediaType"]
    with pytest.raises(RegistryError) as e:
        inspect_manifest(json.dumps(doc).encode(), "application/vnd.oci.image.index.v1+json")
    assert e.value.code == "MANIFEST_INVALID"
    with pytest.raises(RegistryError) as e:
        inspect_manifest(b"x" * (4 * 1024 * 1024 + 1), None)
    assert e.value.status == 413


def test_config_file_and_flags(tmp_path):
    cfg = tmp_path / "r.yaml"
    cfg.write_text("addr: ':6000'\nread_only: true\ngc-grace: 10\nroot: /srv/reg\n")
    c = load_config(cfg, {"addr": "127.0.0.1:7000", "read_only": None, "delete_enabled": True})
    assert (c.addr, c.read_only, c.gc_grace, str(c.root), c.delete_enabled) == (
        "127.0.0.1:7000", True, 10.0, "/srv/reg", True)
    assert c.auth_mode == "none"
    with pytest.raises(InvalidArgument, match="needs --htpasswd"):
        load_config(None, {"auth": "token"})
    with pytest.raises(InvalidArgument, match="go together"):
        load_config(None, {"tls_cert": str(cfg)})
    cfg.write_text("read-only: maybe\n")
    with pytest.raises(InvalidArgument, match="true or false"):
        load_config(cfg, {})
    assert parse_addr(":5000") == ("0.0.0.0", 5000) and parse_addr("[::1]:80") == ("::1", 80)
    with pytest.raises(InvalidArgument):
        parse_addr("nohost")
