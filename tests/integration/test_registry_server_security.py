"""Security review of `barque registry serve`: who may touch what (upload sessions bound to their repository, every
route against a token scoped to another repository, cross-repository mounts), token validation, htpasswd entries,
names and IDs that could reach the filesystem, and the limits that keep one client from exhausting the server
(stalled request bodies, abandoned upload sessions)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time

from tests import registry_support
from tests.registry_support import make_htpasswd

registry_factory = registry_support.registry_factory   # fixture

CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def code(r) -> str:
    return r.json()["errors"][0]["code"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def push_image(reg, repo: str, headers: dict, layer: bytes = b"a layer") -> bytes:
    for blob in (CONFIG, layer):
        r = reg.request("POST", f"/v2/{repo}/blobs/uploads/?digest={sha(blob)}", blob, headers)
        assert r.status == 201, (r.status, r.body)
    doc = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(CONFIG),
                                 "size": len(CONFIG)},
                      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(layer),
                                  "size": len(layer)}]}).encode()
    r = reg.request("PUT", f"/v2/{repo}/manifests/v1", doc, {**headers, "Content-Type": OCI_MANIFEST})
    assert r.status == 201, (r.status, r.body)
    return doc


# ------------------------------------------------------------------------------------------------ authorisation

def test_upload_session_of_one_repository_is_unknown_through_another(registry_factory):
    reg = registry_factory(auth="token")
    both = bearer(reg.token("repository:team-a/app:pull,push repository:team-b/app:pull,push"))
    r = reg.request("POST", "/v2/team-a/app/blobs/uploads/", headers=both)
    assert r.status == 202
    upload = r.header("Docker-Upload-UUID")
    other = f"/v2/team-b/app/blobs/uploads/{upload}"
    data = b"smuggled"
    attempts = [
        ("GET", other, None, {}),
        ("PATCH", other, data, {"Content-Type": "application/octet-stream"}),
        ("PUT", f"{other}?digest={sha(data)}", data, {"Content-Type": "application/octet-stream"}),
        ("DELETE", other, None, {}),
    ]
    for method, path, body, headers in attempts:
        r = reg.request(method, path, body, {**both, **headers})
        assert r.status == 404 and code(r) == "BLOB_UPLOAD_UNKNOWN", (method, r.status, r.body)
    # the session is intact in its own repository, and nothing reached team-b
    r = reg.request("GET", f"/v2/team-a/app/blobs/uploads/{upload}", headers=both)
    assert r.status == 204 and r.header("Range") == "0-0"
    assert reg.request("HEAD", f"/v2/team-b/app/blobs/{sha(data)}", headers=both).status == 404


def test_a_token_for_one_repository_opens_no_route_of_another(registry_factory):
    reg = registry_factory(auth="token", delete_enabled=True)
    owner = bearer(reg.token("repository:victim:pull,push,delete"))
    manifest = push_image(reg, "victim", owner)
    r = reg.request("POST", "/v2/victim/blobs/uploads/", headers=owner)
    upload = r.header("Docker-Upload-UUID")
    # mallory holds every action, but on her own repository only
    mine = bearer(reg.token("repository:mallory:pull,push,delete"))
    d, m = sha(b"a layer"), sha(manifest)
    routes = [
        ("GET", f"/v2/victim/blobs/{d}"), ("HEAD", f"/v2/victim/blobs/{d}"), ("DELETE", f"/v2/victim/blobs/{d}"),
        ("GET", "/v2/victim/manifests/v1"), ("HEAD", f"/v2/victim/manifests/{m}"),
        ("PUT", "/v2/victim/manifests/v2"), ("DELETE", f"/v2/victim/manifests/{m}"),
        ("DELETE", "/v2/victim/manifests/v1"),
        ("GET", "/v2/victim/tags/list"), ("GET", f"/v2/victim/referrers/{m}"),
        ("POST", "/v2/victim/blobs/uploads/"), ("POST", f"/v2/victim/blobs/uploads/?digest={d}"),
        ("GET", f"/v2/victim/blobs/uploads/{upload}"), ("PATCH", f"/v2/victim/blobs/uploads/{upload}"),
        ("PUT", f"/v2/victim/blobs/uploads/{upload}?digest={d}"), ("DELETE", f"/v2/victim/blobs/uploads/{upload}"),
        ("GET", "/v2/_catalog"),
    ]
    for method, path in routes:
        body = manifest if method in ("PUT", "PATCH", "POST") else None
        r = reg.request(method, path, body, {**mine, "Content-Type": OCI_MANIFEST})
        assert r.status == 401, (method, path, r.status)
        assert 'error="insufficient_scope"' in r.header("WWW-Authenticate"), (method, path)
    # and everything is still there
    assert reg.request("GET", "/v2/victim/manifests/v1", headers={**owner, "Accept": OCI_MANIFEST}).body == manifest
    assert reg.request("GET", f"/v2/victim/blobs/uploads/{upload}", headers=owner).status == 204


def test_pull_only_token_cannot_delete_or_push(registry_factory):
    reg = registry_factory(auth="token", delete_enabled=True, anonymous_pull=True)
    manifest = push_image(reg, "shared", bearer(reg.token("repository:shared:pull,push")))
    anon = bearer(reg.token("repository:shared:pull,push,delete repository:shared:*", user=None))
    assert reg.request("GET", "/v2/shared/manifests/v1", headers=anon).status == 200
    for method, path in (("DELETE", f"/v2/shared/manifests/{sha(manifest)}"), ("DELETE", "/v2/shared/manifests/v1"),
                         ("DELETE", f"/v2/shared/blobs/{sha(b'a layer')}"), ("POST", "/v2/shared/blobs/uploads/"),
                         ("GET", "/v2/_catalog")):
        assert reg.request(method, path, headers=anon).status == 401, (method, path)


def test_mount_needs_pull_on_its_source(registry_factory):
    reg = registry_factory(auth="token")
    secret = b"secret layer of another team"
    owner = bearer(reg.token("repository:private/db:pull,push"))
    r = reg.request("POST", f"/v2/private/db/blobs/uploads/?digest={sha(secret)}", secret, owner)
    assert r.status == 201
    mallory = bearer(reg.token("repository:mallory/x:pull,push"))
    # naming the source, and letting the registry look for it (no `from`): an upload session, never a mount
    for query in (f"mount={sha(secret)}&from=private/db", f"mount={sha(secret)}",
                  f"mount={sha(secret)}&from=private/../private/db"):
        r = reg.request("POST", f"/v2/mallory/x/blobs/uploads/?{query}", headers=mallory)
        assert r.status == 202, (query, r.status, r.body)
        reg.request("DELETE", r.header("Location"), headers=mallory)
    r = reg.request("GET", f"/v2/mallory/x/blobs/{sha(secret)}", headers=mallory)
    assert r.status == 404
    # with pull on the source the mount works
    both = bearer(reg.token("repository:mallory/x:pull,push repository:private/db:pull"))
    r = reg.request("POST", f"/v2/mallory/x/blobs/uploads/?mount={sha(secret)}&from=private/db", headers=both)
    assert r.status == 201


# ------------------------------------------------------------------------------------------------------- tokens

def test_forged_expired_and_foreign_tokens_are_refused(registry_factory):
    reg = registry_factory(auth="token")
    key = bytes.fromhex((reg.root / "token.key").read_text().strip())
    now = int(time.time())
    good = {"iss": "barque-registry", "sub": "alice", "aud": "barque-registry", "exp": now + 300, "nbf": now - 1,
            "iat": now, "access": [{"type": "repository", "name": "repo", "actions": ["pull", "push"]}]}

    def sign(header: dict, claims: dict, digestmod=hashlib.sha256, key=key) -> str:
        signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        return f"{signing}.{b64(hmac.new(key, signing.encode(), digestmod).digest())}"

    hs256 = {"typ": "JWT", "alg": "HS256"}
    assert reg.request("POST", "/v2/repo/blobs/uploads/", headers=bearer(sign(hs256, good))).status == 202
    bad = {
        "alg none": f"{b64(json.dumps({'alg': 'none'}).encode())}.{b64(json.dumps(good).encode())}.",
        "alg HS512": sign({"alg": "HS512"}, good, hashlib.sha512),
        "alg RS256 with the HMAC": sign({"alg": "RS256"}, good),
        "another key": sign(hs256, good, key=b"k" * 32),
        "expired": sign(hs256, {**good, "exp": now - 5}),
        "no exp": sign(hs256, {k: v for k, v in good.items() if k != "exp"}),
        "exp as text": sign(hs256, {**good, "exp": str(now + 300)}),
        "another service": sign(hs256, {**good, "aud": "elsewhere"}),
        "no audience": sign(hs256, {k: v for k, v in good.items() if k != "aud"}),
        "another issuer": sign(hs256, {**good, "iss": "someone"}),
        "not yet valid": sign(hs256, {**good, "nbf": now + 3600}),
        "truncated signature": sign(hs256, good)[:-4],
        "two parts": ".".join(sign(hs256, good).split(".")[:2]),
        "garbage": "a.b.c",
    }
    for what, token in bad.items():
        r = reg.request("POST", "/v2/repo/blobs/uploads/", headers=bearer(token))
        assert r.status == 401, (what, r.status, r.body)
        assert 'error="invalid_token"' in r.header("WWW-Authenticate"), what


def test_token_endpoint_refuses_bad_credentials_and_foreign_service(registry_factory):
    reg = registry_factory(auth="token")
    for creds in (("alice", "wrong"), ("", ""), ("bob", "secret"), ("alice", "secret\0")):
        r = reg.request("GET", "/token?service=barque-registry&scope=repository:r:pull", auth=creds)
        assert r.status == 401, creds
    r = reg.request("GET", "/token?service=other&scope=repository:r:pull", auth="basic")
    assert r.status == 400
    for form in (b"grant_type=password&username=alice&password=wrong&scope=repository:r:pull",
                 b"grant_type=password&username=&password=&scope=repository:r:pull"):
        r = reg.request("POST", "/token", form, {"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status == 401, form
    # an anonymous token (no anonymous pull configured) grants nothing
    anon = reg.token("repository:r:pull,push", user=None)
    claims = json.loads(base64.urlsafe_b64decode(anon.split(".")[1] + "=="))
    assert claims["access"] == [] and claims["sub"] == ""
    # the token endpoint's body is bounded
    r = reg.request("POST", "/token", b"grant_type=password&scope=" + b"x" * (2 << 20),
                    {"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 413


# ----------------------------------------------------------------------------------------------------- htpasswd

def test_malformed_bcrypt_entry_is_a_refusal_not_a_server_error(registry_factory):
    reg = registry_factory(auth="htpasswd", users={"alice": "secret"})
    path = reg.root.parent / "htpasswd"
    make_htpasswd(path, {"alice": "secret"})
    with open(path, "a") as f:
        f.write("broken:$2y$10$tooshort\n")
    r = reg.request("GET", "/v2/", auth=("broken", "anything"))
    assert r.status == 401, (r.status, r.body)
    assert reg.request("GET", "/v2/", auth=("alice", "secret")).status == 200
    assert "Traceback" not in reg.log()


# ------------------------------------------------------------------------------------------ names, digests, IDs

def test_names_digests_and_upload_ids_never_reach_the_filesystem(registry_factory):
    reg = registry_factory()
    (reg.root / "outside").write_bytes(b"x")
    paths = [
        "/v2/a/blobs/uploads/..", "/v2/a/blobs/uploads/%2e%2e", "/v2/a/blobs/uploads/..%2f..%2fregistry.db",
        "/v2/a/blobs/uploads/%2e%2e%2fuploads", "/v2/a/blobs/sha256:..%2f..%2fregistry.db",
        "/v2/a/blobs/sha256:" + "../" * 3 + "registry.db", "/v2/../../etc/manifests/latest",
        "/v2/a/%2e%2e/b/tags/list", "/v2/a/manifests/..%2f..%2fregistry.db",
        "/v2/a/blobs/sha256:" + "0" * 63 + "%0a",
    ]
    for p in paths:
        for method in ("GET", "PATCH", "PUT", "DELETE"):
            r = reg.request(method, p, b"" if method in ("PATCH", "PUT") else None)
            assert r.status in (400, 404, 405), (method, p, r.status)
    assert (reg.root / "registry.db").is_file() and (reg.root / "outside").read_bytes() == b"x"
    assert "Traceback" not in reg.log()


# ------------------------------------------------------------------------------------------ resource exhaustion

def _raw_request(host: str, head: bytes, body: bytes) -> socket.socket:
    addr, port = host.rsplit(":", 1)
    s = socket.create_connection((addr, int(port)), timeout=15)
    s.sendall(head + body)
    return s


def _read_response(s: socket.socket, deadline: float) -> bytes:
    out = b""
    s.settimeout(1)
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            if out:
                break
            continue
        if not chunk:
            break
        out += chunk
    return out


def test_a_stalled_upload_body_is_cut_off_and_the_session_stays_usable(registry_factory):
    reg = registry_factory(extra_args=["--body-timeout", "1"])
    r = reg.request("POST", "/v2/slow/blobs/uploads/")
    location = r.header("Location")
    head = (f"PATCH {location} HTTP/1.1\r\nHost: {reg.host}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: 1000\r\n\r\n").encode()
    s = _raw_request(reg.host, head, b"first bytes")
    try:
        started = time.monotonic()
        answer = _read_response(s, started + 20)
        elapsed = time.monotonic() - started
    finally:
        s.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert elapsed < 10
    # what arrived is kept (the client may resume), and the session is not left locked
    r = reg.request("GET", location)
    assert r.status == 204 and r.header("Range") == "0-10", (r.status, r.headers)
    rest = b"-and the rest"
    r = reg.request("PUT", f"{location}?digest={sha(b'first bytes' + rest)}", rest,
                    {"Content-Type": "application/octet-stream"})
    assert r.status == 201, (r.status, r.body)


def test_a_stalled_manifest_body_is_cut_off(registry_factory):
    reg = registry_factory(extra_args=["--body-timeout", "1"])
    head = (f"PUT /v2/slow/manifests/v1 HTTP/1.1\r\nHost: {reg.host}\r\nContent-Type: {OCI_MANIFEST}\r\n"
            f"Content-Length: 500\r\n\r\n").encode()
    s = _raw_request(reg.host, head, b'{"schemaVersion"')
    try:
        answer = _read_response(s, time.monotonic() + 20)
    finally:
        s.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_upload_sessions_are_bounded_per_repository(registry_factory):
    reg = registry_factory(extra_args=["--max-upload-sessions", "3"])
    opened = [reg.request("POST", "/v2/many/blobs/uploads/") for _ in range(3)]
    assert all(r.status == 202 for r in opened)
    r = reg.request("POST", "/v2/many/blobs/uploads/")
    assert r.status == 429 and code(r) == "TOOMANYREQUESTS"
    # another repository is not affected; finishing or cancelling one frees a place
    assert reg.request("POST", "/v2/other/blobs/uploads/").status == 202
    assert reg.request("DELETE", opened[0].header("Location")).status == 204
    assert reg.request("POST", "/v2/many/blobs/uploads/").status == 202
    # a monolithic push (POST ?digest=) needs a session too, and is refused the same way
    r = reg.request("POST", f"/v2/many/blobs/uploads/?digest={sha(b'x')}", b"x")
    assert r.status == 429


def test_abandoned_upload_sessions_expire_without_garbage_collection(registry_factory):
    # no --gc-interval: the expiry of idle sessions must still happen
    reg = registry_factory(extra_args=["--upload-expiry", "1"])
    r = reg.request("POST", "/v2/gone/blobs/uploads/")
    location = r.header("Location")
    reg.request("PATCH", location, b"partial", {"Content-Type": "application/octet-stream"})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if reg.request("GET", location).status == 404 and not any((reg.root / "uploads").iterdir()):
            break
        time.sleep(0.5)
    assert reg.request("GET", location).status == 404
    assert not any((reg.root / "uploads").iterdir())


def test_a_stalled_token_request_is_cut_off(registry_factory):
    # /token takes requests from anyone: a form that never finishes must not hold the connection
    reg = registry_factory(auth="token", extra_args=["--body-timeout", "1"])
    head = (f"POST /token HTTP/1.1\r\nHost: {reg.host}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: 300\r\n\r\n").encode()
    s = _raw_request(reg.host, head, b"grant_type=password&username=alice")
    try:
        started = time.monotonic()
        answer = _read_response(s, started + 20)
    finally:
        s.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < 10
