"""`barque serve` driven by the real docker CLI and docker-py: networks (create, ls with filters, inspect,
connect, disconnect, rm, prune) and volumes (create, ls with filters, inspect, rm, prune), Docker's statuses and
messages for what is refused, and containers made through the API talking over a user network by name (inside a
throwaway network namespace, tests/netlab.py)."""

from __future__ import annotations

import pytest

from tests.api_support import Docker, call
from tests.api_support import api, docker, docker_client, lab_api  # noqa: F401 - fixtures
from tests.conftest import unique

pytestmark = pytest.mark.root


@pytest.fixture
def tidy(api):
    """After the test (also when it failed): its containers, then its networks and volumes, gone."""
    yield api
    api.barque.remove_containers()
    api.barque("network", "prune", "-f", check=False)
    api.barque("volume", "prune", "-af", check=False)


# ---- networks -----------------------------------------------------------------------------------------------------

def test_network_commands_of_the_docker_cli(docker, tidy):
    net, other = unique("net"), unique("other")
    nid = docker("network", "create", "--subnet", "10.77.0.0/24", "--gateway", "10.77.0.1", "--label", "team=red",
                 "--internal", net).stdout.strip()
    assert len(nid) == 64
    r = docker("network", "create", net, check=False)
    assert (r.returncode, r.stderr.strip()) == (1, f"Error response from daemon: network with name {net} already exists")
    docker("network", "create", other)

    names = docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert {"bridge", "host", "none", net, other} <= set(names)
    assert docker("network", "ls", "-q", "--no-trunc", "-f", "label=team=red").stdout.split() == [nid]
    assert docker("network", "ls", "--format", "{{.Name}}", "-f", f"name={net}").stdout.split() == [net]
    assert set(docker("network", "ls", "--format", "{{.Name}}", "-f", "type=builtin").stdout.split()) == \
        {"bridge", "host", "none"}
    assert set(docker("network", "ls", "--format", "{{.Name}}", "-f", "dangling=true").stdout.split()) == {net, other}
    r = docker("network", "ls", "-f", "bogus=1", check=False)
    assert (r.returncode, r.stderr.strip()) == (1, "Error response from daemon: invalid filter 'bogus'")

    got = docker.json("network", "inspect", net)[0]
    assert (got["Id"], got["Name"], got["Driver"], got["Scope"], got["Internal"]) == (nid, net, "bridge", "local", True)
    assert got["IPAM"]["Config"] == [{"Subnet": "10.77.0.0/24", "Gateway": "10.77.0.1"}]
    assert got["Labels"] == {"team": "red"} and got["Containers"] == {}
    r = docker("network", "inspect", "nosuchnet", check=False)
    assert r.returncode == 1 and "network nosuchnet not found" in r.stderr

    # containers on it: one from run --network, one connected with an alias while stopped
    c1 = docker("run", "-d", "--name", unique("c1"), "--network", net, "busybox", "sleep", "300").stdout.strip()
    c2name = unique("c2")
    c2 = docker("create", "--name", c2name, "busybox", "sleep", "300").stdout.strip()
    docker("network", "connect", "--alias", "db", net, c2name)
    docker("start", c2name)
    members = docker.json("network", "inspect", net)[0]["Containers"]
    assert set(members) == {c1, c2}
    assert all(m["IPv4Address"].startswith("10.77.0.") for m in members.values())
    settings = docker.json("inspect", c2name)[0]["NetworkSettings"]["Networks"]
    assert set(settings) == {"bridge", net} and "db" in settings[net]["Aliases"]
    assert docker("network", "ls", "-q", "-f", "dangling=false", "-f", f"name={net}").stdout.split() == [nid[:12]]

    r = docker("network", "connect", net, c2name, check=False)
    assert r.returncode == 1 and f"endpoint with name {c2name} already exists in network {net}" in r.stderr
    r = docker("network", "connect", net, "nosuchcontainer", check=False)
    assert r.returncode == 1 and "No such container: nosuchcontainer" in r.stderr
    r = docker("network", "rm", net, check=False)
    assert r.returncode == 1 and "has active endpoints" in r.stderr
    r = docker("network", "rm", "bridge", check=False)
    assert r.returncode == 1 and "bridge is a pre-defined network and cannot be removed" in r.stderr

    docker("network", "disconnect", net, c2name)
    assert set(docker.json("network", "inspect", net)[0]["Containers"]) == {c1}
    assert set(docker.json("inspect", c2name)[0]["NetworkSettings"]["Networks"]) == {"bridge"}
    r = docker("network", "disconnect", net, c2name, check=False)
    assert r.returncode == 1 and "is not connected to" in r.stderr and net in r.stderr

    # prune: only what no container is on, and only what the filter allows
    docker("rm", "-f", c1, c2)
    kept = unique("kept")
    docker("network", "create", "--label", "keep=yes", kept)
    out = docker("network", "prune", "-f", "--filter", "label!=keep=yes").stdout
    assert out.startswith("Deleted Networks:\n") and net in out and other in out and kept not in out
    assert set(docker("network", "ls", "--format", "{{.Name}}").stdout.split()) == {"bridge", "host", "none", kept}
    assert docker("network", "rm", kept).stdout.strip() == kept
    r = docker("network", "rm", kept, check=False)
    assert (r.returncode, r.stderr.strip().splitlines()[0]) == (1, f"Error response from daemon: network {kept} not found")


