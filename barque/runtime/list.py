"""`list`: every container under the root, as runc's table or JSON."""

from __future__ import annotations

from barque.errors import NotFound
from barque.runtime.state import StateStore

__all__ = ["list_containers", "render_table"]


def list_containers(store: StateStore) -> list[dict]:
    out = []
    for cid in store.ids():
        try:
            out.append(store.load(cid).oci_state())
        except NotFound:
            continue  # deleted meanwhile
    return out


def render_table(states: list[dict]) -> str:
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s.get("owner") or "root")
             for s in states]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows) + "\n"
