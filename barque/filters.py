"""Docker's two matching rules of `--filter` values, shared by every listing (containers, images, volumes,
networks, prunes) and by both edges.

- `pattern_matches`: Docker's filters.Match — a value matches when it equals a pattern or a pattern (a regular
  expression) is found in it; a pattern that is not a valid expression matches nothing, it is no error.
- `label_matches`: every `key` or `key=value` wanted is among the labels (Docker ANDs label filters).
"""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:  # nothing more at run time: the lean monitor's event code reaches this module
    from collections.abc import Iterable, Mapping

__all__ = ["pattern_matches", "label_matches"]


def pattern_matches(patterns: Iterable[str], value: str) -> bool:
    for p in patterns:
        if p == value:
            return True
        try:
            if re.search(p, value):
                return True
        except re.error:
            continue
    return False


def label_matches(labels: Mapping[str, str], wanted: Iterable[str]) -> bool:
    for w in wanted:
        key, sep, value = w.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True
