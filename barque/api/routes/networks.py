"""Networks: list (with dockerd's filters), inspect, create, remove, connect, disconnect, prune.

Listing and inspecting read the store in a thread; everything that changes a network (bridges, veths, rules) runs
in a zygote child (barque/api/ops/networks.py). Bodies are checked for type as dockerd decodes them (400 naming the
field), and what barque's bridge networks cannot be (IPv6, several subnets, another IPAM driver) is refused with a
message that says so. Names are unique whatever `CheckDuplicate` says (as dockerd 25 made them): a second network of
one name is refused with dockerd's 409.
"""

from __future__ import annotations

from aiohttp import web

from barque.api.app import json_body, json_response, query_bool, state_of
from barque.api.errors import ApiError, BadParameter
from barque.api.filters import check_keys, parse_filters
from barque.api.schema import _BOOL, _DICT, _LIST, _STR, check_fields, go_type, string_map

CREATE = {"Name": _STR, "CheckDuplicate": _BOOL, "Driver": _STR, "Scope": _STR, "Internal": _BOOL,
          "Attachable": _BOOL, "Ingress": _BOOL, "ConfigOnly": _BOOL, "ConfigFrom": _DICT, "IPAM": _DICT,
          "EnableIPv6": _BOOL, "Options": _DICT, "Labels": _DICT}
IPAM = {"Driver": _STR, "Config": _LIST, "Options": _DICT}
IPAM_POOL = {"Subnet": _STR, "IPRange": _STR, "Gateway": _STR, "AuxiliaryAddresses": _DICT}
CONNECT = {"Container": _STR, "EndpointConfig": _DICT}
ENDPOINT = {"Aliases": _LIST, "IPAMConfig": _DICT, "Links": _LIST, "NetworkID": _STR, "DriverOpts": _DICT,
            "MacAddress": _STR}
DISCONNECT = {"Container": _STR, "Force": _BOOL}


async def _body(request: web.Request, struct: str, table: dict) -> dict:
    """The request's JSON body as dockerd decodes it into `types.{struct}`: an object (null is an empty one) whose
    known fields have their types."""
    body = await json_body(request, required=True)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BadParameter(f"json: cannot unmarshal {go_type(body)} into Go value of type types.{struct}")
    check_fields(body, table, struct)
    return body


def _container(body: dict) -> str:
    container = body.get("Container") or ""
    if not container:
        raise BadParameter('invalid name or ID supplied: ""')
    return container


# ---- list and inspect -----------------------------------------------------------------------------------------

def _summary(engine, net) -> dict:
    """A network of the listing: Docker (API ≥ 1.28) leaves Containers empty there."""
    return net.view()


def _listing(engine, flt: dict[str, list[str]]) -> list[dict]:
    from barque.network.listing import select_networks

    return [_summary(engine, n) for n in select_networks(engine, engine.networks.list(), flt)]


async def list_networks(request: web.Request) -> web.StreamResponse:
    from barque.errors import InvalidArgument
    from barque.network.listing import LS_FILTERS

    flt = parse_filters(request.query.get("filters"))
    check_keys(flt, set(LS_FILTERS))
    try:
        return json_response(await state_of(request).read(_listing, flt))
    except InvalidArgument as e:
        raise BadParameter(e.message) from None


def _inspect(engine, ref: str) -> dict:
    from barque.network.manage import inspect_network

    return inspect_network(engine, ref)


async def inspect(request: web.Request) -> web.StreamResponse:
    ref = request.match_info["id"]
    scope = request.query.get("scope") or ""
    if scope and scope != "local":  # barque's networks are all local: none is found in swarm or global scope
        raise ApiError(404, f"network {ref} not found")
    query_bool(request, "verbose")  # verbose adds swarm services' details: a local network has none
    return json_response(await state_of(request).read(_inspect, ref))


# ---- create and remove ----------------------------------------------------------------------------------------

def _ipam(ipam: dict | None) -> tuple[str | None, str | None, str | None, dict | None, dict | None]:
    """IPAM's one IPv4 pool (Subnet, Gateway, IPRange, AuxiliaryAddresses) — all a barque bridge network has — and
    IPAM's Options (None when not given: inspect shows null, as dockerd does)."""
    if not ipam:
        return None, None, None, None, None
    check_fields(ipam, IPAM, "IPAM")
    options = string_map(ipam.get("Options"), "IPAM.Options")
    driver = ipam.get("Driver") or "default"
    if driver != "default":
        raise ApiError(404, f'plugin "{driver}" not found')
    pools = ipam.get("Config") or []
    for pool in pools:
        if not isinstance(pool, dict):
            raise BadParameter("json: cannot unmarshal a non-object into Go struct field IPAM.Config of type "
                               "network.IPAMConfig")
        check_fields(pool, IPAM_POOL, "IPAMConfig")
        string_map(pool.get("AuxiliaryAddresses"), "IPAMConfig.AuxiliaryAddresses")
    v4 = [p for p in pools if ":" not in (p.get("Subnet") or "")]
    if len(v4) < len(pools):
        raise BadParameter("IPv6 networks are not supported by barque")
    if len(v4) > 1:
        raise BadParameter("barque networks have one IPv4 subnet: give one IPAM Config")
    if not v4:
        return None, None, None, None, options
    p = v4[0]
    if not p.get("Subnet") and (p.get("Gateway") or p.get("IPRange")):
        raise BadParameter("every ip-range or gateway must have a corresponding subnet")
    return (p.get("Subnet") or None, p.get("Gateway") or None, p.get("IPRange") or None,
            p.get("AuxiliaryAddresses") or None, options)


