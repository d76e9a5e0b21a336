"""`barque serve`'s image endpoints driven by real clients — the docker CLI (28.x) and docker-py — against barque
registries on loopback (plain, and with htpasswd logins): images, inspect, history, tag, rmi, save | load, import,
commit, push and pull, login; and what bad input and clients that go away get."""

from __future__ import annotations

import io
import json
import re
import socket
import tarfile
import threading
import time

import pytest

from tests.api_support import http, operation_children, raw_request, read_until
from tests.api_support import api, docker, docker_client  # noqa: F401 - fixtures
from tests.conftest import FIXTURES, unique
from tests.registry_support import registry_factory  # noqa: F401 - fixture

pytestmark = pytest.mark.root


# ---- helpers ----------------------------------------------------------------------------------------------------

def message(body: bytes) -> str:
    return json.loads(body)["message"]


def image_ids(docker) -> set[str]:
    return set(docker("images", "-a", "-q", "--no-trunc").stdout.split())


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def settled(api, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not operation_children(api):
            return True
        time.sleep(0.1)
    return False


# ---- the docker CLI -----------------------------------------------------------------------------------------------

def test_images_inspect_history_tag_and_rmi(api, docker):
    listed = docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}").stdout.splitlines()
    assert len(listed) == 1 and listed[0].startswith("busybox:latest ")
    info = docker.json("image", "inspect", "busybox")[0]
    assert info["RepoTags"] == ["busybox:latest"] and info["Id"].startswith("sha256:")
    assert info["Id"] == json.loads(api.barque("image", "inspect", "busybox").stdout)[0]["Id"]
    assert info["GraphDriver"]["Name"] and info["RootFS"]["Type"] == "layers"
    history = docker("history", "--no-trunc", "--format", "{{.ID}}|{{.CreatedBy}}", "busybox").stdout.splitlines()
    assert history[0].startswith(info["Id"] + "|")

    docker("tag", "busybox", "my/bb:1")
    docker("tag", info["Id"][7:19], "my/bb:2")  # by short ID
    assert {"my/bb:1", "my/bb:2"} <= set(api.barque("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split())
    assert docker("images", "-q", "my/bb").stdout.split() == [info["Id"][7:19]] * 2
    assert docker("images", "--filter", "reference=my/*:1", "--format", "{{.Repository}}:{{.Tag}}").stdout == \
        "my/bb:1\n"
    assert docker("images", "--filter", "dangling=true", "-q").stdout == ""
    assert docker("rmi", "my/bb:1", "my/bb:2").stdout.splitlines() == ["Untagged: my/bb:1", "Untagged: my/bb:2"]

    r = docker("rmi", "nosuch", check=False)
    assert r.returncode == 1 and "No such image: nosuch:latest" in r.stderr
    r = docker("image", "inspect", "nosuch", check=False)
    assert r.returncode == 1 and "No such image: nosuch" in r.stderr
    r = docker("tag", "nosuch", "x/y:1", check=False)
    assert r.returncode == 1 and "No such image: nosuch:latest" in r.stderr
    r = docker("history", "nosuch", check=False)
    assert r.returncode == 1 and "No such image: nosuch:latest" in r.stderr
    # an image in use: Docker's conflict, the image stays
    name = unique("user")
    docker("create", "--name", name, "busybox", "true")
    r = docker("rmi", info["Id"], check=False)
    assert r.returncode == 1 and "conflict: unable to delete" in r.stderr and "must be forced" in r.stderr
    docker("rm", name)
    assert docker("images", "-q").stdout.split() == [info["Id"][7:19]]
    # Docker's image events, through the API's event stream
    events = docker("events", "--since", "0", "--until", str(int(time.time()) + 1), "--filter", "type=image",
                    "--format", "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}").stdout.splitlines()
    image_id = info["Id"]
    assert events[-4:] == [f"tag {image_id} my/bb:1", f"tag {image_id} my/bb:2", f"untag {image_id} {image_id}",
                           f"untag {image_id} {image_id}"]
    assert api.errors() == ""


def test_save_then_load_round_trip(api, docker):
    docker("tag", "busybox", "round/trip:1")
    archive = docker("save", "round/trip:1", "busybox").stdout_bytes
    with tarfile.open(fileobj=io.BytesIO(archive)) as t:
        manifest = json.load(t.extractfile("manifest.json"))
    assert sorted(manifest[0]["RepoTags"]) == ["busybox:latest", "round/trip:1"]
    before = image_ids(docker)
    docker("rmi", "round/trip:1", "busybox")
    assert docker("images", "-q").stdout == ""
    out = docker("load", input=archive).stdout.splitlines()
    assert sorted(out) == ["Loaded image: busybox:latest", "Loaded image: round/trip:1"]
    assert image_ids(docker) == before
    assert docker("run", "--rm", "round/trip:1", "echo", "loaded").stdout == "loaded\n"
    # the same through files, and an image saved by ID loads without a name
    image_id = docker("image", "inspect", "-f", "{{.Id}}", "busybox").stdout.strip()
    by_id = docker("save", image_id).stdout_bytes
    docker("tag", "busybox", "keep/it:1")
    docker("rmi", "busybox", "round/trip:1")
    assert docker("load", input=by_id).stdout == f"Loaded image ID: {image_id}\n"
    assert api.errors() == ""


def test_load_of_a_broken_archive_fails_and_changes_nothing(api, docker):
    before = image_ids(docker)
    r = docker("load", input=b"this is not a tar archive\n" * 100, check=False)
    assert r.returncode == 1 and "invalid archive" in r.stderr
    docker("tag", "busybox", "cut/short:1")
    archive = docker("save", "cut/short:1").stdout_bytes
    docker("rmi", "cut/short:1")
    r = docker("load", input=archive[: len(archive) // 2], check=False)
    assert r.returncode == 1 and "invalid archive" in r.stderr, r.stderr
    assert image_ids(docker) == before
    assert "cut/short" not in docker("images").stdout
    assert api.errors() == ""


def test_import_a_root_filesystem_tarball(api, docker):
    flat = (FIXTURES / "docker-export-flat.tar").read_bytes()
    image_id = docker("import", "-c", 'CMD ["cat", "/data/a.txt"]', "-c", "ENV FROM=import", "-m", "from a tarball",
                      "-", "imp/flat:1", input=flat).stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
    info = docker.json("image", "inspect", "imp/flat:1")[0]
    assert info["Id"] == image_id and info["Config"]["Cmd"] == ["cat", "/data/a.txt"]
    assert "FROM=import" in info["Config"]["Env"] and len(info["RootFS"]["Layers"]) == 1
    assert docker("history", "--format", "{{.Comment}}", "imp/flat:1").stdout == "from a tarball\n"
    assert docker("run", "--rm", "imp/flat:1").stdout == "alpha\n"
    before = image_ids(docker)
    r = docker("import", "-", "imp/garbage:1", input=b"garbage", check=False)
    assert r.returncode == 1 and "Error response from daemon: import: the input is not a tar archive" in r.stderr
    r = docker("import", "-c", "RUN true", "-", "imp/badchange:1", input=flat, check=False)
    assert r.returncode == 1 and "RUN is not a valid change command" in r.stderr
    assert image_ids(docker) == before
    assert api.errors() == ""


def test_commit_a_container(api, docker):
    name = unique("commit")
    docker("run", "--name", name, "busybox", "sh", "-c", "echo committed > /hello")
    image_id = docker("commit", "-a", "Ann Author", "-m", "a message", "-c", "ENV MARK=1", "-c",
                      'CMD ["cat", "/hello"]', name, "com/mit:1").stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
    info = docker.json("image", "inspect", "com/mit:1")[0]
    assert (info["Id"], info["Author"], info["Comment"]) == (image_id, "Ann Author", "a message")
    assert "MARK=1" in info["Config"]["Env"] and info["Config"]["Cmd"] == ["cat", "/hello"]
    assert info["Parent"] == docker("image", "inspect", "-f", "{{.Id}}", "busybox").stdout.strip()
    assert docker("run", "--rm", "com/mit:1").stdout == "committed\n"
    history = docker("history", "-q", "--no-trunc", "com/mit:1").stdout.split()
    assert history[:2] == [image_id, info["Parent"]]
    events = docker("events", "--since", "0", "--until", str(int(time.time()) + 1), "--filter", "event=commit",
                    "--format", "{{.Type}} {{.Actor.Attributes.imageID}} {{.Actor.Attributes.imageRef}} "
                    "{{.Actor.Attributes.comment}}").stdout
    assert events == f"container {image_id} com/mit:1 a message\n"
    docker("rm", name)
    r = docker("commit", "nosuch", "x/y:1", check=False)
    assert r.returncode == 1 and "No such container: nosuch" in r.stderr
    assert api.errors() == ""


def test_push_and_pull_through_a_local_registry(api, docker, registry_factory):
    reg = registry_factory()
    name = f"{reg.host}/api/bb:1"
    docker("tag", "busybox", name)
    out = docker("push", name).stdout.splitlines()
    assert out[0] == f"The push refers to repository [{reg.host}/api/bb]"
    assert any(line.endswith(": Pushed") for line in out) and "Preparing" in out[1]
    assert re.fullmatch(r"1: digest: sha256:[0-9a-f]{64} size: \d+", out[-1]), out
    digest = out[-1].split()[2]
    image_id = docker("image", "inspect", "-f", "{{.Id}}", name).stdout.strip()
    docker("rmi", name, "busybox")
    assert docker("images", "-q").stdout == ""

    out = docker("pull", name).stdout.splitlines()
    assert out[0] == "1: Pulling from api/bb"
    assert any(line.endswith(": Pull complete") for line in out) and any("Pulling fs layer" in x for x in out)
    assert f"Digest: {digest}" in out and f"Status: Downloaded newer image for {name}" in out
    assert out[-1] == name
    info = docker.json("image", "inspect", name)[0]
    assert info["Id"] == image_id and info["RepoDigests"] == [f"{reg.host}/api/bb@{digest}"]
    assert docker("run", "--rm", name, "echo", "pulled").stdout == "pulled\n"
    assert docker("pull", name).stdout.splitlines()[-2] == f"Status: Image is up to date for {name}"
    # run pulls what it does not have, through the same endpoint
    docker("rmi", name)
    r = docker("run", "--rm", name, "echo", "auto")
    assert r.stdout == "auto\n" and f"Unable to find image '{name}' locally" in r.stderr

    r = docker("pull", f"{reg.host}/api/bb:nosuch", check=False)
    assert r.returncode == 1 and f"manifest for {reg.host}/api/bb:nosuch not found" in r.stderr
    r = docker("push", f"{reg.host}/api/none:1", check=False)
    assert r.returncode == 1 and f"An image does not exist locally with the tag: {reg.host}/api/none" in r.stderr
    r = docker("pull", "127.0.0.1:1/nothing/here:1", check=False)  # nothing listens there
    assert r.returncode == 1 and "Error response from daemon" in r.stderr
    assert api.errors() == ""


def test_push_and_pull_with_a_login(api, docker, registry_factory):
    reg = registry_factory(auth="htpasswd")
    name = f"{reg.host}/private/bb:1"
    docker("tag", "busybox", name)
    r = docker("push", name, check=False)
    assert r.returncode == 1 and "unauthorized" in r.stderr.lower()
    r = docker("login", "-u", reg.user, "--password-stdin", reg.host, input="wrong\n", check=False)
    assert r.returncode == 1
    assert f"login attempt to http://{reg.host}/v2/ failed with status: 401 Unauthorized" in r.stderr
    r = docker("login", "-u", reg.user, "--password-stdin", reg.host, input=reg.password + "\n")
    assert "Login Succeeded" in r.stdout
    assert reg.host in json.loads((api.sock.parent / "docker-config" / "config.json").read_text())["auths"]
    assert docker("push", name).stdout.splitlines()[-1].startswith("1: digest: sha256:")
    docker("rmi", name, "busybox")
    assert docker("pull", name).stdout.splitlines()[-1] == name
    docker("logout", reg.host)
    docker("rmi", name)
    r = docker("pull", name, check=False)
    assert r.returncode == 1 and "pull access denied" in r.stderr, r.stderr
    assert docker("images", "-q").stdout == ""
    assert api.errors() == ""


# ---- docker-py ----------------------------------------------------------------------------------------------------

def test_docker_py_images(api, docker_client):
    import docker as dockerpy

    image = docker_client.images.get("busybox")
    assert image.tags == ["busybox:latest"] and image.history()[0]["Id"] == image.id
    assert [i.id for i in docker_client.images.list()] == [image.id]
    image.tag("py/bb", "2")
    assert docker_client.images.get("py/bb:2").id == image.id
    archive = b"".join(docker_client.images.get("py/bb:2").save(named="py/bb:2"))
    docker_client.images.remove("py/bb:2")
    loaded = docker_client.images.load(archive)
    assert [i.id for i in loaded] == [image.id] and "py/bb:2" in docker_client.images.get(image.id).tags
    with pytest.raises(dockerpy.errors.ImageNotFound):
        docker_client.images.get("nosuch")
    with pytest.raises(dockerpy.errors.ImageNotFound):
        docker_client.images.remove("nosuch")

    answer = docker_client.api.import_image_from_data(tar_of({"hello.txt": b"hi\n"}), repository="py/imp", tag="1",
                                                      changes=['CMD ["/hello.txt"]'])
    imported = json.loads(answer)["status"]
    assert docker_client.images.get("py/imp:1").id == imported

    c = docker_client.containers.create("busybox", ["sh", "-c", "echo py > /made"])
    c.start()
    assert c.wait()["StatusCode"] == 0
    committed = c.commit("py/com", "1", message="by docker-py", author="py", changes=["ENV Q=1"],
                         conf={"Labels": {"made.by": "docker-py"}, "Cmd": ["cat", "/made"]})
    attrs = committed.attrs
    assert attrs["Author"] == "py" and attrs["Config"]["Labels"] == {"made.by": "docker-py"}
    assert "Q=1" in attrs["Config"]["Env"] and attrs["Config"]["Cmd"] == ["cat", "/made"]
    assert docker_client.containers.run("py/com:1", remove=True) == b"py\n"
    c.remove()

    # prune: nothing dangling; then every unused image carrying a label
    assert docker_client.images.prune() == {"ImagesDeleted": None, "SpaceReclaimed": 0}
    pruned = docker_client.images.prune(filters={"dangling": False, "label": ["made.by=docker-py"]})
    assert {"Untagged": "py/com:1"} in pruned["ImagesDeleted"] and {"Deleted": committed.id} in pruned["ImagesDeleted"]
    assert {i.id for i in docker_client.images.list()} == {image.id, imported}
    assert api.errors() == ""


def test_docker_py_pull_push_and_login(api, docker_client, registry_factory):
    import docker as dockerpy

    plain = registry_factory()
    name = f"{plain.host}/py/bb"
    docker_client.images.get("busybox").tag(name, "1")
    lines = list(docker_client.api.push(name, tag="1", stream=True, decode=True))
    assert lines[0] == {"status": f"The push refers to repository [{name}]"}
    aux = [m["aux"] for m in lines if "aux" in m]
    assert aux and aux[0]["Tag"] == "1" and aux[0]["Digest"].startswith("sha256:")
    assert not any("error" in m for m in lines)
    docker_client.images.remove(f"{name}:1")
    pulled = docker_client.images.pull(name, tag="1")
    assert f"{name}:1" in pulled.tags
    dist = docker_client.api.inspect_distribution(f"{name}:1")
    assert dist["Descriptor"]["digest"] == aux[0]["Digest"] and dist["Platforms"][0]["os"] == "linux"
    # errors in-band once the stream has begun
    lines = list(docker_client.api.push(f"{plain.host}/py/none", tag="1", stream=True, decode=True))
    assert lines[-1]["error"] == f"An image does not exist locally with the tag: {plain.host}/py/none"
    with pytest.raises(dockerpy.errors.NotFound):
        docker_client.images.pull(name, tag="nosuch")

    private = registry_factory(auth="htpasswd")
    with pytest.raises(dockerpy.errors.APIError) as e:
        docker_client.login(private.user, "wrong", registry=private.host, reauth=True)
    assert e.value.status_code == 401
    assert docker_client.login(private.user, private.password, registry=private.host, reauth=True) == \
        {"Status": "Login Succeeded", "IdentityToken": ""}
    secret = f"{private.host}/py/bb"
    docker_client.images.get("busybox").tag(secret, "1")
    auth = {"username": private.user, "password": private.password}
    lines = list(docker_client.api.push(secret, tag="1", stream=True, decode=True, auth_config=auth))
    assert not any("error" in m for m in lines) and any("aux" in m for m in lines)
    docker_client.images.remove(f"{secret}:1")
    assert f"{secret}:1" in docker_client.images.pull(secret, tag="1", auth_config=auth).tags
    assert api.errors() == ""


# ---- raw requests: bad input, clients that go away -----------------------------------------------------------------

def test_bad_requests_get_dockers_statuses_and_messages(api):
    sock = api.sock
    status, _, body = http(sock, "GET", "/v1.43/images/nosuch/json")
    assert (status, message(body)) == (404, "No such image: nosuch:latest")
    status, _, body = http(sock, "GET", "/v1.43/images/UPPER/json")
    assert status == 400 and message(body).startswith("invalid reference format")
    status, _, body = http(sock, "POST", "/v1.43/images/busybox/tag?repo=a/b&tag=bad:tag")
    assert (status, message(body)) == (400, "invalid tag format")
    status, _, body = http(sock, "POST", "/v1.43/images/busybox/tag?repo=a/b@sha256:" + "a" * 64)
    assert (status, message(body)) == (400, "refusing to create a tag with a digest reference")
    status, _, body = http(sock, "POST", "/v1.43/images/nosuch/tag?repo=a/b&tag=1")
    assert (status, message(body)) == (404, "No such image: nosuch:latest")
    status, _, body = http(sock, "GET", '/v1.43/images/json?filters={"dangling":["maybe"]}')
    assert (status, message(body)) == (400, "invalid filter 'dangling=[maybe]'")
    status, _, body = http(sock, "GET", '/v1.43/images/json?filters={"bogus":["x"]}')
    assert (status, message(body)) == (400, "invalid filter 'bogus'")
    status, _, body = http(sock, "POST", '/v1.43/images/prune?filters={"until":["whenever"]}')
    assert status == 400 and "whenever" in message(body)
    status, _, body = http(sock, "DELETE", "/v1.43/images/nosuch")
    assert (status, message(body)) == (404, "No such image: nosuch:latest")
    status, _, body = http(sock, "GET", "/v1.43/images/get?names=busybox&names=nosuch")
    assert (status, message(body)) == (404, "No such image: nosuch:latest")
    status, _, body = http(sock, "POST", "/v1.43/images/busybox/push")
    assert (status, message(body)) == (400, "Bad parameters and missing X-Registry-Auth: EOF")
    status, _, body = http(sock, "POST", "/v1.43/images/create?fromImage=BAD%20NAME")
    assert status == 400 and message(body).startswith("invalid reference format")
    status, _, body = http(sock, "POST", "/v1.43/commit")
    assert (status, message(body)) == (400, 'invalid name or ID supplied: ""')
    status, _, body = http(sock, "POST", "/v1.43/auth", b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and message(body).startswith("invalid JSON")
    # load reports in-band, with 200, as dockerd does
    status, _, body = http(sock, "POST", "/v1.43/images/load", b"\0" * 100)
    answer = json.loads(body.split(b"\r\n")[0])
    assert status == 200 and answer["error"] == answer["errorDetail"]["message"]
    assert "invalid archive" in answer["error"]
    # shapes: Docker's listing fields, history's
    status, _, body = http(sock, "GET", "/v1.43/images/json?shared-size=1")
    listed = json.loads(body)
    assert status == 200 and set(listed[0]) == {"Containers", "Created", "Id", "Labels", "ParentId", "RepoDigests",
                                                "RepoTags", "SharedSize", "Size", "VirtualSize"}
    status, _, body = http(sock, "GET", "/v1.43/images/busybox/history")
    assert status == 200 and set(json.loads(body)[0]) == {"Comment", "Created", "CreatedBy", "Id", "Size", "Tags"}
    assert http(sock, "GET", "/_ping")[0] == 200
    assert api.errors() == ""


def _send_cut(sock_path, path: str, body: bytes, sent: int) -> None:
    """Start a request announcing all of `body`, send `sent` bytes of it, and go away."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(sock_path))
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:sent])
    time.sleep(0.5)
    s.close()


def test_clients_that_go_away_mid_stream_leave_no_image_and_no_child(api, docker):
    docker("tag", "busybox", "cut/load:1")
    archive = docker("save", "cut/load:1").stdout_bytes
    docker("rmi", "cut/load:1")
    before = image_ids(docker)
    # mid-load and mid-import: the upload stops halfway
    _send_cut(api.sock, "/v1.43/images/load", archive, len(archive) // 2)
    _send_cut(api.sock, "/v1.43/images/create?fromSrc=-&repo=cut/import&tag=1", archive, len(archive) // 2)
    assert settled(api), operation_children(api)
    assert image_ids(docker) == before and "cut/" not in docker("images").stdout

    # mid-save of a large image: the client reads a little and leaves
    big = tar_of({"big.bin": b"\0" * (48 << 20)})
    docker("import", "-", "big/one:1", input=big)
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(api.sock))
    s.sendall(b"GET /v1.43/images/big/one:1/get HTTP/1.1\r\nHost: d\r\n\r\n")
    got = b""
    while len(got) < 1 << 20:
        chunk = s.recv(65536)
        assert chunk
        got += chunk
    assert got.startswith(b"HTTP/1.1 200") and b"application/x-tar" in got.split(b"\r\n\r\n")[0]
    s.close()
    assert settled(api), operation_children(api)

    # the same image saved whole afterwards is complete (nothing was left locked or half-done)
    status, headers, body = http(api.sock, "GET", "/v1.43/images/big/one:1/get")
    assert status == 200 and len(body) > 48 << 20
    with tarfile.open(fileobj=io.BytesIO(body)) as t:
        assert json.load(t.extractfile("manifest.json"))[0]["RepoTags"] == ["big/one:1"]
    assert http(api.sock, "GET", "/_ping")[0] == 200
    assert api.errors() == ""


class StallingProxy:
    """In front of a registry, in a thread of the test: passes every request on, except that a GET of a blob other
    than `keep` sends half of the blob and then nothing more (a registry that stalls mid-download)."""

    def __init__(self, upstream: str, keep: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.keep = keep
        self.port = 0
        self._ready = threading.Event()
        self._loop = None
        self._stop = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self) -> None:
        import asyncio

        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        import asyncio

        from aiohttp import web

        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    async def _handle(self, request):
        import asyncio

        import aiohttp
        from aiohttp import web

        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        body = await request.read()
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            async with session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                       data=body or None, allow_redirects=False) as up:
                data = await up.read()
                out = {k: v for k, v in up.headers.items()
                       if k.lower() not in ("content-length", "transfer-encoding", "connection")}
                status = up.status
        stall = request.method == "GET" and "/blobs/" in request.path and not request.path.endswith(self.keep)
        if not stall or status != 200:
            return web.Response(status=status, body=data, headers=out)
        resp = web.StreamResponse(status=200, headers={**out, "Content-Length": str(len(data))})
        await resp.prepare(request)
        await resp.write(data[: len(data) // 2])
        try:
            await asyncio.wait_for(self._stop.wait(), 120)
        except asyncio.TimeoutError:
            pass
        return resp

    def __enter__(self) -> "StallingProxy":
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def test_a_client_that_goes_away_mid_pull_stops_the_pull(api, docker, registry_factory):
    reg = registry_factory()
    name = f"{reg.host}/stall/bb:1"
    docker("tag", "busybox", name)
    docker("push", name)
    image_id = docker("image", "inspect", "-f", "{{.Id}}", name).stdout.strip()
    docker("rmi", name, "busybox")  # the pull has its layer to download
    with StallingProxy(reg.url, keep=image_id.split(":")[1]) as proxy:
        s = raw_request(api, f"POST /v1.43/images/create?fromImage={proxy.host}/stall/bb&tag=1 HTTP/1.1\r\n"
                             "Host: d\r\nContent-Length: 0")
        read_until(s, b"Downloading")  # the layer is half there and the registry has gone quiet
        s.close()
        # the pull stops now, not when the registry's read timeout (two minutes) would have stopped it
        assert settled(api, timeout=15), operation_children(api)
    assert docker("images", "-aq").stdout == ""
    assert http(api.sock, "GET", "/_ping")[0] == 200
    assert api.errors() == ""
