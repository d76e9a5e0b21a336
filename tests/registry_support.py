"""Start and stop a barque registry (`barque registry serve`) inside a test, on 127.0.0.1 and an ephemeral port.

API (import what you need; the fixtures are plain pytest fixtures: import them into a test module or a conftest)::

    start_registry(workdir: Path, *, auth: str | None = None, users: dict[str, str] | None = None,
                   tls: bool = False, read_only: bool = False, delete_enabled: bool = False,
                   anonymous_pull: bool = False, root: Path | None = None, extra_args: Sequence[str] = (),
                   timeout: float = 30) -> RegistryServer
        Runs the real CLI (`python -m barque.cli.main registry serve --addr 127.0.0.1:0 ...`) with its root under
        `workdir` (or `root`) and waits for its "listening on" line. `auth` is None, "htpasswd" (Basic) or "token"
        (the registry's own /token issuer); `users` (default {"alice": "secret"}) go into a bcrypt htpasswd file.
        `tls=True` makes a throwaway CA and a certificate for 127.0.0.1/localhost with the openssl CLI.
        The caller must call .stop() (use the fixture or the context manager instead where you can).

    barque_registry(workdir, **same options) -> context manager yielding a RegistryServer, stopped on exit.

    registry_factory  (pytest fixture): a function taking the same keyword options, returning a started
        RegistryServer; every registry it made is stopped when the test ends, also on failure.
    registry          (pytest fixture): one registry with no auth, no TLS, deletes enabled.

    RegistryServer fields and methods:
        url        "http://127.0.0.1:PORT" or "https://…"
        host       "127.0.0.1:PORT" (what image references and skopeo's docker:// use)
        root       the registry root directory
        scheme     "http" or "https"
        users      {user: password} of its htpasswd file ({} without auth)
        ca_cert    Path of the CA certificate to trust (None without TLS)
        cert_dir   a directory holding ca.crt (Docker's certs.d layout; skopeo's --src-cert-dir/--dest-cert-dir)
        user, password   the first user's credentials (None without auth)
        request(method, path, body=None, headers=None, auth=None|"basic"|"token"|(user, password),
                scope=None) -> Response(status, headers, body, json())
            urllib against the registry (trusting its CA); auth="token" fetches a token for `scope` first.
        token(scope: str | None, user=…, password=…) -> str   a bearer token from /token
        garbage_collect(*args) -> CompletedProcess   `barque registry garbage-collect --root ROOT ARGS…`
        stop()      SIGTERM, then SIGKILL after 10 s; returns the exit status
        log()       what the server wrote on stderr so far

    make_htpasswd(path, users) writes bcrypt entries as `htpasswd -B` does.
    make_tls(directory, hosts=("127.0.0.1", "localhost")) -> (ca_cert, cert, key) with the openssl CLI.
"""

from __future__ import annotations

import base64
import json
import os
import selectors
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import pytest

BARQUE = [sys.executable, "-m", "barque.cli.main"]
LISTENING = "barque registry listening on "

__all__ = ["RegistryServer", "Response", "start_registry", "barque_registry", "make_htpasswd", "make_tls",
           "registry_factory", "registry"]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None


