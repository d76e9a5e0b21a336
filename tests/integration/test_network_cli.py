"""The network command line as a user sees it, on the real kernel inside throwaway namespaces (tests/netlab.py):
`network create/ls/inspect/rm/prune/connect/disconnect`, `run -p/-P/--expose/--add-host`, `port` and ps's PORTS —
their output, messages and exit statuses (Docker's), and that what they remove leaves no interface or rule behind."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.netlab import HOST_ADDR, eventually

pytestmark = pytest.mark.root

PAGE = "hello from barque"
#: a busybox httpd serving one page at /index.html on port 80 (and /etc, for /hostname, on 81)
HTTPD = ["sh", "-c", f"mkdir -p /www && echo '{PAGE}' > /www/index.html && httpd -p 81 -h /etc && "
         "exec httpd -f -p 80 -h /www"]


def _eventually(fn, timeout: float = 8.0):
    return eventually(fn, timeout)


#: a client with a timeout (the host's busybox wget crashes when given -T)
FETCH = ("import sys, urllib.request\n"
         "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())")


def _fetch(run_in, url: str) -> subprocess.CompletedProcess:
    return run_in("python3", "-c", FETCH, url, check=False, timeout=15)


def _page(run_in, url: str) -> str:
    """The body at `url`, waiting for the server to come up (empty if it never answers)."""
    got = _eventually(lambda: _fetch(run_in, url).stdout.decode())
    return got or ""


def _veths(lab) -> list[str]:
    return sorted(x for x in lab.links() if x.startswith("veth"))


def _network_id(b, name: str) -> str:
    return json.loads(b("network", "inspect", name).stdout)[0]["Id"]


# ---- network create / ls / inspect / rm -----------------------------------------------------------------------------

def test_network_create_ls_inspect_rm(lab_barque, netlab):
    b = lab_barque
    out = b("network", "create", "--subnet", "10.77.0.0/16", "--gateway", "10.77.0.254", "--ip-range",
            "10.77.5.0/24", "--label", "team=blue", "--label", "empty", "-o",
            "com.docker.network.bridge.enable_icc=false", "blue")
    nid = out.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", nid), out.stdout
    bridge = f"br-{nid[:12]}"
    assert bridge in netlab.links()
    assert "10.77.0.0/16" in netlab.ruleset() and bridge in netlab.ruleset()

    table = b("network", "ls").stdout.splitlines()
    assert re.split(r"\s{2,}", table[0]) == ["NETWORK ID", "NAME", "DRIVER", "SCOPE"]
    rows = {re.split(r"\s+", line)[1]: re.split(r"\s+", line) for line in table[1:]}
    assert list(rows) == ["blue", "bridge", "host", "none"]  # by name, as Docker's CLI sorts them
    assert rows["blue"] == [nid[:12], "blue", "bridge", "local"]
    assert rows["none"][2] == "null" and rows["host"][2] == "host"

    assert b("network", "ls", "-q", "--filter", "type=custom").stdout.split() == [nid[:12]]
    assert b("network", "ls", "-q", "--no-trunc", "--filter", "label=team=blue").stdout.split() == [nid]
    assert b("network", "ls", "-q", "--filter", "label=team=red").stdout == ""
    assert b("network", "ls", "--filter", "driver=null", "--format", "{{.Name}} {{.Driver}}").stdout == "none null\n"
    assert b("network", "ls", "--filter", "name=^blu", "--format", "{{.Name}}\t{{.Labels}}\t{{.Internal}}"
             ).stdout == "blue\tempty=,team=blue\tfalse\n"
    bad = b("network", "ls", "--filter", "colour=blue", check=False)
    assert bad.returncode == 1 and bad.stderr == "Error: invalid filter 'colour'\n"

    view = json.loads(b("network", "inspect", "blue").stdout)
    assert len(view) == 1
    assert view[0]["Name"] == "blue" and view[0]["Id"] == nid and view[0]["Driver"] == "bridge"
    assert view[0]["IPAM"]["Config"] == [{"Subnet": "10.77.0.0/16", "Gateway": "10.77.0.254",
                                          "IPRange": "10.77.5.0/24"}]
    assert view[0]["Labels"] == {"team": "blue", "empty": ""}
    assert view[0]["Options"] == {"com.docker.network.bridge.enable_icc": "false"}
    assert b("network", "inspect", "-f", "{{.Name}} {{.Scope}} {{.Internal}}", "blue").stdout == "blue local false\n"
    partly = b("network", "inspect", "blue", "nope", check=False)
    assert partly.returncode == 1
    assert [n["Name"] for n in json.loads(partly.stdout)] == ["blue"]
    assert partly.stderr == "Error: No such network: nope\n"
    none = b("network", "inspect", "nope", check=False)
    assert (none.returncode, none.stdout, none.stderr) == (1, "[]\n", "Error: No such network: nope\n")

    # rm names each network it removes, reports each failure, goes on, and exits 1
    out = b("network", "rm", "nope", "blue", "bridge", check=False)
    assert out.returncode == 1
    assert out.stdout == "blue\n"
    assert out.stderr == ("Error: No such network: nope\n"
                          "Error: bridge is a pre-defined network and cannot be removed\n")
    assert bridge not in netlab.links()
    assert bridge not in netlab.ruleset() and "10.77.0.0/16" not in netlab.ruleset()
    assert b("network", "ls", "--format", "{{.Name}}").stdout.split() == ["bridge", "host", "none"]


def test_network_create_refusals(lab_barque, netlab):
    b = lab_barque
    b("network", "create", "--subnet", "10.60.0.0/16", "first")
    before = netlab.links()

    def refused(*args: str, status: int = 1) -> str:
        out = b("network", "create", *args, check=False)
        assert out.returncode == status, (args, out.stdout, out.stderr)
        assert out.stdout == ""
        return out.stderr

    assert refused("--subnet", "10.60.128.0/24", "second") == \
        "Error: Pool overlaps with other one on this address space\n"
    assert refused("--subnet", "10.61.0.0/16", "first") == "Error: network with name first already exists\n"
    assert refused("--gateway", "10.62.0.1", "third") == \
        "Error: every ip-range or gateway must have a corresponding subnet\n"
    assert refused("--subnet", "10.62.0.0/16", "--gateway", "10.63.0.1", "third") == \
        "Error: no matching subnet for gateway 10.63.0.1\n"
    assert refused("--subnet", "10.62.0.0/16", "--ip-range", "10.63.0.0/24", "third") == \
        "Error: no matching subnet for range 10.63.0.0/24\n"
    assert refused("-d", "overlay", "third") == "Error: plugin \"overlay\" not found\n"
    assert refused("bridge") == "Error: operation is not permitted on predefined bridge network \n"
    assert "invalid label '=x': empty name" in refused("--label", "=x", "third", status=125)
    assert b("network", "ls", "--format", "{{.Name}}").stdout.split() == ["bridge", "first", "host", "none"]
    assert netlab.links() == before


def test_network_names_with_spaces_and_auxiliary_addresses(lab_barque, netlab):
    """Docker's network names are any text: barque's CLI takes "my net" too (its bridge is named from the ID), and
    --aux-address keeps addresses from containers, as Docker's CLI does."""
    b = lab_barque
    nid = b("network", "create", "--subnet", "10.64.0.0/29", "--aux-address", "router=10.64.0.2",
            "my net").stdout.strip()
    assert f"br-{nid[:12]}" in netlab.links()
    view = json.loads(b("network", "inspect", "my net").stdout)[0]
    assert view["IPAM"]["Config"] == [{"Subnet": "10.64.0.0/29", "Gateway": "10.64.0.1",
                                       "AuxiliaryAddresses": {"router": "10.64.0.2"}}]
    cid = b("run", "-d", "--network", "my net", "busybox", "sleep", "300").stdout.strip()
    nets = json.loads(b("inspect", cid).stdout)[0]["NetworkSettings"]["Networks"]
    assert list(nets) == ["my net"] and nets["my net"]["IPAddress"] == "10.64.0.3"
    out = b("network", "create", "--subnet", "10.65.0.0/24", "--aux-address", "x=10.66.0.1", "other", check=False)
    assert (out.returncode, out.stderr) == (1, "Error: no matching subnet for aux-address 10.66.0.1\n")
    # connect's --link-local-ip and --driver-opt, kept and shown (the address is on the new interface)
    b("network", "create", "second")
    b("network", "connect", "--link-local-ip", "169.254.7.7", "--driver-opt", "k=v", "second", cid)
    ep = json.loads(b("inspect", cid).stdout)[0]["NetworkSettings"]["Networks"]["second"]
    assert (ep["IPAMConfig"], ep["DriverOpts"]) == ({"LinkLocalIPs": ["169.254.7.7"]}, {"k": "v"})
    assert "169.254.7.7/16" in b("exec", cid, "ip", "-4", "addr", "show", "eth1").stdout
    out = b("network", "connect", "--driver-opt", "k", "bridge", cid, check=False)
    assert (out.returncode, out.stderr) == (1, "Error: invalid key value pair format in driver options\n")
    b("rm", "-f", cid)
    assert b("network", "rm", "my net").stdout == "my net\n"
    assert f"br-{nid[:12]}" not in netlab.links()


