"""Bearer-token authentication of barque's registry client, against barque's own registry and its token issuer."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.conftest import FIXTURE_ID, FIXTURES


def test_token_auth_login_push_mount_pull(registry_factory, roots, tmp_path):
    reg = registry_factory(auth="token", users={"alice": "s3cret"})
    env = {"DOCKER_CONFIG": str(tmp_path / "docker-config"), "BARQUE_REGISTRIES_CONF": str(tmp_path / "none.json"),
           "BARQUE_CERTS_D": str(tmp_path / "certs.d")}
    c = roots("c")
    c("load", "-i", FIXTURES / "docker-save-layers.tar")
    name = f"{reg.host}/team/app:1"
    c("tag", "fixture/layers:1", name)
    r = c("push", name, env=env, check=False)
    assert r.returncode == 1 and "unauthorized" in r.stderr.lower()

    r = c("login", "-u", "alice", "--password-stdin", reg.host, input="wrong", env=env, check=False)
    assert r.returncode == 1 and "incorrect username or password" in r.stderr
    assert c("login", "-u", "alice", "--password-stdin", reg.host, input="s3cret", env=env).stdout.endswith(
        "Login Succeeded\n")
    config = Path(env["DOCKER_CONFIG"]) / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert reg.host in json.loads(config.read_text())["auths"]

    out = c("push", name, env=env).stdout
    assert out.splitlines()[-1].startswith("1: digest: sha256:")
    # another repository of the same registry: the blobs are mounted (a token with pull on the source)
    c("tag", "fixture/layers:1", f"{reg.host}/team/other:1")
    out = c("push", f"{reg.host}/team/other:1", env=env).stdout
    assert "Mounted from team/app" in out

    p = roots("p")
    p("pull", name, env=env)
    assert json.loads(p("image", "inspect", name).stdout)[0]["Id"] == FIXTURE_ID
    p("logout", reg.host, env=env)
    r = p("pull", f"{reg.host}/team/other:1", env=env, check=False)
    assert r.returncode == 1 and "unauthorized" in r.stderr.lower()
