"""`docker run -d -p` through `barque serve`: the published port answers from the outside world and from the host,
`docker port` and `docker ps` show it, and `docker rm -f` takes the rule away. The server and its containers live
in the throwaway host namespace of tests/netlab.py; the outside namespace fetches through the host's address."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.api_support import Docker, lab_api  # noqa: F401 - fixture
from tests.netlab import HOST_ADDR, eventually

pytestmark = pytest.mark.root


def _fetch(run, url: str) -> subprocess.CompletedProcess:
    """GET `url` from one of the lab's namespaces: stdout is the body (text), a non-zero exit when it fails."""
    script = f"import sys, urllib.request; sys.stdout.write(urllib.request.urlopen({url!r}, timeout=3).read().decode())"
    proc = run("python3", "-c", script, check=False, timeout=15)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def test_run_publish_answers_from_outside_and_rm_takes_it_away(lab_api, netlab):
    docker = Docker(lab_api)
    cid = docker("run", "-d", "--name", "web", "-p", "8080:80", "busybox", "httpd", "-f", "-p", "80", "-h",
                 "/etc").stdout.strip()
    want = cid[:12] + "\n"  # the container's /etc/hostname
    assert eventually(lambda: _fetch(netlab.in_outside, f"http://{HOST_ADDR}:8080/hostname").stdout == want)
    assert _fetch(netlab.in_host, "http://127.0.0.1:8080/hostname").stdout == want
    assert docker("port", "web").stdout.splitlines()[0] == "80/tcp -> 0.0.0.0:8080"
    assert "0.0.0.0:8080->80/tcp" in docker("ps", "--format", "{{.Ports}}").stdout
    ports = json.loads(docker("inspect", "-f", "{{json .NetworkSettings.Ports}}", "web").stdout)
    assert ports["80/tcp"][0] == {"HostIp": "0.0.0.0", "HostPort": "8080"}
    r = docker("run", "-d", "-p", "8080:80", "busybox", "true", check=False)
    assert r.returncode == 125 and "port is already allocated" in r.stderr
    docker("rm", "-f", "web")
    assert _fetch(netlab.in_outside, f"http://{HOST_ADDR}:8080/hostname").returncode != 0
    assert "8080" not in netlab.ruleset()
