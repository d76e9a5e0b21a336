"""`barque serve` itself: its unix socket (owner, group, mode, stale sockets, a second server refused), TCP with
TLS and client certificates (--tlsverify), systemd socket activation (fd://), and a clean stop."""

from __future__ import annotations

import grp
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.api_support import LISTENING, ApiServer, docker_binary
from tests.conftest import BARQUE

pytestmark = pytest.mark.root


def _docker(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([docker_binary(), *args], capture_output=True, text=True, timeout=60, env=env,
                          stdin=subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_socket_is_root_owned_0660_with_the_group_asked_for(barque, tmp_path):
    group = grp.getgrgid(os.getgid() if os.getgid() else 1)  # any group of this machine but root's own if we can
    sock = tmp_path / "api.sock"
    server = ApiServer(barque, sock, ("--group", group.gr_name))
    try:
        st = sock.stat()
        assert stat.S_ISSOCK(st.st_mode)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, group.gr_gid, 0o660)
        env = {**os.environ, "DOCKER_HOST": server.url}
        assert _docker(env, "version", "--format", "{{.Server.APIVersion}}").stdout.strip() == "1.43"
    finally:
        server.stop()
    assert not sock.exists()  # a stopped server takes its socket with it
    assert server.proc.returncode == 0


def test_unknown_group_leaves_the_socket_root_only(barque, tmp_path):
    sock = tmp_path / "api.sock"
    server = ApiServer(barque, sock, ("--group", "no-such-group-barque"))
    try:
        st = sock.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o660)
        assert "no-such-group-barque" in server.log.read_text()
    finally:
        server.stop()


def test_a_second_server_on_a_live_socket_is_refused_and_a_stale_one_replaced(barque, tmp_path):
    sock = tmp_path / "api.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock))  # a socket file nobody listens on: what a killed server leaves
    stale.close()
    server = ApiServer(barque, sock)
    try:
        second = subprocess.run(BARQUE + barque.args() + ["serve", "-H", f"unix://{sock}"], capture_output=True,
                                text=True, timeout=60)
        assert second.returncode != 0
        assert f"{sock} is in use by another server" in second.stderr
        assert _docker({**os.environ, "DOCKER_HOST": server.url}, "ps").returncode == 0  # the first still serves
    finally:
        server.stop()


def test_bad_host_addresses_are_refused(barque):
    for bad, why in (("tcp://nohost", "expected tcp://HOST:PORT"), ("unix://relative", "must be absolute"),
                     ("ftp://x", "invalid host")):
        r = subprocess.run(BARQUE + barque.args() + ["serve", "-H", bad], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and why in r.stderr, (bad, r.stderr)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _pki(d: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as Docker's TLS guide makes them."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=barque test CA", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", "-subj",
                 f"/CN={name}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_tcp_with_tlsverify_needs_a_client_certificate(barque, tmp_path):
    pki = tmp_path / "pki"
    pki.mkdir()
    _pki(pki)
    port = _free_port()
    sock = tmp_path / "api.sock"
    server = ApiServer(barque, sock, ("-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert",
                                      str(pki / "ca.pem"), "--tlscert", str(pki / "server.pem"), "--tlskey",
                                      str(pki / "server-key.pem")))
    try:
        certs = tmp_path / "client"
        certs.mkdir()
        for src, dst in (("ca.pem", "ca.pem"), ("client.pem", "cert.pem"), ("client-key.pem", "key.pem")):
            (certs / dst).write_bytes((pki / src).read_bytes())
        env = {**os.environ, "DOCKER_HOST": f"tcp://127.0.0.1:{port}", "DOCKER_TLS_VERIFY": "1",
               "DOCKER_CERT_PATH": str(certs)}
        assert _docker(env, "version", "--format", "{{.Server.APIVersion}}").stdout.strip() == "1.43"
        (certs / "cert.pem").unlink()
        (certs / "key.pem").unlink()
        env.pop("DOCKER_TLS_VERIFY")
        refused = _docker({**env, "DOCKER_TLS": "1"}, "version", check=False)
        assert refused.returncode != 0  # no client certificate: the handshake fails
        plain = _docker({k: v for k, v in env.items() if not k.startswith("DOCKER_CERT")} | {"DOCKER_TLS": ""},
                        "version", check=False)
        assert plain.returncode != 0  # plain HTTP to a TLS port
    finally:
        server.stop()


def test_systemd_socket_activation(barque, tmp_path):
    sock = tmp_path / "activated.sock"
    proc = subprocess.Popen(["systemd-socket-activate", "-l", str(sock), *BARQUE, *barque.args(), "serve", "-H",
                             "fd://"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
        # the first connection starts the server, which serves it on the socket systemd passed
        assert _docker(env, "version", "--format", "{{.Server.APIVersion}}").stdout.strip() == "1.43"
        assert _docker(env, "ps", "-q").stdout == ""
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert LISTENING.encode() + b" fd://" in out, err
