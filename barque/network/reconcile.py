"""Bring interfaces, rules and IPAM back in line with the containers that exist — after a crash (a killed `run`,
a monitor that died, a host that lost power with /run kept), or whenever `system check --repair` asks.

What counts as stale, all limited to this engine root's own things (links carry the root's tag in their alias):
- a network namespace held for a container that is not running (or no longer exists): taken down like a stop;
- a veth of this root whose endpoint belongs to no running container; a bridge of this root whose network is gone;
- an endpoint (address) or published port of a container that no longer exists.
Then the rules are rebuilt from what is left. Each finding is reported in words; with `repair` it is also fixed.
"""

from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["check", "sweep_stale_namespaces"]

log = logging.getLogger(__name__)


def _running(engine, cid: str) -> bool:
    from barque.errors import NotFound
    from barque.network.sandbox import TRANSIENT_PREFIX, transient_alive

    if cid.startswith(TRANSIENT_PREFIX):
        return transient_alive(cid)

    try:
        c = engine.containers.get(cid)
    except NotFound:
        return False
    return c.refresh().get("Status") in ("running", "paused", "restarting")


def sweep_stale_namespaces(engine) -> list[str]:
    """Containers holding a namespace of barque's while not running: their IDs, after taking them off their
    networks. Call with the network lock held."""
    from barque.network.rules import running_ids
    from barque.network.sandbox import _leave_locked

    from barque.network.sandbox import start_in_progress

    run_root = engine.settings.run_root
    # the guard first, the state after: a start that ends in between has recorded "running" before letting go
    stale = [cid for cid in running_ids(run_root) if not start_in_progress(run_root, cid)
             and not _running(engine, cid)]
    for cid in stale:
        _leave_locked(engine.settings.root, Path(engine.settings.run_root), cid, engine=engine)
    return stale


def check(engine, repair: bool = False) -> list[str]:
    from barque.network.links import aliased, delete_link
    from barque.network.rules import apply_rules, network_lock, root_tag, running_ids

    findings: list[str] = []
    run_root = Path(engine.settings.run_root)
    with network_lock(run_root):
        from barque.network.sandbox import start_in_progress

        held = running_ids(run_root)
        alive = {cid for cid in held if start_in_progress(run_root, cid) or _running(engine, cid)}
        findings += [f"network namespace of container {cid[:12]}, which is not running" for cid in held - alive]
        known = {r["id"] for r in engine.db.query("SELECT id FROM containers")} | alive
        gone = {r["container_id"] for r in engine.db.query("SELECT DISTINCT container_id FROM endpoints")} - known
        findings += [f"addresses held for container {cid[:12]}, which no longer exists" for cid in gone]
        ported = {r["container_id"] for r in engine.db.query("SELECT DISTINCT container_id FROM port_mappings")}
        findings += [f"published ports of container {cid[:12]}, which is not running" for cid in ported - alive]
        tag = f"barque {root_tag(engine.settings.root)} "
        active = {r["id"] for r in engine.db.query("SELECT id, container_id FROM endpoints")
                  if r["container_id"] in alive}
        networks = {n.id for n in engine.networks.list()}
        strays = []
        for name, alias in aliased(tag).items():
            kind, _, ident = alias[len(tag):].partition(" ")
            if kind == "endpoint" and ident not in active:
                findings.append(f"interface {name} of an endpoint no running container has")
                strays.append(name)
            elif kind == "network" and ident not in networks:
                findings.append(f"bridge {name} of a network that no longer exists")
                strays.append(name)
        if repair:
            sweep_stale_namespaces(engine)
            with engine.db.transaction() as conn:
                for cid in gone:
                    conn.execute("DELETE FROM endpoints WHERE container_id = ?", (cid,))
                for cid in ported - alive:
                    conn.execute("DELETE FROM port_mappings WHERE container_id = ?", (cid,))
            for name in strays:
                delete_link(name)
            apply_rules(engine)
    return findings
