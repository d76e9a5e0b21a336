"""Debian's `docker-registry` (distribution 2.x, the reference implementation) as a test peer: started on an ephemeral
loopback port from a config of our own, optionally with htpasswd (bcrypt) auth and TLS (a CA made with openssl, its
certificate placed in a certs.d directory for barque), and stopped however the test ends.

Usable outside pytest (the benchmarks): ``with docker_registry(workdir) as reg: … reg.host …``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tests.registry_support import make_htpasswd
from tests.registry_support import make_tls as make_ca_and_cert

DOCKER_REGISTRY = "/usr/bin/docker-registry"
START_TIMEOUT_S = 30


def available() -> str | None:
    """Why the peer cannot run here, or None."""
    if not Path(DOCKER_REGISTRY).exists():
        return "docker-registry (Debian package docker-registry) is not installed"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class TLSFiles:
    ca: Path
    cert: Path
    key: Path
    certs_d: Path          # a certs.d root holding HOST:PORT/ca.crt once the port is known


def make_tls(work: Path) -> TLSFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost (tests/registry_support.py makes them)."""
    ca, cert, key = make_ca_and_cert(work)
    return TLSFiles(ca, cert, key, work / "certs.d")


@dataclass
class RegistryPeer:
    work: Path
    port: int
    tls: TLSFiles | None = None
    users: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def storage(self) -> Path:
        return self.work / "storage"

    def env(self) -> dict[str, str]:
        """Environment for barque: its own (empty) registries config, certs.d and Docker config."""
        env = {"BARQUE_REGISTRIES_CONF": str(self.work / "registries.json"),
               "DOCKER_CONFIG": str(self.work / "docker-config")}
        env["BARQUE_CERTS_D"] = str(self.tls.certs_d) if self.tls else str(self.work / "no-certs.d")
        return env


def _config(peer: RegistryPeer) -> str:
    lines = [
        "version: 0.1",
        "log:",
        "  level: error",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {peer.storage}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: 127.0.0.1:{peer.port}",
        "  secret: barque-test-secret",
    ]
    if peer.tls:
        lines += ["  tls:", f"    certificate: {peer.tls.cert}", f"    key: {peer.tls.key}"]
    if peer.users:
        lines += ["auth:", "  htpasswd:", "    realm: barque-test", f"    path: {peer.work / 'htpasswd'}"]
    return "\n".join(lines) + "\n"


def _wait_ready(peer: RegistryPeer) -> None:
    import ssl

    ctx = ssl.create_default_context(cafile=str(peer.tls.ca)) if peer.tls else None
    deadline = time.monotonic() + START_TIMEOUT_S
    last: Exception | None = None
    while time.monotonic() < deadline:
        if peer.proc.poll() is not None:
            err = (peer.work / "registry.log").read_text(errors="replace")
            raise RuntimeError(f"docker-registry exited {peer.proc.returncode}: {err[-2000:]}")
        try:
            urllib.request.urlopen(f"{peer.url}/v2/", timeout=2, context=ctx)
            return
        except urllib.error.HTTPError as e:
            if e.code == 401:
                return
            last = e
        except (OSError, urllib.error.URLError) as e:
            last = e
        time.sleep(0.05)
    raise RuntimeError(f"docker-registry did not answer on {peer.url} within {START_TIMEOUT_S}s: {last}")



@contextmanager
def docker_registry(work: Path, users: dict[str, str] | None = None, tls: bool = False) -> Iterator[RegistryPeer]:
    """Run docker-registry for the duration of the block."""
    work.mkdir(parents=True, exist_ok=True)
    peer = RegistryPeer(work, free_port(), make_tls(work / "tls") if tls else None, dict(users or {}))
    peer.storage.mkdir(exist_ok=True)
    (work / "registries.json").write_text("{}\n")
    if peer.tls:
        d = peer.tls.certs_d / peer.host
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(peer.tls.ca, d / "ca.crt")
    if peer.users:
        make_htpasswd(work / "htpasswd", peer.users)
    config = work / "config.yml"
    config.write_text(_config(peer))
    with open(work / "registry.log", "wb") as log:
        peer.proc = subprocess.Popen([DOCKER_REGISTRY, "serve", str(config)], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log, env={**os.environ, "OTEL_TRACES_EXPORTER": "none"})
    try:
        _wait_ready(peer)
        yield peer
    finally:
        peer.proc.terminate()
        try:
            peer.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            peer.proc.kill()
            peer.proc.wait(timeout=10)


