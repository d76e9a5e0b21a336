"""docker-compose (Debian's, v1) against `barque serve`: a two-service project — a web server and a client that
fetches from it by service name, both built from busybox in the test — comes up, answers, and goes down with its
network and volume, nothing left behind.

The server and its containers live in a throwaway host namespace of tests/netlab.py: the two containers talk over
the project's bridge network there and nowhere else."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap

import pytest

from tests.api_support import lab_api  # noqa: F401 - fixture
from tests.conftest import unique
from tests.netlab import eventually

pytestmark = [pytest.mark.root, pytest.mark.interop]

COMPOSE = shutil.which("docker-compose")


def _project(tmp_path):
    d = tmp_path / "project"
    (d / "web").mkdir(parents=True)
    (d / "client").mkdir()
    (d / "web" / "Dockerfile").write_text(textwrap.dedent("""\
        FROM busybox
        RUN mkdir -p /www && echo hello-from-web > /www/index.html
        EXPOSE 8080
        CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
        """))
    (d / "client" / "Dockerfile").write_text(textwrap.dedent("""\
        FROM busybox
        COPY fetch.sh /fetch.sh
        CMD ["sh", "/fetch.sh"]
        """))
    # fetch until the web service answers (it may start a moment later), then report and stay up
    (d / "client" / "fetch.sh").write_text(textwrap.dedent("""\
        i=0
        while [ $i -lt 100 ]; do
          if body=$(timeout 5 wget -q -O- http://web:8080/index.html) && [ "$body" = hello-from-web ]; then
            echo "fetched: hello-from-web"; echo "$body" > /data/fetched; exec sleep 600
          fi
          i=$((i+1)); sleep 0.2
        done
        echo "web never answered"; exit 1
        """))
    (d / "docker-compose.yml").write_text(textwrap.dedent("""\
        version: "3.8"
        services:
          web:
            build: ./web
          client:
            build: ./client
            depends_on: [web]
            volumes:
              - fetched:/data
        volumes:
          fetched:
        """))
    return d


def test_compose_up_answers_and_down_leaves_nothing(lab_api, tmp_path):
    if COMPOSE is None:
        raise AssertionError("docker-compose is not installed (scripts/install.sh installs it)")
    project = unique("cp")
    d = _project(tmp_path)
    env = {**lab_api.env, "COMPOSE_PROJECT_NAME": project, "DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0"}

    def compose(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        proc = subprocess.run([COMPOSE, *args], cwd=d, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if check:
            assert proc.returncode == 0, f"docker-compose {' '.join(args)}: {proc.stdout}\n{proc.stderr}\n" \
                                         f"server: {lab_api.errors()}"
        return proc

    def docker(*args: str) -> str:
        proc = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    try:
        compose("build")
        compose("up", "-d")
        ps = compose("ps").stdout
        assert f"{project}_web_1" in ps and f"{project}_client_1" in ps
        logs = eventually(lambda: "fetched: hello-from-web" in compose("logs", "client").stdout, timeout=60)
        assert logs, compose("logs").stdout
        net = json.loads(docker("network", "inspect", f"{project}_default"))[0]
        assert {c["Name"] for c in net["Containers"].values()} == {f"{project}_web_1", f"{project}_client_1"}
        assert f"{project}_fetched" in docker("volume", "ls", "-q").split()
        compose("down", "-v")
        assert docker("ps", "-aq") == ""
        assert f"{project}_default" not in docker("network", "ls", "--format", "{{.Name}}").split()
        assert docker("volume", "ls", "-q") == ""
    finally:
        compose("down", "-v", "--rmi", "all", check=False)
    assert lab_api.errors() == ""
    assert os.path.exists(lab_api.sock)
