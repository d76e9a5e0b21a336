"""`barque serve` driven by the real docker CLI: containers (run in the foreground and detached, stdin, exit codes,
ps, logs, stop, rm) and the server's own protocol (ping, version negotiation, errors)."""

from __future__ import annotations

import json
import socket
import urllib.parse

import pytest

from tests.api_support import call, http
from tests.api_support import api, docker  # noqa: F401 - fixtures
from tests.conftest import unique, wait_for

pytestmark = pytest.mark.root


def test_ping_and_version_negotiation(api):
    status, headers, body = http(api.sock, "GET", "/_ping")
    assert (status, body) == (200, b"OK")
    assert headers["api-version"] == "1.43" and headers["ostype"] == "linux"
    status, _, body = http(api.sock, "GET", "/v1.41/version")
    assert status == 200 and json.loads(body)["ApiVersion"] == "1.43"
    status, _, body = http(api.sock, "GET", "/v1.99/version")
    assert status == 400
    assert json.loads(body)["message"] == "client version 1.99 is too new. Maximum supported API version is 1.43"
    status, _, body = http(api.sock, "GET", "/v1.12/version")
    assert status == 400 and "too old. Minimum supported API version is 1.24" in json.loads(body)["message"]
    status, _, body = http(api.sock, "GET", "/v1.43/no/such/endpoint")
    assert (status, json.loads(body)) == (404, {"message": "page not found"})


def test_bad_requests_get_docker_errors_and_the_server_keeps_serving(api):
    status, _, body = http(api.sock, "POST", "/containers/create", b"{not json")
    assert status == 400 and "invalid JSON" in json.loads(body)["message"]
    status, _, body = http(api.sock, "POST", "/containers/create", json.dumps({"Image": "busybox", "Cmd": 5}).encode())
    assert status == 400 and "Config.Cmd" in json.loads(body)["message"]
    status, _, body = http(api.sock, "POST", "/containers/create", json.dumps({"Image": "nosuch:image"}).encode())
    assert (status, json.loads(body)["message"]) == (404, "No such image: nosuch:image")
    status, _, body = http(api.sock, "GET", "/containers/nosuch/json")
    assert (status, json.loads(body)["message"]) == (404, "No such container: nosuch")
    # a name pattern that is no regular expression matches nothing, as Docker's filters.Match: no error
    status, _, body = http(api.sock, "GET", '/containers/json?all=1&filters={"name":["["]}')
    assert (status, json.loads(body)) == (200, [])
    status, _, body = http(api.sock, "GET", '/containers/json?filters={"bogus":["x"]}')
    assert (status, json.loads(body)["message"]) == (400, "invalid filter 'bogus'")
    status, _, body = http(api.sock, "POST", "/containers/x/wait?condition=whenever")
    assert status in (400, 404)
    assert http(api.sock, "GET", "/_ping")[0] == 200
    assert api.errors() == ""


def test_create_and_commit_bodies_of_the_wrong_shape_are_400_not_500(api, docker):
    """Fields the engine takes apart (lists of strings, of objects, maps of strings, port keys) are checked by type
    first, as dockerd decodes them: a wrong one is the client's 400 naming the field, never a fault of the server."""
    def create(**fields):
        status, _, body = http(api.sock, "POST", "/containers/create",
                               json.dumps({"Image": "busybox", **fields}).encode())
        return status, json.loads(body).get("message")

    prefix = "json: cannot unmarshal"
    assert create(HostConfig={"Binds": [1]}) == (
        400, f"{prefix} a non-string into Go struct field HostConfig.Binds of type []string")
    for key in ("ExtraHosts", "VolumesFrom", "Links", "CapAdd", "Dns", "SecurityOpt"):
        assert create(HostConfig={key: [5]})[0] == 400, key
    assert create(HostConfig={"Mounts": [5]}) == (
        400, f"{prefix} number into Go struct field HostConfig.Mounts of type mount.Mount")
    assert create(HostConfig={"RestartPolicy": {"Name": 5}})[0] == 400
    assert create(HostConfig={"PortBindings": {"80/tcp": "8080"}}) == (
        400, f"{prefix} string into Go struct field HostConfig.PortBindings of type []nat.PortBinding")
    assert create(HostConfig={"PortBindings": {"80/tcp": [{"HostPort": "http"}]}}) == (
        400, 'invalid port specification: "http"')
    assert create(NetworkingConfig={"EndpointsConfig": 5})[0] == 400
    assert create(Labels={"a": 1}) == (400, f"{prefix} number into Go struct field Config.Labels of type string")
    assert create(ExposedPorts={"web": {}}) == (400, 'invalid port specification: "web"')
    assert create(Healthcheck={"Test": "true"})[0] == 400
    cid = docker("create", "busybox", "true").stdout.strip()
    status, _, body = http(api.sock, "POST", f"/commit?container={cid}", b'{"Env": 5}',
                           {"Content-Type": "application/json"})
    assert (status, json.loads(body)["message"]) == (400, f"{prefix} number into Go struct field Config.Env of type "
                                                          "array")
    assert docker("ps", "-a", "-q", "--no-trunc").stdout.split() == [cid]  # only the one made right
    docker("rm", cid)
    assert api.errors() == ""