# ---- a faulty proxy in front of a registry ---------------------------------------------------------------------

class FaultyProxy:
    """An HTTP proxy (aiohttp, in a thread of the test process) in front of a registry that misbehaves on purpose.

    ``rules`` are checked in order for every request: ``(method, path_substring, action, times)``; an action is
    ``"drop"`` (send half of the body, then cut the connection), ``"503"`` (answer 503), ``"corrupt"`` (flip a
    byte of the body). ``times`` counts down; 0 disables the rule. ``seen`` records (method, path, Range).

    ``add_headers`` lists ``(method, path_substring, {header: value})`` added to the upstream's answers (e.g. an
    ``OCI-Chunk-Min-Length`` on the POST that opens an upload). ``requests`` records every request as a dict:
    method, path (with its query), headers, body_size, status and response_headers (as sent on); ``token_requests`` those sent to a token realm (a bearer
    challenge's realm on the upstream is rewritten to point at the proxy, so token requests pass through it too).
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.rules: list[list] = []
        self.seen: list[tuple[str, str, str]] = []
        self.add_headers: list[tuple[str, str, dict]] = []
        self.requests: list[dict] = []
        self.token_requests: list[dict] = []
        self._realm_paths: set[str] = set()
        self.port = 0
        self._loop = None
        self._thread = None
        self._runner = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _rule(self, method: str, path: str):
        for rule in self.rules:
            if rule[3] > 0 and rule[0] == method and rule[1] in path:
                rule[3] -= 1
                return rule[2]
        return None

    async def _handle(self, request):
        import aiohttp
        from aiohttp import web

        self.seen.append((request.method, request.path_qs, request.headers.get("Range", "")))
        action = self._rule(request.method, request.path)
        if action == "503":
            return web.Response(status=503, text="try again")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        body = await request.read()
        record = {"method": request.method, "path": request.path_qs, "headers": dict(request.headers),
                  "body_size": len(body), "query": list(request.query.items())}
        self.requests.append(record)
        if request.path in self._realm_paths:
            self.token_requests.append(record)
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            async with session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                       data=body or None, allow_redirects=False) as up:
                data = await up.read()
                out_headers = {k: v for k, v in up.headers.items()
                               if k.lower() not in ("content-length", "transfer-encoding", "connection")}
                if "Location" in up.headers:
                    out_headers["Location"] = up.headers["Location"].replace(self.upstream, f"http://{self.host}")
                if "WWW-Authenticate" in up.headers:
                    out_headers["WWW-Authenticate"] = self._rewrite_realm(up.headers["WWW-Authenticate"])
                for method, part, extra in self.add_headers:
                    if method == request.method and part in request.path:
                        out_headers.update(extra)
                status = up.status
                record["status"], record["response_headers"] = status, dict(out_headers)
        if action == "corrupt" and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        if action == "drop" and len(data) > 1:
            resp = web.StreamResponse(status=status, headers=out_headers)
            resp.content_length = len(data)
            await resp.prepare(request)
            await resp.write(data[: len(data) // 2])
            request.transport.close()
            return resp
        return web.Response(status=status, body=data if request.method != "HEAD" else None, headers=out_headers)

    def _rewrite_realm(self, header: str) -> str:
        import re
        from urllib.parse import urlsplit

        m = re.search(r'realm="([^"]*)"', header)
        if not m or not m.group(1).startswith(self.upstream + "/"):
            return header
        self._realm_paths.add(urlsplit(m.group(1)).path)
        return header.replace(f'realm="{self.upstream}', f'realm="http://{self.host}')

    def __enter__(self) -> "FaultyProxy":
        import asyncio
        import threading

        from aiohttp import web

        ready = threading.Event()

        async def start() -> None:
            app = web.Application(client_max_size=1 << 30)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("proxy did not start")
        return self

    def __exit__(self, *exc) -> None:
        import asyncio

        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