def test_network_without_subnet_takes_the_next_free_pool(lab_barque):
    b = lab_barque
    b("network", "create", "auto1")
    b("network", "create", "auto2")
    subnets = [json.loads(b("network", "inspect", n).stdout)[0]["IPAM"]["Config"][0]["Subnet"]
               for n in ("auto1", "auto2")]
    assert subnets == ["172.18.0.0/16", "172.19.0.0/16"]  # 172.17 is the default bridge's, as under Docker


def test_network_prune(lab_barque, netlab):
    b = lab_barque
    b("network", "create", "--subnet", "10.70.1.0/24", "--label", "keep=yes", "kept")
    b("network", "create", "--subnet", "10.70.2.0/24", "spare")
    b("network", "create", "--subnet", "10.70.3.0/24", "used")
    b("run", "-d", "--name", "user", "--network", "used", "busybox", "sleep", "600")

    asked = b("network", "prune", input="n\n")
    assert asked.stdout == ("WARNING! This will remove all custom networks not used by at least one container.\n"
                            "Are you sure you want to continue? [y/N] ")
    assert b("network", "ls", "-q", "--filter", "type=custom").stdout.count("\n") == 3

    out = b("network", "prune", "-f", "--filter", "label!=keep=yes")
    assert out.stdout == "Deleted Networks:\nspare\n\n"
    assert len([x for x in netlab.links() if x.startswith("br-")]) == 2  # kept's and used's
    out = b("network", "prune", input="y\n")
    assert out.stdout.endswith("[y/N] Deleted Networks:\nkept\n\n")
    assert b("network", "prune", "-f").stdout == ""  # nothing left to remove: nothing printed
    assert b("network", "ls", "--format", "{{.Name}}", "--filter", "type=custom").stdout == "used\n"
    bad = b("network", "prune", "-f", "--filter", "driver=bridge", check=False)
    assert bad.returncode == 1 and bad.stderr == "Error: invalid filter 'driver'\n"
    b("rm", "-f", "user")
    assert b("network", "prune", "-f").stdout == "Deleted Networks:\nused\n\n"
    assert not [x for x in netlab.links() if x.startswith("br-")]
    assert "10.70." not in netlab.ruleset()


