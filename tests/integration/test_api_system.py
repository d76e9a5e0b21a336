"""`barque serve`'s system endpoints through the real docker CLI and docker-py: info (Docker's SystemInfo shape),
events (past ones between since and until, filtered; a live stream that sees a container's life; a client that goes
away ends its reader), system df, and swarm's "not a swarm manager" for the swarm, service and node commands."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from tests.api_support import call
from tests.api_support import api, docker, docker_client  # noqa: F401 - fixtures
from tests.conftest import unique
from tests.netlab import eventually

pytestmark = pytest.mark.root

NOT_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this '
               "node to swarm and try again.")


# ---- info -------------------------------------------------------------------------------------------------------

def test_info_through_the_cli_and_docker_py(api, docker, docker_client):
    name = unique("idle")
    docker("create", "--name", name, "busybox", "true")
    out = docker("info").stdout
    for line in (" Containers: 1", "  Stopped: 1", " Images: 1", " Server Version: 24.0.7", " Swarm: inactive",
                 " Default Runtime: runc", " OSType: linux", f" Docker Root Dir: {api.barque.root}"):
        assert line in out.splitlines(), (line, out)
    assert docker("info", "--format", "{{.Swarm.LocalNodeState}} {{.Driver}}").stdout.split() == \
        ["inactive", api.barque.engine().driver_name]

    info = docker_client.info()
    for key in ("ID", "Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped", "Images", "Driver",
                "DriverStatus", "DockerRootDir", "Plugins", "MemoryLimit", "SwapLimit", "CpuCfsPeriod", "CpuCfsQuota",
                "CPUShares", "CPUSet", "PidsLimit", "IPv4Forwarding", "Debug", "NFd", "NGoroutines", "SystemTime",
                "LoggingDriver", "CgroupDriver", "CgroupVersion", "KernelVersion", "OperatingSystem", "OSType",
                "Architecture", "NCPU", "MemTotal", "IndexServerAddress", "RegistryConfig", "Name", "Labels",
                "ServerVersion", "Runtimes", "DefaultRuntime", "Swarm", "LiveRestoreEnabled", "SecurityOptions",
                "Warnings"):
        assert key in info, key
    assert (info["Containers"], info["ContainersStopped"], info["Images"]) == (1, 1, 1)
    assert info["ServerVersion"] == "24.0.7" and info["OSType"] == "linux"
    assert info["Swarm"]["LocalNodeState"] == "inactive" and info["Swarm"]["ControlAvailable"] is False
    assert info["NCPU"] >= 1 and info["MemTotal"] > 0 and info["CgroupVersion"] in ("1", "2")
    assert info["DefaultRuntime"] in info["Runtimes"]
    assert "local" in info["Plugins"]["Volume"] and "bridge" in info["Plugins"]["Network"]
    assert "127.0.0.0/8" in info["RegistryConfig"]["InsecureRegistryCIDRs"]
    assert info["RegistryConfig"]["IndexConfigs"]["docker.io"]["Official"] is True
    assert info["ID"] == docker_client.info()["ID"] != ""  # stable
    assert any(o.startswith("name=seccomp") for o in info["SecurityOptions"])
    docker("rm", name)


# ---- events -----------------------------------------------------------------------------------------------------

def test_past_events_between_since_and_until_with_filters(api, docker):
    since = time.time() - 1
    name = unique("ev")
    cid = docker("run", "--name", name, "busybox", "true").stdout.strip() or docker.json("inspect", name)[0]["Id"]
    docker("rm", name)
    net = unique("evnet")
    docker("network", "create", net)
    docker("network", "rm", net)
    vol = unique("evvol")
    docker("volume", "create", vol)
    docker("volume", "rm", vol)
    until = time.time() + 0.5
    time.sleep(0.6)  # until is past: the CLI gets the events and returns

    out = docker("events", "--since", f"{since:.9f}", "--until", f"{until:.9f}", timeout=30).stdout
    lines = [line for line in out.splitlines() if f"name={name}" in line]
    assert [line.split()[2] for line in lines] == ["create", "start", "die", "destroy"], out
    assert all(line.split()[1] == "container" and line.split()[3] == cid for line in lines)

    got = [json.loads(x) for x in docker("events", "--since", f"{since:.9f}", "--until", f"{until:.9f}",
                                         "--filter", f"container={name}", "--filter", "event=die",
                                         "--format", "{{json .}}").stdout.splitlines()]
    assert [(e["Type"], e["Action"], e["Actor"]["ID"]) for e in got] == [("container", "die", cid)]
    assert got[0]["Actor"]["Attributes"]["exitCode"] == "0" and got[0]["status"] == "die" and got[0]["timeNano"]

    nets = docker("events", "--since", f"{since:.9f}", "--until", f"{until:.9f}", "--filter", "type=network",
                  "--filter", f"network={net}", "--format", "{{.Action}}").stdout.split()
    assert nets == ["create", "destroy"]
    vols = docker("events", "--since", f"{since:.9f}", "--until", f"{until:.9f}", "--filter", "type=volume",
                  "--format", "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.driver}}").stdout.splitlines()
    assert vols == [f"create {vol} local", f"destroy {vol} local"]

    r = docker("events", "--since", f"{until:.0f}", "--until", f"{since:.0f}", check=False)
    assert r.returncode == 1 and "cannot be after `until` time" in r.stderr
    status, body = call(api, "GET", "/events?since=yesterday")
    assert status == 400 and "yesterday" in body["message"]
    status, body = call(api, "GET", "/events?until=1&filters=notjson")
    assert status == 400 and "invalid filter" in body["message"]
    status, body = call(api, "GET", '/events?until=1&filters={"bogus":["x"]}')
    assert (status, body["message"]) == (400, "invalid filter 'bogus'")


def test_a_live_event_stream_sees_a_container_live_and_die(docker_client):
    seen: list[dict] = []
    name = unique("live")
    ready = threading.Event()

    def watch():
        stream = docker_client.events(decode=True, filters={"container": name})
        ready.set()
        try:
            for ev in stream:
                seen.append(ev)
                if ev.get("Action") == "destroy":
                    break
        finally:
            stream.close()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert ready.wait(30)
    time.sleep(0.3)  # the server has the request: what happens from now on is streamed
    c = docker_client.containers.run("busybox", ["sh", "-c", "exit 3"], name=name, detach=True)
    assert c.wait(timeout=60)["StatusCode"] == 3
    c.remove()
    watcher.join(30)
    assert not watcher.is_alive()
    assert [e["Action"] for e in seen] == ["create", "start", "die", "destroy"]
    assert all(e["Actor"]["ID"] == c.id and e["Actor"]["Attributes"]["name"] == name for e in seen)
    assert seen[2]["Actor"]["Attributes"]["exitCode"] == "3"


def _readers(api) -> int:
    """The server's threads (Docker's NGoroutines): an event stream's reader is one."""
    return call(api, "GET", "/info")[1]["NGoroutines"]


