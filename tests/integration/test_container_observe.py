"""top, stats, update, events and system restore through the real CLI on the real kernel, as a user sees them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import BARQUE, wait_for

pytestmark = pytest.mark.timeout(180)

CGROUP_ROOT = Path("/sys/fs/cgroup")


def inspect(b, name: str) -> dict:
    return json.loads(b("inspect", name).stdout)[0]


@pytest.fixture
def ob(bb):
    """The busybox root; every container made in it is force-removed afterwards, whatever the test did."""
    yield bb
    for cid in bb("ps", "-aq", "--no-trunc", check=False).stdout.split():
        bb("rm", "-f", cid, check=False)


def cgroup_file(cid: str, *names: str) -> Path:
    """The container's cgroup file among `names`, wherever this host's hierarchies put it (v1, v2 or hybrid)."""
    for name in names:
        for base in (CGROUP_ROOT / name.split(".")[0], CGROUP_ROOT, CGROUP_ROOT / "unified"):
            p = base / "barque" / cid / name
            if p.exists():
                return p
    raise AssertionError(f"no {names} for {cid} under {CGROUP_ROOT}")


# ---- top ----------------------------------------------------------------------------------------------------------

def test_top_shows_the_containers_sleep(ob):
    ob("run", "-d", "--name", "sleeper", "busybox", "sleep", "1001")
    pid = inspect(ob, "sleeper")["State"]["Pid"]
    lines = ob("top", "sleeper").stdout.splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert lines[0].startswith("UID" + " " * 17 + "PID")  # Docker's tabwriter: cells at least 20 wide
    assert len(lines) == 2
    row = lines[1].split()
    assert row[0] == "root" and int(row[1]) == pid
    assert lines[1].endswith("sleep 1001")
    # ps options as given; only the container's processes, though the host runs many
    custom = ob("top", "sleeper", "-o", "pid,comm").stdout.splitlines()
    assert custom[0].split() == ["PID", "COMMAND"]
    assert [r.split() for r in custom[1:]] == [[str(pid), "sleep"]]
    ob("exec", "-d", "sleeper", "sleep", "1002", check=False)
    if inspect(ob, "sleeper")["State"]["Running"]:
        wait_for(lambda: "sleep 1002" in ob("top", "sleeper").stdout, timeout=5)


def test_top_of_a_container_that_does_not_run(ob):
    cid = ob("create", "--name", "idle", "busybox", "true").stdout.strip()
    r = ob("top", "idle", check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == f"Error: container {cid} is not running"
    r = ob("top", "nosuch", check=False)
    assert r.returncode == 1 and "No such container: nosuch" in r.stderr


# ---- stats --------------------------------------------------------------------------------------------------------

def test_stats_no_stream_shows_the_memory_limit(ob):
    cid = ob("run", "-d", "--name", "capped", "-m", "64m", "busybox", "sleep", "1000").stdout.strip()
    out = ob("stats", "--no-stream", "capped").stdout.splitlines()
    assert re.split(r"\s{2,}", out[0].strip()) == ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %",
                                                   "NET I/O", "BLOCK I/O", "PIDS"]
    net_io = re.split(r"\s{2,}", out[1].strip())[5]
    assert re.fullmatch(r"[0-9.]+[kMG]?B / [0-9.]+[kMG]?B", net_io), net_io  # its eth0's counters
    assert len(out) == 2
    assert out[1].startswith(cid[:12] + "   capped    ")
    cells = [c.strip() for c in out[1].split("   ") if c.strip()]
    assert cells[1] == "capped"
    assert cells[2].endswith("%")
    usage, limit = cells[3].split(" / ")
    assert limit == "64MiB"
    assert usage.endswith(("B", "KiB", "MiB")) and usage != "0B"
    assert cells[-1] == "1"  # one process: sleep

    row = json.loads(ob("stats", "--no-stream", "--no-trunc", "--format", "json", "capped").stdout)
    assert sorted(row) == ["BlockIO", "CPUPerc", "Container", "ID", "MemPerc", "MemUsage", "Name", "NetIO", "PIDs"]
    assert row["ID"] == cid and row["Container"] == "capped" and row["MemUsage"].endswith(" / 64MiB")
    assert 0 < float(row["MemPerc"].rstrip("%")) < 100
    tmpl = ob("stats", "--no-stream", "--format", "table {{.Name}}\t{{.PIDs}}", "capped").stdout.splitlines()
    assert tmpl == ["NAME      PIDS", "capped    1"]


def test_stats_cpu_of_a_busy_container(ob):
    ob("run", "-d", "--name", "busy", "busybox", "sh", "-c", "while :; do :; done")
    ob("run", "-d", "--name", "calm", "busybox", "sleep", "1000")
    rows = {json.loads(line)["Name"]: json.loads(line)
            for line in ob("stats", "--no-stream", "--format", "json").stdout.splitlines()}
    assert set(rows) == {"busy", "calm"}
    assert 50.0 < float(rows["busy"]["CPUPerc"].rstrip("%")) < 150.0  # one CPU's worth
    assert float(rows["calm"]["CPUPerc"].rstrip("%")) < 5.0
    host_mem = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    assert rows["calm"]["MemUsage"].split(" / ")[1].endswith("GiB")  # no limit: the host's memory
    assert host_mem > 0


def test_stats_of_stopped_containers_and_errors(ob):
    ob("run", "--name", "done", "busybox", "true")
    assert ob("stats", "--no-stream", "--format", "{{.Name}}").stdout == ""  # only running ones by default
    out = ob("stats", "--no-stream", "-a").stdout.splitlines()
    assert out[1].split()[1:] == ["done", "0.00%", "0B", "/", "0B", "0.00%", "0B", "/", "0B", "0B", "/", "0B", "0"]
    r = ob("stats", "--no-stream", "nosuch", check=False)
    assert r.returncode == 1 and r.stdout == "" and "No such container: nosuch" in r.stderr


def test_stats_stream_redraws_and_ends_when_the_container_stops(ob):
    ob("run", "-d", "--name", "brief", "busybox", "sleep", "3")
    started = time.monotonic()
    r = ob("stats", "brief", timeout=30)
    assert time.monotonic() - started < 20
    frames = r.stdout.split("\033[2J\033[H")
    assert frames[0] == "" and len(frames) >= 3  # a clear-screen before each frame
    assert all(f.startswith("CONTAINER ID") for f in frames[1:])
    assert frames[-1].splitlines()[1].split()[-1] == "0"  # the last frame: it has stopped


# ---- update -------------------------------------------------------------------------------------------------------

def test_update_memory_changes_the_cgroup(ob):
    cid = ob("run", "-d", "--name", "grow", "-m", "64m", "busybox", "sleep", "1000").stdout.strip()
    limit = cgroup_file(cid, "memory.limit_in_bytes", "memory.max")
    assert limit.read_text().strip() == str(64 << 20)
    r = ob("update", "-m", "100m", "grow")
    assert r.stdout == "grow\n"
    assert limit.read_text().strip() == str(100 << 20)
    host = inspect(ob, "grow")["HostConfig"]
    assert host["Memory"] == 100 << 20 and host["MemorySwap"] == 128 << 20  # swap: what -m 64m implied
    assert "/ 100MiB" in ob("stats", "--no-stream", "grow").stdout

    # beyond the swap limit: dockerd's refusal, nothing changed
    r = ob("update", "-m", "300m", "grow", check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == (f"Error: Cannot update container {cid}: Memory limit should be smaller than already "
                                "set memoryswap limit, update the memoryswap at the same time")
    assert limit.read_text().strip() == str(100 << 20)
    ob("update", "-m", "300m", "--memory-swap", "-1", "grow")
    assert limit.read_text().strip() == str(300 << 20)

    pids = cgroup_file(cid, "pids.max")
    ob("update", "--pids-limit", "20", "grow")
    assert pids.read_text().strip() == "20"
    ob("update", "--pids-limit", "-1", "grow")
    assert pids.read_text().strip() == "max"

    ob("update", "--cpus", "0.5", "grow")
    try:
        quota = cgroup_file(cid, "cpu.cfs_quota_us").read_text().strip()
        assert quota == "50000"
    except AssertionError:
        assert cgroup_file(cid, "cpu.max").read_text().split() == ["50000", "100000"]


def test_update_errors_and_a_stopped_container(ob):
    r = ob("update", "nosuch", check=False)
    assert r.returncode == 1 and "you must provide one or more flags when using this command" in r.stderr
    r = ob("update", "-m", "1m", "nosuch", check=False)
    assert r.returncode == 1 and "No such container: nosuch" in r.stderr
    ob("create", "--name", "later", "busybox", "sleep", "1000")
    r = ob("update", "-m", "1m", "later", check=False)
    assert r.returncode == 1 and "Minimum memory limit allowed is 6MB" in r.stderr
    ob("update", "-m", "32m", "--memory-swap", "64m", "--restart", "unless-stopped", "later")
    host = inspect(ob, "later")["HostConfig"]
    assert host["Memory"] == 32 << 20 and host["RestartPolicy"] == {"Name": "unless-stopped", "MaximumRetryCount": 0}
    cid = inspect(ob, "later")["Id"]
    ob("start", "later")
    assert cgroup_file(cid, "memory.limit_in_bytes", "memory.max").read_text().strip() == str(32 << 20)
    r = ob("create", "--rm", "--name", "gone", "busybox", "true")
    r = ob("update", "--restart", "always", "gone", check=False)
    assert r.returncode == 1 and "Restart policy cannot be updated because AutoRemove is enabled" in r.stderr


# ---- events -------------------------------------------------------------------------------------------------------

def test_events_read_back_what_was_recorded(ob):
    from barque.container.events import container_event, record

    rec = {"Id": "c" * 64, "Name": "/web", "Config": {"Image": "busybox", "Labels": {"tier": "db"}}}
    container_event(ob.root, rec, "start")
    container_event(ob.root, rec, "die", exitCode="0")
    record(ob.root, "volume", "create", "data", {"driver": "local"})
    time.sleep(1.1)  # --until 0s is the current whole second
    # (the fixture's load of busybox is an image event of its own: left out)
    out = ob("events", "--since", "1m", "--until", "0s", "-f", "type=container", "-f", "type=volume"
             ).stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in out] == [
        f"container start {'c' * 64} (image=busybox, name=web, tier=db)",
        f"container die {'c' * 64} (exitCode=0, image=busybox, name=web, tier=db)",
        "volume create data (driver=local)",
    ]
    js = [json.loads(x) for x in ob("events", "--since", "1m", "--until", "0s", "--format", "json",
                                   "-f", "type=container", "-f", "event=die").stdout.splitlines()]
    assert [(e["status"], e["from"], e["Actor"]["Attributes"]["exitCode"]) for e in js] == [("die", "busybox", "0")]
    names = ob("events", "--since", "1m", "--until", "0s", "--filter", "container=we",
               "--format", "{{.Actor.Attributes.name}} {{.Action}}").stdout.splitlines()
    assert names == ["web start", "web die"]
    r = ob("events", "--until", "0s", "-f", "colour=red", check=False)
    assert r.returncode == 1 and "invalid filter 'colour'" in r.stderr
    r = ob("events", "--since", "1s", "--until", "5m", check=False)
    assert r.returncode == 1 and "cannot be after `until` time" in r.stderr


def test_events_follows_new_events(ob):
    from barque.container.events import record

    proc = subprocess.Popen(BARQUE + ob.args() + ["events", "--format", "json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        time.sleep(1.5)  # subscribed: only events from now on
        record(ob.root, "container", "start", "f" * 64, {"name": "live", "image": "busybox"})
        line = proc.stdout.readline()
        assert json.loads(line)["Actor"]["Attributes"]["name"] == "live"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_events_of_a_lifecycle(ob):
    """Docker's sequence of events for create, start, exit, rename, restart, pause, stop, rm."""
    ob("run", "--name", "evt", "busybox", "true")
    ob("rename", "evt", "evt2")
    ob("run", "-d", "--name", "evl", "busybox", "sleep", "60")
    ob("pause", "evl")
    ob("unpause", "evl")
    ob("stop", "-t", "1", "evl")
    ob("rm", "evt2", "evl")
    time.sleep(1.1)
    out = ob("events", "--since", "1m", "--until", "0s", "-f", "container=evt2", "--format",
             "{{.Action}}").stdout.split()
    # filters match the name at the time of each event: evt2 is the name from the rename on
    assert out == ["rename", "destroy"], out
    out = ob("events", "--since", "1m", "--until", "0s", "-f", "type=container", "--format",
             "{{.Actor.Attributes.name}} {{.Action}}").stdout.splitlines()
    evt = [line.split(" ", 1)[1] for line in out if line.startswith("evt ")]
    assert evt == ["create", "start", "die"], out
    evl = [line.split(" ", 1)[1] for line in out if line.startswith("evl ")]
    # sleep as PID 1 has no SIGTERM handler, so the kernel ignores it: stop's SIGKILL follows, as with Docker
    assert evl == ["create", "start", "pause", "unpause", "kill", "kill", "die", "stop", "destroy"], out
    kills = ob("events", "--since", "1m", "--until", "0s", "-f", "event=kill", "-f", "container=evl", "--format",
               "{{.Actor.Attributes.signal}}").stdout.split()
    assert kills == ["15", "9"]
    die = ob("events", "--since", "1m", "--until", "0s", "-f", "event=die", "-f", "container=evt", "--format",
             "{{json .}}").stdout.splitlines()
    assert json.loads(die[0])["Actor"]["Attributes"]["exitCode"] == "0"