def test_network_in_use_is_not_removed(lab_barque, netlab):
    b = lab_barque
    b("network", "create", "--subnet", "10.71.0.0/24", "busy")
    nid = _network_id(b, "busy")
    b("run", "-d", "--name", "holder", "--network", "busy", "busybox", "sleep", "600")
    links_before, rules_before = netlab.links(), netlab.ruleset()
    out = b("network", "rm", "busy", check=False)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr == f"Error: error while removing network: network busy id {nid} has active endpoints\n"
    assert netlab.links() == links_before and netlab.ruleset() == rules_before
    assert b("network", "ls", "-q", "--filter", "name=busy").stdout.strip() == nid[:12]
    assert b("exec", "holder", "ip", "-o", "-4", "addr", "show", "eth0").stdout.count("10.71.0.") == 1
    b("rm", "-f", "holder")
    assert b("network", "rm", "busy").stdout == "busy\n"
    assert f"br-{nid[:12]}" not in netlab.links()
    assert f"br-{nid[:12]}" not in netlab.ruleset() and "10.71.0.0/24" not in netlab.ruleset()
    assert not _veths(netlab)


# ---- connect / disconnect -------------------------------------------------------------------------------------------

def test_connect_and_disconnect(lab_barque, netlab):
    b = lab_barque
    b("network", "create", "--subnet", "10.72.0.0/24", "side")
    b("run", "-d", "--name", "c1", "busybox", "sleep", "600")
    assert b("network", "connect", "--alias", "other", "--ip", "10.72.0.50", "side", "c1").stdout == ""
    addrs = b("exec", "c1", "ip", "-o", "-4", "addr").stdout
    assert "10.72.0.50/24" in addrs and "172.17.0." in addrs
    settings = json.loads(b("inspect", "c1").stdout)[0]["NetworkSettings"]["Networks"]
    assert settings["side"]["IPAddress"] == "10.72.0.50" and "other" in settings["side"]["Aliases"]
    containers = json.loads(b("network", "inspect", "side").stdout)[0]["Containers"]
    assert [v["Name"] for v in containers.values()] == ["c1"]
    assert [v["IPv4Address"] for v in containers.values()] == ["10.72.0.50/24"]

    again = b("network", "connect", "side", "c1", check=False)
    assert again.returncode == 1 and "already exists in network side" in again.stderr
    assert b("network", "disconnect", "side", "c1").stdout == ""
    assert "10.72.0." not in b("exec", "c1", "ip", "-o", "-4", "addr").stdout
    assert json.loads(b("network", "inspect", "side").stdout)[0]["Containers"] == {}
    out = b("network", "disconnect", "side", "c1", check=False)
    assert (out.returncode, out.stderr) == (1, "Error: container c1 is not connected to network side\n")


