"""barque-runtime under a real engine: Debian's dockerd 20.10 (with its own containerd) started with
`--add-runtime barque=<barque-runtime>`, so `docker run --runtime barque` goes through containerd's runc shim
(io.containerd.runc.v2 with BinaryName) exactly as it would to runc — create/start/state/kill/delete, the JSON log,
`ps --format json`, pipes for stdio."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.integration.runtime_support import RUNTIME

pytestmark = [pytest.mark.interop, pytest.mark.root]


@pytest.fixture(scope="module")
def dockerd_barque(tmp_path_factory, busybox_tar):
    """A private dockerd that knows barque-runtime, with the bootstrapped busybox loaded as busybox:latest."""
    from bench.dockerd import available, private_dockerd

    reason = available()
    if reason:
        pytest.skip(reason)
    if not Path(RUNTIME).exists():
        pytest.skip(f"{RUNTIME} is not installed (pip install -e .)")
    with private_dockerd(extra_args=["--add-runtime", f"barque={RUNTIME}"]) as daemon:
        daemon.docker("load", "-i", busybox_tar)
        yield daemon


def docker_run(d, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    name = unique("rt")
    try:
        return d.docker("run", "--name", name, "--runtime", "barque", "--network", "none", *args, check=check,
                        timeout=120)
    finally:
        d.docker("rm", "-f", name, check=False)


def test_docker_run_echo(dockerd_barque):
    res = docker_run(dockerd_barque, "--rm", "busybox", "echo", "hi")
    assert res.stdout == "hi\n"


def test_docker_run_exit_code(dockerd_barque):
    res = docker_run(dockerd_barque, "busybox", "sh", "-c", "exit 3", check=False)
    assert res.returncode == 3


def test_docker_run_memory_limit_visible_in_the_container(dockerd_barque):
    res = docker_run(dockerd_barque, "--rm", "-m", "64m", "busybox", "cat",
                     "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert res.stdout.strip() == "67108864"


def test_docker_run_is_isolated_by_barque(dockerd_barque):
    out = docker_run(dockerd_barque, "--rm", "--hostname", "via-barque", "busybox", "sh", "-c",
                     "echo $$ $(hostname); grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status").stdout
    assert out.splitlines()[0] == "1 via-barque"
    assert "Seccomp:\t2" in out


def test_docker_missing_command_is_127(dockerd_barque):
    res = docker_run(dockerd_barque, "--rm", "busybox", "no-such-command", check=False)
    assert res.returncode == 127, res.stderr
    assert "executable file not found" in res.stderr


def test_docker_exec_and_stop(dockerd_barque):
    d = dockerd_barque
    name = unique("rt")
    try:
        d.docker("run", "-d", "--name", name, "--runtime", "barque", "--network", "none", "busybox", "sleep", "60")
        out = d.docker("exec", name, "sh", "-c", "echo in-$(hostname) $$").stdout.split()
        assert out[0].startswith("in-") and out[1] != "1"
        top = d.docker("top", name).stdout
        assert "sleep 60" in top
        d.docker("stop", "-t", "1", name, timeout=60)
        state = json.loads(d.docker("inspect", name).stdout)[0]["State"]
        assert state["Status"] == "exited" and state["ExitCode"] == 137
    finally:
        d.docker("rm", "-f", name, check=False)


def test_docker_pause_update_tty_restart(dockerd_barque):
    d = dockerd_barque
    name = unique("rt")
    try:
        d.docker("run", "-d", "--name", name, "--runtime", "barque", "--network", "none", "busybox", "sleep", "60")
        d.docker("pause", name)
        assert d.docker("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "paused"
        d.docker("unpause", name)
        assert d.docker("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "running"
        d.docker("update", "--pids-limit", "50", "-m", "32m", "--memory-swap", "64m", name)
        limits = d.docker("exec", name, "cat", "/sys/fs/cgroup/pids/pids.max",
                          "/sys/fs/cgroup/memory/memory.limit_in_bytes").stdout.split()
        assert limits == ["50", str(32 * 1024 * 1024)]
        assert d.docker("exec", "-t", name, "tty").stdout.strip() == "/dev/pts/0"
        d.docker("restart", "-t", "1", name, timeout=60)
        assert d.docker("exec", name, "echo", "after-restart").stdout == "after-restart\n"
    finally:
        d.docker("rm", "-f", name, check=False)


def test_docker_run_tty(dockerd_barque):
    assert docker_run(dockerd_barque, "--rm", "-t", "busybox", "tty").stdout.strip() == "/dev/pts/0"