# ---- system restore -----------------------------------------------------------------------------------------------

def _simulate_reboot(b, running: list[str]) -> None:
    """What a reboot does: the running containers' monitors and processes gone (SIGKILL), every rootfs unmounted,
    the whole run root gone (run dirs, runtime state) — while the state files on
    the persistent root still say running."""
    from barque.linux.mountinfo import mounted_under

    for name in running:
        state = json.loads((b.root / "containers" / inspect(b, name)["Id"] / "state.json").read_text())
        for pid in (state.get("_MonitorPid"), state.get("Pid")):
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

        def gone(pid=state.get("Pid")) -> bool:
            try:
                return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
            except (FileNotFoundError, ProcessLookupError):
                return True

        wait_for(gone)
        cid = inspect(b, name)["Id"]
        wait_for(lambda: _remove_cgroups(cid))
    for mp in sorted(mounted_under(b.run_root), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], check=True)
    subprocess.run(["rm", "-rf", "--one-file-system", str(b.run_root)], check=True)


def _remove_cgroups(cid: str) -> bool:
    """rmdir the container's (empty) cgroup in every hierarchy, as a reboot would have them gone."""
    left = False
    for d in [*CGROUP_ROOT.glob(f"*/barque/{cid}"), *CGROUP_ROOT.glob(f"barque/{cid}")]:
        try:
            d.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            left = True  # EBUSY until the killed processes are reaped
    return not left


