"""`barque serve` for tests: a server on a test's own roots and a unix socket in its tmp_path, the real docker CLI
and docker-py pointed at it, and a teardown that stops the server and removes whatever the test left.

Fixtures: `api` (a server over the `bb` root: busybox loaded), `docker` (runs the docker CLI against it),
`docker_client` (a docker-py client), `running` (the name of a sleeping busybox container), `lab_api` (a server
inside the host namespace of tests/netlab.py, for tests whose containers talk over the network). The whole suite
already runs in a throwaway network namespace (conftest), so containers the server starts never touch the machine's
interfaces.

Raw requests, for what no client would send: `http` (one exchange: status, headers, body) and `call` (JSON in, JSON
out); `operation_children` (the zygote's children: operations still running).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import BARQUE, Result, unique

LISTENING = "barque API listening on"


class ApiServer:
    def __init__(self, barque, sock: Path, extra: tuple[str, ...] = ()) -> None:
        self.barque = barque
        self.sock = sock
        self.log = sock.with_suffix(".log")
        self._log_file = open(self.log, "wb")
        self.proc = subprocess.Popen(
            barque.prefix + BARQUE + barque.args() + ["serve", "-H", f"unix://{sock}", *extra],
            stdout=subprocess.PIPE, stderr=self._log_file, env={**os.environ, **barque.env},
            start_new_session=True)
        deadline = time.monotonic() + 30
        line = b""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith(LISTENING.encode()) or not line:
                break
        if not line.startswith(LISTENING.encode()):
            self.stop()
            raise AssertionError(f"barque serve did not start: {self.log.read_text()}")
        self.url = f"unix://{sock}"

    @property
    def env(self) -> dict:
        return {**os.environ, "DOCKER_HOST": self.url, "DOCKER_CONFIG": str(self.sock.parent / "docker-config")}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log_file.close()

    def errors(self) -> str:
        """Tracebacks the server logged (a test can assert there are none)."""
        text = self.log.read_text(errors="replace")
        return "\n".join(line for line in text.splitlines() if "Traceback" in line or line.startswith("ERROR"))


def docker_binary() -> str:
    """The docker CLI: a newer one on PATH (it negotiates down to barque's API) before Debian's 20.10."""
    found = shutil.which("docker")
    if not found:
        raise AssertionError("the docker CLI is not installed (scripts/install.sh installs docker.io)")
    return found


@dataclass
class Docker:
    server: ApiServer

    def __call__(self, *args: str, input: bytes | str | None = None, check: bool = True, timeout: float = 120,
                 env: dict | None = None) -> Result:
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run([docker_binary(), *map(str, args)], input=data, capture_output=True, timeout=timeout,
                              env={**self.server.env, **(env or {})},
                              stdin=None if data is not None else subprocess.DEVNULL)
        result = Result(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"),
                        proc.stdout)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(map(str, args))} exited {proc.returncode}\n"
                                 f"stdout: {result.stdout}\nstderr: {result.stderr}\nserver: {self.server.errors()}")
        return result

    def json(self, *args: str):
        return json.loads(self(*args).stdout)


@pytest.fixture
def api(bb, tmp_path):
    """`barque serve` on the `bb` root (busybox:latest loaded)."""
    server = ApiServer(bb, tmp_path / "api.sock")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def lab_api(lab_barque, tmp_path):
    """`barque serve` inside the lab's host namespace (tests/netlab.py): it and its containers live there."""
    server = ApiServer(lab_barque, tmp_path / "lab-api.sock")
    try:
        yield server
    finally:
        server.stop()
        lab_barque.remove_containers()
        lab_barque("network", "prune", "-f", check=False)


@pytest.fixture
def docker(api) -> Docker:
    return Docker(api)


@pytest.fixture
def running(docker):
    """A busybox container that sleeps (its name), made through the API and removed after the test."""
    name = unique("run")
    docker("run", "-d", "--name", name, "busybox", "sleep", "600")
    try:
        yield name
    finally:
        docker("rm", "-f", name, check=False)


@pytest.fixture
def docker_client(api):
    import docker as dockerpy

    client = dockerpy.DockerClient(base_url=api.url, version="auto", timeout=120)
    try:
        yield client
    finally:
        client.close()


# ---- raw requests -------------------------------------------------------------------------------------------------

def http(sock_path, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 120) -> tuple[int, dict, bytes]:
    """One raw HTTP/1.1 exchange on the API socket (Connection: close): (status, headers with lower-case names,
    body with chunked framing undone). A body (b"" too) goes with its Content-Length; no Content-Type unless
    `headers` give one (only commit looks at it)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    if body is not None:
        head += f"Content-Length: {len(body)}\r\n"
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(str(sock_path))
        s.sendall(head.encode() + b"\r\n" + (body or b""))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head_bytes, _, rest = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode().split("\r\n")
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
    return int(lines[0].split()[1]), hdrs, rest


def raw_request(api, head: str, timeout: float = 30) -> socket.socket:
    """A connection to the API socket with `head` sent (the request line and headers, without the blank line that
    ends them): for a test that reads an answer as it streams, or leaves mid-way."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(str(api.sock))
    s.sendall(head.encode() + b"\r\n\r\n")
    return s


def read_until(s: socket.socket, marker: bytes) -> bytes:
    """What arrives on `s` up to and with `marker`; the test fails if the connection ends before it."""
    got = b""
    while marker not in got:
        chunk = s.recv(65536)
        assert chunk, got
        got += chunk
    return got


def call(api, method: str, path: str, body=None) -> tuple[int, object]:
    """One request to the API socket with a JSON body (bytes are sent as they are): (status, the decoded JSON
    answer or None)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    status, _, raw = http(api.sock, method, path, data, {"Content-Type": "application/json"} if data else None,
                          timeout=60)
    return status, (json.loads(raw) if raw.strip() else None)


# ---- processes ----------------------------------------------------------------------------------------------------

def children(pid: int) -> list[int]:
    """The live (not zombie) children of `pid`."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != b"Z":
            out.append(int(entry))
    return out


def operation_children(api) -> list[int]:
    """The zygote's children: operations still running."""
    return [c for z in children(api.proc.pid) for c in children(z)]
