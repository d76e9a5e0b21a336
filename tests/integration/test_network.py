"""Container networking on the real kernel, inside throwaway namespaces (tests/netlab.py): one plays the host
(barque runs there: barque0, veths, nftables), one the outside world (198.51.100.2), joined by a veth.

What a user sees: pages fetched through published ports from outside, from the host on 127.0.0.1 and from another
container; the outside seeing the host's address (masquerade); links' hosts entries and environment; names on user
networks; icc off; internal networks; nothing left after rm / network rm / a crash."""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.netlab import HOST_ADDR, OUTSIDE_ADDR, eventually, in_lab

pytestmark = pytest.mark.root


def _serve(b, name: str, *extra: str, port: int = 80) -> str:
    """A busybox httpd container serving its /etc (so /hostname is its short ID): its ID."""
    cid = b("run", "-d", "--name", name, *extra, "busybox", "httpd", "-f", "-p", str(port), "-h", "/etc").stdout.strip()
    return cid


def _fetch(lab_run, url: str, timeout: float = 3) -> subprocess.CompletedProcess:
    """GET `url` from one of the lab's namespaces (stdout: the body; non-zero exit when it fails)."""
    script = f"import sys, urllib.request; sys.stdout.write(urllib.request.urlopen({url!r}, timeout={timeout}).read().decode())"
    return lab_run("python3", "-c", script, check=False, timeout=timeout + 10)


def _eventually(fn, timeout: float = 5.0):
    return eventually(fn, timeout)


def _links(lab) -> set[str]:
    return lab.links() - {"lo", "up0"}