def test_restore_after_a_reboot(ob):
    ob("run", "-d", "--name", "always1", "--restart", "always", "busybox", "sleep", "1000")
    ob("run", "-d", "--name", "unless1", "--restart", "unless-stopped", "busybox", "sleep", "1000")
    ob("run", "-d", "--name", "unless-stopped1", "--restart", "unless-stopped", "busybox", "sleep", "1000")
    ob("run", "-d", "--name", "always-stopped1", "--restart", "always", "busybox", "sleep", "1000")
    ob("run", "-d", "--name", "no1", "busybox", "sleep", "1000")
    ob("run", "-d", "--name", "fail1", "--restart", "on-failure:2", "busybox", "sleep", "1000")
    ob("run", "--name", "fail-done1", "--restart", "on-failure", "busybox", "true")
    ob("create", "--name", "never1", "--restart", "always", "busybox", "sleep", "1000")
    ob("stop", "-t", "0", "unless-stopped1", "always-stopped1")
    old_pid = inspect(ob, "always1")["State"]["Pid"]

    _simulate_reboot(ob, ["always1", "unless1", "no1", "fail1"])
    assert not list(CGROUP_ROOT.glob(f"*/barque/{inspect(ob, 'always1')['Id']}"))
    for name in ("always1", "unless1", "no1"):
        state = inspect(ob, name)["State"]
        assert state["Status"] == "exited" and state["ExitCode"] == 255

    r = ob("system", "restore")
    # always: even the one the user stopped (dockerd restarts those when it starts); unless-stopped: not that one
    assert sorted(r.stdout.split()) == ["always-stopped1", "always1", "fail1", "unless1"]
    for name in ("always1", "unless1", "always-stopped1", "fail1"):
        state = inspect(ob, name)["State"]
        assert state["Status"] == "running", name
    assert inspect(ob, "always1")["State"]["Pid"] != old_pid
    assert "sleep 1000" in ob("top", "always1").stdout
    for name, status in (("unless-stopped1", "exited"), ("no1", "exited"), ("never1", "created"),
                         ("fail-done1", "exited")):
        assert inspect(ob, name)["State"]["Status"] == status, name

    # again: everything that should run runs, so nothing happens
    assert ob("system", "restore").stdout == ""
    assert sorted(ob("ps", "--format", "{{.Names}}").stdout.split()) == ["always-stopped1", "always1", "fail1",
                                                                         "unless1"]