def test_connect_errors_change_nothing(lab_barque, netlab):
    b = lab_barque
    b("network", "create", "--subnet", "10.73.0.0/24", "known")
    b("run", "-d", "--name", "c2", "busybox", "sleep", "600")
    veths, rules = _veths(netlab), netlab.ruleset()

    out = b("network", "connect", "nosuchnet", "c2", check=False)
    assert (out.returncode, out.stdout, out.stderr) == (1, "", "Error: network nosuchnet not found\n")
    out = b("network", "connect", "known", "nosuchcontainer", check=False)
    assert (out.returncode, out.stderr) == (1, "Error: No such container: nosuchcontainer\n")
    out = b("network", "connect", "--alias", "x", "bridge", "c2", check=False)
    assert out.returncode == 1
    assert out.stderr == "Error: network-scoped alias is supported only for containers in user defined networks\n"
    out = b("network", "connect", "--ip", "10.99.0.5", "known", "c2", check=False)
    assert out.returncode == 1 and "10.99.0.5" in out.stderr
    out = b("network", "connect", "--link", "a:b:c", "known", "c2", check=False)
    assert out.returncode == 125 and 'invalid argument "a:b:c" for "--link" flag: bad format for links' in out.stderr
    assert _veths(netlab) == veths and netlab.ruleset() == rules
    assert json.loads(b("network", "inspect", "known").stdout)[0]["Containers"] == {}
    assert b("exec", "c2", "ls", "/sys/class/net").stdout.split() == ["eth0", "lo"]


# ---- published ports ------------------------------------------------------------------------------------------------

