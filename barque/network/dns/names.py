"""Which names a container can resolve: the running containers it shares a DNS-enabled network with.

A container sees, on each user-defined bridge network it is on, the running containers of that network by their
name, their network-scoped aliases and their 12-digit short ID, and the aliases of its own `--link`s there. Names
are matched as Docker's embedded server matches them: case aside, without a trailing dot or a search domain of the
host, and `name.network` means `name` on that network only (for `a.b.c`: `a.b.c` anywhere, then `a.b` on network
`c`, then `a` on network `b.c`). The first network (in the order the container joined them) with a match answers.

The data comes straight from barque's metadata database, read-only and fresh for every query: a `run` or a
`network connect` is visible at once, and nothing has to be told about it. A container is running while barque
holds its network namespace (`<run root>/netns/<id>`).
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Peer", "NetworkView", "Directory", "DirectoryUnavailable", "lookup", "reverse", "candidates"]

_NEIGHBOURS = """
SELECT n.name AS network, mine.record AS my_record, e.container_id AS container_id, e.ip AS ip,
       e.record AS record, c.name AS name
FROM endpoints mine
JOIN networks n ON n.id = mine.network_id
JOIN endpoints e ON e.network_id = mine.network_id
JOIN containers c ON c.id = e.container_id
WHERE mine.container_id = ? AND n.driver = 'bridge' AND n.name != 'bridge'
ORDER BY mine.rowid, e.rowid
"""

_ON_DNS_NETWORKS = """
SELECT DISTINCT e.container_id FROM endpoints e JOIN networks n ON n.id = e.network_id
WHERE n.driver = 'bridge' AND n.name != 'bridge'
"""


class DirectoryUnavailable(Exception):
    """The database could not be read just now (the query is answered SERVFAIL, so the client retries)."""


@dataclass(frozen=True)
class Peer:
    container_id: str
    name: str
    ip: str
    aliases: tuple[str, ...] = ()

    @property
    def names(self) -> set[str]:
        return {self.name.lower(), self.container_id[:12].lower(), *(a.lower() for a in self.aliases)}


@dataclass
class NetworkView:
    """One network as the asking container sees it."""

    name: str
    peers: list[Peer] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)   # the asker's link alias → the linked container's name

    def match(self, name: str) -> list[Peer]:
        found = [p for p in self.peers if name in p.names]
        if not found and name in self.links:
            target = self.links[name]
            found = [p for p in self.peers if p.name.lower() == target or p.container_id[:12] == target]
        return found


def candidates(qname: str, search: tuple[str, ...] = ()) -> list[tuple[str, str | None]]:
    """(name, network or None for any) pairs to try, in Docker's order, for `qname` (lower case, no trailing dot)."""
    bases = [qname]
    for domain in search:
        domain = domain.lower().strip(".")
        if domain and qname.endswith("." + domain) and len(qname) > len(domain) + 1:
            bases.append(qname[:-len(domain) - 1])
    out: list[tuple[str, str | None]] = []
    for base in bases:
        out.append((base, None))
        i = len(base)
        while (i := base.rfind(".", 0, i)) > 0:
            out.append((base[:i], base[i + 1:]))
    return out


def lookup(qname: str, networks: list[NetworkView], search: tuple[str, ...] = ()) -> list[Peer] | None:
    """The containers `qname` names for an asker on `networks`; None when it names none of them."""
    for name, network in candidates(qname, search):
        if not name:
            continue
        for view in networks:
            if network is not None and view.name.lower() != network:
                continue
            found = view.match(name)
            if found:
                return found
    return None


def reverse(ip: str, networks: list[NetworkView]) -> str | None:
    """The name Docker gives a container's address in a PTR answer: `name.network`."""
    for view in networks:
        for p in view.peers:
            if p.ip == ip:
                return f"{p.name}.{view.name}"
    return None


def _links(record: dict) -> dict[str, str]:
    out = {}
    for spec in record.get("Links") or []:
        if not isinstance(spec, str):
            continue
        name, _, alias = spec.partition(":")
        name = name.strip("/").lower()
        alias = alias.rsplit("/", 1)[-1].lower() or name
        if name:
            out[alias] = name
    return out


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


class Directory:
    """The metadata database, read-only, as the DNS server needs it."""

    def __init__(self, db_path: Path, run_root: Path) -> None:
        self.db_path = Path(db_path)
        self.run_root = Path(run_root)
        self._conn: sqlite3.Connection | None = None

    def running(self, container_id: str) -> bool:
        return os.path.exists(self.run_root / "netns" / container_id)

    def _query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        try:
            if self._conn is None:
                path = str(self.db_path).replace("%", "%25").replace("?", "%3f").replace("#", "%23")
                self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5,
                                             isolation_level=None, check_same_thread=False)
                self._conn.row_factory = sqlite3.Row
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            self.close()  # reopened next time: the file may have been replaced
            raise DirectoryUnavailable(f"cannot read {self.db_path}: {e}") from e

    def networks_of(self, container_id: str) -> list[NetworkView]:
        """The DNS-enabled networks of `container_id` with their running containers, in the order it joined them."""
        views: dict[str, NetworkView] = {}
        for row in self._query(_NEIGHBOURS, (container_id,)):
            view = views.get(row["network"])
            if view is None:
                view = views[row["network"]] = NetworkView(row["network"], links=_links(_json(row["my_record"])))
            if row["container_id"] != container_id and not self.running(row["container_id"]):
                continue
            aliases = _json(row["record"]).get("Aliases") or []
            view.peers.append(Peer(row["container_id"], str(row["name"]).lstrip("/"), row["ip"],
                                   tuple(a for a in aliases if isinstance(a, str))))
        return list(views.values())

    def dns_containers(self) -> list[str]:
        """Running containers on a DNS-enabled network: the ones a (re)started server serves."""
        return [r[0] for r in self._query(_ON_DNS_NETWORKS) if self.running(r[0])]

    def container_dns(self, container_id: str) -> list[str] | None:
        """The container's own resolvers (`--dns`, HostConfig.Dns in its record): how a restarted server knows them."""
        rows = self._query("SELECT record FROM containers WHERE id = ?", (container_id,))
        host = _json(rows[0]["record"]).get("HostConfig") if rows else None
        dns = host.get("Dns") if isinstance(host, dict) else None
        return [d for d in dns if isinstance(d, str)] if isinstance(dns, list) else None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None
