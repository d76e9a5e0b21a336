"""`barque serve`'s container filesystem endpoints — archive HEAD/GET/PUT (`docker cp` both ways, docker-py's
get_archive/put_archive), changes (`docker diff`) and export — and clients that go away mid-archive."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import tarfile
import time

import pytest

from tests.api_support import http
from tests.api_support import api, docker, docker_client, running  # noqa: F401 - fixtures
from tests.conftest import unique
from tests.netlab import eventually

pytestmark = pytest.mark.root


@pytest.fixture
def stopped(docker):
    name = unique("st")
    docker("create", "--name", name, "busybox", "true")
    try:
        yield name
    finally:
        docker("rm", "-f", name, check=False)


# ---- docker cp ----------------------------------------------------------------------------------------------------

def test_cp_out_of_a_container(docker, running, tmp_path):
    docker("exec", running, "sh", "-c", "mkdir -p /data/sub && echo one > /data/a && echo two > /data/sub/b && "
                                        "ln -s a /data/link")
    docker("cp", f"{running}:/data/a", str(tmp_path / "a"))
    assert (tmp_path / "a").read_text() == "one\n"
    docker("cp", f"{running}:/data", str(tmp_path / "data"))
    assert (tmp_path / "data" / "sub" / "b").read_text() == "two\n"
    assert os.readlink(tmp_path / "data" / "link") == "a"
    docker("cp", f"{running}:/data/.", str(tmp_path / "contents"))  # a directory's content
    assert sorted(os.listdir(tmp_path / "contents")) == ["a", "link", "sub"]
    docker("cp", "-L", f"{running}:/data/link", str(tmp_path / "followed"))
    assert (tmp_path / "followed").read_text() == "one\n"
    r = docker("cp", f"{running}:/data/a", "-")
    with tarfile.open(fileobj=io.BytesIO(r.stdout_bytes)) as t:
        assert [(m.name, m.size) for m in t.getmembers()] == [("a", 4)]


def test_cp_into_running_and_stopped_containers(docker, running, stopped, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "f").write_text("file\n")
    (src / "sub" / "g").write_text("nested\n")
    for name in (running, stopped):
        docker("cp", str(src / "f"), f"{name}:/tmp/f")
        docker("cp", str(src), f"{name}:/tmp/dir")
        docker("cp", str(src / "f"), f"{name}:/etc/")  # into an existing directory: keeps its name
        out = tmp_path / f"back-{name}"
        docker("cp", f"{name}:/tmp", str(out))
        assert (out / "f").read_text() == "file\n" and (out / "dir" / "sub" / "g").read_text() == "nested\n"
    assert docker("exec", running, "cat", "/tmp/f", "/tmp/dir/sub/g", "/etc/f").stdout == "file\nnested\nfile\n"
    docker("start", "-a", stopped)  # the stopped container's own filesystem got them
    assert "A /tmp/dir/sub/g" in docker("diff", stopped).stdout.splitlines()


def test_cp_refusals_as_docker(docker, running, tmp_path):
    (tmp_path / "f").write_text("x")
    r = docker("cp", f"{running}:/nosuch", str(tmp_path), check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == f"Error response from daemon: Could not find the file /nosuch in container {running}"
    r = docker("cp", str(tmp_path / "f"), f"{running}:/nosuchdir/x", check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == f"Error response from daemon: Could not find the file /nosuchdir in container {running}"
    docker("exec", running, "mkdir", "-p", "/tmp/d/f")
    r = docker("cp", str(tmp_path / "f"), f"{running}:/tmp/d", check=False)
    assert r.returncode == 1 and r.stderr.strip() == (
        'Error response from daemon: Error processing tar file(exit status 1): cannot overwrite directory "/tmp/d/f" '
        'with non-directory "/tmp/d"')
    r = docker("cp", "nosuch:/etc", str(tmp_path), check=False)
    assert r.returncode == 1 and "No such container: nosuch" in r.stderr


def test_cp_into_a_read_only_container_is_refused(docker, tmp_path):
    name = unique("ro")
    docker("run", "-d", "--read-only", "--name", name, "busybox", "sleep", "600")
    try:
        (tmp_path / "f").write_text("x")
        r = docker("cp", str(tmp_path / "f"), f"{name}:/tmp/f", check=False)
        assert r.returncode == 1 and "container rootfs is marked read-only" in r.stderr
    finally:
        docker("rm", "-f", name)


# ---- the endpoints as such ----------------------------------------------------------------------------------------

def _stat(headers: dict) -> dict:
    return json.loads(base64.b64decode(headers["x-docker-container-path-stat"]))


def test_head_and_get_archive_stat(api, running):
    status, headers, body = http(api.sock, "HEAD", f"/containers/{running}/archive?path=/etc/passwd")
    assert (status, body) == (200, b"")
    st = _stat(headers)
    assert (st["name"], st["mode"], st["linkTarget"]) == ("passwd", 0o644, "") and st["size"] > 0
    assert st["mtime"].endswith("Z") and st["mtime"][4] == "-"
    st = _stat(http(api.sock, "HEAD", f"/containers/{running}/archive?path=/etc")[1])
    assert (st["name"], st["mode"]) == ("etc", (1 << 31) | 0o755)  # Go's os.ModeDir
    st = _stat(http(api.sock, "HEAD", f"/containers/{running}/archive?path=/bin/sh")[1])
    assert (st["name"], st["mode"] & ~0o777, st["linkTarget"]) == ("sh", 1 << 27, "/bin/busybox")  # os.ModeSymlink
    assert _stat(http(api.sock, "HEAD", f"/containers/{running}/archive?path=/etc/.")[1])["name"] == "."
    assert _stat(http(api.sock, "HEAD", f"/containers/{running}/archive?path=/")[1])["name"] == "/"
    assert http(api.sock, "HEAD", f"/containers/{running}/archive?path=/nosuch")[0] == 404
    status, _, body = http(api.sock, "GET", f"/containers/{running}/archive?path=/nosuch")
    assert (status, json.loads(body)) == (404, {"message": f"Could not find the file /nosuch in container {running}"})
    status, _, body = http(api.sock, "GET", f"/containers/{running}/archive")
    assert (status, json.loads(body)) == (400, {"message": "bad parameter: pathcannot be empty"})
    status, headers, body = http(api.sock, "GET", f"/containers/{running}/archive?path=/etc/hostname")
    assert status == 200 and headers["content-type"] == "application/x-tar"
    assert _stat(headers)["name"] == "hostname"
    with tarfile.open(fileobj=io.BytesIO(body)) as t:
        assert t.getnames() == ["hostname"]


def test_put_archive_owners_and_overwrites(api, docker, running):
    def tar_of(*members) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            for name, kind, data, uid in members:
                info = tarfile.TarInfo(name)
                info.uid = info.gid = uid
                if kind == "dir":
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    t.addfile(info)
                else:
                    info.size, info.mode = len(data), 0o640
                    t.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    hdr = {"Content-Type": "application/x-tar"}
    status, _, _ = http(api.sock, "PUT", f"/containers/{running}/archive?path=/tmp",
                        tar_of(("owned", "file", b"data", 1234)), hdr)
    assert status == 200
    assert docker("exec", running, "stat", "-c", "%u %g %a %s", "/tmp/owned").stdout == "1234 1234 640 4\n"
    docker("exec", running, "mkdir", "-p", "/tmp/x/thing")
    status, _, body = http(api.sock, "PUT", f"/containers/{running}/archive?path=/tmp/x&noOverwriteDirNonDir=1",
                           tar_of(("thing", "file", b"f", 0)), hdr)
    assert status in (400, 409, 500) and "cannot overwrite directory" in json.loads(body)["message"]
    status, _, _ = http(api.sock, "PUT", f"/containers/{running}/archive?path=/tmp/x",  # without: replaced
                        tar_of(("thing", "file", b"f", 0)), hdr)
    assert status == 200 and docker("exec", running, "cat", "/tmp/x/thing").stdout == "f"
    status, _, body = http(api.sock, "PUT", f"/containers/{running}/archive?path=/nosuch",
                           tar_of(("a", "file", b"", 0)), hdr)
    assert (status, json.loads(body)["message"]) == (404, f"Could not find the file /nosuch in container {running}")
    status, _, body = http(api.sock, "PUT", f"/containers/{running}/archive?path=/etc/passwd",
                           tar_of(("a", "file", b"", 0)), hdr)
    assert (status, json.loads(body)["message"]) == (400, "extraction point is not a directory")
    status, _, body = http(api.sock, "PUT", f"/containers/{running}/archive?path=/tmp", b"not a tar" * 200, hdr)
    assert status == 400 and json.loads(body)["message"].startswith("Error processing tar file(exit status 1): ")
    assert http(api.sock, "GET", "/_ping")[0] == 200
    assert api.errors() == ""


def test_docker_py_put_and_get_archive(docker_client, running):
    c = docker_client.containers.get(running)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in (("dir/one", b"1"), ("dir/two", b"22")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    assert c.put_archive("/tmp", buf.getvalue()) is True
    chunks, st = c.get_archive("/tmp/dir")
    assert (st["name"], st["mode"] & (1 << 31)) == ("dir", 1 << 31)
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as t:
        got = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}
    assert got == {"dir/one": b"1", "dir/two": b"22"}
    import docker as dockerpy

    with pytest.raises(dockerpy.errors.NotFound):
        c.get_archive("/nosuch")


def test_diff_and_export(docker, running, tmp_path):
    docker("exec", running, "sh", "-c", "mkdir /newdir && touch /newdir/f && rm /etc/group && echo x >> /etc/passwd")
    lines = docker("diff", running).stdout.splitlines()
    assert lines == ["C /etc", "D /etc/group", "C /etc/passwd", "A /newdir", "A /newdir/f"]
    fresh = unique("fresh")
    docker("create", "--name", fresh, "busybox", "true")
    try:
        assert docker("diff", fresh).stdout == ""
    finally:
        docker("rm", fresh)
    docker("export", "-o", str(tmp_path / "fs.tar"), running)
    with tarfile.open(tmp_path / "fs.tar") as t:
        names = set(t.getnames())
    assert {"bin/busybox", "newdir/f", "etc/passwd"} <= names and "etc/group" not in names


def test_changes_kinds(api, running, docker):
    docker("exec", running, "sh", "-c", "touch /added && rm /etc/group")
    status, _, body = http(api.sock, "GET", f"/containers/{running}/changes")
    got = {c["Path"]: c["Kind"] for c in json.loads(body)}
    assert status == 200 and (got["/added"], got["/etc"], got["/etc/group"]) == (1, 0, 2)


# ---- clients that go away -----------------------------------------------------------------------------------------

def _mounts_of(root) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if str(root) in line]


def test_clients_gone_mid_archive_leave_no_mount(api, docker, stopped):
    docker("cp", "/usr/bin", f"{stopped}:/big")  # megabytes to stream
    root = api.barque.root
    assert _mounts_of(root) == []  # nothing runs: no container filesystem is mounted
    for path in (f"/containers/{stopped}/archive?path=/big", f"/containers/{stopped}/export"):
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(api.sock))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: d\r\n\r\n".encode())
        assert s.recv(65536)  # the tar has begun …
        s.close()             # … and the client is gone
    # an upload cut short
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(api.sock))
    s.sendall(f"PUT /containers/{stopped}/archive?path=/tmp HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar"
              f"\r\nContent-Length: {10 << 20}\r\n\r\n".encode())
    info = tarfile.TarInfo("half")
    info.size = 8 << 20
    s.sendall(info.tobuf() + b"x" * (1 << 20))
    time.sleep(0.5)
    s.close()
    assert eventually(lambda: _mounts_of(root) == [], timeout=20), _mounts_of(root)
    assert docker("cp", f"{stopped}:/etc/hostname", "-").returncode == 0  # and it still serves
    assert api.errors() == ""
