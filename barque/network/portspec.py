"""Port specifications as Docker's CLI reads and prints them.

Reading: `-p/--publish` values through the algorithm of go-connections' `nat.ParsePortSpecs` (what `docker run`
uses): `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`, ranges on either side (equal lengths, or a host range with one
container port: the range the host port is chosen from), IPv6 host addresses in brackets, and the same error messages.
`--expose` values as `docker run` reads them.

Printing: `ps`'s PORTS column (the CLI's `DisplayablePorts`: unpublished and same-number ports grouped into ranges,
other mappings one by one) and `port`'s lines (sorted in the CLI's natural order).

Pure functions of strings and dicts: no engine, no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Iterable, Mapping

from barque.errors import InvalidArgument, NotFound

__all__ = ["parse_port_specs", "parse_port_spec", "parse_expose", "parse_port_range", "split_proto_port",
           "port_list", "display_ports", "port_lines", "lookup_port", "natural_key"]

_DIGITS = re.compile(r"[0-9]+")
_PROTOS = ("tcp", "udp", "sctp")


class PortRangeError(ValueError):
    """A port range Docker refuses, with the text of Go's error (strconv's or nat's)."""


# ---- reading --------------------------------------------------------------------------------------------------------

def _parse_uint16(text: str) -> int:
    """Go's strconv.ParseUint(text, 10, 16): digits only (no sign, no spaces), at most 65535."""
    if not _DIGITS.fullmatch(text):
        raise PortRangeError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    value = int(text)
    if value > 65535:
        raise PortRangeError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


def parse_port_range(text: str) -> tuple[int, int]:
    """nat.ParsePortRange: `80` or `8000-8010` (a third part, `1-2-3`, is ignored as Go's code ignores it)."""
    if text == "":
        raise PortRangeError("empty string specified for ports")
    if "-" not in text:
        value = _parse_uint16(text)
        return value, value
    parts = text.split("-")
    start, end = _parse_uint16(parts[0]), _parse_uint16(parts[1])
    if end < start:
        raise PortRangeError(f"invalid range specified for port: {text}")
    return start, end


def split_proto_port(raw: str) -> tuple[str, str]:
    """nat.SplitProtoPort: `80/udp` → ("udp", "80"); no protocol (or an empty one) is tcp; no port, ("", "")."""
    parts = raw.split("/")
    if raw == "" or parts[0] == "":
        return "", ""
    if len(parts) == 1:
        return "tcp", raw
    if parts[1] == "":
        return "tcp", parts[0]
    return parts[1], parts[0]


def _split_parts(raw: str) -> tuple[str, str, str]:
    """(host IP, host port, container port): the last two `:`-parts are ports, whatever comes before is the IP."""
    parts = raw.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def _split_host_port(hostport: str) -> str:
    """The host part of Go's net.SplitHostPort (its errors included): strips an IPv6 address's brackets."""
    def error(why: str) -> PortRangeError:
        return PortRangeError(f"address {hostport}: {why}")

    i = hostport.rfind(":")
    if i < 0:
        raise error("missing port in address")
    j = k = 0
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise error("missing ']' in address")
        if end + 1 == len(hostport):
            raise error("missing port in address")
        if end + 1 != i:
            raise error("too many colons in address" if hostport[end + 1] == ":" else "missing port in address")
        host = hostport[1:end]
        j, k = 1, end + 1
    else:
        host = hostport[:i]
        if ":" in host:
            raise error("too many colons in address")
    if "[" in hostport[j:]:
        raise error("unexpected '[' in address")
    if "]" in hostport[k:]:
        raise error("unexpected ']' in address")
    return host


def _valid_ip(text: str) -> bool:
    """Go's net.ParseIP: dotted IPv4 (no leading zeros) or IPv6 without a zone."""
    if "%" in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_port_spec(raw: str) -> list[tuple[str, dict]]:
    """One `-p` value → [(container port key "80/tcp", {"HostIp": …, "HostPort": …}), …] (a range: several)."""
    ip, host_port, container_port = _split_parts(raw)
    proto, container_port = split_proto_port(container_port)
    if ip.startswith("["):
        try:
            stripped = _split_host_port(ip + ":")
        except PortRangeError as e:
            raise InvalidArgument(f"invalid IP address {ip}: {e}") from None
        ip = stripped
    if ip and not _valid_ip(ip):
        raise InvalidArgument(f"invalid IP address: {ip}")
    if container_port == "":
        raise InvalidArgument(f"no port specified: {raw}<empty>")
    try:
        start, end = parse_port_range(container_port)
    except PortRangeError:
        raise InvalidArgument(f"invalid containerPort: {container_port}") from None
    host_start = host_end = 0
    if host_port:
        try:
            host_start, host_end = parse_port_range(host_port)
        except PortRangeError:
            raise InvalidArgument(f"invalid hostPort: {host_port}") from None
    if host_port and (end - start) != (host_end - host_start) and end != start:
        raise InvalidArgument(f"invalid ranges specified for container and host Ports: {container_port} and "
                              f"{host_port}")
    if proto.lower() not in _PROTOS:
        raise InvalidArgument(f"invalid proto: {proto}")
    out = []
    for i in range(end - start + 1):
        hp = str(host_start + i) if host_port else ""
        if start == end and host_start != host_end:
            hp = f"{hp}-{host_end}"  # one container port, a host range: the range to choose a free port from
        out.append((f"{start + i}/{proto.lower()}", {"HostIp": ip, "HostPort": hp}))
    return out


