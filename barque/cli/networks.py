"""Network commands: network create, ls, inspect, rm, prune, connect, disconnect — and `port` — with Docker's flags,
output and exit statuses. The engine side is barque.network.manage; here flags are read and answers rendered.

Docker's CLI checks a few things itself before asking the daemon (the pairing of --subnet with --gateway and
--ip-range, label and option syntax, `port`'s port number); the rest is the engine's to refuse.
"""

from __future__ import annotations

import ipaddress
import json
import re
import sys

import click

from barque.cli.format import print_deleted, print_listing
from barque.cli.main import CONTEXT, engine_from
from barque.errors import InvalidArgument, NotFound
from barque.network.listing import LS_FILTERS, select_networks as _select


# ---- flag helpers ---------------------------------------------------------------------------------------------------

def _key_values(items, flag: str, ctx, labels: bool) -> dict[str, str]:
    """`k=v` flags into a map; a bare `k` means an empty value; a label needs a name (Docker's ValidateLabel)."""
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if labels and not key.strip():
            raise click.UsageError(f'invalid argument "{item}" for "{flag}" flag: invalid label \'{item}\': '
                                   "empty name", ctx)
        out[key] = value
    return out


def _filters(items, allowed, ctx) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.UsageError(f'invalid argument "{item}" for "-f, --filter" flag: bad format of filter '
                                   "(expected name=value)", ctx)
        key = key.strip().lower()
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")
        out.setdefault(key, []).append(value)
    return out


def _contains(subnet: str, data: str) -> bool:
    """Docker's CLI subnetMatches: whether an address (or a CIDR's address) lies in `subnet`."""
    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError as e:
        raise InvalidArgument(f"invalid subnet: invalid CIDR address: {subnet}") from e
    try:
        addr = ipaddress.ip_interface(data).ip if "/" in data else ipaddress.ip_address(data)
    except ValueError:
        if "/" in data:
            raise InvalidArgument(f"invalid CIDR address: {data}") from None
        return False
    return addr in net


def _ipam(subnets, gateways, ip_ranges, aux=None) -> tuple[str | None, str | None, str | None]:
    """--subnet/--gateway/--ip-range (and --aux-address's addresses) checked as Docker's CLI checks them (its
    messages), then narrowed to the one IPv4 subnet barque's networks have."""
    if len(subnets) < len(ip_ranges) or len(subnets) < len(gateways):
        raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
    for i, s in enumerate(subnets):
        for other in subnets[:i]:
            if _contains(s, other.split("/")[0]) or _contains(other, s.split("/")[0]):
                raise InvalidArgument("multiple overlapping subnet configuration is not supported")
    for what, values in (("range", ip_ranges), ("gateway", gateways)):
        taken: dict[str, str] = {}
        for v in values:
            matched = [s for s in subnets if _contains(s, v)]
            if not matched:
                raise InvalidArgument(f"no matching subnet for {what} {v}")
            for s in matched:
                if s in taken:
                    kind = "ranges" if what == "range" else "gateways"
                    where = "on" if what == "range" else "for"
                    raise InvalidArgument(f"cannot configure multiple {kind} ({v}, {taken[s]}) {where} the same "
                                          f"subnet ({s})")
                taken[s] = v
    for key, v in (aux or {}).items():
        if not any(_contains(s, v) for s in subnets):
            raise InvalidArgument(f"no matching subnet for aux-address {v}")
    if len(subnets) > 1:
        raise InvalidArgument("barque networks have one IPv4 subnet: give --subnet once")
    return (subnets[0] if subnets else None, gateways[0] if gateways else None, ip_ranges[0] if ip_ranges else None)


def _go_time(created: str) -> str:
    """Docker's CreatedAt of a listing (Go's time.String): `2024-01-02 03:04:05.123456789 +0000 UTC`."""
    m = re.match(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.(\d+))?Z$", created or "")
    if not m:
        return created or ""
    frac = (m.group(3) or "").rstrip("0")
    return f"{m.group(1)} {m.group(2)}{'.' + frac if frac else ''} +0000 UTC"


# ---- commands -------------------------------------------------------------------------------------------------------