def test_run_in_the_foreground_passes_output_and_exit_code(docker):
    r = docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert docker("ps", "-aq").stdout == ""  # --rm removed it


def test_run_with_stdin(docker):
    r = docker("run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z; echo done", input=b"hello\nworld\n")
    assert r.stdout == "HELLO\nWORLD\ndone\n"


def test_missing_command_exits_127(docker):
    r = docker("run", "--rm", "busybox", "/no/such/binary", check=False)
    assert r.returncode == 127, r.stderr


def test_detached_container_ps_logs_stop_rm(docker):
    name = unique("web")
    cid = docker("run", "-d", "--name", name, "busybox", "sh", "-c", "echo ready; exec sleep 300").stdout.strip()
    assert len(cid) == 64
    ps = docker("ps", "--format", "{{.ID}} {{.Names}} {{.Status}}").stdout.split("\n")[0].split(" ", 2)
    assert ps[0] == cid[:12] and ps[1] == name and ps[2].startswith("Up")
    from tests.netlab import eventually

    assert eventually(lambda: docker("logs", name).stdout == "ready\n")
    inspected = docker.json("inspect", name)[0]
    assert inspected["Id"] == cid and inspected["State"]["Running"] is True
    docker("stop", "-t", "1", name)
    assert docker.json("inspect", name)[0]["State"]["Status"] == "exited"
    docker("rm", name)
    r = docker("inspect", name, check=False)
    assert r.returncode == 1 and "No such object" in r.stderr or "No such container" in r.stderr


def test_the_cli_and_the_api_see_the_same_containers(api, docker):
    name = unique("shared")
    api.barque("create", "--name", name, "busybox", "true")
    assert name in docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    docker("rm", name)
    assert name not in api.barque("ps", "-a", "--format", "{{.Names}}").stdout.split()


def test_run_with_a_tty(docker):
    r = docker("run", "--rm", "-t", "busybox", "sh", "-c", "tty; echo hi")
    assert r.stdout.replace("\r\n", "\n") == "/dev/pts/0\nhi\n"


def test_start_attach_wait_restart_kill_rename_pause(docker):
    name = unique("life")
    docker("create", "--name", name, "busybox", "sh", "-c", "echo started; exit 5")
    r = docker("start", "-a", name, check=False)
    assert (r.returncode, r.stdout) == (5, "started\n")
    assert docker("wait", name).stdout == "5\n"
    docker("rename", name, name + "2")
    long_running = unique("long")
    docker("run", "-d", "--name", long_running, "busybox", "sleep", "300")
    docker("pause", long_running)
    assert docker("inspect", "-f", "{{.State.Status}}", long_running).stdout == "paused\n"
    docker("unpause", long_running)
    docker("restart", "-t", "1", long_running)
    assert docker("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", long_running).stdout.startswith("running")
    docker("kill", "-s", "KILL", long_running)
    assert docker("wait", long_running).stdout == "137\n"
    r = docker("kill", long_running, check=False)
    assert r.returncode == 1 and "is not running" in r.stderr
    pruned = docker("container", "prune", "-f").stdout
    assert "Deleted Containers:" in pruned and docker("ps", "-aq").stdout == ""


def test_attach_to_a_running_container(docker):
    name = unique("att")
    # -d -i: stdin stays open between attaches (StdinOnce false), so the container decides when it is done
    docker("run", "-d", "-i", "--name", name, "busybox", "sh", "-c", "read a; read b; echo echo:$a,$b; exit 3")
    r = docker("attach", name, input=b"one\ntwo\n", timeout=60, check=False)
    assert (r.returncode, r.stdout) == (3, "echo:one,two\n")
    docker("rm", name)


