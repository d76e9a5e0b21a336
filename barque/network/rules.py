"""barque's firewall rules as a function of what is recorded: every bridge network, the published ports of running
containers, and the ports links open on icc-off networks — rebuilt and applied atomically (see nft.py) under the
network lock, so two barque processes changing networks at once apply in turn, each from the latest state."""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["network_lock", "apply_rules", "affects_rules", "netns_path", "running_ids", "root_tag", "bridge_alias", "veth_alias"]


@contextmanager
def network_lock(run_root: Path) -> Iterator[None]:
    """Serialises changes to interfaces and rules of one run root (held briefly: no network I/O inside)."""
    run_root.mkdir(parents=True, exist_ok=True, mode=0o711)
    fd = os.open(run_root / "network.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def netns_path(run_root: Path, cid: str) -> Path:
    return Path(f"{run_root}/netns/{cid}")  # one parse (listings ask once per container)


def running_ids(run_root: Path) -> set[str]:
    """Containers whose network namespace barque holds: the ones running on a barque network."""
    try:
        return {p.name for p in (Path(run_root) / "netns").iterdir()}
    except FileNotFoundError:
        return set()


def _link_rules(db, networks: dict, running: set[str]) -> list:
    """Each running container's links on an icc-off network: its address may reach the linked container's exposed
    ports (and have the replies)."""
    from barque.network.nft import LinkRule

    if not running:
        return []
    marks = ",".join("?" * len(running))
    eps = db.query(f"SELECT network_id, container_id, ip FROM endpoints WHERE container_id IN ({marks})",
                   tuple(running))
    ip_of = {(r["network_id"], r["container_id"]): r["ip"] for r in eps}
    out = []
    for r in db.query(f"SELECT id, record FROM containers WHERE id IN ({marks})", tuple(running)):
        record = json.loads(r["record"])
        for link in (record.get("HostConfig") or {}).get("Links") or []:
            target_id = (record.get("_barque") or {}).get("links", {}).get(link)
            if not target_id:
                continue
            for nid, net in networks.items():
                if net.icc or (nid, r["id"]) not in ip_of or (nid, target_id) not in ip_of:
                    continue
                target = db.query("SELECT record FROM containers WHERE id = ?", (target_id,))
                if not target:
                    continue
                exposed = (json.loads(target[0]["record"]).get("Config") or {}).get("ExposedPorts") or {}
                for port in exposed:
                    number, _, proto = port.partition("/")
                    if not number.isdigit():
                        continue  # not one port (a range sent through the API): nothing a rule could name
                    out.append(LinkRule(net.bridge, ip_of[(nid, r["id"])], ip_of[(nid, target_id)], proto or "tcp",
                                        int(number)))
    return out


def _build(engine, without: str | None = None) -> dict:
    """The ruleset for what is recorded — as if the container `without` were not running, when given."""
    from barque.network.nft import Mapping, ruleset

    nets = {n.id: n for n in engine.networks.list() if n.is_bridge}
    running = running_ids(engine.settings.run_root) - {without}
    mappings = [Mapping(r["proto"], r["host_ip"], r["host_port"], r["container_ip"], r["container_port"])
                for r in engine.db.query("SELECT * FROM port_mappings ORDER BY rowid") if r["container_id"] != without]
    return ruleset(list(nets.values()), mappings, _link_rules(engine.db, nets, running))


def affects_rules(engine, cid: str) -> bool:
    """Whether the running container `cid` makes any difference to the rules (published ports, link rules). One
    that does not can start and stop without an `nft` run (20 ms): every other change applies the rules at once,
    so the kernel already holds them."""
    return _build(engine) != _build(engine, without=cid)


def apply_rules(engine) -> None:
    """Rebuild and apply barque's rules from the database (call with the network lock held)."""
    from barque.network.nft import apply

    apply(_build(engine))


def root_tag(root) -> str:
    """A short tag of the engine root, in the aliases of the links it makes: a repair touches only its own root's
    links, even where two roots share a namespace (and barque0)."""
    import hashlib

    return hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:8]


def bridge_alias(engine, net) -> str:
    return f"barque {root_tag(engine.settings.root)} network {net.id}"


def veth_alias(root, endpoint_id: str) -> str:
    return f"barque {root_tag(root)} endpoint {endpoint_id}"