@click.command("create", context_settings=CONTEXT)
@click.argument("name")
@click.option("-d", "--driver", default="bridge", show_default=True, help="Driver to manage the Network.")
@click.option("--subnet", "subnets", multiple=True, help="Subnet in CIDR format that represents a network segment.")
@click.option("--gateway", "gateways", multiple=True, help="IPv4 Gateway for the master subnet.")
@click.option("--ip-range", "ip_ranges", multiple=True, help="Allocate container ip from a sub-range.")
@click.option("--internal", is_flag=True, help="Restrict external access to the network.")
@click.option("--attachable", is_flag=True, help="Enable manual container attachment.")
@click.option("--label", "labels", multiple=True, help="Set metadata on a network.")
@click.option("-o", "--opt", "opts", multiple=True, help="Set driver specific options.")
@click.option("--ipam-driver", default="default", help="IP Address Management Driver.")
@click.option("--ipam-opt", "ipam_opts", multiple=True, help="Set IPAM driver specific options.")
@click.option("--aux-address", "aux_addresses", multiple=True,
              help="Auxiliary IPv4 addresses used by Network driver (name=address; never given to a container).")
@click.option("--ipv6", is_flag=True, help="Enable IPv6 networking (not supported by barque).")
@click.pass_context
def create(ctx, name, driver, subnets, gateways, ip_ranges, internal, attachable, labels, opts, ipam_driver,
           ipam_opts, aux_addresses, ipv6):
    """Create a network. Its name may be any text (Docker's may): the bridge is named after its ID."""
    from barque.network.manage import create_network

    label_map = _key_values(labels, "--label", ctx, labels=True)
    options = _key_values(opts, "-o, --opt", ctx, labels=False)
    ipam_options = _key_values(ipam_opts, "--ipam-opt", ctx, labels=False)
    aux = _key_values(aux_addresses, "--aux-address", ctx, labels=False)
    subnet, gateway, ip_range = _ipam(list(subnets), list(gateways), list(ip_ranges), aux)
    if ipv6:
        raise InvalidArgument("IPv6 networks are not supported by barque")
    if ipam_driver != "default":
        raise NotFound(f"plugin \"{ipam_driver}\" not found")
    net = create_network(engine_from(ctx), name, driver=driver, subnet=subnet, gateway=gateway, ip_range=ip_range,
                         internal=internal, attachable=attachable, labels=label_map, options=options,
                         aux_addresses=aux, ipam_options=ipam_options)
    click.echo(net.id)


@click.command("ls", context_settings=CONTEXT)
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'driver=bridge').")
@click.option("--format", "fmt", default=None,
              help="Format output using a custom template: 'table', 'json' or a Go template.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output.")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs.")
@click.pass_context
def ls(ctx, filters, fmt, no_trunc, quiet):
    """List networks."""
    from barque.network.portspec import natural_key

    engine = engine_from(ctx)
    parsed = _filters(filters, LS_FILTERS, ctx)
    nets = sorted(_select(engine, engine.networks.list(), parsed), key=lambda n: natural_key(n.name))
    if quiet:
        for n in nets:
            click.echo(n.id if no_trunc else n.id[:12])
        return
    rows = [{
        "CreatedAt": _go_time(n.created),
        "Driver": n.driver,
        "ID": n.id if no_trunc else n.id[:12],
        "IPv4": "true",
        "IPv6": "false",
        "Internal": "true" if n.internal else "false",
        "Labels": ",".join(f"{k}={v}" for k, v in sorted((n.record.get("Labels") or {}).items())),
        "Name": n.name,
        "Scope": "local",
    } for n in nets]
    print_listing(rows, fmt, [("NETWORK ID", "ID"), ("NAME", "Name"), ("DRIVER", "Driver"), ("SCOPE", "Scope")])


def _no_such(e: NotFound, ref: str) -> str:
    """Docker's CLI words an unknown network `No such network: x`."""
    return f"No such network: {ref}" if e.message == f"network {ref} not found" else e.message


