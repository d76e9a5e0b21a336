"""`barque serve` driven by the real docker CLI: containers (run in the foreground and detached, stdin, exit codes,
ps, logs, stop, rm) and the server's own protocol (ping, version negotiation, errors)."""

from __future__ import annotations

import json
import socket

import pytest

from tests.api_support import api, docker  # noqa: F401 - fixtures
from tests.conftest import unique

pytestmark = pytest.mark.root


def http(sock_path, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One raw HTTP/1.1 exchange on the API socket (Connection: close), for what no client would send."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(sock_path))
    head = f"{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    if body is not None:
        head += f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\n"
    s.sendall(head.encode() + b"\r\n" + (body or b""))
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if hdrs.get("transfer-encoding") == "chunked":
        out, buf = b"", rest
        while buf:
            size, _, buf = buf.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out, buf = out + buf[:n], buf[n + 2:]
        rest = out
    return status, hdrs, rest


def test_ping_and_version_negotiation(api):
    status, headers, body = http(api.sock, "GET", "/_ping")
    assert (status, body) == (200, b"OK")
    assert headers["api-version"] == "1.43" and headers["ostype"] == "linux"
    status, _, body = http(api.sock, "GET", "/v1.41/version")
    assert status == 200 and json.loads(body)["ApiVersion"] == "1.43"
    status, _, body = http(api.sock, "GET", "/v1.99/version")
    assert status == 400
    assert json.loads(body)["message"] == "client version 1.99 is too new. Maximum supported API version is 1.43"
    status, _, body = http(api.sock, "GET", "/v1.12/version")
    assert status == 400 and "too old. Minimum supported API version is 1.24" in json.loads(body)["message"]
    status, _, body = http(api.sock, "GET", "/v1.43/no/such/endpoint")
    assert (status, json.loads(body)) == (404, {"message": "page not found"})


def test_bad_requests_get_docker_errors_and_the_server_keeps_serving(api):
    status, _, body = http(api.sock, "POST", "/containers/create", b"{not json")
    assert status == 400 and "invalid JSON" in json.loads(body)["message"]
    status, _, body = http(api.sock, "POST", "/containers/create", json.dumps({"Image": "busybox", "Cmd": 5}).encode())
    assert status == 400 and "Config.Cmd" in json.loads(body)["message"]
    status, _, body = http(api.sock, "POST", "/containers/create", json.dumps({"Image": "nosuch:image"}).encode())
    assert (status, json.loads(body)["message"]) == (404, "No such image: nosuch:image")
    status, _, body = http(api.sock, "GET", "/containers/nosuch/json")
    assert (status, json.loads(body)["message"]) == (404, "No such container: nosuch")
    status, _, body = http(api.sock, "GET", '/containers/json?filters={"bogus":["x"]}')
    assert (status, json.loads(body)["message"]) == (400, "invalid filter 'bogus'")
    status, _, body = http(api.sock, "POST", "/containers/x/wait?condition=whenever")
    assert status in (400, 404)
    assert http(api.sock, "GET", "/_ping")[0] == 200
    assert api.errors() == ""


def test_run_in_the_foreground_passes_output_and_exit_code(docker):
    r = docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert docker("ps", "-aq").stdout == ""  # --rm removed it


def test_run_with_stdin(docker):
    r = docker("run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z; echo done", input=b"hello\nworld\n")
    assert r.stdout == "HELLO\nWORLD\ndone\n"


def test_missing_command_exits_127(docker):
    r = docker("run", "--rm", "busybox", "/no/such/binary", check=False)
    assert r.returncode == 127, r.stderr


def test_detached_container_ps_logs_stop_rm(docker):
    name = unique("web")
    cid = docker("run", "-d", "--name", name, "busybox", "sh", "-c", "echo ready; exec sleep 300").stdout.strip()
    assert len(cid) == 64
    ps = docker("ps", "--format", "{{.ID}} {{.Names}} {{.Status}}").stdout.split("\n")[0].split(" ", 2)
    assert ps[0] == cid[:12] and ps[1] == name and ps[2].startswith("Up")
    from tests.netlab import eventually

    eventually(lambda: docker("logs", name).stdout == "ready\n")
    inspected = docker.json("inspect", name)[0]
    assert inspected["Id"] == cid and inspected["State"]["Running"] is True
    docker("stop", "-t", "1", name)
    assert docker.json("inspect", name)[0]["State"]["Status"] == "exited"
    docker("rm", name)
    r = docker("inspect", name, check=False)
    assert r.returncode == 1 and "No such object" in r.stderr or "No such container" in r.stderr


def test_the_cli_and_the_api_see_the_same_containers(api, docker):
    name = unique("shared")
    api.barque("create", "--name", name, "busybox", "true")
    assert name in docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    docker("rm", name)
    assert name not in api.barque("ps", "-a", "--format", "{{.Names}}").stdout.split()