def test_published_port_from_outside_and_from_the_host(lab_barque, netlab):
    b = lab_barque
    b("run", "-d", "--name", "web", "-p", "8080:80", "-p", "127.0.0.1::81", "--expose", "443", "busybox", *HTTPD)
    assert _page(netlab.in_outside, f"http://{HOST_ADDR}:8080/index.html") == PAGE + "\n"
    assert _page(netlab.in_host, "http://127.0.0.1:8080/index.html") == PAGE + "\n"

    lines = b("port", "web").stdout.splitlines()
    assert lines[0] == "80/tcp -> 0.0.0.0:8080"
    m = re.fullmatch(r"81/tcp -> 127\.0\.0\.1:(\d+)", lines[1])
    assert m and len(lines) == 2, lines
    chosen = int(m.group(1))
    low, high = (int(x) for x in netlab.in_host("cat", "/proc/sys/net/ipv4/ip_local_port_range").stdout.split())
    assert low <= chosen <= high
    assert b("port", "web", "80").stdout == "0.0.0.0:8080\n"
    assert b("port", "web", "80/tcp").stdout == "0.0.0.0:8080\n"
    assert b("port", "web", "81").stdout == f"127.0.0.1:{chosen}\n"
    # 81 is published on the host's loopback only
    cid = json.loads(b("inspect", "web").stdout)[0]["Id"]
    assert _page(netlab.in_host, f"http://127.0.0.1:{chosen}/hostname") == cid[:12] + "\n"
    assert _fetch(netlab.in_outside, f"http://{HOST_ADDR}:{chosen}/hostname").returncode != 0
    for spec, message in (("443", "Error: No public port '443' published for web\n"),
                          ("80/udp", "Error: No public port '80/udp' published for web\n"),
                          ("abc", 'Error: invalid port (abc): strconv.ParseUint: parsing "abc": invalid syntax\n')):
        out = b("port", "web", spec, check=False)
        assert (out.returncode, out.stdout, out.stderr) == (1, "", message)
    out = b("port", "nosuch", check=False)
    assert (out.returncode, out.stderr) == (1, "Error: No such container: nosuch\n")

    ports = f"443/tcp, 0.0.0.0:8080->80/tcp, 127.0.0.1:{chosen}->81/tcp"
    assert b("ps", "--format", "{{.Names}}\t{{.Ports}}").stdout == f"web\t{ports}\n"
    table = b("ps").stdout.splitlines()
    assert "PORTS" in table[0] and ports in table[1]

    # a stopped container has no ports (Docker releases them with the network)
    b("stop", "-t", "1", "web")
    assert b("ps", "-a", "--format", "{{.Names}}|{{.Ports}}|").stdout == "web||\n"
    assert b("port", "web").stdout == ""
    assert _eventually(lambda: "8080" not in netlab.ruleset())
    assert _fetch(netlab.in_host, "http://127.0.0.1:8080/index.html").returncode != 0


def test_publish_all_and_host_port_ranges(lab_barque, netlab):
    b = lab_barque
    b("run", "-d", "--name", "pa", "-P", "--expose", "7000-7001", "busybox", "httpd", "-f", "-p", "7000", "-h",
      "/etc")
    lines = b("port", "pa").stdout.splitlines()
    assert [line.split(" -> ")[0] for line in lines] == ["7000/tcp", "7001/tcp"]
    host_ports = [int(line.rsplit(":", 1)[1]) for line in lines]
    assert all(line.split(" -> ")[1].startswith("0.0.0.0:") for line in lines)
    assert len(set(host_ports)) == 2
    cid = json.loads(b("inspect", "pa").stdout)[0]["Id"]
    assert _page(netlab.in_outside, f"http://{HOST_ADDR}:{host_ports[0]}/hostname") == cid[:12] + "\n"
    assert b("ps", "--format", "{{.Ports}}").stdout == (f"0.0.0.0:{host_ports[0]}->7000/tcp, "
                                                        f"0.0.0.0:{host_ports[1]}->7001/tcp\n")

    # a host range with one container port: the first free port of the range; equal ranges map one to one
    b("run", "-d", "--name", "rng", "-p", "9100-9105:80", "-p", "9200-9201:90-91", "busybox", "sleep", "600")
    assert b("port", "rng").stdout.splitlines() == ["80/tcp -> 0.0.0.0:9100", "90/tcp -> 0.0.0.0:9200",
                                                    "91/tcp -> 0.0.0.0:9201"]
    b("run", "-d", "--name", "rng2", "-p", "9100-9105:80", "busybox", "sleep", "600")
    assert b("port", "rng2", "80").stdout == "0.0.0.0:9101\n"
    b("run", "-d", "--name", "same", "-p", "9300-9301:9300-9301", "busybox", "sleep", "600")
    assert b("ps", "--filter", "name=same", "--format", "{{.Ports}}").stdout == "0.0.0.0:9300-9301->9300-9301/tcp\n"


