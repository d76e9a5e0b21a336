"""Security review of barque's registry client against hostile or broken registries (small aiohttp servers in this
process, on 127.0.0.1): credentials never follow a redirect to another host, every manifest is checked against the
digest the registry claims or the reference names, answers are read with bounds (token, errors, tag lists, big
manifests in many pieces), and config.json is written without ever exposing the credentials."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from aiohttp import web

from barque.errors import BarqueError, DataCorruption
from barque.registry.client.credentials import CredentialStore, Credentials
from barque.registry.client.hosts import Endpoint, HostsConfig
from barque.registry.client.resolve import fetch_manifest
from barque.registry.client.transport import Client

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_bytes(layers: int = 1) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(CONFIG),
                                  "size": len(CONFIG)},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar.gzip",
                                   "digest": sha(b"%d" % i), "size": 1} for i in range(layers)]}).encode()


class Server:
    """An aiohttp app on 127.0.0.1:0 in the test's loop, recording the headers of every request."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.seen: list[tuple[str, str, dict]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

        @web.middleware
        async def record(request, handler):
            self.seen.append((request.method, request.path_qs, dict(request.headers)))
            return await handler(request)

        app.middlewares.append(record)

    async def __aenter__(self) -> "Server":
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"


def plain(fn):
    """An aiohttp handler of a function returning a response (or a coroutine)."""
    async def handler(request):
        out = fn(request)
        return await out if asyncio.iscoroutine(out) else out
    return handler


def run(coro, limit: float = 60):
    return asyncio.run(asyncio.wait_for(coro, limit))


def credentials_file(tmp_path: Path, host: str, user: str = "alice", password: str = "wonderland") -> CredentialStore:
    store = CredentialStore(tmp_path / "docker" / "config.json")
    store.store(host, Credentials(user, password))
    return store


async def open_remote(client: Client, server: Server, repository: str = "team/app", actions: str = "pull"):
    ep = Endpoint(server.url, server.host)
    return await client.open([ep], repository, (f"repository:{repository}:{actions}",))


def bearer_registry(handlers: dict) -> tuple[web.Application, dict]:
    """A registry asking for bearer tokens from its own /token (Basic credentials alice:wonderland)."""
    state = {"token": "tok-" + os.urandom(8).hex()}
    app = web.Application()

    async def token(request):
        if request.headers.get("Authorization") != "Basic " + base64.b64encode(b"alice:wonderland").decode():
            return web.Response(status=401)
        return web.json_response({"token": state["token"], "expires_in": 300})

    def guarded(fn):
        async def handler(request):
            if request.headers.get("Authorization") != f"Bearer {state['token']}":
                realm = f"http://{request.host}/token"
                return web.Response(status=401, headers={
                    "WWW-Authenticate": f'Bearer realm="{realm}",service="fake",scope="repository:team/app:pull"'})
            return await fn(request)
        return handler

    async def v2(request):
        return web.json_response({})

    app.router.add_get("/token", token)
    app.router.add_get("/v2/", guarded(v2))
    for path, fn in handlers.items():
        app.router.add_route("*", path, guarded(fn))
    return app, state


# ------------------------------------------------------------------------------------------------- redirects

@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_the_token_does_not_follow_a_blob_redirect_to_another_host(tmp_path, status):
    blob = b"layer bytes kept in object storage"

    async def go():
        storage_app = web.Application()

        async def stored(request):
            return web.Response(body=blob)

        storage_app.router.add_get("/bucket/{name}", stored)
        async with Server(storage_app) as storage:
            async def redirect(request):
                raise _redirect(status, f"{storage.url}/bucket/x?sig=1")

            app, state = bearer_registry({"/v2/team/app/blobs/{digest}": redirect})
            async with Server(app) as registry:
                async with Client(HostsConfig(), credentials_file(tmp_path, registry.host)) as client:
                    remote = await open_remote(client, registry)
                    resp = await remote.request("GET", f"blobs/{sha(blob)}")
                    body = await resp.read()
                    resp.release()
            return body, state, registry.seen, storage.seen

    body, state, registry_seen, storage_seen = run(go())
    assert body == blob
    assert any(h.get("Authorization") == f"Bearer {state['token']}" for m, p, h in registry_seen if "/blobs/" in p)
    assert storage_seen and all("Authorization" not in h for _, _, h in storage_seen)
    assert all(state["token"] not in json.dumps(h) for _, _, h in storage_seen)