def test_published_port_from_outside_host_and_other_containers(lab_barque, netlab):
    b = lab_barque
    cid = _serve(b, "web", "-p", "8080:80")
    want = cid[:12] + "\n"
    got = _eventually(lambda: _fetch(netlab.in_outside, f"http://{HOST_ADDR}:8080/hostname").stdout.decode() == want)
    assert got, _fetch(netlab.in_outside, f"http://{HOST_ADDR}:8080/hostname")
    assert _fetch(netlab.in_host, "http://127.0.0.1:8080/hostname").stdout.decode() == want
    # another container, through the host's address (hairpin NAT) and through the gateway
    for addr in (HOST_ADDR, "172.17.0.1"):
        out = b("run", "--rm", "busybox", "timeout", "3", "wget", "-q", "-O-", f"http://{addr}:8080/hostname")
        assert out.stdout == want
    # the container itself, through its own published port
    assert b("exec", "web", "timeout", "3", "wget", "-q", "-O-", f"http://{HOST_ADDR}:8080/hostname").stdout == want
    assert b("port", "web").stdout.splitlines() == ["80/tcp -> 0.0.0.0:8080"]
    ns = json.loads(b("inspect", "web").stdout)[0]["NetworkSettings"]
    assert ns["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}
    assert ns["IPAddress"].startswith("172.17.") and ns["Gateway"] == "172.17.0.1"
    assert ns["Networks"]["bridge"]["IPAddress"] == ns["IPAddress"]


def test_publish_on_one_address_and_udp(lab_barque, netlab):
    b = lab_barque
    _serve(b, "local", "-p", "127.0.0.1:8081:80")
    assert _eventually(lambda: _fetch(netlab.in_host, "http://127.0.0.1:8081/hostname").returncode == 0)
    assert _fetch(netlab.in_outside, f"http://{HOST_ADDR}:8081/hostname", timeout=2).returncode != 0
    # udp
    b("run", "-d", "--name", "echo", "-p", "5353:53/udp", "busybox", "sleep", "600")
    assert b("port", "echo", "53/udp").stdout.strip() == "0.0.0.0:5353"
    assert "udp dport 5353 dnat to 172.17.0.3:53" in netlab.ruleset()


def test_masquerade_outside_sees_the_hosts_address(lab_barque, netlab):
    b = lab_barque
    script = ("import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
              f"s.bind(('{OUTSIDE_ADDR}', 9000)); s.listen(1); s.settimeout(20); c, a = s.accept(); "
              "c.sendall(a[0].encode()); c.close()")
    server = subprocess.Popen(["nsenter", f"--net={netlab.outside_path}", "--", "python3", "-c", script],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        out = b("run", "--rm", "busybox", "nc", "-w", "5", OUTSIDE_ADDR, "9000")
        assert out.stdout.strip() == HOST_ADDR
    finally:
        server.kill()
        server.wait()


def test_links_hosts_and_environment(lab_barque):
    b = lab_barque
    b("run", "-d", "--name", "db", "--expose", "5432", "-e", "SECRET_LEVEL=3", "busybox", "sleep", "600")
    db_ip = json.loads(b("inspect", "db").stdout)[0]["NetworkSettings"]["IPAddress"]
    out = b("run", "--rm", "--name", "app", "--link", "db:dbalias", "busybox", "sh", "-c",
            "cat /etc/hosts; env | sort").stdout
    assert f"{db_ip}\tdbalias" in out
    for line in (f"DBALIAS_PORT=tcp://{db_ip}:5432", f"DBALIAS_PORT_5432_TCP=tcp://{db_ip}:5432",
                 f"DBALIAS_PORT_5432_TCP_ADDR={db_ip}", "DBALIAS_PORT_5432_TCP_PORT=5432",
                 "DBALIAS_PORT_5432_TCP_PROTO=tcp", "DBALIAS_NAME=/app/dbalias", "DBALIAS_ENV_SECRET_LEVEL=3"):
        assert line in out.splitlines(), out
    assert b("run", "--rm", "--link", "nosuch", "busybox", "true", check=False).returncode == 125
    b("stop", "-t", "0", "db")
    out = b("run", "--rm", "--name", "late", "--link", "db:dbalias", "busybox", "true", check=False)
    assert out.returncode == 125 and "Cannot link to a non running container: /db AS /late/dbalias" in out.stderr


def test_user_network_names_and_aliases_resolve(lab_barque):
    b = lab_barque
    b("network", "create", "appnet")
    _serve(b, "srv", "--network", "appnet", "--network-alias", "website")
    for name in ("srv", "website", "srv.appnet"):
        out = _eventually(lambda: b("run", "--rm", "--network", "appnet", "busybox", "timeout", "3", "wget", "-q", "-O-",
                                    f"http://{name}/hostname", check=False))
        assert out.returncode == 0, (name, out.stderr)
    resolv = b("run", "--rm", "--network", "appnet", "busybox", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 127.0.0.11" in resolv
    # the default bridge has no embedded DNS, as in Docker
    assert "127.0.0.11" not in b("run", "--rm", "busybox", "cat", "/etc/resolv.conf").stdout
    # another network does not see srv
    b("network", "create", "othernet")
    out = b("run", "--rm", "--network", "othernet", "busybox", "nslookup", "srv", "127.0.0.11", check=False)
    assert out.returncode != 0


def test_icc_off_blocks_containers_but_links_open_their_ports(tmp_path, roots, busybox_tar, netlab):
    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps({"icc": False}))
    b = in_lab(roots("icc", env={"BARQUE_CONFIG": str(conf)}), netlab)
    b("load", "-i", busybox_tar)
    try:
        _serve(b, "srv", "--expose", "80")
        ip = json.loads(b("inspect", "srv").stdout)[0]["NetworkSettings"]["IPAddress"]
        # nc's own connect timeout (`timeout` cannot stop a PID 1: it ignores signals it has no handler for)
        assert _eventually(lambda: _fetch(netlab.in_host, f"http://{ip}/hostname").returncode == 0)  # it serves
        blocked = b("run", "--rm", "busybox", "nc", "-w", "2", ip, "80", check=False)
        assert blocked.returncode != 0
        linked = b("run", "--rm", "--link", "srv", "busybox", "timeout", "3", "wget", "-q", "-O-", "http://srv/hostname")
        assert linked.returncode == 0
        # the same option on a user-defined network
        b("network", "create", "-o", "com.docker.network.bridge.enable_icc=false", "quiet")
        _serve(b, "srv2", "--network", "quiet")
        ip2 = json.loads(b("inspect", "srv2").stdout)[0]["NetworkSettings"]["Networks"]["quiet"]["IPAddress"]
        assert _eventually(lambda: _fetch(netlab.in_host, f"http://{ip2}/hostname").returncode == 0)  # it serves
        assert b("run", "--rm", "--network", "quiet", "busybox", "nc", "-w", "2", ip2, "80",
                 check=False).returncode != 0
    finally:
        b.remove_containers()


def test_internal_network_has_no_way_out(lab_barque, netlab):
    b = lab_barque
    b("network", "create", "--internal", "sealed")
    _serve(b, "inner", "--network", "sealed")
    out = b("run", "--rm", "--network", "sealed", "busybox", "timeout", "3", "wget", "-q", "-O-", "http://inner/hostname",
            check=False)
    assert out.returncode == 0, out.stderr
    assert b("run", "--rm", "--network", "sealed", "busybox", "ping", "-c", "1", "-W", "2", OUTSIDE_ADDR,
             check=False).returncode != 0
    assert b("run", "--rm", "busybox", "ping", "-c", "1", "-W", "3", OUTSIDE_ADDR).returncode == 0


def test_rm_and_network_rm_leave_nothing(lab_barque, netlab):
    b = lab_barque
    b("network", "create", "tmpnet")
    bridge = "br-" + json.loads(b("network", "inspect", "tmpnet").stdout)[0]["Id"][:12]
    _serve(b, "aa", "-p", "8090:80")
    b("network", "connect", "tmpnet", "aa")
    assert len([x for x in _links(netlab) if x.startswith("veth")]) == 2
    assert "8090" in netlab.ruleset()
    b("rm", "-f", "aa")
    assert not [x for x in _links(netlab) if x.startswith("veth")]
    assert "8090" not in netlab.ruleset()
    engine = b.engine()
    assert engine.db.query("SELECT count(*) FROM endpoints")[0][0] == 0
    b("network", "rm", "tmpnet")
    assert bridge not in _links(netlab)
    assert bridge not in netlab.ruleset()


def test_addresses_are_unique_under_concurrent_runs_and_released_on_rm(lab_barque):
    b = lab_barque
    names = [f"c{i}" for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: b("run", "-d", "--name", n, "busybox", "sleep", "600"), names))
    ips = [json.loads(b("inspect", n).stdout)[0]["NetworkSettings"]["IPAddress"] for n in names]
    assert len(set(ips)) == 8, ips
    lowest = min(ips, key=lambda ip: tuple(int(x) for x in ip.split(".")))
    holder = names[ips.index(lowest)]
    b("rm", "-f", holder)
    b("run", "-d", "--name", "late", "busybox", "sleep", "600")
    assert json.loads(b("inspect", "late").stdout)[0]["NetworkSettings"]["IPAddress"] == lowest


def test_host_port_in_use_fails_cleanly(lab_barque, netlab):
    b = lab_barque
    holder = subprocess.Popen(["nsenter", f"--net={netlab.host_path}", "--", "python3", "-c",
                               "import socket,time; s=socket.socket(); s.bind(('0.0.0.0', 8095)); s.listen(); "
                               "time.sleep(60)"])
    try:
        time.sleep(0.5)
        out = b("run", "-d", "--name", "clash", "-p", "8095:80", "busybox", "sleep", "60", check=False)
        assert out.returncode == 125
        assert "8095" in out.stderr and "address already in use" in out.stderr
        assert not [x for x in _links(netlab) if x.startswith("veth")]
        assert "8095" not in netlab.ruleset()
        assert json.loads(b("inspect", "clash").stdout)[0]["State"]["Status"] == "created"
    finally:
        holder.kill()
        holder.wait()
    b("run", "-d", "--name", "first", "-p", "8096:80", "busybox", "sleep", "60")
    out = b("run", "-d", "--name", "second", "-p", "8096:80", "busybox", "sleep", "60", check=False)
    assert out.returncode == 125 and "port is already allocated" in out.stderr


def test_crash_is_repaired(lab_barque, netlab):
    import os
    import signal

    b = lab_barque
    b("run", "-d", "--name", "victim", "-p", "8097:80", "busybox", "sleep", "600")
    state = json.loads((b.root / "containers" / json.loads(b("inspect", "victim").stdout)[0]["Id"] /
                        "state.json").read_text())
    for pid in (state["_MonitorPid"], state["Pid"]):
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    found = b("system", "check", check=False)
    assert found.returncode == 1 and "victim" not in found.stdout and "not running" in found.stdout
    b("system", "check", "--repair")
    assert not [x for x in _links(netlab) if x.startswith("veth")]
    assert "8097" not in netlab.ruleset()
    assert b("system", "check").stdout.strip() == "nothing to repair"


def test_host_none_and_container_modes(lab_barque, netlab):
    b = lab_barque
    assert b("run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net").stdout.split() == ["lo"]
    host_links = b("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link").stdout
    assert "up0" in host_links
    b("run", "-d", "--name", "base", "busybox", "sleep", "600")
    ip = json.loads(b("inspect", "base").stdout)[0]["NetworkSettings"]["IPAddress"]
    shared = b("run", "--rm", "--network", "container:base", "busybox", "ip", "-o", "-4", "addr").stdout
    assert ip in shared


def test_ps_filters_by_network_published_and_exposed_ports(lab_barque):
    b = lab_barque
    b("network", "create", "filtnet")
    b("run", "-d", "--name", "pub", "-p", "8085:80", "--expose", "443", "busybox", "sleep", "600")
    b("run", "-d", "--name", "onnet", "--network", "filtnet", "busybox", "sleep", "600")

    def names(*filters: str) -> list[str]:
        args = [x for f in filters for x in ("--filter", f)]
        return sorted(b("ps", *args, "--format", "{{.Names}}").stdout.split())

    assert names("network=filtnet") == ["onnet"]
    assert names("network=bridge") == ["pub"]
    assert names("publish=8085") == ["pub"] and names("publish=8085/tcp") == ["pub"]
    assert names("publish=8080-8090/tcp") == ["pub"] and names("publish=8085/udp") == []
    assert names("expose=443") == ["pub"] and names("expose=80") == ["pub"] and names("expose=22") == []
    assert b("ps", "--filter", "publish=abc", check=False).returncode != 0