def parse_port_specs(specs: Iterable[str]) -> tuple[dict, dict]:
    """All `-p` values → (ExposedPorts {"80/tcp": {}}, PortBindings {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}),
    the two maps of Docker's create body. Raises InvalidArgument with Docker's message for a malformed value."""
    exposed: dict = {}
    bindings: dict = {}
    for raw in specs:
        for key, binding in parse_port_spec(raw):
            exposed.setdefault(key, {})
            bindings.setdefault(key, []).append(binding)
    return exposed, bindings


def parse_expose(values: Iterable[str]) -> dict:
    """`--expose 80`, `--expose 7000-7002/udp` → ExposedPorts entries (`docker run`'s rules and messages)."""
    exposed: dict = {}
    for value in values:
        if ":" in value:
            raise InvalidArgument(f"invalid port format for --expose: {value}")
        proto, port = split_proto_port(value)
        try:
            start, end = parse_port_range(port)
        except PortRangeError as e:
            raise InvalidArgument(f"invalid range format for --expose: {value}, error: {e}") from None
        for number in range(start, end + 1):
            exposed.setdefault(f"{number}/{proto}", {})
    return exposed


# ---- printing -------------------------------------------------------------------------------------------------------

def port_list(ports: Mapping[str, list | None] | None) -> list[dict]:
    """NetworkSettings.Ports → the daemon's list form (`/containers/json`'s Ports): {PrivatePort, Type} for an
    unpublished port, {IP, PrivatePort, PublicPort, Type} per binding (a binding without a single host port is
    left out, as the daemon leaves it out)."""
    out = []
    for key, bindings in (ports or {}).items():
        number, _, proto = key.partition("/")
        if not _DIGITS.fullmatch(number):
            continue
        proto = proto or "tcp"
        if not bindings:
            out.append({"PrivatePort": int(number), "Type": proto})
            continue
        for b in bindings:
            host_port = str(b.get("HostPort") or "")
            if not _DIGITS.fullmatch(host_port):
                continue
            out.append({"IP": b.get("HostIp") or "", "PrivatePort": int(number), "PublicPort": int(host_port),
                        "Type": proto})
    return out


def _join_host_port(host: str, port: str) -> str:
    """Go's net.JoinHostPort: brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _form_group(key: str, first: int, last: int) -> str:
    ip, _, proto = key.rpartition("/")
    group = str(first) if first == last else f"{first}-{last}"
    if ip:
        group = f"{_join_host_port(ip, group)}->{group}"
    return f"{group}/{proto}"


def display_ports(ports: Iterable[Mapping]) -> str:
    """The PORTS column of `ps` (the CLI's DisplayablePorts): `443/tcp, 0.0.0.0:8080->80/tcp`.

    Sorted by container port, address, host port, protocol. Unpublished ports, and ports published on the same
    number, are grouped by address and protocol into ranges (`80-81/tcp`, `0.0.0.0:80-81->80-81/tcp`); a port
    published on another number is listed on its own, after the groups (`0.0.0.0:8000->80/tcp`).
    """
    items = sorted(ports, key=lambda p: (p["PrivatePort"], p.get("IP") or "", p.get("PublicPort") or 0, p["Type"]))
    groups: dict[str, list[int]] = {}  # key → [first, last]; insertion order is the order keys were first seen
    result: list[str] = []
    mappings: list[str] = []
    for p in items:
        current = p["PrivatePort"]
        key = p["Type"]
        ip = p.get("IP") or ""
        if ip:
            public = p.get("PublicPort") or 0
            if public != current:
                mappings.append(f"{_join_host_port(ip, str(public))}->{current}/{p['Type']}")
                continue
            key = f"{ip}/{p['Type']}"
        group = groups.get(key)
        if group is None:
            groups[key] = [current, current]
            continue
        if current == group[1] + 1:
            group[1] = current
            continue
        result.append(_form_group(key, group[0], group[1]))
        groups[key] = [current, current]
    result.extend(_form_group(key, g[0], g[1]) for key, g in groups.items())
    result.extend(mappings)
    return ", ".join(result)


def natural_key(text: str) -> list[tuple]:
    """A sort key for the natural order of Docker's CLI (fvbommel/sortorder.NaturalLess): digit runs compare as
    numbers and come before other characters; other characters compare bytewise."""
    key: list[tuple] = []
    for m in re.finditer(r"[0-9]+|[^0-9]", text):
        chunk = m.group()
        if chunk.isascii() and chunk.isdigit():
            digits = chunk.lstrip("0")
            key.append((0, len(digits), digits, len(chunk) - len(digits)))
        else:
            key.extend((1, b) for b in chunk.encode())
    return key


def port_lines(ports: Mapping[str, list | None] | None) -> list[str]:
    """`barque port C`: each published binding as `80/tcp -> 0.0.0.0:8080`, in natural order."""
    out = [f"{key} -> {_join_host_port(b.get('HostIp') or '', str(b.get('HostPort') or ''))}"
           for key, bindings in (ports or {}).items() for b in bindings or []]
    return sorted(out, key=natural_key)


def lookup_port(ports: Mapping[str, list | None] | None, spec: str, container: str) -> list[str]:
    """`barque port C 80[/tcp]`: the host addresses of that port (`0.0.0.0:8080`), in natural order. Docker's
    errors: InvalidArgument for a port that is not a number, NotFound when nothing is published for it."""
    number, _, proto = spec.partition("/")
    try:
        _parse_uint16(number)
    except PortRangeError as e:
        raise InvalidArgument(f"invalid port ({number}): {e}") from None
    bindings = (ports or {}).get(f"{number}/{proto or 'tcp'}")
    if not bindings:
        raise NotFound(f"No public port '{spec}' published for {container}")
    return sorted((_join_host_port(b.get("HostIp") or "", str(b.get("HostPort") or "")) for b in bindings),
                  key=natural_key)
