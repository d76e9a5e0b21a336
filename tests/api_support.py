"""`barque serve` for tests: a server on a test's own roots and a unix socket in its tmp_path, the real docker CLI
and docker-py pointed at it, and a teardown that stops the server and removes whatever the test left.

Fixtures: `api` (a server over the `bb` root: busybox loaded), `docker` (runs the docker CLI against it),
`docker_client` (a docker-py client). The whole suite already runs in a throwaway network namespace (conftest), so
containers the server starts never touch the machine's interfaces.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import BARQUE, Result

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
def docker(api) -> Docker:
    return Docker(api)


@pytest.fixture
def docker_client(api):
    import docker as dockerpy

    client = dockerpy.DockerClient(base_url=api.url, version="auto", timeout=120)
    try:
        yield client
    finally:
        client.close()
