"""Docker's `filters` query parameter: a JSON object of name → list of values (API ≥ 1.22) or name → {value: true}
(the older map form, which clients still send)."""

from __future__ import annotations

import json

from barque.api.errors import BadParameter

__all__ = ["parse_filters", "as_cli_filters", "check_keys"]


def parse_filters(text: str | None) -> dict[str, list[str]]:
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise BadParameter(f"invalid filter: {e}") from None
    if not isinstance(raw, dict):
        raise BadParameter("invalid filter: the filters parameter must be a JSON object")
    out: dict[str, list[str]] = {}
    for key, value in raw.items():
        if isinstance(value, list):
            items = value
        elif isinstance(value, dict):
            items = [k for k, v in value.items() if v]
        elif isinstance(value, str):
            items = [value]
        else:
            raise BadParameter(f"invalid filter: the value of {key!r} must be a list or an object")
        if not all(isinstance(i, str) for i in items):
            raise BadParameter(f"invalid filter: the values of {key!r} must be strings")
        out.setdefault(key, []).extend(items)
    return out


def check_keys(filters: dict[str, list[str]], allowed: set[str] | frozenset[str]) -> None:
    for key in filters:
        if key not in allowed:
            raise BadParameter(f"invalid filter '{key}'")


def as_cli_filters(filters: dict[str, list[str]]) -> list[str]:
    """The `key=value` strings the CLI's filter parsers take."""
    return [f"{k}={v}" for k, values in filters.items() for v in values]