@click.command("inspect", context_settings=CONTEXT)
@click.argument("networks", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", default=None, help="Format output using a custom template.")
@click.option("-v", "--verbose", is_flag=True, help="Verbose output for diagnostics.")
@click.pass_context
def inspect(ctx, networks, fmt, verbose):
    """Display detailed information on one or more networks."""
    from barque.cli.errors import ExitStatus
    from barque.cli.format import render_template
    from barque.network.manage import inspect_network

    engine = engine_from(ctx)
    results, errors = [], []
    for ref in networks:
        try:
            results.append(inspect_network(engine, ref))
        except NotFound as e:
            errors.append(_no_such(e, ref))
    if fmt:
        for r in results:
            click.echo(json.dumps(r) if fmt == "json" else render_template(fmt, r))
    else:
        click.echo(json.dumps(results, indent=4))
    for message in errors:
        click.echo(f"Error: {message}", err=True)
    if errors:
        raise ExitStatus(1)


@click.command("rm", context_settings=CONTEXT)
@click.argument("networks", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Do not error if the network does not exist.")
@click.pass_context
def rm(ctx, networks, force):
    """Remove one or more networks. Each is named when removed; a failure is reported and the others still go."""
    from barque.cli.errors import ExitStatus
    from barque.errors import BarqueError
    from barque.network.manage import remove_network

    engine = engine_from(ctx)
    status = 0
    for ref in networks:
        try:
            remove_network(engine, ref)
        except NotFound as e:
            if force and e.message == f"network {ref} not found":
                continue
            click.echo(f"Error: {_no_such(e, ref)}", err=True)
            status = 1
            continue
        except BarqueError as e:
            click.echo(f"Error: {e.message}", err=True)
            status = 1
            continue
        click.echo(ref)
    if status:
        raise ExitStatus(status)


def _confirm(message: str) -> bool:
    """Docker's prompt: the question, then `[y/N] `; only y or Y says yes (end of input says no)."""
    click.echo(f"{message} [y/N] ", nl=False)
    line = sys.stdin.readline()
    if not line:
        click.echo("")
    return line.strip().lower() == "y"


@click.command("prune", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=<timestamp>').")
@click.pass_context
def prune(ctx, force, filters):
    """Remove all unused networks."""
    from barque.container.prune import parse_prune_filters
    from barque.network.listing import prune_veto
    from barque.network.manage import prune_networks

    parsed = parse_prune_filters(filters)
    if not force and not _confirm("WARNING! This will remove all custom networks not used by at least one "
                                  "container.\nAre you sure you want to continue?"):
        return
    print_deleted("Deleted Networks", prune_networks(engine_from(ctx), keep=prune_veto(parsed)))


@click.command("connect", context_settings=CONTEXT)
@click.argument("network")
@click.argument("container")
@click.option("--alias", "aliases", multiple=True, help="Add network-scoped alias for the container.")
@click.option("--ip", default=None, help="IPv4 address (e.g., 172.30.100.104).")
@click.option("--link", "links", multiple=True, help="Add link to another container.")
@click.option("--link-local-ip", "link_local", multiple=True, help="Add a link-local address for the container.")
@click.option("--driver-opt", "driver_opts", multiple=True, help="driver options for the network")
@click.pass_context
def connect(ctx, network, container, aliases, ip, links, link_local, driver_opts):
    """Connect a container to a network."""
    from barque.network.manage import connect as do_connect

    for link in links:
        if link == "" or len(link.split(":")) > 2:
            why = "empty string specified for links" if link == "" else f"bad format for links: {link}"
            raise click.UsageError(f'invalid argument "{link}" for "--link" flag: {why}', ctx)
    do_connect(engine_from(ctx), network, container, aliases=list(aliases) or None, ip=ip or None,
               links=list(links) or None, link_local=list(link_local) or None,
               driver_opts=_driver_opts(driver_opts) or None)


def _driver_opts(items) -> dict[str, str]:
    """--driver-opt k=v (Docker's CLI wants the `=`)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgument("invalid key value pair format in driver options")
        out[key.strip()] = value.strip()
    return out


@click.command("disconnect", context_settings=CONTEXT)
@click.argument("network")
@click.argument("container")
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network.")
@click.pass_context
def disconnect(ctx, network, container, force):
    """Disconnect a container from a network."""
    from barque.network.manage import disconnect as do_disconnect

    do_disconnect(engine_from(ctx), network, container, force=force)


@click.command("port", context_settings=CONTEXT)
@click.argument("container")
@click.argument("private_port", required=False, metavar="[PRIVATE_PORT[/PROTO]]")
@click.pass_context
def port(ctx, container, private_port):
    """List port mappings or a specific mapping for the container."""
    from barque.network.manage import network_settings
    from barque.network.portspec import lookup_port, port_lines

    engine = engine_from(ctx)
    c = engine.containers.get(container)
    running = c.refresh().get("Status") in ("running", "paused")
    ports = network_settings(engine, c, running)["Ports"] if running else {}
    lines = lookup_port(ports, private_port, container) if private_port else port_lines(ports)
    for line in lines:
        click.echo(line)
