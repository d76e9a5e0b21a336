"""docker-py (the `docker` package) driving `barque serve`: the container calls of its high-level and low-level
APIs, as the SDK's users make them."""

from __future__ import annotations

import time

import pytest

from tests.api_support import api, docker_client  # noqa: F401 - fixtures
from tests.conftest import unique

pytestmark = pytest.mark.root


def test_run_returns_the_output_and_raises_on_failure(docker_client):
    import docker.errors

    assert docker_client.containers.run("busybox", ["echo", "hello"], remove=True) == b"hello\n"
    with pytest.raises(docker.errors.ContainerError) as e:
        docker_client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 4"], remove=True, stderr=True)
    assert e.value.exit_status == 4 and b"bad" in e.value.stderr
    # a missing image is pulled first, from a registry on loopback where nothing listens: that fails too
    with pytest.raises(docker.errors.APIError) as e:
        docker_client.containers.run("127.0.0.1:1/no-such-image:1", "true")
    assert "127.0.0.1:1" in str(e.value)
    assert docker_client.containers.list(all=True) == []


def test_detached_lifecycle(docker_client):
    name = unique("py")
    c = docker_client.containers.run("busybox", ["sh", "-c", "echo up; trap 'exit 7' TERM; sleep 300 & wait"],
                                     detach=True, name=name, labels={"suite": "barque"})
    assert c.name == name
    deadline = time.monotonic() + 20
    while b"up" not in c.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert c.logs() == b"up\n"
    c.reload()
    assert c.status == "running" and c.attrs["Config"]["Labels"] == {"suite": "barque"}
    assert [x.id for x in docker_client.containers.list(filters={"label": "suite=barque"})] == [c.id]
    assert docker_client.containers.list(filters={"label": "suite=other"}) == []
    c.pause()
    c.reload()
    assert c.status == "paused"
    c.unpause()
    c.rename(name + "-renamed")
    c.reload()
    assert c.name == name + "-renamed"
    c.stop(timeout=5)
    assert c.wait(condition="not-running")["StatusCode"] == 7
    c.reload()
    assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 7
    c.remove()
    assert docker_client.containers.list(all=True) == []


def test_logs_stream_follows_until_the_container_exits(docker_client):
    c = docker_client.containers.run("busybox", ["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done"],
                                     detach=True)
    try:
        lines = b"".join(c.logs(stream=True, follow=True))
        assert lines == b"line1\nline2\nline3\n"
        assert c.logs(tail=1) == b"line3\n"
        assert c.logs(stdout=False, stderr=True) == b""
    finally:
        c.remove(force=True)


def test_attach_socket_with_stdin(docker_client):
    api = docker_client.api
    cid = api.create_container("busybox", ["sh", "-c", "read x; echo got:$x"], stdin_open=True)["Id"]
    try:
        sock = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})
        api.start(cid)
        raw = sock._sock
        raw.sendall(b"hello\n")
        data = b""
        deadline = time.monotonic() + 20
        raw.settimeout(20)
        while b"got:hello" not in data and time.monotonic() < deadline:
            chunk = raw.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"\x01\x00\x00\x00") and b"got:hello\n" in data  # a multiplexed stdout frame
        assert api.wait(cid)["StatusCode"] == 0
        sock.close()
    finally:
        api.remove_container(cid, force=True)


def test_errors_are_docker_errors(docker_client):
    import docker.errors

    with pytest.raises(docker.errors.NotFound) as e:
        docker_client.containers.get("nosuch")
    assert "No such container: nosuch" in str(e.value)
    name = unique("dup")
    c = docker_client.containers.create("busybox", "true", name=name)
    try:
        with pytest.raises(docker.errors.APIError) as e:
            docker_client.containers.create("busybox", "true", name=name)
        assert e.value.status_code == 409
    finally:
        c.remove()


def test_prune_removes_only_stopped_containers(docker_client):
    stopped = docker_client.containers.create("busybox", "true")
    running = docker_client.containers.run("busybox", ["sleep", "300"], detach=True)
    try:
        report = docker_client.containers.prune()
        assert report["ContainersDeleted"] == [stopped.id]
        assert [c.id for c in docker_client.containers.list(all=True)] == [running.id]
    finally:
        running.remove(force=True)
