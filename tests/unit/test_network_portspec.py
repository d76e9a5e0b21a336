"""-p/--expose parsing, the PORTS column and `port` output, checked against what Docker's CLI does.

The expected values of the parsing tables were taken from the docker CLI itself (28.2), talking to a stand-in
daemon that recorded the create body it sent (or the error it printed before sending anything)."""

from __future__ import annotations

import pytest

from barque.errors import InvalidArgument, NotFound
from barque.network.portspec import (display_ports, lookup_port, natural_key, parse_expose, parse_port_specs,
                                     port_lines, port_list)


def _b(host_ip: str = "", host_port: str = "") -> dict:
    return {"HostIp": host_ip, "HostPort": host_port}


PUBLISH = [
    ("80", {"80/tcp": [_b()]}),
    ("80/udp", {"80/udp": [_b()]}),
    ("80/UDP", {"80/udp": [_b()]}),
    ("80/sctp", {"80/sctp": [_b()]}),
    ("80/tcp/x", {"80/tcp": [_b()]}),
    ("80/", {"80/tcp": [_b()]}),
    ("8080:80", {"80/tcp": [_b("", "8080")]}),
    ("127.0.0.1:8080:80", {"80/tcp": [_b("127.0.0.1", "8080")]}),
    ("127.0.0.1::80", {"80/tcp": [_b("127.0.0.1")]}),
    ("::80", {"80/tcp": [_b()]}),
    (":80", {"80/tcp": [_b()]}),
    ("[::1]:8080:80", {"80/tcp": [_b("::1", "8080")]}),
    ("[::1]::80/udp", {"80/udp": [_b("::1")]}),
    ("::1:8080:80", {"80/tcp": [_b("::1", "8080")]}),
    ("fe80::1:8080:80", {"80/tcp": [_b("fe80::1", "8080")]}),
    ("[1.2.3.4]:80:80", {"80/tcp": [_b("1.2.3.4", "80")]}),
    ("[]:80:80", {"80/tcp": [_b("", "80")]}),
    ("::ffff:1.2.3.4:80:80", {"80/tcp": [_b("::ffff:1.2.3.4", "80")]}),
    ("0.0.0.0:80:80", {"80/tcp": [_b("0.0.0.0", "80")]}),
    ("8000-8001:80-81", {"80/tcp": [_b("", "8000")], "81/tcp": [_b("", "8001")]}),
    ("8000-8010:80", {"80/tcp": [_b("", "8000-8010")]}),
    ("127.0.0.1:8080-8081:80", {"80/tcp": [_b("127.0.0.1", "8080-8081")]}),
    ("8080-8081:80/UDP", {"80/udp": [_b("", "8080-8081")]}),
    ("8000-8010-9000:80", {"80/tcp": [_b("", "8000-8010")]}),
    ("0080", {"80/tcp": [_b()]}),
    ("0:0", {"0/tcp": [_b("", "0")]}),
    ("65535:65535", {"65535/tcp": [_b("", "65535")]}),
]

PUBLISH_ERRORS = [
    ("", "no port specified: <empty>"),
    ("/tcp", "no port specified: /tcp<empty>"),
    ("8080:", "no port specified: 8080:<empty>"),
    ("abc", "invalid containerPort: abc"),
    ("8080:abc", "invalid containerPort: abc"),
    ("65536", "invalid containerPort: 65536"),
    ("-1", "invalid containerPort: -1"),
    ("+80", "invalid containerPort: +80"),
    (" 80", "invalid containerPort:  80"),
    ("80-79", "invalid containerPort: 80-79"),
    ("x:80", "invalid hostPort: x"),
    ("90-80:80", "invalid hostPort: 90-80"),
    ("1.2.3.4:80", "invalid hostPort: 1.2.3.4"),
    ("80/sctpx", "invalid proto: sctpx"),
    ("8000-8010:80-81", "invalid ranges specified for container and host Ports: 80-81 and 8000-8010"),
    ("8080:80:x", "invalid IP address: 8080"),
    ("1.2.3:80:80", "invalid IP address: 1.2.3"),
    ("01.2.3.4:80:80", "invalid IP address: 01.2.3.4"),
    ("a:b:c:d:80:80", "invalid IP address: a:b:c:d"),
    ("[fe80::1%eth0]:80:80", "invalid IP address: fe80::1%eth0"),
    ("[::1]:80", "invalid IP address [:: address [::: missing ']' in address"),
    ("[::1:8080:80", "invalid IP address [::1: address [::1:: missing ']' in address"),
    ("[::1]", "invalid IP address [: address [:: missing ']' in address"),
]


@pytest.mark.parametrize("spec,bindings", PUBLISH)
def test_publish_as_docker_reads_it(spec, bindings):
    exposed, got = parse_port_specs([spec])
    assert got == bindings
    assert exposed == {k: {} for k in bindings}


@pytest.mark.parametrize("spec,message", PUBLISH_ERRORS)
def test_malformed_publish_gets_dockers_message(spec, message):
    with pytest.raises(InvalidArgument) as e:
        parse_port_specs([spec])
    assert e.value.message == message


def test_container_range_gives_one_binding_per_port():
    exposed, bindings = parse_port_specs(["80-90"])
    assert list(exposed) == [f"{p}/tcp" for p in range(80, 91)]
    assert all(b == [_b()] for b in bindings.values())


