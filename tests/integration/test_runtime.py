"""barque-runtime on the real kernel, as root: a probe in a busybox container reports what it sees (PID 1, its own
hostname and namespaces, capabilities, no_new_privs, seccomp, masked and read-only paths, its own cgroup limits);
the lifecycle verbs and their refusals; exit statuses and signals; and that nothing outlives `delete`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.runtime_support import (  # noqa: F401 - fixtures
    Bundle, Runtime, assert_nothing_left, bundle, busybox_tree, cgroup_dirs, mount_points, rt, wait_exit,
)

pytestmark = pytest.mark.root


def run_probe(rt: Runtime, b: Bundle, script: str, **kw):
    b.set_args("sh", "-c", script)
    return rt("run", "--bundle", b.path, b.cid, **kw)


def test_probe_sees_an_isolated_container(rt, bundle):
    mounts_before = mount_points()
    host_ns = {n: os.readlink(f"/proc/self/ns/{n}") for n in ("pid", "mnt", "net", "uts", "ipc", "cgroup")}
    bundle.spec["hostname"] = "probe-host"
    masked = bundle.spec["linux"]["maskedPaths"]
    masked_file = next(p for p in masked if Path(p).is_file() and Path(p).stat().st_size == 0 and p.startswith("/proc")
                       and _readable(p))
    masked_dir = next(p for p in masked if Path(p).is_dir() and any(Path(p).iterdir()))
    bundle.spec["linux"]["resources"]["memory"] = {"limit": 64 * 1024 * 1024}
    script = ("echo pid=$$; echo host=$(hostname); "
              "for n in pid mnt net uts ipc cgroup; do echo ns.$n=$(readlink /proc/self/ns/$n); done; "
              "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\\t' | sed 's/:/=/'; "
              f"echo masked_file=$(cat {masked_file} | wc -c); echo masked_dir=$(ls -A {masked_dir} | wc -l); "
              "(echo 1 > /proc/sys/kernel/ns_last_pid) 2>/dev/null && echo sys=rw || echo sys=ro; "
              "echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes); "
              "echo mounts=$(cut -d' ' -f5 /proc/self/mountinfo | tr '\\n' ' ')")
    out = run_probe(rt, bundle, script).stdout
    seen = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert seen["pid"] == "1"
    assert seen["host"] == "probe-host"
    for n, link in host_ns.items():
        assert seen[f"ns.{n}"] != link, f"{n} namespace is the host's"
    from barque.runtime.caps import capability_mask
    from barque.runtime.defaults import DEFAULT_CAPABILITIES

    assert int(seen["CapEff"], 16) == capability_mask(DEFAULT_CAPABILITIES)
    assert seen["NoNewPrivs"] == "1"
    assert seen["Seccomp"] == "2"
    assert seen["masked_file"] == "0", f"{masked_file} is masked with /dev/null"
    assert seen["masked_dir"] == "0", f"{masked_dir} is masked with an empty read-only tmpfs"
    assert seen["sys"] == "ro"
    assert seen["mem"] == str(64 * 1024 * 1024)
    inside = set(seen["mounts"].split())
    assert "/" in inside and "/proc" in inside and "/dev/pts" in inside and "/sys/fs/cgroup/memory" in inside
    host_only = {m for m in mounts_before if m.startswith(("/work", "/tmp", "/run", "/home", "/var"))}
    assert not inside & host_only, f"host mounts visible inside: {inside & host_only}"
    assert_nothing_left(rt, bundle, mounts_before)


def _readable(path: str) -> bool:
    try:
        return len(Path(path).read_bytes()) > 0
    except OSError:
        return False


def test_lifecycle_create_start_state_kill_delete(rt, bundle, tmp_path):
    mounts_before = mount_points()
    bundle.set_args("sh", "-c", "trap 'echo got TERM; exit 0' TERM; echo up; while true; do sleep 0.1; done")
    pid_file = tmp_path / "pid"
    with open(bundle.out, "w") as out:
        rt("create", "--bundle", bundle.path, "--pid-file", pid_file, bundle.cid, stdout=out, stderr=out)
    st = rt.state(bundle.cid)
    assert st["status"] == "created" and st["id"] == bundle.cid and st["bundle"] == str(bundle.path)
    assert st["ociVersion"] and int(pid_file.read_text()) == st["pid"]
    assert Path(f"/proc/{st['pid']}").exists()
    assert bundle.output() == "", "the process waits for start"

    rt("start", bundle.cid)
    assert rt.state(bundle.cid)["status"] == "running"
    listed = json.loads(rt("list", "--format", "json").stdout)
    assert [c["id"] for c in listed] == [bundle.cid] and listed[0]["status"] == "running"
    assert st["pid"] in json.loads(rt("ps", "--format", "json", bundle.cid).stdout)

    rt("kill", bundle.cid, "TERM")
    assert wait_exit(st["pid"]) == 0
    assert "got TERM" in bundle.output()
    assert rt.state(bundle.cid)["status"] == "stopped"
    rt("delete", bundle.cid)
    assert_nothing_left(rt, bundle, mounts_before)
    res = rt("state", bundle.cid, check=False)
    assert res.returncode != 0 and "does not exist" in res.stderr


def test_lifecycle_refusals(rt, bundle):
    bundle.set_args("sleep", "30")
    rt("create", "--bundle", bundle.path, bundle.cid, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = rt.state(bundle.cid)["pid"]
    again = rt("create", "--bundle", bundle.path, bundle.cid, check=False)
    assert again.returncode != 0 and "already exists" in again.stderr
    rt("start", bundle.cid)
    twice = rt("start", bundle.cid, check=False)
    assert twice.returncode != 0 and "not created" in twice.stderr
    assert json.loads(rt.last_log().strip())["level"] == "error", "errors go to the JSON log for the shim"
    running = rt("delete", bundle.cid, check=False)
    assert running.returncode != 0 and "not stopped" in running.stderr
    rt("pause", bundle.cid)
    assert rt.state(bundle.cid)["status"] == "paused"
    rt("resume", bundle.cid)
    assert rt.state(bundle.cid)["status"] == "running"
    rt("delete", "--force", bundle.cid)
    assert wait_exit(pid) == 128 + signal.SIGKILL
    assert cgroup_dirs(bundle.cgroup) == []
    unknown = rt("kill", "no-such-container", "KILL", check=False)
    assert unknown.returncode != 0 and "does not exist" in unknown.stderr


def test_exit_status_passes_through(rt, bundle):
    assert run_probe(rt, bundle, "exit 7", check=False).returncode == 7


def test_run_killed_by_signal_reports_128_plus_signal(rt, bundle):
    bundle.set_args("sleep", "30")
    proc = subprocess.Popen([*rt_cmd(rt), "run", "--bundle", str(bundle.path), bundle.cid],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            res = rt("state", bundle.cid, check=False)
            if res.returncode == 0 and json.loads(res.stdout)["status"] == "running":
                break
            time.sleep(0.05)
        rt("kill", bundle.cid, "9")
        assert proc.wait(30) == 137
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (rt.root / bundle.cid).exists(), "run deletes the container it ran"


def rt_cmd(rt: Runtime) -> list[str]:
    from tests.integration.runtime_support import RUNTIME

    return [RUNTIME, "--root", str(rt.root), "--log", str(rt.log), "--log-format", "json"]


def test_memory_hog_is_oom_killed_and_reported(rt, bundle):
    bundle.spec["linux"]["resources"]["memory"] = {"limit": 32 * 1024 * 1024}
    bundle.set_args("dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1")
    with open(bundle.out, "w") as out:
        rt("create", "--bundle", bundle.path, bundle.cid, stdout=out, stderr=out)
    pid = rt.state(bundle.cid)["pid"]
    rt("start", bundle.cid)
    assert wait_exit(pid) == 137
    from barque.cgroups import CgroupManager

    assert CgroupManager(bundle.cgroup).oom_kill_count() >= 1
    rt("delete", bundle.cid)
    # `run` reports it too
    res = rt("run", "--bundle", bundle.path, bundle.cid, check=False)
    assert res.returncode == 137 and "OOM" in rt.log.read_text()


def test_fork_bomb_stops_at_the_pids_limit(rt, bundle):
    bundle.spec["linux"]["resources"]["pids"] = {"limit": 8}
    # bounded: a subshell forks 30 sleepers (10s at most each) and dies at the first refused fork, as ash does;
    # then builtins only (read, echo, kill) until the sleepers are gone
    script = ("(for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30; do "
              "sleep 10 & done) 2>/tmp/forks; read c < /sys/fs/cgroup/pids/pids.current; echo current=$c; "
              "kill -9 -1; wait; cat /tmp/forks")
    out = run_probe(rt, bundle, script, check=False).stdout
    current = int(out.split("current=")[1].split()[0])
    assert 1 < current <= 8, "the sleepers filled the cgroup up to its limit and no further"
    assert "can't fork" in out


def test_blocked_syscalls_fail_with_eperm(rt, bundle):
    res = run_probe(rt, bundle, "unshare -U true; echo rc=$?; mount -t tmpfs t /mnt; echo rc=$?", check=False)
    assert "Operation not permitted" in res.stderr or "Permission denied" in res.stderr, res.stderr
    assert res.stdout.count("rc=0") == 0


def test_readonly_root_and_sysctl_and_rlimits(rt, bundle):
    bundle.spec["root"]["readonly"] = True
    bundle.spec["domainname"] = "example.org"
    bundle.spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    bundle.spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}]
    bundle.spec["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 33], "umask": 0o077}
    out = run_probe(rt, bundle, "touch /x 2>/dev/null && echo root=rw || echo root=ro; echo dom=$(cat /proc/sys/kernel/domainname); "
                                "echo fwd=$(cat /proc/sys/net/ipv4/ip_forward); echo nofile=$(ulimit -n); "
                                "echo id=$(id -u):$(id -g):$(id -G | tr ' ' ,); echo umask=$(umask)").stdout
    seen = dict(line.split("=", 1) for line in out.splitlines())
    assert seen == {"root": "ro", "dom": "example.org", "fwd": "1", "nofile": "123", "id": "1000:1000:1000,5,33",
                    "umask": "0077"}


def test_rlimit_above_the_hard_limit_is_reported(rt, bundle):
    huge = 1 << 40
    bundle.spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": huge, "hard": huge}]
    mounts_before = mount_points()
    res = run_probe(rt, bundle, "true", check=False)
    assert res.returncode != 0 and "RLIMIT_NOFILE" in res.stderr
    assert_nothing_left(rt, bundle, mounts_before)


def test_exec_joins_the_container(rt, bundle):
    bundle.set_args("sleep", "30")
    bundle.spec["hostname"] = "exec-host"
    bundle.write()
    rt("create", "--bundle", bundle.path, bundle.cid, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = rt.state(bundle.cid)["pid"]
    rt("start", bundle.cid)
    out = rt("exec", bundle.cid, "sh", "-c", "echo host=$(hostname); echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' ');"
             " echo ns=$(readlink /proc/self/ns/pid); grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status").stdout
    assert "host=exec-host" in out and "pid1=sleep 30" in out
    assert f"ns={os.readlink(f'/proc/{pid}/ns/pid')}" in out
    assert "Seccomp:\t2" in out and "NoNewPrivs:\t1" in out
    assert rt("exec", bundle.cid, "sh", "-c", "exit 5", check=False).returncode == 5
    missing = rt("exec", bundle.cid, "no-such-program", check=False)
    assert missing.returncode != 0 and "executable file not found" in missing.stderr
    rt("delete", "--force", bundle.cid)
    wait_exit(pid)


def test_hooks_get_the_state(rt, bundle, tmp_path):
    record = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho \"$1 $(cat)\" >> {record}\n")
    hook.chmod(0o755)
    phases = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
    bundle.spec["hooks"] = {p: [{"path": str(hook), "args": ["hook.sh", p], "timeout": 10}] for p in phases}
    bundle.write()
    # startContainer runs inside the container (after pivot_root): the same path there is a hook that leaves a mark
    inside = bundle.rootfs / str(hook).lstrip("/")
    inside.parent.mkdir(parents=True, exist_ok=True)
    inside.write_text("#!/bin/sh\ncat > /tmp/startContainer.state\n")
    inside.chmod(0o755)
    rt("run", "--bundle", bundle.path, bundle.cid)
    lines = record.read_text().splitlines()
    ran = [line.split(" ", 1)[0] for line in lines]
    assert ran == ["prestart", "createRuntime", "createContainer", "poststart", "poststop"]
    states = {line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1]) for line in lines}
    assert states["createRuntime"]["id"] == bundle.cid and states["createRuntime"]["pid"] > 0
    assert states["poststop"]["status"] == "stopped"
    assert json.loads((bundle.rootfs / "tmp/startContainer.state").read_text())["id"] == bundle.cid


def test_failing_hook_fails_create_and_leaves_nothing(rt, bundle):
    mounts_before = mount_points()
    bundle.spec["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}]}
    bundle.write()
    res = rt("create", "--bundle", bundle.path, bundle.cid, check=False)
    assert res.returncode != 0 and "createRuntime hook" in res.stderr and "nope" in res.stderr
    assert_nothing_left(rt, bundle, mounts_before)


def test_update_changes_the_limits(rt, bundle):
    bundle.set_args("sleep", "30")
    rt("create", "--bundle", bundle.path, bundle.cid, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = rt.state(bundle.cid)["pid"]
    rt("update", "--resources", "-", bundle.cid, input=json.dumps({"pids": {"limit": 42}}))
    (d,) = [d for d in cgroup_dirs(bundle.cgroup) if (d / "pids.max").exists()]
    assert (d / "pids.max").read_text().strip() == "42"
    rt("delete", bundle.cid)  # a created container is deleted without --force
    wait_exit(pid)


def test_features_version_and_spec(rt, tmp_path, busybox_tree):
    features = json.loads(rt("features").stdout)
    assert "user" in features["linux"]["namespaces"] and "createRuntime" in features["hooks"]
    assert features["linux"]["seccomp"]["enabled"] is True
    version = rt("--version").stdout.splitlines()
    assert len(version) == 3 and version[0].startswith("barque-runtime version ") and version[2].startswith("spec: ")
    rt("spec", "--bundle", tmp_path)
    spec = json.loads((tmp_path / "config.json").read_text())
    assert spec["process"]["args"] == ["sh"] and spec["root"]["path"] == "rootfs"
    assert rt("spec", "--bundle", tmp_path, check=False).returncode != 0, "an existing config.json is kept"


def test_oom_score_adj_and_time_namespace(rt, bundle):
    bundle.spec["process"]["oomScoreAdj"] = 500
    bundle.spec["linux"]["namespaces"].append({"type": "time"})
    out = run_probe(rt, bundle, "echo oom=$(cat /proc/self/oom_score_adj); echo time=$(readlink /proc/self/ns/time)")
    seen = dict(line.split("=", 1) for line in out.stdout.splitlines())
    assert seen["oom"] == "500"
    assert seen["time"] != os.readlink("/proc/self/ns/time")


def test_join_another_containers_network_namespace(rt, bundle, tmp_path, busybox_tree):
    from tests.integration.runtime_support import make_bundle

    bundle.set_args("sleep", "30")
    rt("create", "--bundle", bundle.path, bundle.cid, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = rt.state(bundle.cid)["pid"]
    rt("start", bundle.cid)
    (tmp_path / "second").mkdir()
    other = make_bundle(tmp_path / "second", busybox_tree, ["sh", "-c", "readlink /proc/self/ns/net"])
    rt.made.append(other.cid)
    ns = other.spec["linux"]["namespaces"]
    ns[:] = [n for n in ns if n["type"] != "network"] + [{"type": "network", "path": f"/proc/{first}/ns/net"}]
    other.write()
    out = rt("run", "--bundle", other.path, other.cid).stdout.strip()
    assert out == os.readlink(f"/proc/{first}/ns/net")
    rt("delete", "--force", bundle.cid)
    wait_exit(first)


def test_kill_all_signals_every_process(rt, bundle):
    bundle.set_args("sh", "-c", "trap '' TERM; sleep 30 & sleep 31 & wait")
    rt("create", "--bundle", bundle.path, bundle.cid, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = rt.state(bundle.cid)["pid"]
    rt("start", bundle.cid)
    deadline = time.monotonic() + 10
    while len(json.loads(rt("ps", "--format", "json", bundle.cid).stdout)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    rt("kill", "--all", bundle.cid, "KILL")
    assert wait_exit(pid) == 137
    deadline = time.monotonic() + 10
    while json.loads(rt("ps", "--format", "json", bundle.cid).stdout) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads(rt("ps", "--format", "json", bundle.cid).stdout) == []
    rt("delete", bundle.cid)
    assert cgroup_dirs(bundle.cgroup) == []


def test_default_cgroup_is_under_the_barque_parent(rt, bundle):
    existed = {d for d in Path("/sys/fs/cgroup").iterdir() if (d / "barque").is_dir()}
    del bundle.spec["linux"]["cgroupsPath"]
    bundle.spec["linux"]["resources"]["pids"] = {"limit": 20}
    bundle.set_args("sleep", "30")
    try:
        rt("create", "--bundle", bundle.path, bundle.cid, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pid = rt.state(bundle.cid)["pid"]
        mine = Path(f"/sys/fs/cgroup/pids/barque/{bundle.cid}")
        assert (mine / "pids.max").read_text().strip() == "20"
        assert str(pid) in (mine / "cgroup.procs").read_text().split()
        rt("delete", bundle.cid)
        wait_exit(pid)
        assert cgroup_dirs(f"/barque/{bundle.cid}") == []
    finally:
        for d in Path("/sys/fs/cgroup").iterdir():
            if d not in existed and (d / "barque").is_dir():
                try:
                    (d / "barque").rmdir()
                except OSError:
                    pass  # another container is using the parent