# ---- the reductions on their own (no kernel needed) ---------------------------------------------------------------

def test_dockerd_update_rules():
    from barque.container.stats import merge_update
    from barque.errors import Conflict, InvalidArgument

    host = {"Memory": 64 << 20, "MemorySwap": 0, "NanoCpus": 0, "CpuQuota": 50000, "RestartPolicy": {"Name": "no"}}
    new = merge_update(host, {"Memory": 128 << 20})
    assert new["Memory"] == 128 << 20 and new["MemorySwap"] == 128 << 20  # the implied 2x, kept as dockerd keeps it
    assert host["Memory"] == 64 << 20  # the original is untouched
    with pytest.raises(Conflict, match="Nano CPUs cannot be updated as CPU Quota has already been set"):
        merge_update(host, {"NanoCpus": 10**9})
    with pytest.raises(Conflict, match="update the memoryswap at the same time"):
        merge_update({"Memory": 0}, {"Memory": 64 << 20})
    assert merge_update({"Memory": 0}, {"Memory": 64 << 20, "MemorySwap": -1})["MemorySwap"] == -1
    with pytest.raises(InvalidArgument, match="Minimum memoryswap limit should be larger than memory limit"):
        merge_update(host, {"Memory": 64 << 20, "MemorySwap": 32 << 20})
    with pytest.raises(InvalidArgument, match="CPU cfs quota can not be less than 1ms"):
        merge_update(host, {"CpuQuota": 10})
    with pytest.raises(Conflict, match="AutoRemove is enabled"):
        merge_update({"AutoRemove": True}, {"RestartPolicy": {"Name": "always"}})
    assert merge_update(host, {"PidsLimit": 0})["PidsLimit"] == 0
    assert merge_update(host, {"CpuShares": 0, "CpusetCpus": ""}) == {**host, "MemorySwap": 128 << 20}


