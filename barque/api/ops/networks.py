"""Network operations of the API (they change interfaces and rules, so they run in a zygote child): create,
remove, connect, disconnect, prune — barque.network.manage's verbs, with dockerd's statuses for its refusals."""

from __future__ import annotations

from contextlib import contextmanager

from barque.api.errors import ApiError
from barque.api.zygote import op
from barque.errors import Conflict

#: refusals dockerd answers 403 Forbidden (errdefs.Forbidden), not 409: predefined networks, a second host/null
#: network, an overlapping pool, a network that still has endpoints, a container already on the network, an address
#: someone else has
_FORBIDDEN = ("operation is not permitted on predefined", "is a pre-defined network and cannot be removed",
              "only one instance of", "Pool overlaps with other one", "has active endpoints",
              "already exists in network", "Address already in use")
#: and 503 (libnetwork's NoService): a network whose addresses are all taken
_UNAVAILABLE = ("no available IPv4 addresses",)


@contextmanager
def _docker_statuses():
    try:
        yield
    except Conflict as e:
        if any(text in e.message for text in _FORBIDDEN):
            raise ApiError(403, e.message) from None
        if any(text in e.message for text in _UNAVAILABLE):
            raise ApiError(503, e.message) from None
        raise


@op("network.create")
def create(engine, args, chan):
    from barque.network.manage import create_network

    with _docker_statuses():
        net = create_network(engine, args["name"], driver=args.get("driver") or "bridge",
                             subnet=args.get("subnet"), gateway=args.get("gateway"), ip_range=args.get("ip_range"),
                             internal=bool(args.get("internal")), attachable=bool(args.get("attachable")),
                             labels=args.get("labels") or {}, options=args.get("options") or {},
                             check_duplicate=True, aux_addresses=args.get("aux_addresses") or None,
                             ipam_options=args.get("ipam_options"))
    return {"Id": net.id, "Warning": ""}


@op("network.remove")
def remove(engine, args, chan):
    from barque.network.manage import remove_network

    with _docker_statuses():
        remove_network(engine, args["id"])
    return None


@op("network.connect")
def connect(engine, args, chan):
    from barque.network.manage import connect as do_connect

    with _docker_statuses():
        do_connect(engine, args["id"], args["container"], aliases=args.get("aliases") or None,
                   ip=args.get("ip") or None, links=args.get("links") or None, mac=args.get("mac") or None,
                   link_local=args.get("link_local") or None, driver_opts=args.get("driver_opts") or None)
    return None


@op("network.disconnect")
def disconnect(engine, args, chan):
    from barque.network.manage import disconnect as do_disconnect

    with _docker_statuses():
        do_disconnect(engine, args["id"], args["container"], force=bool(args.get("force")))
    return None


@op("network.prune")
def prune(engine, args, chan):
    from barque.container.prune import parse_prune_filters
    from barque.network.listing import prune_veto
    from barque.network.manage import prune_networks

    return {"NetworksDeleted": prune_networks(engine, keep=prune_veto(parse_prune_filters(args.get("filters"))))}
