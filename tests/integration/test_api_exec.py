"""`barque serve`'s exec endpoints and the processes of a container (top, stats, update), driven by the real docker
CLI and docker-py: output and exit codes, stdin, a terminal (with its size), -e/-w/-u/-d, exec inspect, and
clients that go away mid-exec."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import termios
import time

import pytest

from tests.api_support import children, docker_binary, http
from tests.api_support import api, docker, docker_client, running  # noqa: F401 - fixtures
from tests.conftest import unique
from tests.netlab import eventually

pytestmark = pytest.mark.root


def _zygote(api) -> int:
    """The server's zygote: its first child (the one that outlives every request)."""
    kids = sorted(children(api.proc.pid))
    assert kids, "the server has no zygote"
    return kids[0]


# ---- the docker CLI ---------------------------------------------------------------------------------------------

def test_exec_output_stderr_and_exit_code(docker, running):
    r = docker("exec", running, "sh", "-c", "echo out; echo err >&2; exit 7", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (7, "out\n", "err\n")
    assert docker("exec", running, "echo", "hello").stdout == "hello\n"


def test_exec_of_what_cannot_run_exits_as_docker(docker, running):
    r = docker("exec", running, "nosuchcmd", check=False)
    assert r.returncode == 126  # dockerd's exec: 126 for a command not found too (a container's start says 127)
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in r.stdout  # dockerd writes it in the stream
    r = docker("exec", "-u", "nosuchuser", running, "true", check=False)
    assert r.returncode == 126 and "unable to find user nosuchuser: no matching entries in passwd file" in r.stdout
    r = docker("exec", "nosuchcontainer", "true", check=False)
    assert r.returncode == 1 and "No such container: nosuchcontainer" in r.stderr


def test_exec_in_a_stopped_container_is_refused(docker):
    name = unique("stopped")
    docker("create", "--name", name, "busybox", "true")
    try:
        r = docker("exec", name, "true", check=False)
        cid = docker("inspect", "-f", "{{.Id}}", name).stdout.strip()
        assert r.returncode == 1
        assert r.stderr.strip() == f"Error response from daemon: Container {cid} is not running"
    finally:
        docker("rm", name)


def test_exec_with_stdin(docker, running):
    r = docker("exec", "-i", running, "sh", "-c", "cat; echo done", input=b"line one\nline two\n")
    assert r.stdout == "line one\nline two\ndone\n"
    big = os.urandom(3 << 20)  # more than any pipe or socket buffer: the flow must not stall
    r = docker("exec", "-i", running, "md5sum", input=big)
    import hashlib

    assert r.stdout.split()[0] == hashlib.md5(big).hexdigest()


def test_exec_env_workdir_user(docker, running):
    r = docker("exec", "-e", "FOO=bar", "-e", "HOME=/tmp", "-w", "/etc", "-u", "nobody", running,
               "sh", "-c", "echo $FOO $HOME; pwd; id -u; id -g")
    assert r.stdout == "bar /tmp\n/etc\n65534\n65534\n"
    r = docker("exec", "-u", "1234:5678", running, "sh", "-c", "id -u; id -g")
    assert r.stdout == "1234\n5678\n"


def test_exec_detached(docker, running):
    r = docker("exec", "-d", running, "sh", "-c", "sleep 1; echo later > /tmp/detached")
    assert (r.returncode, r.stdout) == (0, "")
    assert eventually(lambda: docker("exec", running, "cat", "/tmp/detached", check=False).stdout == "later\n",
                      timeout=10)


def test_exec_with_a_tty_without_stdin(docker, running):
    r = docker("exec", "-t", running, "sh", "-c", "tty; echo x >&2; exit 3", check=False)
    assert r.returncode == 3
    assert r.stdout == "/dev/pts/0\r\nx\r\n"  # raw: one stream, the terminal's line endings


def _in_a_terminal(argv: list[str], env: dict, steps, rows: int = 33, cols: int = 111, timeout: float = 30):
    """Run argv with a pty as its terminal; `steps` is a list of (bytes to type | ("resize", r, c), seconds to
    read after). Returns (exit code, output)."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execve(argv[0], argv, env)
    out = b""
    deadline = time.monotonic() + timeout

    def pump(seconds: float) -> None:
        nonlocal out
        end = min(time.monotonic() + seconds, deadline)
        while time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    return
                if not data:
                    return
                out += data

    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        for what, seconds in steps:
            if isinstance(what, tuple):
                fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", what[1], what[2], 0, 0))
                os.kill(pid, signal.SIGWINCH)
            else:
                os.write(fd, what)
            pump(seconds)
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), out
            pump(0.1)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise AssertionError(f"{argv} did not end: {out!r}")
    finally:
        os.close(fd)


def test_exec_interactive_terminal_with_its_size(api, running):
    argv = [docker_binary(), "exec", "-it", running, "sh"]
    code, out = _in_a_terminal(argv, api.env, [
        (b"", 1.5),
        (b"stty size\r", 1.0),
        (("resize", 44, 122), 1.0),
        (b"stty size; exit 3\r", 2.0),
    ])
    text = out.decode(errors="replace")
    assert code == 3, text
    assert "33 111\r\n" in text and "44 122\r\n" in text


def test_exec_detach_keys_leave_the_process_running(api, docker, running):
    argv = [docker_binary(), "exec", "-it", "--detach-keys", "ctrl-x", running, "sh", "-c",
            "echo started; sleep 30; echo never"]
    code, out = _in_a_terminal(argv, api.env, [(b"", 1.5), (b"\x18", 1.0)])
    assert code == 1 and b"started" in out and b"read escape sequence" in out, out  # as with dockerd
    assert b"never" not in out
    assert any("sleep 30" in line for line in docker("top", running).stdout.splitlines())


def test_top_stats_update(docker, running):
    r = docker("top", running)
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert lines[1].split()[-2:] == ["sleep", "600"]
    assert docker("top", running, "-o", "pid,args").stdout.splitlines()[0].split() == ["PID", "COMMAND"]
    stopped = unique("stopped")
    docker("create", "--name", stopped, "busybox", "true")
    r = docker("top", stopped, check=False)
    assert r.returncode == 1 and r.stderr.strip().endswith("is not running")
    r = docker("stats", "--no-stream", running, stopped)
    header, *rows = r.stdout.splitlines()
    assert header.split()[:4] == ["CONTAINER", "ID", "NAME", "CPU"]
    assert [row.split()[1] for row in rows] == [running, stopped]
    assert "/ 0B" in rows[1] and rows[0].split()[-1] == "1"  # the stopped one all zero; one process in the other
    r = docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}} {{.MemUsage}}", running)
    name, pids, usage = r.stdout.split(" ", 2)
    assert (name, pids) == (running, "1") and not usage.startswith("0B")
    limited = unique("mem")
    docker("run", "-d", "--name", limited, "-m", "32m", "busybox", "sleep", "600")
    try:
        r = docker("update", "--memory", "64m", "--memory-swap", "128m", "--cpus", "0.5", limited)
        assert r.stdout == f"{limited}\n"
        got = docker("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}}",
                     limited).stdout
        assert got == "67108864 134217728 500000000\n"
        assert "64MiB" in docker("stats", "--no-stream", "--format", "{{.MemUsage}}", limited).stdout
        r = docker("update", "--memory", "1m", limited, check=False)
        assert r.returncode == 1 and "Minimum memory limit allowed is 6MB" in r.stderr
        r = docker("update", "--memory", "256m", limited, check=False)
        assert r.returncode == 1 and "update the memoryswap at the same time" in r.stderr
    finally:
        docker("rm", "-f", limited, stopped)


# ---- docker-py --------------------------------------------------------------------------------------------------

def test_docker_py_exec_run_and_inspect(docker_client, running):
    c = docker_client.containers.get(running)
    assert tuple(c.exec_run(["sh", "-c", "echo out; echo err >&2; exit 4"])) == (4, b"out\nerr\n")
    assert tuple(c.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)) == (0, (b"out\n", b"err\n"))
    assert tuple(c.exec_run("sh -c 'echo $A'", environment={"A": "b"}, tty=True)) == (0, b"b\r\n")
    assert list(c.exec_run("sh -c 'for i in 1 2 3; do echo $i; sleep 0.2; done'", stream=True).output) == \
        [b"1\n", b"2\n", b"3\n"]
    api_ = docker_client.api
    e = api_.exec_create(running, ["sleep", "1"], user="nobody")
    assert api_.exec_start(e["Id"], detach=True) == ""  # docker-py: the text of an empty answer
    seen = api_.exec_inspect(e["Id"])
    assert seen["Running"] is True and seen["ExitCode"] is None and seen["Pid"] > 0
    assert seen["ProcessConfig"] == {"tty": False, "entrypoint": "sleep", "arguments": ["1"], "privileged": False,
                                     "user": "nobody"}
    assert seen["ContainerID"] == c.id and (seen["OpenStdout"], seen["OpenStdin"]) == (True, False)
    assert eventually(lambda: api_.exec_inspect(e["Id"])["ExitCode"] == 0, timeout=10)
    assert api_.exec_inspect(e["Id"])["Running"] is False
    import docker as dockerpy

    with pytest.raises(dockerpy.errors.APIError, match=f"Error: Exec command {e['Id']} has already run"):
        api_.exec_start(e["Id"])

    with pytest.raises(dockerpy.errors.NotFound, match="No such exec instance: nosuch"):
        api_.exec_inspect("nosuch")
    with pytest.raises(dockerpy.errors.APIError, match="No exec command specified"):
        api_.exec_create(running, [])


def test_docker_py_exec_socket_with_stdin_half_close(docker_client, running):
    api_ = docker_client.api
    e = api_.exec_create(running, ["sh", "-c", "wc -c; echo bye >&2"], stdin=True)
    sock = api_.exec_start(e["Id"], socket=True)._sock
    sock.sendall(b"x" * 100000)
    sock.shutdown(socket.SHUT_WR)  # stdin ends; the output still comes
    sock.settimeout(30)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    frames, i = [], 0
    while i < len(data):
        kind, size = struct.unpack(">BxxxI", data[i:i + 8])
        frames.append((kind, data[i + 8:i + 8 + size]))
        i += 8 + size
    assert b"".join(p for k, p in frames if k == 1).strip() == b"100000"
    assert b"".join(p for k, p in frames if k == 2) == b"bye\n"
    assert eventually(lambda: api_.exec_inspect(e["Id"])["ExitCode"] == 0, timeout=10)


def test_docker_py_stats(docker_client, running):
    c = docker_client.containers.get(running)
    s = c.stats(stream=False)
    for key in ("read", "preread", "pids_stats", "blkio_stats", "cpu_stats", "precpu_stats", "memory_stats",
                "networks", "name", "id"):
        assert key in s, key
    assert s["name"] == "/" + running and s["id"] == c.id
    assert s["preread"] != "0001-01-01T00:00:00Z"  # two readings a second apart
    assert s["cpu_stats"]["system_cpu_usage"] > s["precpu_stats"]["system_cpu_usage"]
    assert s["cpu_stats"]["online_cpus"] >= 1 and s["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert s["memory_stats"]["usage"] > 0 and s["memory_stats"]["limit"] > 0
    assert s["pids_stats"]["current"] == 1 and "rx_bytes" in s["networks"]["eth0"]
    one = c.stats(stream=False, one_shot=True)
    assert one["preread"] == "0001-01-01T00:00:00Z"
    stream = c.stats(decode=True)
    first, second = next(stream), next(stream)
    assert second["preread"] == first["read"] and second["precpu_stats"] == first["cpu_stats"]
    stream.close()


# ---- clients that go away ---------------------------------------------------------------------------------------

def test_clients_gone_mid_exec_leave_nothing_stuck(api, docker, running):
    env = api.env
    zygote = _zygote(api)
    # a client with stdin open, killed: the process's stdin ends, so `cat` ends, and its waiter with it
    feeder = subprocess.Popen(["sleep", "60"], stdout=subprocess.PIPE)
    client = subprocess.Popen([docker_binary(), "exec", "-i", running, "sh", "-c", "cat; echo end"],
                              stdin=feeder.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        assert eventually(lambda: any("cat" in line for line in docker("top", running).stdout.splitlines()[1:]),
                          timeout=10)
        client.kill()
        client.wait(10)
        assert eventually(lambda: not any("cat" in line for line in docker("top", running).stdout.splitlines()[1:]),
                          timeout=10), docker("top", running).stdout
    finally:
        client.kill()
        feeder.kill()
        client.wait(10)
        feeder.wait(10)
    # a client of a long command, killed: as in Docker the command runs on, and its exit code is still recorded
    e = json.loads(_post(api.sock, f"/containers/{running}/exec",
                         {"Cmd": ["sh", "-c", "echo begun; sleep 2; exit 9"], "AttachStdout": True}))["Id"]
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(api.sock))
    body = b'{"Detach": false, "Tty": false}'
    s.sendall(f"POST /exec/{e}/start HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
              f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    s.settimeout(10)
    got = b""
    while b"begun" not in got:
        chunk = s.recv(4096)
        assert chunk, got
        got += chunk
    s.close()
    assert json.loads(_get(api.sock, f"/exec/{e}/json"))["Running"] is True
    assert eventually(lambda: json.loads(_get(api.sock, f"/exec/{e}/json"))["ExitCode"] == 9, timeout=15)
    assert eventually(lambda: children(zygote) == [], timeout=10), children(zygote)
    assert _get(api.sock, "/_ping") == b"OK"
    assert api.errors() == ""


def test_exec_create_refusals_and_resize(api, docker, running):
    status, _, body = http(api.sock, "POST", f"/containers/{running}/exec", b'{"Cmd": "ls"}')
    assert (status, json.loads(body)["message"]) == \
        (400, "json: cannot unmarshal string into Go struct field ExecConfig.Cmd of type []string")
    status, _, body = http(api.sock, "POST", f"/containers/{running}/exec", b'{"Cmd": ["true"], "Env": [1]}')
    assert status == 400 and "of type string" in json.loads(body)["message"]
    docker("pause", running)
    try:
        status, _, body = http(api.sock, "POST", f"/containers/{running}/exec", b'{"Cmd": ["true"]}')
        cid = docker("inspect", "-f", "{{.Id}}", running).stdout.strip()
        assert (status, json.loads(body)["message"]) == \
            (409, f"Container {cid} is paused, unpause the container before exec")
    finally:
        docker("unpause", running)
    assert http(api.sock, "POST", "/exec/nosuch/resize?h=10&w=10")[0] == 404
    e = json.loads(_post(api.sock, f"/containers/{running}/exec", {"Cmd": ["true"]}))["Id"]
    status, _, body = http(api.sock, "POST", f"/exec/{e}/resize?w=10")
    assert (status, json.loads(body)["message"]) == (400, 'strconv.Atoi: parsing "": invalid syntax')
    _request(api.sock, "POST", f"/exec/{e}/start", b'{"Detach": true}')
    assert eventually(lambda: json.loads(_get(api.sock, f"/exec/{e}/json"))["ExitCode"] == 0, timeout=10)
    status, _, body = http(api.sock, "POST", f"/exec/{e}/resize?h=10&w=10")
    assert (status, json.loads(body)["message"]) == (404, "no such exec")  # dockerd passes on containerd's words
    status, _, body = http(api.sock, "POST", f"/exec/{e}/start", b'{"Detach": true}')
    assert (status, json.loads(body)["message"]) == (409, f"Error: Exec command {e} has already run")
    assert api.errors() == ""


def _request(sock_path, method: str, path: str, body: bytes = b"") -> bytes:
    status, _, out = http(sock_path, method, path, body)
    assert status in (200, 201), (status, out)
    return out


def _get(sock_path, path: str) -> bytes:
    return _request(sock_path, "GET", path)


def _post(sock_path, path: str, body: dict) -> bytes:
    return _request(sock_path, "POST", path, json.dumps(body).encode())
