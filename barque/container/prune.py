"""`container prune` (and the containers part of `system prune`): every container that is not running, paused or
restarting, narrowed by Docker's prune filters `until=` and `label=` / `label!=`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from barque.errors import BarqueError, InvalidArgument

__all__ = ["PruneReport", "parse_prune_filters", "prune_containers"]


@dataclass
class PruneReport:
    deleted: list[str] = field(default_factory=list)
    reclaimed: int = 0
    errors: list[str] = field(default_factory=list)


def parse_prune_filters(values) -> dict:
    """`until=<timestamp|duration>`, `label=k[=v]`, `label!=k[=v]`, as dockerd accepts them for a prune."""
    out: dict = {"until": None, "label": [], "label!": []}
    for f in values or ():
        k, sep, v = f.partition("=")
        if not sep:
            raise InvalidArgument(f"invalid filter '{f}': expected key=value")
        if k == "until":
            from barque.container.logs import parse_since

            out["until"] = parse_since(v, time.time())
        elif k in ("label", "label!"):
            out[k].append(v)
        else:
            raise InvalidArgument(f"invalid filter '{k}'")
    return out


def prune_containers(engine, filters: dict | None = None) -> PruneReport:
    from barque.container.remove import remove
    from barque.filters import label_matches
    from barque.oci.times import parse_time

    filters = filters or {}
    until = filters.get("until")
    report = PruneReport()
    for c in engine.containers.list():
        if c.state.get("Status") in ("running", "paused", "restarting"):
            continue
        if until is not None and (parse_time(c.record["Created"]) or 0) >= until:
            continue
        labels = c.record["Config"].get("Labels") or {}
        if not label_matches(labels, filters.get("label") or ()):
            continue
        if any(label_matches(labels, [spec]) for spec in filters.get("label!") or ()):
            continue
        try:
            size = engine.snapshotter.usage(c.private["snapshot"]).size
        except Exception:  # noqa: BLE001 - the size is a report only
            size = 0
        try:
            remove(engine, c)
        except BarqueError as e:
            report.errors.append(e.message)
            continue
        report.deleted.append(c.id)
        report.reclaimed += size
    return report