def test_networks_through_docker_py(docker_client, tidy):
    import docker as dockerpy

    name = unique("pynet")
    ipam = dockerpy.types.IPAMConfig(pool_configs=[dockerpy.types.IPAMPool(subnet="10.78.0.0/24",
                                                                          iprange="10.78.0.128/25")])
    net = docker_client.networks.create(name, driver="bridge", ipam=ipam, labels={"app": "x"}, attachable=True,
                                       options={"com.docker.network.bridge.enable_icc": "true"})
    assert net.name == name and net.attrs["Attachable"] is True
    assert net.attrs["IPAM"]["Config"][0]["IPRange"] == "10.78.0.128/25"
    assert [n.id for n in docker_client.networks.list(names=[name])] == [net.id]
    assert [n.name for n in docker_client.networks.list(filters={"label": "app=x"})] == [name]
    with pytest.raises(dockerpy.errors.APIError) as err:
        docker_client.networks.create(name)
    assert err.value.status_code == 409
    with pytest.raises(dockerpy.errors.APIError) as err:
        docker_client.networks.create("host")
    assert (err.value.status_code, err.value.explanation) == (403, "operation is not permitted on predefined host "
                                                                  "network ")
    with pytest.raises(dockerpy.errors.NotFound) as err:
        docker_client.networks.create(unique("x"), driver="overlay")
    assert err.value.explanation == 'plugin "overlay" not found'
    with pytest.raises(dockerpy.errors.NotFound):
        docker_client.networks.get("nosuchnet")

    c = docker_client.containers.run("busybox", "sleep 300", detach=True, name=unique("pyc"))
    net.connect(c, aliases=["web"], ipv4_address="10.78.0.200")
    net.reload()
    assert [x.id for x in net.containers] == [c.id]
    c.reload()
    ep = c.attrs["NetworkSettings"]["Networks"][name]
    assert ep["IPAddress"] == "10.78.0.200" and "web" in ep["Aliases"]
    net.disconnect(c)
    net.reload()
    assert net.containers == []
    c.reload()
    assert name not in c.attrs["NetworkSettings"]["Networks"]
    c.remove(force=True)

    assert docker_client.networks.prune(filters={"label": "app=nope"}) == {"NetworksDeleted": []}
    assert docker_client.networks.prune(filters={"label": "app=x"}) == {"NetworksDeleted": [name]}
    with pytest.raises(dockerpy.errors.NotFound):
        docker_client.networks.get(net.id)


