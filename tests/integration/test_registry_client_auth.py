"""Authentication and TLS of barque's registry client against docker-registry: htpasswd (Basic), login/logout and
Docker's config.json, credential helpers, certs.d, insecure registries and mirrors."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from tests.conftest import FIXTURE_ID, FIXTURES
from tests.registry_support_peers import available, docker_registry, free_port

pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")

USERS = {"alice": "wonderland", "bob": "builder"}




@pytest.fixture
def secured(tmp_path):
    with docker_registry(tmp_path / "registry", users=USERS) as reg:
        yield reg


def config_of(reg) -> dict:
    return json.loads((Path(reg.env()["DOCKER_CONFIG"]) / "config.json").read_text())


def test_login_push_pull_logout_with_htpasswd(secured, roots):
    c = roots("c", secured.env())
    c("load", "-i", FIXTURES / "docker-save-layers.tar")
    name = f"{secured.host}/private/img:1"
    c("tag", "fixture/layers:1", name)

    r = c("push", name, check=False)
    assert r.returncode == 1 and "unauthorized" in r.stderr
    r = c("pull", name, check=False)
    assert r.returncode == 1
    assert "pull access denied" in r.stderr and "docker login" in r.stderr and "unauthorized" in r.stderr

    r = c("login", "-u", "alice", "--password-stdin", secured.host, input="wrong\n", check=False)
    assert r.returncode == 1 and "401" in r.stderr
    assert not (Path(secured.env()["DOCKER_CONFIG"]) / "config.json").exists()

    # other keys of an existing config.json survive a login
    cfg_dir = Path(secured.env()["DOCKER_CONFIG"])
    cfg_dir.mkdir(parents=True, exist_ok=True)
    (cfg_dir / "config.json").write_text(json.dumps({"psFormat": "table {{.ID}}", "auths": {"other:5000": {
        "auth": base64.b64encode(b"x:y").decode()}}}))
    r = c("login", "-u", "alice", "--password-stdin", secured.host, input="wonderland\n")
    assert r.stdout.strip().splitlines()[-1] == "Login Succeeded"
    doc = config_of(secured)
    assert doc["psFormat"] == "table {{.ID}}" and "other:5000" in doc["auths"]
    assert base64.b64decode(doc["auths"][secured.host]["auth"]) == b"alice:wonderland"
    assert stat.S_IMODE((cfg_dir / "config.json").stat().st_mode) == 0o600

    out = c("push", name).stdout
    assert out.splitlines()[-1].startswith("1: digest: sha256:")
    other = roots("other", secured.env())
    other("pull", name)
    assert json.loads(other("image", "inspect", name).stdout)[0]["Id"] == FIXTURE_ID

    r = c("logout", secured.host)
    assert r.stdout == f"Removing login credentials for {secured.host}\n"
    assert secured.host not in config_of(secured)["auths"]
    assert c("logout", secured.host).stdout == f"Not logged in to {secured.host}\n"
    r = other("pull", name, check=False)
    assert r.returncode == 1 and "unauthorized" in r.stderr


def test_login_with_password_flag_warns_and_non_tty_without_username_fails(secured, roots):
    c = roots("c", secured.env())
    r = c("login", "-u", "bob", "-p", "builder", secured.host)
    assert "Login Succeeded" in r.stdout and "--password-stdin" in r.stderr
    r = c("login", secured.host, check=False)
    assert r.returncode == 1 and "non TTY" in r.stderr


def test_credential_helper_is_used_for_get_store_and_erase(secured, roots, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    store = tmp_path / "helper-store.json"
    helper = bindir / "docker-credential-testhelper"
    helper.write_text(f"""#!/usr/bin/python3
import json, sys
path = {str(store)!r}
try:
    data = json.load(open(path))
except FileNotFoundError:
    data = {{}}
action = sys.argv[1]
if action == "store":
    doc = json.load(sys.stdin)
    data[doc["ServerURL"]] = doc
    json.dump(data, open(path, "w"))
elif action == "get":
    key = sys.stdin.read().strip()
    if key not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps(data[key]))
elif action == "erase":
    data.pop(sys.stdin.read().strip(), None)
    json.dump(data, open(path, "w"))