def _fd_targets(pid: int) -> list[str]:
    import os

    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return sorted(out)


def _open_fds(pid: int) -> int:
    import os

    return len(os.listdir(f"/proc/{pid}/fd"))


def test_clients_that_go_away_mid_attach_or_mid_stream_leak_nothing(api, docker):
    from tests.netlab import eventually

    name = unique("gone")
    docker("run", "-d", "--name", name, "busybox", "sh", "-c", "while true; do echo tick; sleep 0.1; done")

    def leave_midway(rounds: int) -> None:
        for _ in range(rounds):
            for path in (f"/containers/{name}/attach?stream=1&stdout=1&stderr=1",
                         f"/containers/{name}/logs?follow=1&stdout=1", f"/containers/{name}/wait"):
                s = socket.socket(socket.AF_UNIX)
                s.connect(str(api.sock))
                s.sendall(f"POST {path} HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode()
                          if "attach" in path or "wait" in path else
                          f"GET {path} HTTP/1.1\r\nHost: d\r\n\r\n".encode())
                assert s.recv(4096)  # the answer has begun (a hijack, a log stream, a wait's headers)
                s.close()             # … and the client is gone

    # a first round brings up what the server keeps for its life (reader threads with a database connection each)
    leave_midway(3)
    assert eventually(lambda: http(api.sock, "GET", "/_ping")[0] == 200)
    import time

    time.sleep(2)
    baseline = _open_fds(api.proc.pid)
    leave_midway(10)  # 30 more clients gone midway: a leak of one descriptor each would show
    assert eventually(lambda: _open_fds(api.proc.pid) <= baseline + 2, timeout=20), (baseline, _fd_targets(api.proc.pid))
    assert docker("inspect", "-f", "{{.State.Running}}", name).stdout == "true\n"  # the container never noticed
    assert http(api.sock, "GET", "/_ping")[0] == 200
    docker("rm", "-f", name)
    assert api.errors() == ""


def test_log_followers_neither_hold_the_servers_workers_nor_outlive_their_clients(api, docker):
    from tests.netlab import eventually

    def threads() -> int:
        return call(api, "GET", "/info")[1]["NGoroutines"]  # the server's

    name = unique("follow")
    docker("run", "-d", "--name", name, "busybox", "sh", "-c", "while true; do echo tick; sleep 0.2; done")
    socks = []
    try:
        for _ in range(12):  # more than the server's thread pool, which serves every read
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            s.connect(str(api.sock))
            s.sendall(f"GET /v1.43/containers/{name}/logs?follow=1&stdout=1 HTTP/1.1\r\nHost: d\r\n\r\n".encode())
            socks.append(s)
        for s in socks:
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            assert b"tick" in s.recv(4096) or b"tick" in s.recv(4096)  # the log is flowing
        # the server still reads meanwhile (a listing and an inspect run in its pool)
        assert name in docker("ps", "--format", "{{.Names}}", timeout=20).stdout
        assert docker("inspect", "-f", "{{.State.Running}}", name, timeout=20).stdout == "true\n"
        following = threads()
    finally:
        for s in socks:
            s.close()
    # each follower's reader ends with its client (the thread pool keeps the workers it started meanwhile)
    assert eventually(lambda: threads() <= following - 12, timeout=10), (following, threads())
    docker("rm", "-f", name)
    assert api.errors() == ""


def test_an_oversized_body_is_refused(api):
    status, _, body = http(api.sock, "POST", "/containers/create", b'{"Image": "' + b"x" * (65 << 20) + b'"}')
    assert status == 413 and json.loads(body)["message"].startswith("request body too large")
    assert http(api.sock, "GET", "/_ping")[0] == 200


def test_the_servers_sockets_do_not_leak_into_containers(docker):
    # 0-2 are the container's stdio, 3 is ls's own directory handle; the server's call and attach sockets are not
    # there (they are close-on-exec in the processes that start the container)
    assert docker("run", "--rm", "busybox", "ls", "/proc/self/fd").stdout.split() == ["0", "1", "2", "3"]
    assert docker("run", "--rm", "-i", "busybox", "ls", "/proc/self/fd", input=b"").stdout.split() == \
        ["0", "1", "2", "3"]