def _redirect(status: int, location: str):
    cls = {301: web.HTTPMovedPermanently, 302: web.HTTPFound, 303: web.HTTPSeeOther,
           307: web.HTTPTemporaryRedirect, 308: web.HTTPPermanentRedirect}[status]
    return cls(location)


def test_basic_credentials_do_not_follow_a_redirect_to_another_host(tmp_path):
    async def go():
        other_app = web.Application()
        other_app.router.add_get("/{tail:.*}", plain(lambda r: web.Response(body=b"elsewhere")))
        async with Server(other_app) as other:
            app = web.Application()
            expected = "Basic " + base64.b64encode(b"alice:wonderland").decode()

            async def v2(request):
                if request.headers.get("Authorization") != expected:
                    return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="fake"'})
                return web.json_response({})

            async def blob(request):
                if request.headers.get("Authorization") != expected:
                    return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="fake"'})
                raise web.HTTPTemporaryRedirect(f"{other.url}/elsewhere")

            app.router.add_get("/v2/", v2)
            app.router.add_get("/v2/team/app/blobs/{digest}", blob)
            async with Server(app) as registry:
                async with Client(HostsConfig(), credentials_file(tmp_path, registry.host)) as client:
                    remote = await open_remote(client, registry)
                    resp = await remote.request("GET", f"blobs/{sha(b'x')}")
                    body = await resp.read()
                    resp.release()
            return body, other.seen

    body, other_seen = run(go())
    assert body == b"elsewhere"
    assert other_seen and all("Authorization" not in h for _, _, h in other_seen)


# ---------------------------------------------------------------------------------------- manifest digests