def test_network_requests_docker_refuses(api, tidy):
    status, body = call(api, "POST", "/networks/create", {"Name": "x", "Driver": 5})
    assert (status, body["message"]) == (400, "json: cannot unmarshal number into Go struct field "
                                              "NetworkCreateRequest.Driver of type string")
    status, body = call(api, "POST", "/networks/create", b"[1, 2]")
    assert status == 400 and "cannot unmarshal array" in body["message"]
    status, body = call(api, "POST", "/networks/create", b"{nope")
    assert status == 400 and "invalid JSON" in body["message"]
    status, body = call(api, "POST", "/networks/create", {"Name": "v6", "EnableIPv6": True})
    assert status == 400 and "IPv6" in body["message"]
    status, body = call(api, "POST", "/networks/create", {"Name": "ipam", "IPAM": {"Driver": "other"}})
    assert (status, body["message"]) == (404, 'plugin "other" not found')
    status, body = call(api, "POST", "/networks/create", {"Name": unique("a"), "IPAM": {"Config": [
        {"Subnet": "10.79.0.0/16"}]}})
    assert status == 201 and body["Warning"] == ""
    status, body = call(api, "POST", "/networks/create", {"Name": unique("b"), "IPAM": {"Config": [
        {"Subnet": "10.79.1.0/24"}]}})
    assert (status, body["message"]) == (403, "Pool overlaps with other one on this address space")
    status, body = call(api, "DELETE", "/networks/host")
    assert (status, body["message"]) == (403, "host is a pre-defined network and cannot be removed")
    assert call(api, "GET", "/networks/nosuch") == (404, {"message": "network nosuch not found"})
    assert call(api, "DELETE", "/networks/nosuch") == (404, {"message": "network nosuch not found"})
    assert call(api, "GET", "/networks/bridge?scope=swarm") == (404, {"message": "network bridge not found"})
    assert call(api, "GET", "/networks/bridge?scope=local")[0] == 200
    status, body = call(api, "POST", "/networks/bridge/connect", {"Container": ""})
    assert (status, body["message"]) == (400, 'invalid name or ID supplied: ""')
    status, body = call(api, "POST", "/networks/bridge/disconnect", {"Container": "nosuch"})
    assert (status, body["message"]) == (404, "No such container: nosuch")
    status, body = call(api, "GET", '/networks?filters={"dangling":["maybe"]}')
    assert (status, body["message"]) == (400, "invalid value for filter 'dangling', must be \"true\" (or \"1\"), "
                                              "or \"false\" (or \"0\")")
    status, body = call(api, "GET", '/networks?filters={"type":["x"]}')
    assert (status, body["message"]) == (400, "invalid filter: 'type'='x'")
    status, body = call(api, "POST", '/networks/prune?filters={"bogus":["1"]}')
    assert (status, body["message"]) == (400, "invalid filter 'bogus'")
    # the listing: Docker's shape, Containers left empty (API >= 1.28)
    status, body = call(api, "GET", "/v1.43/networks")
    assert status == 200 and {n["Name"] for n in body} >= {"bridge", "host", "none"}
    assert all(set(n) >= {"Name", "Id", "Created", "Scope", "Driver", "EnableIPv6", "IPAM", "Internal",
                          "Attachable", "Ingress", "ConfigFrom", "ConfigOnly", "Containers", "Options", "Labels"}
               and n["Containers"] == {} for n in body)
    assert api.errors() == ""


# ---- volumes ------------------------------------------------------------------------------------------------------

