"""Choosing volumes as dockerd does: the filters of `volume ls` (GET /volumes) and of `volume prune`. The CLI and
the Engine API both call these; the messages are dockerd's."""

from __future__ import annotations

import re

from barque.errors import InvalidArgument
from barque.filters import label_matches, pattern_matches

__all__ = ["LS_FILTERS", "PRUNE_FILTERS", "bool_filter", "natural_key", "select_volumes"]

LS_FILTERS = ("dangling", "name", "label", "label!", "driver")
PRUNE_FILTERS = ("label", "label!", "all")


def bool_filter(filters: dict[str, list[str]], key: str) -> bool | None:
    """A boolean filter's value (the last given), None when absent; anything but true/1/false/0 is refused."""
    values = filters.get(key)
    if not values:
        return None
    value = values[-1].lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise InvalidArgument(f"invalid filter '{key}={values[-1]}'")


def natural_key(name: str):
    """Docker's CLI lists volumes in natural order (vol2 before vol10)."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|\D+", name)]


def select_volumes(store, parsed: dict[str, list[str]]) -> list[dict]:
    """The volumes (inspect dicts, by name) that pass `parsed`: dangling (no container's Mounts name it), name (a
    regular expression), driver (exact), label (all present), label! (none matching)."""

    volumes = store.list()
    dangling = bool_filter(parsed, "dangling")
    if dangling is not None:
        used = store.used()
        volumes = [v for v in volumes if (v["Name"] not in used) == dangling]
    if "name" in parsed:
        volumes = [v for v in volumes if pattern_matches(parsed["name"], v["Name"])]
    if "driver" in parsed:
        volumes = [v for v in volumes if v["Driver"] in parsed["driver"]]
    if "label" in parsed:
        volumes = [v for v in volumes if label_matches(v["Labels"] or {}, parsed["label"])]
    if "label!" in parsed:
        volumes = [v for v in volumes if not any(label_matches(v["Labels"] or {}, [x]) for x in parsed["label!"])]
    return volumes