def test_inspect_lists_the_running_execs(docker, api):
    name = unique("ex")
    docker("run", "-d", "--name", name, "busybox", "sleep", "300")
    assert docker("inspect", "-f", "{{json .ExecIDs}}", name).stdout == "null\n"
    docker("exec", "-d", name, "sleep", "300")
    from tests.netlab import eventually

    ids = eventually(lambda: json.loads(docker("inspect", "-f", "{{json .ExecIDs}}", name).stdout), timeout=10)
    assert ids and len(ids) == 1 and len(ids[0]) == 64
    docker("rm", "-f", name)


def test_run_it_in_a_terminal_has_the_terminals_size(api):
    """`docker run -it` from a real terminal (a pty of 33 rows × 101 columns): the container's TTY has that size
    from its first instruction (ConsoleSize), the exit code comes back, the terminal is left as it was."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import termios

    from tests.api_support import docker_binary

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    proc = subprocess.Popen([docker_binary(), "run", "--rm", "-it", "busybox", "sh", "-c", "stty size; exit 3"],
                            stdin=slave, stdout=slave, stderr=slave, env=api.env, start_new_session=True)
    os.close(slave)
    out = b""
    try:
        proc.wait(60)
    finally:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
    assert proc.returncode == 3
    assert b"33 101" in out, out


def test_listings_follow_changes_made_elsewhere(api, docker):
    """The server reuses listing rows while what they were made from is unchanged: changes made by the barque CLI
    (another process: its database writes, the monitor's state files) show at the next `docker ps`."""
    name = unique("seen")
    docker("run", "-d", "--name", name, "busybox", "sleep", "300")

    def row() -> str:
        return docker("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout.strip()

    assert row() == f"{name} running"
    assert row() == f"{name} running"  # a second listing: the reused row
    api.barque("rename", name, name + "-x")
    assert row() == f"{name}-x running"
    api.barque("pause", name + "-x")
    assert row() == f"{name}-x paused"
    api.barque("unpause", name + "-x")
    api.barque("stop", "-t", "0", name + "-x")
    assert row() == f"{name}-x exited"
    api.barque("rm", name + "-x")
    assert row() == ""


def test_listing_sees_a_container_die_unobserved(api, docker):
    """The server keeps a running container's state until an event says otherwise. When the container's monitor
    and then its process are killed with SIGKILL nobody writes the state file; the pidfd the server holds of the
    process tells it, and `docker ps` shows the truth (exited, status unknown: 255), as `barque ps` does."""
    import os
    import signal

    name = unique("orphan")
    cid = docker("run", "-d", "--name", name, "busybox", "sleep", "300").stdout.strip()
    state = json.loads((api.barque.root / "containers" / cid / "state.json").read_text())

    def row() -> str:
        return docker("ps", "-a", "--filter", f"name={name}", "--format", "{{.State}} {{.Status}}").stdout.strip()

    assert row().startswith("running Up")
    os.kill(state["_MonitorPid"], signal.SIGKILL)
    assert row().startswith("running Up")  # the container itself lives on
    os.kill(state["Pid"], signal.SIGKILL)
    wait_for(lambda: row().startswith("exited Exited (255)"), timeout=10)
    assert docker("ps", "-q", "--filter", f"name={name}").stdout.strip() == ""
    docker("rm", name)


def test_listing_sizes(api, docker):
    """`docker ps --size` (`?size=1`): what the container wrote, measured at each listing, never kept."""
    name = unique("sized")
    docker("run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 300")
    filters = urllib.parse.quote(json.dumps({"name": [name]}))

    def size_rw() -> int:
        status, rows = call(api, "GET", f"/containers/json?size=1&filters={filters}")
        assert status == 200 and [r["Names"] for r in rows] == [["/" + name]]
        assert rows[0]["State"] == "running" and rows[0]["Status"].startswith("Up")
        return rows[0]["SizeRw"]

    before = size_rw()
    assert "SizeRw" not in call(api, "GET", f"/containers/json?filters={filters}")[1][0]
    docker("exec", name, "dd", "if=/dev/urandom", "of=/big", "bs=1024", "count=512")
    assert size_rw() >= before + 512 * 1024
    shown = docker("ps", "--size", "--filter", f"name={name}", "--format", "{{.Size}}").stdout.strip()
    assert shown.split(" ")[0].endswith(("kB", "MB")) and "virtual" in shown
    docker("rm", "-f", name)