async def create(request: web.Request) -> web.StreamResponse:
    body = await _body(request, "NetworkCreateRequest", CREATE)
    name = body.get("Name") or ""
    if not name:
        raise BadParameter("network name is required")
    if body.get("EnableIPv6"):
        raise BadParameter("IPv6 networks are not supported by barque")
    if body.get("Scope") not in (None, "", "local"):
        raise BadParameter(f"scope {body['Scope']!r} is not supported: barque's networks are local")
    for flag in ("Ingress", "ConfigOnly"):
        if body.get(flag):
            raise BadParameter(f"{flag} networks are a swarm feature, which barque does not have")
    if (body.get("ConfigFrom") or {}).get("Network"):
        raise BadParameter("ConfigFrom networks are a swarm feature, which barque does not have")
    subnet, gateway, ip_range, aux, ipam_options = _ipam(body.get("IPAM"))
    args = {"name": name, "driver": body.get("Driver") or "bridge", "subnet": subnet, "gateway": gateway,
            "ip_range": ip_range, "aux_addresses": aux, "ipam_options": ipam_options,
            "internal": bool(body.get("Internal")), "attachable": bool(body.get("Attachable")),
            "labels": string_map(body.get("Labels"), "NetworkCreateRequest.Labels"),
            "options": string_map(body.get("Options"), "NetworkCreateRequest.Options")}
    return json_response(await state_of(request).op("network.create", args), status=201)


async def remove(request: web.Request) -> web.StreamResponse:
    await state_of(request).op("network.remove", {"id": request.match_info["id"]})
    return web.Response(status=204)


# ---- connect and disconnect -----------------------------------------------------------------------------------

async def connect(request: web.Request) -> web.StreamResponse:
    body = await _body(request, "NetworkConnect", CONNECT)
    container = _container(body)
    ep = body.get("EndpointConfig") or {}
    check_fields(ep, ENDPOINT, "EndpointSettings")
    ipam = ep.get("IPAMConfig") or {}
    if ipam.get("IPv6Address"):
        raise BadParameter("IPv6 addresses are not supported by barque's networks")
    for key in ("Aliases", "Links"):
        if not all(isinstance(x, str) for x in ep.get(key) or []):
            raise BadParameter(f"json: cannot unmarshal a non-string into Go struct field EndpointSettings.{key} "
                               "of type string")
    ip = ipam.get("IPv4Address") or None
    if ip is not None and not isinstance(ip, str):
        raise BadParameter("json: cannot unmarshal a non-string into Go struct field EndpointIPAMConfig.IPv4Address "
                           "of type string")
    link_local = ipam.get("LinkLocalIPs")
    if link_local is not None and (not isinstance(link_local, list)
                                   or not all(isinstance(x, str) for x in link_local)):
        raise BadParameter(f"json: cannot unmarshal {go_type(link_local)} into Go struct field "
                           "EndpointIPAMConfig.LinkLocalIPs of type []string")
    await state_of(request).op("network.connect", {
        "id": request.match_info["id"], "container": container, "aliases": ep.get("Aliases") or None, "ip": ip,
        "links": ep.get("Links") or None, "mac": ep.get("MacAddress") or None, "link_local": link_local or None,
        "driver_opts": string_map(ep.get("DriverOpts"), "EndpointSettings.DriverOpts") or None})
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.StreamResponse:
    body = await _body(request, "NetworkDisconnect", DISCONNECT)
    await state_of(request).op("network.disconnect", {"id": request.match_info["id"], "container": _container(body),
                                                      "force": bool(body.get("Force"))})
    return web.Response(status=200)


# ---- prune ------------------------------------------------------------------------------------------------------

async def prune(request: web.Request) -> web.StreamResponse:
    from barque.api.filters import as_cli_filters
    from barque.network.listing import PRUNE_FILTERS

    flt = parse_filters(request.query.get("filters"))
    check_keys(flt, set(PRUNE_FILTERS))
    return json_response(await state_of(request).op("network.prune", {"filters": as_cli_filters(flt)}))


ROUTES = [
    ("GET", "/networks", list_networks),
    ("GET", "/networks/{id}", inspect),
    ("POST", "/networks/create", create),
    ("DELETE", "/networks/{id}", remove),
    ("POST", "/networks/{id}/connect", connect),
    ("POST", "/networks/{id}/disconnect", disconnect),
    ("POST", "/networks/prune", prune),
]