@dataclass
class RegistryServer:
    url: str
    host: str
    root: Path
    proc: subprocess.Popen
    stderr_path: Path
    scheme: str = "http"
    users: dict[str, str] = field(default_factory=dict)
    ca_cert: Path | None = None
    cert_dir: Path | None = None

    @property
    def user(self) -> str | None:
        return next(iter(self.users), None)

    @property
    def password(self) -> str | None:
        return self.users[self.user] if self.users else None

    def _context(self) -> ssl.SSLContext | None:
        if self.scheme != "https":
            return None
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def token(self, scope: str | None, user: str | None = "", password: str | None = None,
              service: str = "barque-registry") -> str:
        query = {"service": service}
        if scope:
            query["scope"] = scope
        headers = {}
        if user == "":
            user, password = self.user, self.password
        if user is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        r = self.request("GET", "/token?" + urllib.parse.urlencode(query), headers=headers)
        assert r.status == 200, (r.status, r.body)
        return r.json()["token"]

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                auth=None, scope: str | None = None, timeout: float = 30) -> Response:
        headers = dict(headers or {})
        if auth == "basic":
            auth = (self.user, self.password)
        if isinstance(auth, tuple):
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        elif auth == "token":
            headers["Authorization"] = "Bearer " + self.token(scope)
        url = path if path.startswith("http") else self.url + path
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=self._context()))
        try:
            with opener.open(req, timeout=timeout) as resp:
                return Response(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, dict(e.headers), e.read())

    def garbage_collect(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(BARQUE + ["registry", "garbage-collect", "--root", str(self.root), *args],
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"garbage-collect exited {proc.returncode}: {proc.stderr}")
        return proc

    def log(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.returncode


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # keep 3xx visible to the test
        return None


def make_htpasswd(path: Path, users: dict[str, str]) -> Path:
    import bcrypt

    lines = [f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}" for u, p in users.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_tls(directory: Path, hosts: Sequence[str] = ("127.0.0.1", "localhost")) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate it signed, for `hosts` (IP addresses and DNS names)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.crt"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "ext.cnf"
    sans = ",".join(("IP:" if h.replace(".", "").isdigit() or ":" in h else "DNS:") + h for h in hosts)
    ext.write_text(f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_cert),
        "-days", "2", "-subj", "/CN=barque test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={hosts[0]}")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca_cert, cert, key


def start_registry(workdir: Path, *, auth: str | None = None, users: dict[str, str] | None = None,
                   tls: bool = False, read_only: bool = False, delete_enabled: bool = False,
                   anonymous_pull: bool = False, root: Path | None = None, extra_args: Sequence[str] = (),
                   timeout: float = 30) -> RegistryServer:
    workdir.mkdir(parents=True, exist_ok=True)
    root = root or workdir / "registry-root"
    args = ["registry", "serve", "--addr", "127.0.0.1:0", "--root", str(root)]
    users = dict(users if users is not None else ({"alice": "secret"} if auth else {}))
    if auth:
        args += ["--auth", auth, "--htpasswd", str(make_htpasswd(workdir / "htpasswd", users))]
    ca_cert = cert_dir = None
    if tls:
        ca_cert, cert, key = make_tls(workdir / "tls")
        args += ["--tls-cert", str(cert), "--tls-key", str(key)]
        cert_dir = workdir / "certs"
        cert_dir.mkdir(exist_ok=True)
        (cert_dir / "ca.crt").write_bytes(ca_cert.read_bytes())
    if read_only:
        args.append("--read-only")
    if delete_enabled:
        args.append("--delete-enabled")
    if anonymous_pull:
        args.append("--anonymous-pull")
    args += list(extra_args)
    stderr_path = workdir / f"registry-{time.monotonic_ns()}.log"
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(BARQUE + args, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = _read_line(proc, timeout)
    if not line.startswith(LISTENING):
        proc.kill()
        proc.wait(10)
        raise AssertionError(f"registry did not start: {line!r}\n{stderr_path.read_text(errors='replace')}")
    url = line[len(LISTENING):].strip()
    scheme, _, host = url.partition("://")
    return RegistryServer(url, host, root, proc, stderr_path, scheme, users, ca_cert, cert_dir)


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        while b"\n" not in buf and time.monotonic() < deadline:
            if not sel.select(max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
    finally:
        sel.close()
    return buf.decode(errors="replace").split("\n")[0]


@contextmanager
def barque_registry(workdir: Path, **options) -> Iterator[RegistryServer]:
    server = start_registry(workdir, **options)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def registry_factory(tmp_path: Path):
    made: list[RegistryServer] = []
    count = [0]

    def make(**options) -> RegistryServer:
        count[0] += 1
        server = start_registry(tmp_path / f"registry{count[0]}", **options)
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def registry(registry_factory) -> RegistryServer:
    return registry_factory(delete_enabled=True)
