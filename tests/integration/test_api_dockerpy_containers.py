"""docker-py (the `docker` package) driving `barque serve`: the container calls of its high-level and low-level
APIs, as the SDK's users make them."""

from __future__ import annotations

import time

import pytest

from tests.api_support import call
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


def test_kill_answers_once_the_container_has_exited(docker_client):
    """dockerd's kill with SIGKILL (or no signal) waits for the exit: the state right after says so (137); another
    signal is only sent."""
    c = docker_client.containers.run("busybox", ["sh", "-c", "trap 'exit 3' USR1; sleep 300 & wait"], detach=True)
    try:
        c.kill()
        c.reload()
        assert (c.status, c.attrs["State"]["ExitCode"]) == ("exited", 137)
        c.remove()  # no "You cannot remove a running container"
        c = docker_client.containers.run("busybox", ["sh", "-c", "trap 'exit 3' USR1; sleep 300 & wait"],
                                         detach=True)
        c.kill(signal="SIGUSR1")
        assert c.wait(timeout=20)["StatusCode"] == 3
    finally:
        c.remove(force=True)


def test_commit_with_pause_of_a_container_that_is_not_running(docker_client):
    """dockerd pauses only a running container for a commit: a stopped one (or one that exits meanwhile) is
    committed as it is, pause=True (docker-py's default) or not."""
    api = docker_client.api
    cid = api.create_container("busybox", ["touch", "/committed"])["Id"]
    image = None
    try:
        api.start(cid)
        image = api.commit(cid, pause=True)["Id"]  # it may still run or have just exited
        api.wait(cid)
        again = api.commit(cid, pause=True, changes=["ENV A=1"])["Id"]
        assert "A=1" in api.inspect_image(again)["Config"]["Env"]
        api.remove_image(again)
    finally:
        api.remove_container(cid, force=True)
        if image:
            api.remove_image(image)


def test_group_add_numbers_and_names_are_supplementary_groups(docker_client):
    api = docker_client.api
    out = docker_client.containers.run("busybox", ["id", "-G"], remove=True, group_add=[1000, "1001", "daemon"])
    assert sorted(out.decode().split(), key=int) == ["0", "1", "1000", "1001"]  # busybox's group "daemon": gid 1
    # exec as another user gets them too (dockerd's getUser adds HostConfig.GroupAdd)
    c = docker_client.containers.run("busybox", ["sleep", "300"], detach=True, group_add=["1234"])
    try:
        code, out = c.exec_run(["id", "-G"], user="nobody")
        assert code == 0 and "1234" in out.decode().split()
    finally:
        c.remove(force=True)
    cid = api.create_container("busybox", "true", host_config=api.create_host_config(group_add=["nosuchgroup"]))
    try:
        import docker.errors

        with pytest.raises(docker.errors.APIError) as e:
            api.start(cid)
        assert "Unable to find group nosuchgroup" in str(e.value)
    finally:
        api.remove_container(cid, force=True)


def test_env_entries_are_kept_as_given(docker_client):
    """Config.Env is the API's list as sent, then the image's variables not named in it (a bare `K` included, as
    dockerd keeps it); the process gets the last value of a repeated key, and a bare K unsets K."""
    api = docker_client.api
    env = ["Foo", "A=1", "A=3", "HOSTNAME", "PATH=/usr/bin:/bin"]
    cid = api.create_container("busybox", "env", environment=env)["Id"]
    try:
        assert api.inspect_container(cid)["Config"]["Env"] == env
        api.start(cid)
        api.wait(cid)
        lines = api.logs(cid).decode().split()
        assert sorted(lines) == ["A=3", "HOME=/root", "PATH=/usr/bin:/bin"]
    finally:
        api.remove_container(cid, force=True)


def test_host_config_runtime(docker_client):
    import docker.errors

    api = docker_client.api
    cid = api.create_container("busybox", "true", runtime="runc")["Id"]
    other = api.create_container("busybox", "true", host_config=api.create_host_config(runtime="runc"))["Id"]
    try:
        assert api.inspect_container(cid)["HostConfig"]["Runtime"] == "runc"
        assert api.inspect_container(other)["HostConfig"]["Runtime"] == "runc"
    finally:
        api.remove_container(cid)
        api.remove_container(other)
    with pytest.raises(docker.errors.APIError) as e:
        api.create_container("busybox", "true", host_config=api.create_host_config(runtime="nosuch"))
    assert e.value.status_code == 400 and "unknown or invalid runtime name: nosuch" in str(e.value)