def manifest_registry(body: bytes, digest_header: str | None, pieces: int = 1) -> web.Application:
    app = web.Application()

    async def v2(request):
        return web.json_response({})

    async def manifest(request):
        headers = {"Content-Type": OCI_MANIFEST if b"layers" in body else OCI_INDEX}
        if digest_header is not None:
            headers["Docker-Content-Digest"] = digest_header
        resp = web.StreamResponse(headers=headers)
        resp.content_length = len(body)
        await resp.prepare(request)
        step = -(-len(body) // pieces)
        for i in range(0, len(body), step):
            await resp.write(body[i:i + step])
            await asyncio.sleep(0.01)
        await resp.write_eof()
        return resp

    app.router.add_get("/v2/", v2)
    app.router.add_get("/v2/team/app/manifests/{ref}", manifest)
    return app


def fetch(tmp_path, app, reference: str):
    async def go():
        async with Server(app) as registry:
            async with Client(HostsConfig(), CredentialStore(tmp_path / "none.json")) as client:
                remote = await open_remote(client, registry)
                return await fetch_manifest(remote, reference, "team/app")
    return run(go())


def test_a_manifest_by_tag_must_match_the_digest_the_registry_claims(tmp_path):
    body = manifest_bytes()
    # honest: the claimed digest is the content's
    assert fetch(tmp_path, manifest_registry(body, sha(body)), "v1").digest.encoded == hashlib.sha256(body).hexdigest()
    # and none claimed is accepted as well (the digest is computed)
    assert fetch(tmp_path, manifest_registry(body, None), "v1").digest.encoded == hashlib.sha256(body).hexdigest()
    # a registry (or something in between) that sends other bytes than the digest it names
    with pytest.raises(DataCorruption, match="does not match"):
        fetch(tmp_path, manifest_registry(body, sha(b"something else")), "v1")


def test_a_manifest_by_digest_must_match_that_digest(tmp_path):
    body = manifest_bytes()
    other = manifest_bytes(2)
    with pytest.raises(DataCorruption, match="does not match"):
        fetch(tmp_path, manifest_registry(other, sha(body)), sha(body))
    # even when the registry's own header agrees with the bytes it sends
    with pytest.raises(DataCorruption, match="does not match"):
        fetch(tmp_path, manifest_registry(other, sha(other)), sha(body))


def test_a_large_manifest_arriving_in_many_pieces_is_read_whole(tmp_path):
    body = manifest_bytes(6000)           # ~900 KB, sent in 40 writes
    assert len(body) > 512 * 1024
    got = fetch(tmp_path, manifest_registry(body, sha(body), pieces=40), sha(body))
    assert got.raw == body and len(got.layers) == 6000


# ------------------------------------------------------------------------------------------ bounded answers

async def _endless(request, status: int = 200, content_type: str = "application/json"):
    resp = web.StreamResponse(status=status, headers={"Content-Type": content_type})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write(b'{"token": "')
    for _ in range(200_000):             # 12 GB if read to the end; bounded by the client or the test's timeout
        await resp.write(b"A" * 65536)
    return resp


def test_an_endless_token_answer_is_refused(tmp_path):
    async def go():
        app = web.Application()
        app.router.add_get("/v2/", plain(lambda r: web.Response(status=401, headers={
            "WWW-Authenticate": f'Bearer realm="http://{r.host}/token",service="fake"'})))
        app.router.add_get("/v2/team/app/tags/list", plain(lambda r: web.Response(status=401, headers={
            "WWW-Authenticate": f'Bearer realm="http://{r.host}/token",service="fake"'})))
        app.router.add_get("/token", _endless)
        async with Server(app) as registry:
            async with Client(HostsConfig(), credentials_file(tmp_path, registry.host)) as client:
                remote = await open_remote(client, registry)
                with pytest.raises(BarqueError) as e:
                    await remote.request("GET", "tags/list")
                return e.value

    err = run(go(), limit=30)
    assert "token" in str(err) and len(str(err)) < 1000


def test_endless_error_and_tag_list_answers_are_refused(tmp_path):
    from barque.registry.client.pull import list_tags

    async def go():
        app = web.Application()
        app.router.add_get("/v2/", plain(lambda r: web.json_response({})))
        app.router.add_get("/v2/team/app/manifests/{ref}", plain(lambda r: _endless(r, 404)))
        app.router.add_get("/v2/team/app/tags/list", _endless)
        async with Server(app) as registry:
            async with Client(HostsConfig(), CredentialStore(tmp_path / "none.json")) as client:
                remote = await open_remote(client, registry)
                errors = []
                for call in (lambda: fetch_manifest(remote, "v1", "team/app"), lambda: list_tags(remote, "team/app")):
                    with pytest.raises(BarqueError) as e:
                        await call()
                    errors.append(e.value)
                return errors

    for err in run(go(), limit=30):
        assert len(str(err)) < 1000


# ------------------------------------------------------------------------------------------------ config.json

def test_config_json_is_written_0600_without_following_a_planted_temporary_file(tmp_path):
    home = tmp_path / "docker"
    home.mkdir(mode=0o700)
    path = home / "config.json"
    stolen = tmp_path / "stolen"
    # whatever name the writer might pick from its pid, something is already there
    for name in (f".config.json.{os.getpid()}.tmp", f".config.json.{os.getpid()}"):
        (home / name).symlink_to(stolen)
    CredentialStore(path).store("registry.example:5000", Credentials("alice", "s3cret-password"))
    assert not stolen.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert base64.b64decode(doc["auths"]["registry.example:5000"]["auth"]) == b"alice:s3cret-password"
    leftovers = [p.name for p in home.iterdir() if p.name != "config.json" and not p.is_symlink()]
    assert leftovers == []


def test_config_json_replaced_keeps_0600_even_when_it_was_wider(tmp_path):
    path = tmp_path / "docker" / "config.json"
    path.parent.mkdir()
    path.write_text("{}")
    path.chmod(0o644)
    CredentialStore(path).store("registry.example:5000", Credentials("alice", "pw"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_credentials_go_only_to_the_registrys_own_host_and_scheme(tmp_path):
    from barque.registry.client.auth import Challenge
    from barque.registry.client.transport import Remote

    store = credentials_file(tmp_path, "127.0.0.1:9")

    async def go():
        client = Client(HostsConfig(), store)
        remote = Remote(client, Endpoint("https://127.0.0.1:9", "127.0.0.1:9"), Challenge("basic"), "team/app", ())
        return [await remote._auth_headers(url, ()) for url in (
            "https://127.0.0.1:9/v2/team/app/blobs/uploads/1",   # the registry itself
            "http://127.0.0.1:9/v2/team/app/blobs/uploads/1",    # an upload Location downgraded to plain HTTP
            "https://127.0.0.1:10/upload/1",                     # another port
            "https://storage.example/upload/1",                  # another host
        )]

    own, downgraded, port, host = run(go())
    assert own == {"Authorization": "Basic " + base64.b64encode(b"alice:wonderland").decode()}
    assert downgraded == port == host == {}