def test_several_values_add_bindings_to_one_port():
    exposed, bindings = parse_port_specs(["127.0.0.1::80", "8000-8001:80-81", "80"])
    assert exposed == {"80/tcp": {}, "81/tcp": {}}
    assert bindings == {"80/tcp": [_b("127.0.0.1"), _b("", "8000"), _b()], "81/tcp": [_b("", "8001")]}


@pytest.mark.parametrize("spec,exposed", [
    ("80", ["80/tcp"]),
    ("80/udp", ["80/udp"]),
    ("7000-7002/udp", ["7000/udp", "7001/udp", "7002/udp"]),
    ("80/", ["80/tcp"]),
    ("0080", ["80/tcp"]),
    ("80/xyz", ["80/xyz"]),
])
def test_expose(spec, exposed):
    assert list(parse_expose([spec])) == exposed


@pytest.mark.parametrize("spec,message", [
    ("80:90", "invalid port format for --expose: 80:90"),
    ("80-70", "invalid range format for --expose: 80-70, error: invalid range specified for port: 80-70"),
    ("99999", 'invalid range format for --expose: 99999, error: strconv.ParseUint: parsing "99999": value out of '
              "range"),
    ("abc", 'invalid range format for --expose: abc, error: strconv.ParseUint: parsing "abc": invalid syntax'),
    ("", "invalid range format for --expose: , error: empty string specified for ports"),
    ("/udp", "invalid range format for --expose: /udp, error: empty string specified for ports"),
])
def test_bad_expose(spec, message):
    with pytest.raises(InvalidArgument) as e:
        parse_expose([spec])
    assert e.value.message == message


# ---- PORTS column (expected strings printed by docker ps for the same daemon answer) --------------------------------

def _p(private, public=None, ip="0.0.0.0", proto="tcp"):
    d = {"PrivatePort": private, "Type": proto}
    if public is not None:
        d.update(PublicPort=public, IP=ip)
    return d


@pytest.mark.parametrize("ports,text", [
    ([], ""),
    ([_p(80, 8080), _p(443)], "443/tcp, 0.0.0.0:8080->80/tcp"),
    ([_p(80, 8000), _p(81, 8001)], "0.0.0.0:8000->80/tcp, 0.0.0.0:8001->81/tcp"),
    ([_p(80, 80), _p(81, 81), _p(82, 82)], "0.0.0.0:80-82->80-82/tcp"),
    ([_p(80), _p(81), _p(83), _p(90, proto="udp"), _p(91, proto="udp")], "80-81/tcp, 83/tcp, 90-91/udp"),
    ([_p(80, 8080, "127.0.0.1"), _p(80, 8081), _p(53, 53, proto="udp")],
     "0.0.0.0:53->53/udp, 0.0.0.0:8081->80/tcp, 127.0.0.1:8080->80/tcp"),
    ([_p(80, 32768), _p(80, 32769, "::")], "0.0.0.0:32768->80/tcp, [::]:32769->80/tcp"),
    ([_p(80, 80, "::"), _p(81, 81, "::")], "[::]:80-81->80-81/tcp"),
])
def test_ports_column(ports, text):
    assert display_ports(ports) == text


def test_ports_column_from_network_settings():
    settings = {"443/tcp": None, "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
                "90/tcp": [{"HostIp": "0.0.0.0", "HostPort": "90"}],
                "91/tcp": [{"HostIp": "0.0.0.0", "HostPort": "91"}]}
    assert display_ports(port_list(settings)) == "0.0.0.0:90-91->90-91/tcp, 443/tcp, 0.0.0.0:8080->80/tcp"


# ---- port -----------------------------------------------------------------------------------------------------------

SETTINGS = {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}],
            "443/tcp": None, "9/tcp": [{"HostIp": "127.0.0.1", "HostPort": "32768"}],
            "53/udp": [{"HostIp": "0.0.0.0", "HostPort": "53"}]}


def test_port_lists_published_bindings_in_natural_order():
    assert port_lines(SETTINGS) == ["9/tcp -> 127.0.0.1:32768", "53/udp -> 0.0.0.0:53", "80/tcp -> 0.0.0.0:8080",
                                    "80/tcp -> [::]:8080"]


def test_port_of_one_port():
    assert lookup_port(SETTINGS, "80", "c1") == ["0.0.0.0:8080", "[::]:8080"]
    assert lookup_port(SETTINGS, "80/tcp", "c1") == ["0.0.0.0:8080", "[::]:8080"]
    assert lookup_port(SETTINGS, "53/udp", "c1") == ["0.0.0.0:53"]


@pytest.mark.parametrize("spec,error,message", [
    ("443", NotFound, "No public port '443' published for c1"),
    ("81/udp", NotFound, "No public port '81/udp' published for c1"),
    ("80/xyz", NotFound, "No public port '80/xyz' published for c1"),
    ("abc", InvalidArgument, 'invalid port (abc): strconv.ParseUint: parsing "abc": invalid syntax'),
])
def test_port_errors(spec, error, message):
    with pytest.raises(error) as e:
        lookup_port(SETTINGS, spec, "c1")
    assert e.value.message == message


def test_natural_order():
    names = ["net10", "net2", "bridge", "net02", "a", "1x", "x1"]
    assert sorted(names, key=natural_key) == ["1x", "a", "bridge", "net2", "net02", "net10", "x1"]