def test_volume_commands_of_the_docker_cli(docker, tidy):
    vol, labelled = unique("vol"), unique("lab")
    assert docker("volume", "create", vol).stdout.strip() == vol
    assert docker("volume", "create", "--label", "tier=db", labelled).stdout.strip() == labelled
    anon = docker("volume", "create").stdout.strip()
    assert len(anon) == 64
    r = docker("volume", "create", "bad/name", check=False)
    assert r.returncode == 1 and '"bad/name" includes invalid characters for a local volume name' in r.stderr
    r = docker("volume", "create", "-d", "nosuchdriver", unique("v"), check=False)
    assert r.returncode == 1 and 'plugin "nosuchdriver" not found' in r.stderr

    assert set(docker("volume", "ls", "-q").stdout.split()) == {vol, labelled, anon}
    assert docker("volume", "ls", "-q", "-f", "label=tier=db").stdout.split() == [labelled]
    assert docker("volume", "ls", "-q", "-f", f"name={vol}").stdout.split() == [vol]
    r = docker("volume", "ls", "-f", "dangling=maybe", check=False)
    assert (r.returncode, r.stderr.strip()) == (1, "Error response from daemon: invalid filter 'dangling=maybe'")
    r = docker("volume", "ls", "-f", "bogus=1", check=False)
    assert (r.returncode, r.stderr.strip()) == (1, "Error response from daemon: invalid filter 'bogus'")

    got = docker.json("volume", "inspect", labelled)[0]
    assert (got["Name"], got["Driver"], got["Scope"], got["Labels"]) == (labelled, "local", "local", {"tier": "db"})
    assert got["Mountpoint"].endswith(f"/volumes/{labelled}/_data")
    r = docker("volume", "inspect", "nosuchvol", check=False)
    assert r.returncode == 1 and "no such volume" in r.stderr.lower()

    # data written by one container is read by the next; a volume in use is not removed
    user = unique("user")
    docker("run", "--name", user, "-v", f"{vol}:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    assert docker("run", "--rm", "-v", f"{vol}:/data", "busybox", "cat", "/data/f").stdout == "kept\n"
    assert docker("volume", "ls", "-q", "-f", "dangling=false").stdout.split() == [vol]
    r = docker("volume", "rm", vol, check=False)
    assert r.returncode == 1 and f"remove {vol}: volume is in use" in r.stderr
    r = docker("volume", "rm", "nosuchvol", check=False)
    assert r.returncode == 1 and "get nosuchvol: no such volume" in r.stderr
    assert docker("volume", "rm", "-f", "nosuchvol").returncode == 0

    # prune: anonymous volumes only (API 1.42+), every unused one with --all
    out = docker("volume", "prune", "-f").stdout
    assert anon in out and labelled not in out and vol not in out
    out = docker("volume", "prune", "-af").stdout
    assert labelled in out and vol not in out and "Total reclaimed space:" in out
    docker("rm", user)
    assert docker("volume", "rm", vol).stdout.strip() == vol
    assert docker("volume", "ls", "-q").stdout == ""


def test_volumes_through_docker_py(docker_client, api, tidy):
    import docker as dockerpy

    name = unique("pyvol")
    v = docker_client.volumes.create(name, labels={"a": "b"})
    assert (v.name, v.attrs["Labels"], v.attrs["Driver"]) == (name, {"a": "b"}, "local")
    assert docker_client.volumes.create(name).id == name  # creating an existing name returns it, as Docker
    assert [x.name for x in docker_client.volumes.list(filters={"label": "a=b"})] == [name]
    assert docker_client.volumes.list(filters={"name": "nomatch"}) == []
    assert docker_client.volumes.get(name).attrs["Mountpoint"].endswith(f"/{name}/_data")
    with pytest.raises(dockerpy.errors.NotFound):
        docker_client.volumes.get("nosuchvol")
    with pytest.raises(dockerpy.errors.APIError) as err:
        docker_client.volumes.create(unique("v"), driver_opts={"bogus": "1"})
    assert err.value.status_code == 400 and 'invalid option: "bogus"' in err.value.explanation

    assert docker_client.volumes.prune() == {"VolumesDeleted": [], "SpaceReclaimed": 0}  # named: kept
    docker_client.containers.run("busybox", ["sh", "-c", "head -c 5000 /dev/zero > /v/blob"], remove=True,
                                 volumes={name: {"bind": "/v", "mode": "rw"}})
    got = docker_client.volumes.prune(filters={"all": "true"})
    assert got == {"VolumesDeleted": [name], "SpaceReclaimed": 5000}
    # a client of API 1.41 gets what its dockerd did: every unused volume pruned, and no `all` filter
    status, body = call(api, "POST", "/volumes/create", {"Name": unique("old")})
    assert status == 201
    status, body = call(api, "POST", '/v1.41/volumes/prune?filters={"all":["true"]}')
    assert (status, body["message"]) == (400, "invalid filter 'all'")
    status, body = call(api, "POST", "/v1.41/volumes/prune")
    assert status == 200 and len(body["VolumesDeleted"]) == 1
    status, body = call(api, "POST", "/volumes/create", {"Name": "x", "Labels": {"a": 1}})
    assert (status, body["message"]) == (400, "json: cannot unmarshal number into Go struct field "
                                              "CreateOptions.Labels of type string")
    status, body = call(api, "GET", "/volumes")
    assert (status, body) == (200, {"Volumes": [], "Warnings": []})
    assert api.errors() == ""


# ---- containers talking over a user network ----------------------------------------------------------------------

def test_containers_made_through_the_api_reach_each_other_by_name(lab_api):
    docker = Docker(lab_api)
    net = unique("appnet")
    docker("network", "create", net)
    srv = unique("srv")
    docker("run", "-d", "--name", srv, "--network", net, "--network-alias", "website", "busybox",
           "httpd", "-f", "-p", "80", "-h", "/etc")
    short = docker.json("inspect", srv)[0]["Id"][:12]  # httpd serves /etc: /hostname is the server's short ID
    # the client: by the server's name, then by its alias (a bounded wait for httpd to listen)
    script = ("for name in %s website; do ok=; for i in $(seq 1 50); do "
              "if timeout 3 wget -q -O- http://$name/hostname; then ok=1; break; fi; sleep 0.2; done; "
              "[ -n \"$ok\" ] || exit 1; done" % srv)
    client = unique("client")
    docker("run", "-d", "--name", client, "--network", net, "busybox", "sh", "-c", script)
    assert docker("wait", client, timeout=60).stdout.strip() == "0", docker("logs", client, check=False).stderr
    assert docker("logs", client).stdout.split() == [short, short]
    # a container on the default bridge is not on that network: the name does not resolve there
    r = docker("run", "--rm", "busybox", "timeout", "3", "wget", "-q", "-O-", f"http://{srv}/hostname", check=False)
    assert r.returncode != 0
    assert lab_api.errors() == ""


def test_network_names_are_any_text_as_in_docker(docker, api, tidy):
    """Docker takes any network name ("test 01"): nothing is named after it — the bridge is br- and the ID."""
    name = f"test {unique('01')}"
    status, body = call(api, "POST", "/networks/create", {"Name": name})
    assert status == 201, body
    got = docker.json("network", "inspect", name)[0]
    assert got["Name"] == name and got["Id"] == body["Id"]
    cli_name = f"my net {unique('x')}"
    docker("network", "create", cli_name)
    c = docker("run", "-d", "--network", cli_name, "busybox", "sleep", "300").stdout.strip()
    nets = docker.json("inspect", c)[0]["NetworkSettings"]["Networks"]
    assert list(nets) == [cli_name] and nets[cli_name]["IPAddress"]
    links = docker("run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net").stdout.split()
    assert f"br-{docker.json('network', 'inspect', cli_name)[0]['Id'][:12]}" in links
    docker("rm", "-f", c)
    assert call(api, "DELETE", "/networks/" + name.replace(" ", "%20"))[0] == 204
    docker("network", "rm", cli_name)
    status, body = call(api, "POST", "/networks/create", {"Name": "   "})
    assert (status, body["message"]) == (400, "invalid name: name is empty")
    assert api.errors() == ""


def test_ipam_auxiliary_addresses_are_kept_shown_and_never_handed_out(docker, api, tidy):
    name = unique("aux")
    pool = {"Subnet": "10.81.0.0/29", "Gateway": "10.81.0.1", "AuxiliaryAddresses": {"router": "10.81.0.2"}}
    status, body = call(api, "POST", "/networks/create", {"Name": name, "IPAM": {"Driver": "default",
                                                                                   "Config": [pool]}})
    assert status == 201, body
    got = docker.json("network", "inspect", name)[0]["IPAM"]
    # dockerd shows IPAM's Options as they were sent: none is null
    assert got == {"Driver": "default", "Options": None, "Config": [pool]}
    # the first container gets .3: .2 is the router's
    c = docker("run", "-d", "--network", name, "busybox", "sleep", "300").stdout.strip()
    assert docker.json("inspect", c)[0]["NetworkSettings"]["Networks"][name]["IPAddress"] == "10.81.0.3"
    r = docker("run", "-d", "--network", name, "--ip", "10.81.0.2", "busybox", "sleep", "300", check=False)
    assert r.returncode != 0 and "Address already in use" in r.stderr
    # refused: an address outside the subnet, one that is not an address, the gateway's
    for aux, why in (({"a": "10.82.0.5"}, "invalid auxiliary address a: it does not belong to the subnet"),
                     ({"a": "nope"}, "invalid auxiliary address a: invalid address"),
                     ({"a": "10.83.0.1"}, "failed to allocate secondary ip address (a:10.83.0.1): Address already "
                                          "in use (the gateway has it)")):
        subnet = "10.83.0.0/24" if "10.83" in aux["a"] else "10.84.0.0/24"
        status, body = call(api, "POST", "/networks/create", {"Name": unique("bad"), "IPAM": {"Config": [
            {"Subnet": subnet, "AuxiliaryAddresses": aux}]}})
        assert (status, body["message"]) == (400, why)
    status, body = call(api, "POST", "/networks/create", {"Name": unique("bad"), "IPAM": {"Config": [
        {"Subnet": "10.85.0.0/24", "AuxiliaryAddresses": {"a": 5}}]}})
    assert status == 400 and "IPAMConfig.AuxiliaryAddresses" in body["message"]
    # the CLI's --aux-address, checked against --subnet as Docker's CLI does; the CLI sends IPAM Options {}
    cli = unique("auxcli")
    docker("network", "create", "--subnet", "10.86.0.0/24", "--aux-address", "host=10.86.0.9", cli)
    got = docker.json("network", "inspect", cli)[0]["IPAM"]
    assert got["Config"] == [{"Subnet": "10.86.0.0/24", "Gateway": "10.86.0.1",
                              "AuxiliaryAddresses": {"host": "10.86.0.9"}}]
    assert got["Options"] == {}
    assert api.errors() == ""


def test_endpoint_mac_link_local_ips_and_driver_opts(docker_client, docker, api, tidy):
    """An endpoint's MacAddress, IPAMConfig.LinkLocalIPs and DriverOpts, at create and at connect: kept, shown,
    and the interface has that MAC and those addresses."""
    net = docker_client.networks.create(unique("epnet"))
    api_client = docker_client.api
    cid = api_client.create_container(
        "busybox", "sleep 300",
        networking_config=api_client.create_networking_config({"bridge": api_client.create_endpoint_config(
            link_local_ips=["169.254.8.8"], driver_opt={"com.example.setting": "on"})}),
        host_config=api_client.create_host_config(network_mode="bridge"))["Id"]
    api_client.connect_container_to_network(cid, net.name, mac_address="02:42:AC:11:00:99",
                                            link_local_ips=["169.254.9.9"])
    eps = api_client.inspect_container(cid)["NetworkSettings"]["Networks"]
    assert eps["bridge"]["IPAMConfig"] == {"LinkLocalIPs": ["169.254.8.8"]}
    assert eps["bridge"]["DriverOpts"] == {"com.example.setting": "on"}
    assert eps["bridge"]["MacAddress"] == ""  # none was asked for: shown once it runs
    assert eps[net.name]["MacAddress"] == "02:42:ac:11:00:99"  # asked for: shown before the start
    assert eps[net.name]["IPAMConfig"] == {"LinkLocalIPs": ["169.254.9.9"]} and eps[net.name]["DriverOpts"] is None
    # dockerd < 25 puts the short ID among a user-defined network's aliases at `network connect`, started or not
    assert eps[net.name]["Aliases"] == [cid[:12]] and eps["bridge"]["Aliases"] is None
    api_client.start(cid)
    eps = api_client.inspect_container(cid)["NetworkSettings"]["Networks"]
    assert eps[net.name]["MacAddress"] == "02:42:ac:11:00:99" and eps["bridge"]["MacAddress"].startswith("02:42:")
    out = docker("exec", cid, "sh", "-c", "cat /sys/class/net/eth1/address; ip -4 addr show eth0; "
                                          "ip -4 addr show eth1").stdout
    assert out.splitlines()[0] == "02:42:ac:11:00:99"
    assert "169.254.8.8/16" in out and "169.254.9.9/16" in out
    members = docker.json("network", "inspect", net.name)[0]["Containers"]
    assert members[cid]["MacAddress"] == "02:42:ac:11:00:99"
    # connecting a running container: its new interface has the MAC
    other = docker_client.networks.create(unique("epnet2"))
    api_client.connect_container_to_network(cid, other.name, mac_address="02:42:ac:11:00:aa")
    assert "02:42:ac:11:00:aa" in docker("exec", cid, "cat", "/sys/class/net/eth2/address").stdout
    # refused: a MAC that is not one, a multicast one, the unspecified address as a link-local one
    for ep, why in (({"MacAddress": "nope"}, "invalid MAC address: nope"),
                    ({"MacAddress": "03:00:00:00:00:01"}, "multicast"),
                    ({"IPAMConfig": {"LinkLocalIPs": ["0.0.0.0"]}}, "invalid link-local IP address: 0.0.0.0")):
        third = docker_client.networks.create(unique("epnet3"))
        status, body = call(api, "POST", f"/networks/{third.id}/connect", {"Container": cid, "EndpointConfig": ep})
        assert status == 400 and why in body["message"], body
    assert api.errors() == ""
