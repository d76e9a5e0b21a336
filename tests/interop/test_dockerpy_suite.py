"""docker-py's own integration tests (docker-py 7.0.0's tests/integration, fetched from PyPI by
scripts/install-dockerpy-suite.sh, never copied here) against `barque serve`.

The suite runs as docker-py's maintainers run it against dockerd: DOCKER_HOST at the server, its images present
(busybox stands in for its alpine:3.10). There is no Docker Hub here: the server pulls through a Docker Hub mirror
(Docker's `registry-mirrors`), a barque registry on loopback holding busybox under the names the suite pulls. Left out: the swarm-mode files (barque answers
every swarm endpoint with Docker's 503 "This node is not a swarm manager", as a dockerd outside a swarm does) and
the credential-store tests (they test docker-credential-* helpers, not a server). Every other test must pass, but
for EXPECTED: each failure there is named with why it cannot pass here. A failure not in it fails this test, with
docker-py's own message; so does a test in it that passes (the list stays exact).
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.api_support import ApiServer
from tests.conftest import REPO
from tests.registry_support import registry  # noqa: F401 - fixture

pytestmark = [pytest.mark.interop, pytest.mark.timeout(1800)]

SUITE = REPO / ".venv-dockerpy" / "src" / "docker-7.0.0"
PYTHON = REPO / ".venv-dockerpy" / "bin" / "python"

NOT_RUN = ["api_swarm_test.py", "api_service_test.py", "api_secret_test.py", "api_config_test.py",
           "api_plugin_test.py", "models_swarm_test.py", "models_services_test.py", "models_nodes_test.py",
           "credentials"]

_HUB = "pulls hello-world by the digest it has on Docker Hub: no internet here, and the mirror's is another"
_IPV6 = "an IPv6 network: barque's networks are IPv4 (issue 7)"
_SWARM = "a swarm-scoped network: needs swarm mode"
_ALPINE = "needs alpine's files (busybox stands in for alpine:3.10)"
EXPECTED = {
    "models_images_test.py::ImageCollectionTest::test_pull_with_sha": _HUB,
    "models_containers_test.py::ContainerCollectionTest::test_run_with_image_that_does_not_exist":
        "docker-py pulls the missing image and expects Docker Hub's 404; the mirror answers 404, then Hub can't be "
        "reached",
    "api_network_test.py::TestNetworks::test_connect_with_ipv6_address": _IPV6,
    "api_network_test.py::TestNetworks::test_create_network_ipv6_enabled": _IPV6,
    "api_network_test.py::TestNetworks::test_create_with_ipv6_address": _IPV6,
    "api_network_test.py::TestNetworks::test_create_inspect_network_with_scope": _SWARM,
    "api_network_test.py::TestNetworks::test_create_network_attachable": _SWARM,
    "api_network_test.py::TestNetworks::test_create_network_ingress": _SWARM,
    "api_exec_test.py::ExecTest::test_exec_command_as_user": _ALPINE + ": its postgres user",
    "api_exec_test.py::ExecTest::test_exec_command_with_workdir": _ALPINE + ": its /var/opt",
}


def _results(junit: Path) -> tuple[dict[str, str], int]:
    """(test → docker-py's failure message, for failures and errors; how many passed)."""
    failed: dict[str, str] = {}
    passed = 0
    for case in ET.parse(junit).getroot().iter("testcase"):
        module, _, cls = case.get("classname", "").rpartition(".")
        test = f"{module.rpartition('.')[2]}.py::{cls}::{case.get('name')}"
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:  # its message, and where in docker-py's test it failed
            where = [line for line in (bad.text or "").splitlines() if line.startswith("tests/")][-2:]
            failed[test] = ((bad.get("message") or "?").splitlines() or ["?"])[0][:300] + "".join(
                f"\n      at {line[:200]}" for line in where)
        elif case.find("skipped") is None:
            passed += 1
    return failed, passed


def test_dockerpy_integration_suite(bb, registry, tmp_path):  # noqa: F811 - fixture
    assert PYTHON.is_file() and (SUITE / "tests" / "integration").is_dir(), \
        "docker-py's suite is not installed: run scripts/install-dockerpy-suite.sh (make test does)"
    for tag in ("alpine:3.10", "alpine:latest"):
        bb("tag", "busybox:latest", tag)
    hello = tmp_path / "hello.tar"  # an image of its own: the suite prunes it while busybox is in use
    with tarfile.open(hello, "w") as tar:
        data = b"#!/bin/sh\necho Hello from the mirror\n"
        info = tarfile.TarInfo("hello")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    bb("import", "--change", 'CMD ["/hello"]', hello, "hello-world:latest")
    for name in ("hello-world:latest", "alpine:latest", "alpine:3.10", "busybox:latest"):
        mirrored = f"{registry.host}/library/{name}"
        bb("tag", "hello-world:latest" if name.startswith("hello") else "busybox:latest", mirrored)
        bb("push", mirrored)
        bb("rmi", mirrored)
    bb("rmi", "hello-world:latest")
    conf = tmp_path / "registries.json"
    conf.write_text(json.dumps({"registry-mirrors": [registry.url]}))
    bb.env["BARQUE_REGISTRIES_CONF"] = str(conf)
    # over TCP on loopback (in the suite's own network namespace), as docker-py's CI runs it against dockerd: its
    # websocket attach test needs a tcp:// DOCKER_HOST (websocket-client refuses http+docker URLs)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = ApiServer(bb, tmp_path / "api.sock", extra=("-H", f"tcp://127.0.0.1:{port}"))
    junit = tmp_path / "junit.xml"
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    # docker-py keeps contexts beside the client's config file: without one, in ./contexts of the suite's tree
    (home / ".docker" / "config.json").write_text("{}")
    ignores = [f"--ignore=tests/integration/{name}" for name in NOT_RUN]
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "DOCKER_HOST": f"tcp://127.0.0.1:{port}", "LANG": "C.UTF-8"}
    try:
        proc = subprocess.run(
            [str(PYTHON), "-m", "pytest", "-c", "pytest.ini", "--rootdir", ".", "-p", "no:cacheprovider", "-q",
             "--timeout", "120", f"--junitxml={junit}", *ignores, "tests/integration"],
            cwd=SUITE, env=env, capture_output=True, timeout=1500)
        assert junit.is_file(), proc.stdout.decode(errors="replace")[-3000:] + proc.stderr.decode(errors="replace")
        failed, passed = _results(junit)
        unexpected = {t: m for t, m in failed.items() if t not in EXPECTED}
        assert not unexpected, "docker-py's integration tests failed against barque:\n" + "\n".join(
            f"  {t}: {m}" for t, m in sorted(unexpected.items()))
        stale = sorted(t for t in EXPECTED if t not in failed)
        assert not stale, f"these pass now: take them out of EXPECTED: {stale}"
        assert passed >= 230, proc.stdout.decode(errors="replace")[-3000:]  # the suite ran, not just collected
        assert not api.errors(), api.errors()
    finally:
        api.stop()
        api.barque.remove_containers()
        api.barque("network", "prune", "-f", check=False)
        api.barque("volume", "prune", "-a", "-f", check=False)