def test_clients_that_leave_an_event_stream_end_their_readers(api, docker):
    base = _readers(api)
    socks = []
    for _ in range(12):  # more than the server's thread pool: followers must not hold its workers
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(api.sock))
        s.sendall(b"GET /v1.43/events HTTP/1.1\r\nHost: docker\r\n\r\n")
        socks.append(s)
    for s in socks:
        s.settimeout(10)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")  # the headers come at once, before any event
    assert docker("ps", "-a").returncode == 0  # the server still serves meanwhile
    assert _readers(api) >= base + 12
    for s in socks:
        s.close()
    # every reader ends (the server's thread pool may have started a worker or two meanwhile: it keeps those)
    assert eventually(lambda: _readers(api) <= base + 2, timeout=10), (base, _readers(api))
    assert api.errors() == ""


# ---- system df --------------------------------------------------------------------------------------------------

def test_system_df_through_the_cli_and_docker_py(api, docker, docker_client):
    vol = unique("dfvol")
    name = unique("dfc")
    docker("run", "--name", name, "-v", f"{vol}:/v", "busybox", "sh", "-c", "head -c 3000 /dev/zero > /v/f")
    rows = {line.split()[0]: line.split() for line in docker("system", "df").stdout.splitlines()[1:]}
    assert rows["Images"][1:3] == ["1", "1"]
    assert rows["Containers"][1:3] == ["1", "0"]
    assert rows["Local"][2:5] == ["1", "1", "3kB"]  # "Local Volumes": total, active, size
    assert rows["Build"][2:4] == ["0", "0"]
    verbose = docker("system", "df", "-v").stdout
    assert "busybox      latest" in verbose and name in verbose and vol in verbose

    df = docker_client.df()
    assert set(df) >= {"LayersSize", "Images", "Containers", "Volumes", "BuildCache"}
    (image,) = df["Images"]
    assert image["RepoTags"] == ["busybox:latest"] and image["Containers"] == 1
    assert image["Size"] > 0 and df["LayersSize"] == image["Size"] and image["SharedSize"] == 0
    (container,) = df["Containers"]
    assert container["Names"] == [f"/{name}"] and "SizeRw" in container
    (volume,) = df["Volumes"]
    assert volume["Name"] == vol and volume["UsageData"] == {"RefCount": 1, "Size": 3000}
    assert df["BuildCache"] == []

    status, body = call(api, "GET", "/system/df?type=volume")
    assert status == 200 and body["Images"] is None and [v["Name"] for v in body["Volumes"]] == [vol]
    status, body = call(api, "GET", "/system/df?type=nonsense")
    assert (status, body["message"]) == (400, "unknown object type: nonsense")
    docker("rm", name)
    docker("volume", "rm", vol)


# ---- swarm ------------------------------------------------------------------------------------------------------

def test_swarm_commands_get_dockers_answer(api, docker):
    for args in (("swarm", "init"), ("swarm", "join-token", "worker"), ("service", "ls"), ("node", "ls"),
                 ("secret", "ls"), ("config", "ls"), ("service", "create", "busybox")):
        r = docker(*args, check=False)
        assert r.returncode == 1 and f"Error response from daemon: {NOT_MANAGER}" in r.stderr, (args, r)
    r = docker("swarm", "leave", check=False)
    assert (r.returncode, r.stderr.strip()) == (1, "Error response from daemon: This node is not part of a swarm")
    for method, path in (("GET", "/swarm"), ("GET", "/v1.43/services"), ("GET", "/nodes/x"), ("GET", "/tasks"),
                         ("POST", "/services/create"), ("DELETE", "/secrets/x"), ("GET", "/configs")):
        assert call(api, method, path) == (503, {"message": NOT_MANAGER}), path
    assert call(api, "GET", "/plugins") == (200, [])
    assert call(api, "GET", "/plugins/some/plugin:1/json") == (404, {"message": 'plugin "some/plugin:1" not found'})
    assert docker("plugin", "ls", "-q").stdout == ""
