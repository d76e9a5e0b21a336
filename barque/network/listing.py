"""Choosing networks as dockerd does: the filters of `network ls` (GET /networks) and the veto of a prune's filters
(POST /networks/prune). The CLI and the Engine API both call these; the messages are dockerd's.
"""

from __future__ import annotations

from barque.errors import InvalidArgument
from barque.filters import label_matches, pattern_matches

__all__ = ["LS_FILTERS", "PRUNE_FILTERS", "PREDEFINED", "select_networks", "prune_veto"]

LS_FILTERS = ("driver", "id", "label", "name", "scope", "type", "dangling")
PRUNE_FILTERS = ("until", "label", "label!")
PREDEFINED = ("bridge", "host", "none")


def select_networks(engine, nets: list, flt: dict[str, list[str]]) -> list:
    """The daemon's network filters: driver/scope exact, name/id by regular expression, labels all present,
    dangling (no container on it; predefined networks are never dangling), type custom|builtin."""

    out = []
    for n in nets:
        if "driver" in flt and n.driver not in flt["driver"]:
            continue
        if "scope" in flt and "local" not in flt["scope"]:
            continue
        if "name" in flt and not pattern_matches(flt["name"], n.name):
            continue
        if "id" in flt and not pattern_matches(flt["id"], n.id):
            continue
        if "label" in flt and not (n.record.get("Labels") and label_matches(n.record.get("Labels") or {},
                                                                            flt["label"])):
            continue
        out.append(n)
    if "dangling" in flt:
        values = flt["dangling"]
        if len(values) > 1:
            raise InvalidArgument('got more than one value for filter key "dangling"')
        if values[0] not in ("0", "false", "1", "true"):
            raise InvalidArgument('invalid value for filter \'dangling\', must be "true" (or "1"), or "false" '
                                  '(or "0")')
        dangling = values[0] in ("1", "true")
        out = [n for n in out if (n.name not in PREDEFINED and not engine.networks.endpoints_of(n)) == dangling]
    if "type" in flt:
        typed = []
        for kind in flt["type"]:
            if kind not in ("custom", "builtin"):
                raise InvalidArgument(f"invalid filter: 'type'='{kind}'")
            typed += [n for n in out if (n.name in PREDEFINED) == (kind == "builtin")]
        out = typed
    return out


def prune_veto(parsed: dict):
    """A prune's filters (as `barque.container.prune.parse_prune_filters` gives them) as a veto on one network
    (the daemon's rules): created after `until`, labels missing one `label=`, or labels matching every `label!=`."""
    from barque.oci.times import parse_time

    def keep(net) -> bool:
        labels = net.record.get("Labels") or {}
        if parsed["until"] is not None and (parse_time(net.created) or 0) > parsed["until"]:
            return True
        if parsed["label"] and not label_matches(labels, parsed["label"]):
            return True
        return bool(parsed["label!"]) and label_matches(labels, parsed["label!"])

    return keep