def test_ps_rows_are_the_containers_and_their_threads():
    from barque.container.stats import parse_ps

    out = ("USER  PID %CPU COMMAND\n"
           "root  1   0.0  init\n"
           "root  42  1.0  sleep 10  extra\n"
           "-     -   0.5  (thread of 42)\n"
           "root  43  0.0  other\n"
           "-     -   0.0  (thread of 43)\n")
    titles, rows = parse_ps(out, [42])
    assert titles == ["USER", "PID", "%CPU", "COMMAND"]
    assert rows == [["root", "42", "1.0", "sleep 10 extra"], ["-", "-", "0.5", "(thread of 42)"]]


def test_docker_reductions_and_layout():
    from barque.cli.observe import _tabwrite
    from barque.container.stats import Sample, cpu_percent, memory_without_cache
    from barque.oci.times import bytes_size

    assert memory_without_cache({"usage": 1000, "stats": {"total_inactive_file": 300}}) == 700   # v1
    assert memory_without_cache({"usage": 1000, "stats": {"inactive_file": 400}}) == 600         # v2
    assert memory_without_cache({"usage": 1000, "stats": {"inactive_file": 4000}}) == 1000
    a = Sample(cpu_total=1_000, system_total=10_000, online_cpus=4, running=True)
    b = Sample(cpu_total=2_000, system_total=20_000, online_cpus=4, running=True)
    assert cpu_percent(a, b) == pytest.approx(40.0)   # a tenth of the host's time on four CPUs
    assert cpu_percent(None, b) == 0.0
    assert [bytes_size(n) for n in (0, 516096, 64 << 20, 2048000, 25276514304)] == \
        ["0B", "504KiB", "64MiB", "1.953MiB", "23.54GiB"]
    assert _tabwrite([["A", "BB", "C"], ["xxxxxxxxxx", "y", "z"]], 10) == \
        "A            BB        C\nxxxxxxxxxx   y         z"
