"""The scopes barque's registry client asks a token server for, and how often: a recording proxy in front of barque's
own registry with token authentication (the proxy rewrites the challenge's realm, so token requests pass it too)."""

from __future__ import annotations

import json
from collections import Counter

from tests.conftest import FIXTURE_ID, FIXTURES
from tests.registry_support_peers import FaultyProxy


def _scopes(proxy: FaultyProxy, since: int) -> Counter:
    """token requests after the `since`-th: how many times each scope set was asked for"""
    asked: Counter = Counter()
    for r in proxy.token_requests[since:]:
        asked[tuple(sorted(v for k, v in r["query"] if k == "scope"))] += 1
    return asked


def test_scopes_asked_for_and_tokens_reused(registry_factory, roots, tmp_path):
    reg = registry_factory(auth="token", users={"alice": "s3cret"})
    env = {"DOCKER_CONFIG": str(tmp_path / "docker-config"), "BARQUE_REGISTRIES_CONF": str(tmp_path / "none.json"),
           "BARQUE_CERTS_D": str(tmp_path / "certs.d")}
    with FaultyProxy(reg.url) as proxy:
        c = roots("c")
        c("load", "-i", FIXTURES / "docker-save-layers.tar")
        c("login", "-u", "alice", "--password-stdin", proxy.host, input="s3cret", env=env)
        app, other = f"{proxy.host}/team/app:1", f"{proxy.host}/team/other:1"
        c("tag", "fixture/layers:1", app)
        c("tag", "fixture/layers:1", other)

        n = len(proxy.token_requests)
        c("push", app, env=env)
        # six blobs and a manifest, five uploads at once: one token, for pull and push on the repository
        assert _scopes(proxy, n) == {("repository:team/app:pull,push",): 1}
        blob_requests = [r for r in proxy.requests if "/blobs/" in r["path"]]
        assert len(blob_requests) >= 12
        assert all(r["headers"].get("Authorization", "").startswith("Bearer ") for r in blob_requests)

        n = len(proxy.token_requests)
        out = c("push", other, env=env).stdout
        assert out.count("Mounted from team/app") == 5
        # the mounts name their source: a token for both, asked for once however many blobs are mounted
        assert _scopes(proxy, n) == {
            ("repository:team/other:pull,push",): 1,
            ("repository:team/app:pull", "repository:team/other:pull,push"): 1,
        }

        p = roots("p")
        p("login", "-u", "alice", "--password-stdin", proxy.host, input="s3cret", env=env)
        n = len(proxy.token_requests)
        p("pull", app, env=env)
        assert _scopes(proxy, n) == {("repository:team/app:pull",): 1}
        assert json.loads(p("image", "inspect", app).stdout)[0]["Id"] == FIXTURE_ID
        # every token request carried the user's credentials and the service the challenge named
        for r in proxy.token_requests:
            assert r["headers"].get("Authorization", "").startswith("Basic ")
            assert dict(r["query"]).get("service")
