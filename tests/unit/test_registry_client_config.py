"""Registry client configuration: challenges, credentials in config.json, hosts (insecure, mirrors, certs.d)."""

from __future__ import annotations

import base64
import json
import stat

import pytest

from barque.errors import InvalidArgument
from barque.registry.client.auth import parse_challenges
from barque.registry.client.credentials import CredentialStore, Credentials
from barque.registry.client.hosts import HostsConfig, load_hosts_config
from barque.registry.client.login import registry_host


def test_bearer_challenge_with_quoted_commas():
    [c] = parse_challenges('Bearer realm="https://auth.example/token",service="registry.example",'
                           'scope="repository:a/b:pull,push"')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.example/token", "service": "registry.example",
                        "scope": "repository:a/b:pull,push"}


def test_several_challenges_and_unquoted_values():
    cs = parse_challenges('Basic realm="r1", Bearer realm=https://x/t, service=s')
    assert [c.scheme for c in cs] == ["basic", "bearer"]
    assert cs[1].params == {"realm": "https://x/t", "service": "s"}
    assert parse_challenges('Basic realm="a \\"quoted\\" realm"')[0].realm == 'a "quoted" realm'


def test_credentials_round_trip_keeps_other_keys_and_mode(tmp_path):
    path = tmp_path / "cfg" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"detachKeys": "ctrl-x", "auths": {"https://reg.example:5000/v1/": {
        "auth": base64.b64encode(b"old:pw").decode()}}}))
    store = CredentialStore(path)
    assert store.get("reg.example:5000") == Credentials("old", "pw")   # a key with scheme and path matches
    store.store("reg.example:5000", Credentials("u", "p:with:colons"))
    doc = json.loads(path.read_text())
    assert doc["detachKeys"] == "ctrl-x"
    assert list(doc["auths"]) == ["reg.example:5000"]
    assert store.get("reg.example:5000") == Credentials("u", "p:with:colons")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.erase("reg.example:5000") is True
    assert store.get("reg.example:5000").empty
    assert store.erase("reg.example:5000") is False


def test_docker_hub_key_and_identity_token(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {
        "auth": base64.b64encode(b"me:").decode(), "identitytoken": "refresh-me"}}}))
    store = CredentialStore(path)
    creds = store.get("registry-1.docker.io")
    assert creds.username == "me" and creds.identity_token == "refresh-me"
    assert registry_host(None) == ("docker.io", "https://index.docker.io/v1/")
    assert registry_host("https://index.docker.io/v1/") == ("docker.io", "https://index.docker.io/v1/")
    assert registry_host("http://127.0.0.1:5000/") == ("127.0.0.1:5000", "127.0.0.1:5000")


def test_invalid_config_json_is_refused_with_its_path(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{nope")
    with pytest.raises(InvalidArgument, match=str(path)):
        CredentialStore(path).get("x")


def test_insecure_registries_defaults_and_cidrs():
    h = HostsConfig(insecure=["10.1.0.0/16", "myreg:5000"])
    assert h.is_insecure("127.0.0.1:5000") and h.is_insecure("localhost:5000") and h.is_insecure("[::1]:5000")
    assert h.is_insecure("10.1.2.3") and h.is_insecure("10.1.2.3:443")
    assert h.is_insecure("myreg:5000") and not h.is_insecure("myreg:5001")
    assert not h.is_insecure("registry.example.com") and not h.is_insecure("10.2.0.1:5000")
    eps = h.origin_endpoints("registry.example.com")
    assert [(e.url, e.verify) for e in eps] == [("https://registry.example.com", True)]
    eps = h.origin_endpoints("myreg:5000")
    assert [(e.url, e.verify) for e in eps] == [("https://myreg:5000", False), ("http://myreg:5000", True)]
    assert h.origin_endpoints("docker.io")[0].url == "https://registry-1.docker.io"


def test_registries_file_mirrors_and_certs_d(tmp_path, monkeypatch):
    conf = tmp_path / "registries.json"
    conf.write_text(json.dumps({"insecure-registries": ["10.0.0.0/8"], "registry-mirrors": ["https://hub-mirror"],
                                "mirrors": {"ghcr.io": ["https://ghcr-mirror/prefix/", "http://127.0.0.1:5001"]}}))
    certs = tmp_path / "certs.d" / "ghcr-mirror"
    certs.mkdir(parents=True)
    (certs / "ca.crt").write_text("x")
    (certs / "client.cert").write_text("x")
    (certs / "client.key").write_text("x")
    monkeypatch.setenv("BARQUE_REGISTRIES_CONF", str(conf))
    monkeypatch.setenv("BARQUE_CERTS_D", str(tmp_path / "certs.d"))
    h = load_hosts_config()
    eps = h.pull_endpoints("ghcr.io")
    assert [e.url for e in eps] == ["https://ghcr-mirror/prefix", "http://127.0.0.1:5001", "https://ghcr.io"]
    assert eps[0].mirror and eps[0].ca_files == (str(certs / "ca.crt"),)
    assert eps[0].client_certs == ((str(certs / "client.cert"), str(certs / "client.key")),)
    assert [e.url for e in h.pull_endpoints("docker.io")] == ["https://hub-mirror", "https://registry-1.docker.io"]
    assert [e.url for e in h.origin_endpoints("ghcr.io")] == ["https://ghcr.io"]


def test_registries_file_errors_name_the_file(tmp_path):
    conf = tmp_path / "registries.json"
    conf.write_text(json.dumps({"insecure-registries": "not-a-list"}))
    with pytest.raises(InvalidArgument, match="insecure-registries"):
        load_hosts_config(str(conf))
    conf.write_text(json.dumps({"insecure-registries": ["10.0.0.0/33"]}))
    with pytest.raises(InvalidArgument, match="10.0.0.0/33"):
        load_hosts_config(str(conf))
    assert load_hosts_config(str(tmp_path / "missing.json")).insecure == []


def test_a_client_key_without_its_certificate_is_refused(tmp_path):
    d = tmp_path / "reg:5000"
    d.mkdir()
    (d / "client.key").write_text("x")
    with pytest.raises(InvalidArgument, match="client.cert"):
        HostsConfig(certs_dirs=(str(tmp_path),)).certs_for("reg:5000")