@pytest.mark.parametrize("args,message", [
    (["-p", "abc"], "Error: invalid containerPort: abc\n"),
    (["-p", "x:80"], "Error: invalid hostPort: x\n"),
    (["-p", "80/sctpx"], "Error: invalid proto: sctpx\n"),
    (["-p", "8000-8010:80-85"], "Error: invalid ranges specified for container and host Ports: 80-85 and 8000-8010\n"),
    (["-p", "1.2.3:80:80"], "Error: invalid IP address: 1.2.3\n"),
    (["--expose", "80:90"], "Error: invalid port format for --expose: 80:90\n"),
])
def test_malformed_publish_is_refused_before_anything_is_made(lab_barque, netlab, args, message):
    b = lab_barque
    for verb in (["run", "--rm"], ["create"]):
        out = b(*verb, "--name", "never", *args, "busybox", "true", check=False)
        assert (out.returncode, out.stdout, out.stderr) == (125, "", message)
    assert b("ps", "-aq").stdout == ""
    assert not _veths(netlab)


def test_flag_syntax_errors(lab_barque):
    b = lab_barque
    for args, message in ((["--add-host", "nocolon"], 'invalid argument "nocolon" for "--add-host" flag: bad format '
                                                      'for add-host: "nocolon"'),
                          (["--add-host", "h:abc"], 'invalid argument "h:abc" for "--add-host" flag: invalid IP '
                                                    'address in add-host: "abc"'),
                          (["--link", ""], 'invalid argument "" for "--link" flag: empty string specified for links'),
                          (["--link", "a:b:c"], 'invalid argument "a:b:c" for "--link" flag: bad format for links: '
                                                "a:b:c")):
        out = b("run", "--rm", *args, "busybox", "true", check=False)
        assert out.returncode == 125 and out.stderr.startswith(message + "\n"), (args, out.stderr)
    out = b("run", "--rm", "--mac-address", "02:42:ac:11:00:zz", "busybox", "true", check=False)
    assert out.returncode == 125 and "02:42:ac:11:00:zz is not a valid mac address" in out.stderr
    assert b("ps", "-aq").stdout == ""


def test_mac_address_flag(lab_barque):
    """`--mac-address` (Config.MacAddress): the MAC of the container's interface on its network."""
    out = lab_barque("run", "--rm", "--mac-address", "02:42:ac:11:00:09", "busybox", "cat",
                     "/sys/class/net/eth0/address")
    assert out.stdout.strip() == "02:42:ac:11:00:09"
    out = lab_barque("run", "--rm", "--network", "host", "--mac-address", "02:42:ac:11:00:09", "busybox", "true",
                     check=False)
    assert out.returncode == 125 and "conflicting options: mac-address and the network mode" in out.stderr


def test_add_host_and_network_alias_reach_the_container(lab_barque):
    b = lab_barque
    hosts = b("run", "--rm", "--add-host", "db.local:10.1.2.3", "--add-host", "v6=[2001:db8::1]", "busybox", "cat",
              "/etc/hosts").stdout.splitlines()
    assert "10.1.2.3\tdb.local" in hosts and "2001:db8::1\tv6" in hosts
    b("network", "create", "--subnet", "10.74.0.0/24", "named")
    b("run", "-d", "--name", "aliased", "--network", "named", "--network-alias", "svc", "--network-alias", "svc2",
      "--ip", "10.74.0.9", "busybox", "sleep", "600")
    net = json.loads(b("inspect", "aliased").stdout)[0]["NetworkSettings"]["Networks"]["named"]
    assert net["IPAddress"] == "10.74.0.9" and net["IPAMConfig"] == {"IPv4Address": "10.74.0.9"}
    assert {"svc", "svc2"} <= set(net["Aliases"])
    # the default bridge refuses both (aliases: the docker CLI's own message; --ip: the engine's), nothing is made
    out = b("run", "--rm", "--network-alias", "x", "busybox", "true", check=False)
    assert out.returncode == 125
    assert out.stderr == "Error: network-scoped aliases are only supported for user-defined networks\n"
    out = b("run", "--rm", "--ip", "172.17.0.99", "busybox", "true", check=False)
    assert out.returncode == 125
    assert out.stderr == "Error: user specified IP address is supported on user defined networks only\n"
    assert b("ps", "-aq").stdout.split() == [json.loads(b("inspect", "aliased").stdout)[0]["Id"][:12]]