""")
    helper.chmod(0o755)
    env = {**secured.env(), "PATH": f"{bindir}:{os.environ['PATH']}"}
    cfg_dir = Path(env["DOCKER_CONFIG"])
    cfg_dir.mkdir(parents=True, exist_ok=True)
    (cfg_dir / "config.json").write_text(json.dumps({"credsStore": "testhelper"}))
    c = roots("c", env)
    c("login", "-u", "bob", "--password-stdin", secured.host, input="builder")
    assert json.loads(store.read_text())[secured.host]["Secret"] == "builder"
    assert "auth" not in config_of(secured)["auths"].get(secured.host, {})
    c("load", "-i", FIXTURES / "docker-save-layers.tar")
    c("tag", "fixture/layers:1", f"{secured.host}/helped/img:1")
    c("push", f"{secured.host}/helped/img:1")
    assert c("logout", secured.host).stdout.startswith("Removing login credentials")
    assert secured.host not in json.loads(store.read_text())


def test_tls_registry_with_its_ca_in_certs_d(tmp_path, roots):
    with docker_registry(tmp_path / "tlsreg", tls=True) as reg:
        c = roots("c", reg.env())
        c("load", "-i", FIXTURES / "docker-save-layers.tar")
        name = f"{reg.host}/tls/img:1"
        c("tag", "fixture/layers:1", name)
        c("push", name)
        other = roots("other", {**reg.env(), "BARQUE_CERTS_D": str(tmp_path / "empty")})
        other("pull", f"localhost:{reg.port}/tls/img:1")   # loopback: insecure by default, as in Docker


def _open(endpoint):
    import asyncio

    from barque.registry.client.credentials import CredentialStore
    from barque.registry.client.hosts import HostsConfig
    from barque.registry.client.transport import Client

    async def go():
        async with Client(HostsConfig(), CredentialStore(Path("/nonexistent/config.json"))) as client:
            return await client.open([endpoint], "x", ())

    return asyncio.run(go())


def test_certificates_are_verified_for_secure_endpoints(tmp_path):
    """A secure registry (any name not listed insecure) is verified: against the system CAs and its certs.d
    directory. Everything here is on loopback, which is insecure by default, so the endpoint is built directly."""
    from barque.errors import Unavailable
    from barque.registry.client.hosts import Endpoint, HostsConfig
    from tests.registry_support_peers import make_tls

    with docker_registry(tmp_path / "tlsreg", tls=True) as reg:
        with pytest.raises(Unavailable, match="(?i)certificate"):
            _open(Endpoint(f"https://{reg.host}", reg.host))
        other_ca = make_tls(tmp_path / "otherca")
        with pytest.raises(Unavailable, match="(?i)certificate"):
            _open(Endpoint(f"https://{reg.host}", reg.host, ca_files=(str(other_ca.ca),)))
        cas, pairs = HostsConfig(certs_dirs=(str(reg.tls.certs_d),)).certs_for(reg.host)
        assert cas and not pairs
        remote = _open(Endpoint(f"https://{reg.host}", reg.host, ca_files=cas))
        assert remote.endpoint.secure and remote.challenge is None
        # an insecure registry's HTTPS is not verified
        _open(Endpoint(f"https://{reg.host}", reg.host, verify=False))


def test_mirrors_are_tried_first_and_the_origin_is_the_fallback(tmp_path, roots):
    with docker_registry(tmp_path / "mirror") as mirror, docker_registry(tmp_path / "origin") as origin:
        seed = roots("seed", mirror.env())
        seed("load", "-i", FIXTURES / "docker-save-layers.tar")
        seed("tag", "fixture/layers:1", f"{mirror.host}/team/app:1")
        seed("push", f"{mirror.host}/team/app:1")
        seed("tag", "fixture/layers:1", f"{origin.host}/team/only-origin:1")
        seed("push", f"{origin.host}/team/only-origin:1")
        dead = f"127.0.0.1:{free_port()}"
        conf = tmp_path / "registries.json"
        conf.write_text(json.dumps({"mirrors": {dead: [f"http://{mirror.host}"],
                                                origin.host: [f"http://{dead}", f"http://{mirror.host}"]}}))
        env = {**mirror.env(), "BARQUE_REGISTRIES_CONF": str(conf)}
        c = roots("c", env)
        # the registry itself is down: the mirror serves
        c("pull", f"{dead}/team/app:1")
        assert json.loads(c("image", "inspect", f"{dead}/team/app:1").stdout)[0]["Id"] == FIXTURE_ID
        # the first mirror is down, the second lacks the image: the origin serves
        c("pull", f"{origin.host}/team/only-origin:1")
        # pushes go to the registry, never to a mirror
        r = c("push", f"{dead}/team/app:1", check=False)
        assert r.returncode == 1 and dead in r.stderr
