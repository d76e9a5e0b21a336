"""Hooks (state on stdin, args, env, timeout, which failures fail), the console socket message, the command line
(go-runc's flag forms), the JSON log line the shim reads, process helpers, the compiled seccomp cache, the sync
channel, and the package's exported names."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys

import pytest

from barque.errors import FailedPrecondition, InvalidArgument, NotFound
from barque.runtime import bpf, console, hooks, process
from barque.runtime.channel import pair
from barque.runtime.cli import _JSONFormatter, parse_args


# ---- hooks ---------------------------------------------------------------------------------------------------------

def hook_script(tmp_path, body: str):
    path = tmp_path / "hook.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_hook_gets_the_state_args_and_env(tmp_path):
    out = tmp_path / "out"
    script = f'echo "$0 $1 $GREETING" > {out}; cat >> {out}'
    spec = {"hooks": {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", script, "named-hook", "first"],
                                         "env": ["GREETING=hi"]}]}}
    hooks.run_hooks(spec, "createRuntime", {"id": "c1", "pid": 5})
    first, state = out.read_text().split("\n", 1)
    assert first == "named-hook first hi"
    assert json.loads(state) == {"id": "c1", "pid": 5}


def test_failing_hook_fails_the_phase_with_its_output(tmp_path):
    path = hook_script(tmp_path, "echo broken >&2; exit 4\n")
    with pytest.raises(FailedPrecondition, match=r"prestart hook #0: .* exited 4: broken"):
        hooks.run_hooks({"hooks": {"prestart": [{"path": path}]}}, "prestart", {})


def test_hook_timeout(tmp_path):
    path = hook_script(tmp_path, "sleep 30\n")
    with pytest.raises(FailedPrecondition, match="timeout of 1s"):
        hooks.run_hooks({"hooks": {"createContainer": [{"path": path, "timeout": 1}]}}, "createContainer", {})


def test_poststop_failures_only_warn(tmp_path, caplog):
    path = hook_script(tmp_path, "exit 1\n")
    with caplog.at_level(logging.WARNING, logger="barque.runtime.hooks"):
        hooks.run_hooks({"hooks": {"poststop": [{"path": path}, {"path": "/no/such/hook"}]}}, "poststop", {})
    assert len(caplog.records) == 2


def test_has_hooks():
    assert hooks.has_hooks({"hooks": {"poststart": [{"path": "/x"}]}}, "prestart", "poststart")
    assert not hooks.has_hooks({}, "prestart")


# ---- console -------------------------------------------------------------------------------------------------------

def test_console_message_is_the_name_plus_one_fd():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    r, w = os.pipe()
    try:
        console.send_master(a, w, "/dev/pts/3")
        fd, name = console.recv_master(b)
        assert name == "/dev/pts/3"
        os.write(fd, b"through the passed fd")
        assert os.read(r, 100) == b"through the passed fd"
        os.close(fd)
    finally:
        for x in (r, w):
            os.close(x)
        a.close()
        b.close()


def test_console_message_without_fd_is_refused():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        a.send(b"/dev/pts/1")
        with pytest.raises(InvalidArgument, match="no file descriptor"):
            console.recv_master(b)


# ---- command line and log ------------------------------------------------------------------------------------------

def test_go_runc_command_lines_parse():
    a = parse_args(["--root", "/run/containerd/runc/moby", "--log", "/b/log.json", "--log-format", "json",
                    "create", "--bundle", "/b", "--pid-file", "/b/init.pid", "--console-socket", "/tmp/c.sock", "id1"])
    assert (a.root, a.log, a.log_format, a.command, a.bundle, a.pid_file, a.console_socket, a.id) == \
        ("/run/containerd/runc/moby", "/b/log.json", "json", "create", "/b", "/b/init.pid", "/tmp/c.sock", "id1")
    e = parse_args(["--root=/r", "exec", "--process", "/tmp/p.json", "--detach", "--pid-file", "/p", "id1"])
    assert (e.process, e.detach, e.pid_file, e.id, e.args) == ("/tmp/p.json", True, "/p", "id1", [])
    k = parse_args(["kill", "--all", "id1", "9"])
    assert (k.all, k.id, k.signal) == (True, "id1", "9")
    assert parse_args(["kill", "id1"]).signal == "SIGTERM"
    assert parse_args(["delete", "--force", "id1"]).force is True
    assert parse_args(["ps", "--format", "json", "id1"]).format == "json"
    assert parse_args(["update", "--resources", "-", "id1"]).resources == "-"
    assert parse_args(["--systemd-cgroup", "state", "x"]).systemd_cgroup is True


def test_exec_command_line_is_not_parsed_as_flags():
    a = parse_args(["exec", "-e", "A=1", "--cwd", "/tmp", "-t", "id1", "sh", "-c", "echo --all"])
    assert (a.env, a.cwd, a.tty, a.args) == (["A=1"], "/tmp", True, ["sh", "-c", "echo --all"])


@pytest.mark.parametrize("argv", [["frobnicate"], ["start"], ["list", "--format", "xml"], ["create", "--bogus", "x"],
                                  ["create", "--pid-file"], ["start", "a", "b"]])
def test_bad_command_lines(argv):
    from barque.runtime.cli import UsageError

    with pytest.raises(UsageError):
        parse_args(argv)


def test_json_log_line_is_logrus_shaped():
    rec = logging.LogRecord("barque.runtime", logging.ERROR, __file__, 1, "container %s: %s", ("c1", "boom"), None)
    line = json.loads(_JSONFormatter().format(rec))
    assert line["level"] == "error" and line["msg"] == "container c1: boom"
    assert line["time"].endswith("Z")
    rec.levelname = "WARNING"
    assert json.loads(_JSONFormatter().format(rec))["level"] == "warning"


# ---- process -------------------------------------------------------------------------------------------------------

def test_resolve_executable_uses_the_container_path(tmp_path):
    (tmp_path / "bin").mkdir()
    tool = tmp_path / "bin" / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert process.resolve_executable("tool", {"PATH": f"/nowhere:{tmp_path}/bin"}) == str(tool)
    assert process.resolve_executable(str(tool), {}) == str(tool)
    with pytest.raises(NotFound, match='exec: "tool": executable file not found in \\$PATH'):
        process.resolve_executable("tool", {"PATH": "/nowhere"})
    tool.chmod(0o644)
    with pytest.raises(FailedPrecondition, match="permission denied"):
        process.resolve_executable(str(tool), {})


def test_environment_last_wins():
    assert process.environment({"env": ["A=1", "B=x=y", "A=2"]}) == {"A": "2", "B": "x=y"}


def test_exit_codes():
    from barque.runtime.run import exit_code

    assert exit_code(7 << 8) == 7
    assert exit_code(9) == 137


# ---- compiled seccomp cache ----------------------------------------------------------------------------------------

PROFILE = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
           "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}],
           "flags": ["SECCOMP_FILTER_FLAG_LOG"]}


def test_compiled_filter_is_cached_and_keyed_by_the_profile(tmp_path):
    if os.uname().machine != "x86_64":
        pytest.skip("the profile names x86_64")
    first = bpf.prepare_filter(PROFILE, tmp_path / "bpf")
    assert isinstance(first, bpf.CompiledFilter) and len(first.program) % 8 == 0 and first.flags == 2
    cached = list((tmp_path / "bpf").iterdir())
    assert len(cached) == 1
    assert bpf.prepare_filter(PROFILE, tmp_path / "bpf") == first, "read back from the cache"
    other = dict(PROFILE, defaultAction="SCMP_ACT_KILL")
    assert bpf.prepare_filter(other, tmp_path / "bpf").program != first.program
    assert len(list((tmp_path / "bpf").iterdir())) == 2


def test_bad_profiles_are_never_cached(tmp_path):
    bad = dict(PROFILE, syscalls=[{"names": ["no_such_syscall"], "action": "SCMP_ACT_ALLOW"}])
    with pytest.raises(InvalidArgument, match="no_such_syscall"):
        bpf.prepare_filter(bad, tmp_path / "bpf")
    assert not (tmp_path / "bpf").exists() or not list((tmp_path / "bpf").iterdir())


def test_notify_filters_are_not_compiled(tmp_path):
    notify = dict(PROFILE, listenerPath="/run/x.sock",
                  syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}])
    f = bpf.prepare_filter(notify, tmp_path / "bpf")
    assert not isinstance(f, bpf.CompiledFilter)


# ---- sync channel --------------------------------------------------------------------------------------------------

def test_channel_messages_and_fds():
    a, b = pair()
    r, w = os.pipe()
    try:
        a.send("pid", pid=42)
        assert b.recv(1)[0] == {"t": "pid", "pid": 42}
        a.send("console", fds=[w], name="/dev/pts/0")
        msg, fds = b.recv(1)
        assert msg["name"] == "/dev/pts/0" and len(fds) == 1
        os.write(fds[0], b"x")
        assert os.read(r, 1) == b"x"
        os.close(fds[0])
        a.send("error", msg="it broke")
        with pytest.raises(FailedPrecondition, match="it broke"):
            b.expect("ready", 1)
        a.close()
        assert b.recv(1)[0] == {"t": "eof"}
    finally:
        os.close(r)
        os.close(w)
        b.close()


def test_cli_module_stays_light():
    """The runtime's start-up is on the path of every container: the CLI module must not pull in the heavy
    modules (libseccomp, pyprctl, the cgroups package) before a verb needs them."""
    import subprocess

    code = ("import sys, barque.runtime.cli; heavy = [m for m in ('pyseccomp', 'pyprctl', 'barque.cgroups', "
            "'argparse', 'subprocess', 'hashlib') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_exported_names():
    import barque.runtime as rt

    assert rt.__all__ == ["Runtime", "IDMAP_ANNOTATION", "DEFAULT_ROOT"]
    from barque.runtime.userns import IDMAP_ANNOTATION

    assert rt.IDMAP_ANNOTATION == IDMAP_ANNOTATION
    r = rt.Runtime("/nonexistent-root")
    assert r.list() == []


def test_update_ignores_zero_meaning_unchanged():
    from barque.runtime.update import changes_only

    docker_sends = {"memory": {"limit": 0, "reservation": 0, "swap": 0, "kernel": 0, "swappiness": None},
                    "cpu": {"shares": 0, "quota": 0, "period": 0, "cpus": "", "mems": ""},
                    "pids": {"limit": 50}, "blockIO": {"weight": 0}, "devices": None}
    assert changes_only(docker_sends) == {"pids": {"limit": 50}}
    assert changes_only({"memory": {"limit": 1 << 26}}) == {"memory": {"limit": 1 << 26}}


def test_config_hand_over_to_the_early_stage1(tmp_path):
    from barque.runtime.init import InitConfig, _load_config, send_config
    from barque.runtime.rootfs import RootfsContext

    r, w = os.pipe()
    a, b = pair()
    notify = dict(PROFILE, listenerPath="/run/x.sock", syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}])
    spec = {"process": {"args": ["true"]}, "linux": {"seccomp": notify}}
    cfg = InitConfig(process=spec["process"], spec=spec, new=["pid", "mount"],
                     rootfs_ctx=RootfsContext(rootfs="/r", bundle="/b"), fifo="/f",
                     seccomp=bpf.prepare_filter(notify, None))
    cfg.fifo_fd = w
    try:
        send_config(a, cfg)
        msg, fds = b.recv(1)
        assert msg["t"] == "config" and len(fds) == 2
        got = _load_config(fds)
        assert got.process == cfg.process and got.new == ["pid", "mount"] and got.rootfs_ctx.rootfs == "/r"
        assert not isinstance(got.seccomp, (str, bpf.CompiledFilter)), "libseccomp's filter, built again"
        os.write(got.fifo_fd, b"!")
        assert os.read(r, 1) == b"!", "the fifo fd came along"
        os.close(got.fifo_fd)
    finally:
        os.close(r)
        os.close(w)
        a.close()
        b.close()
