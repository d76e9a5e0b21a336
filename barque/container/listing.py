"""Which containers a listing shows (`ps` and `GET /containers/json`): Docker's filters, and the STATUS and PORTS
texts of a row."""

from __future__ import annotations

import time

from barque.errors import BarqueError, InvalidArgument
from barque.filters import label_matches, pattern_matches
from barque.oci.times import human_duration

__all__ = ["parse_ps_filters", "matches", "filter_containers", "status_text", "ports_column", "FILTER_KEYS"]

FILTER_KEYS = frozenset({"status", "name", "label", "ancestor", "id", "exited", "health", "before", "since",
                         "volume", "is-task", "network", "publish", "expose"})
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def status_text(state: dict, now: float | None = None) -> str:
    """Docker's STATUS column."""
    from barque.oci.times import parse_time

    now = now or time.time()
    status = state.get("Status", "created")

    def ago(field: str) -> float:
        t = parse_time(state.get(field) or "")
        return max(0.0, now - t) if t else 0.0

    if status in ("running", "paused"):
        text = "Up " + human_duration(ago("StartedAt"))
        if status == "paused":
            return text + " (Paused)"
        health = (state.get("Health") or {}).get("Status")
        if health:
            text += " (health: starting)" if health == "starting" else f" ({health})"
        return text
    if status == "restarting":
        return f"Restarting ({state.get('ExitCode', 0)}) {human_duration(ago('FinishedAt'))} ago"
    if status == "exited":
        return f"Exited ({state.get('ExitCode', 0)}) {human_duration(ago('FinishedAt'))} ago"
    if status == "dead":
        return "Dead"
    return "Created"


def parse_ps_filters(filters) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep:
            raise InvalidArgument(f"bad format of filter (expected name=value): {f}")
        if key not in FILTER_KEYS:
            raise InvalidArgument(f"invalid filter '{key}'")
        if key == "status" and value not in STATUSES:
            raise InvalidArgument(f"invalid filter 'status={value}'")
        out.setdefault(key, []).append(value)
    return out


def matches(engine, c, flt: dict[str, list[str]]) -> bool:
    state = c.state
    if "status" in flt and state.get("Status") not in flt["status"]:
        return False
    if "name" in flt and not pattern_matches(flt["name"], c.name):
        return False
    if "id" in flt and not any(c.id.startswith(v) for v in flt["id"]):
        return False
    if "exited" in flt and not (state.get("Status") == "exited"
                                and str(state.get("ExitCode")) in flt["exited"]):
        return False
    if "health" in flt:
        h = (state.get("Health") or {}).get("Status") or "none"
        if h not in flt["health"]:
            return False
    if not label_matches(c.record["Config"].get("Labels") or {}, flt.get("label", ())):
        return False
    if "ancestor" in flt:
        ok = False
        for a in flt["ancestor"]:
            try:
                img = engine.images.resolve(a)
            except BarqueError:
                continue
            if str(img.id) == c.record["Image"]:
                ok = True
        if not ok:
            return False
    if "volume" in flt:
        names = {m.get("Name") for m in c.record.get("Mounts") or []} | {
            m.get("Destination") for m in c.record.get("Mounts") or []}
        if not any(v in names for v in flt["volume"]):
            return False
    if "network" in flt and not _on_network(engine, c, flt["network"]):
        return False
    if "publish" in flt or "expose" in flt:
        from barque.network.manage import network_settings

        running = state.get("Status") in ("running", "paused")
        bound = {(int(b["HostPort"]), key.partition("/")[2] or "tcp")
                 for key, binds in network_settings(engine, c, running)["Ports"].items() for b in binds or []}
        exposed = {(int(key.partition("/")[0]), key.partition("/")[2] or "tcp")
                   for key in {**(c.record["Config"].get("ExposedPorts") or {}),
                               **(c.record["HostConfig"].get("PortBindings") or {})}}
        if "publish" in flt and not any(_port_filter(v) & bound for v in flt["publish"]):
            return False
        if "expose" in flt and not any(_port_filter(v) & exposed for v in flt["expose"]):
            return False
    return True


def _port_filter(value: str) -> set[tuple[int, str]]:
    """A `publish=`/`expose=` filter's ports: `80`, `80/udp`, `8000-8080/tcp` (tcp when no protocol is given)."""
    ports, _, proto = value.partition("/")
    lo, _, hi = ports.partition("-")
    try:
        first, last = int(lo), int(hi or lo)
    except ValueError:
        raise InvalidArgument(f"invalid port filter: {value!r}") from None
    if last - first > 65535 or first < 0:
        raise InvalidArgument(f"invalid port filter: {value!r}")
    return {(n, proto or "tcp") for n in range(first, last + 1)}


def _on_network(engine, c, wanted: list[str]) -> bool:
    """`network=NAME|ID`: the container has an endpoint on it (or runs with that predefined network's mode)."""
    from barque.network.ipam import endpoints_of_container

    have = set()
    for ep in endpoints_of_container(engine.db, c.id):
        have |= {ep["network_name"], ep["network_id"]}
    mode = c.record["HostConfig"].get("NetworkMode") or "default"
    if mode in ("host", "none"):
        have.add(mode)
    return any(w in have or any(h.startswith(w) for h in have if len(h) == 64) for w in wanted)


def ports_column(engine, c) -> str:
    """Docker's PORTS: a running container's published and exposed ports (`0.0.0.0:8080->80/tcp, 443/tcp`); a
    stopped one has none, as Docker clears them when the network is released."""
    if c.state.get("Status") not in ("running", "paused"):
        return ""
    from barque.network.manage import network_settings
    from barque.network.portspec import display_ports, port_list

    return display_ports(port_list(network_settings(engine, c, True)["Ports"]))




def filter_containers(engine, flt: dict[str, list[str]], *, all_: bool = False, last: int = -1,
                      among: list | None = None) -> list:
    """The containers a listing shows, newest first: running ones (all with `all_`, a `status` filter or `last`),
    matching every filter; `last` ≥ 0 keeps that many. `among`: the containers to choose from (else the store's)."""
    everything = engine.containers.list() if among is None else among
    if last >= 0 or "status" in flt:
        all_ = True
    chosen = [c for c in everything if (all_ or c.state.get("Status") in ("running", "paused", "restarting"))
              and matches(engine, c, flt)]
    if last >= 0:
        chosen = chosen[:last]
    return chosen