def test_remove_link(docker_client, api):
    """DELETE /containers/parent/alias?link=1 drops the legacy link (its /etc/hosts line too); both containers
    stay. Without link=1 the name finds the linked container, as dockerd's names do."""
    import docker.errors

    server, api = api, docker_client.api
    target = docker_client.containers.run("busybox", ["sleep", "300"], detach=True, name=unique("target"))
    parent = docker_client.containers.run("busybox", ["sleep", "300"], detach=True, name=unique("parent"),
                                          links={target.name: "mylink"})
    try:
        assert b"mylink" in parent.exec_run(["cat", "/etc/hosts"])[1]
        status, _ = call(server, "GET", f"/containers/{parent.name}/bogus")
        assert status == 404  # the DELETE route that takes a link name answers no other method
        with pytest.raises(docker.errors.NotFound):
            api.remove_container(f"{parent.name}/nolink", link=True)
        with pytest.raises(docker.errors.APIError) as e:
            api.remove_container(parent.name, link=True)
        assert e.value.status_code == 500 and "cannot remove the default link name" in str(e.value)
        api.remove_container(f"{parent.name}/mylink", link=True)
        parent.reload()
        assert not parent.attrs["HostConfig"]["Links"]
        assert b"mylink" not in parent.exec_run(["cat", "/etc/hosts"])[1]
        assert {c.id for c in docker_client.containers.list()} >= {target.id, parent.id}
        other = docker_client.containers.create("busybox", "true", links={target.name: "again"})
        try:
            api.remove_container(f"{other.name}/again", force=True)  # the linked container goes
            assert target.id not in {c.id for c in docker_client.containers.list(all=True)}
        finally:
            other.remove(force=True)
    finally:
        parent.remove(force=True)
        try:
            target.remove(force=True)
        except docker.errors.NotFound:
            pass


def test_exec_that_cannot_run_exits_126(docker_client):
    c = docker_client.containers.run("busybox", ["sleep", "300"], detach=True)
    try:
        assert c.exec_run("docker ps")[0] == 126  # not found: still 126 for an exec, as dockerd says
        assert c.exec_run("/etc/passwd")[0] == 126
    finally:
        c.remove(force=True)


def test_mac_address_of_the_create_is_the_default_endpoint_s(docker_client):
    api = docker_client.api
    cid = api.create_container("busybox", ["sleep", "300"], mac_address="02:42:ac:11:00:0a")["Id"]
    try:
        api.start(cid)
        info = api.inspect_container(cid)
        assert info["Config"]["MacAddress"] == "02:42:ac:11:00:0a"
        assert info["NetworkSettings"]["MacAddress"] == "02:42:ac:11:00:0a"
        assert info["NetworkSettings"]["Networks"]["bridge"]["MacAddress"] == "02:42:ac:11:00:0a"
        out = docker_client.containers.get(cid).exec_run(["cat", "/sys/class/net/eth0/address"])[1]
        assert out.strip() == b"02:42:ac:11:00:0a"
    finally:
        api.remove_container(cid, force=True)
    import docker.errors

    with pytest.raises(docker.errors.APIError) as e:
        api.create_container("busybox", "true", mac_address="02:42:ac:11:00:0b",
                             host_config=api.create_host_config(network_mode="host"))
    assert e.value.status_code == 400 and "conflicting options: mac-address and the network mode" in str(e.value)


def test_aliases_before_and_after_the_first_start(docker_client):
    """dockerd < 25 shows a created container's aliases as asked; its connect at the start adds the short ID."""
    net = docker_client.networks.create(unique("net"))
    try:
        config = {net.name: docker_client.api.create_endpoint_config(aliases=["hello"], driver_opt={"k": "a"})}
        c = docker_client.containers.run("busybox", ["sleep", "300"], network=net.name, networking_config=config,
                                         detach=True)
        try:
            assert c.attrs["NetworkSettings"]["Networks"][net.name]["Aliases"] == ["hello"]  # the create's inspect
            c.reload()
            assert c.attrs["NetworkSettings"]["Networks"][net.name]["Aliases"] == ["hello", c.id[:12]]
        finally:
            c.remove(force=True)
    finally:
        net.remove()


def test_exec_detach_keys_in_any_case(docker_client):
    """Go decodes JSON field names in any case: docker-py sends the exec's `detachKeys` from its config file."""
    api = docker_client.api
    api._general_configs["detachKeys"] = "ctrl-p"
    c = docker_client.containers.run("busybox", "cat", detach=True, stdin_open=True)
    try:
        exec_id = api.exec_create(c.id, "cat", stdin=True, tty=True, stdout=True)
        assert api.exec_inspect(exec_id)["DetachKeys"] == "ctrl-p"
        sock = api.exec_start(exec_id, tty=True, socket=True)
        raw = sock._sock
        raw.sendall(b"\x10")
        raw.settimeout(20)
        data = b""
        while chunk := raw.recv(4096):  # the server ends the stream at the detach
            data += chunk
        assert b"\x10" not in data
        sock.close()
    finally:
        c.remove(force=True)
