"""Timestamps as Go (and so Docker and the OCI image config) writes them: RFC 3339 with nanoseconds, UTC; and the
human forms Docker prints of durations and sizes (its go-units)."""

from __future__ import annotations

import re
from functools import lru_cache
from datetime import datetime, timezone

__all__ = ["parse_time", "rfc3339", "human_duration", "human_size", "bytes_size"]


@lru_cache(maxsize=4096)  # listings ask for the same containers' times again and again
def parse_time(created: str) -> float | None:
    """RFC 3339 (with nanoseconds, as Go writes) to a POSIX time."""
    if not created:
        return None
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", created)
    if not m:
        return None
    base = datetime.fromisoformat(m.group(1) + (m.group(3).replace("Z", "+00:00")))
    frac = float(m.group(2)) if m.group(2) else 0.0
    return base.timestamp() + frac


def rfc3339(t: float) -> str:
    """Go's RFC3339Nano in UTC."""
    dt = datetime.fromtimestamp(t, timezone.utc)
    frac = f"{t % 1:.9f}"[1:].rstrip("0").rstrip(".") if t % 1 else ""
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def human_duration(seconds: float) -> str:
    """Docker's units.HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def human_size(n: float, precision: int = 3) -> str:
    """Docker's units.HumanSizeWithPrecision: decimal units (kB, MB, GB) and Go's %.{precision}g, e.g. 4.26MB, 0B.

    `docker images` uses precision 3; `system df` and most others use units.HumanSize (precision 4).
    """
    return _scaled(n, 1000.0, ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"), precision)


def bytes_size(n: float) -> str:
    """Docker's units.BytesSize: binary units, Go's %.4g (584KiB, 1.953MiB, 64MiB) — `docker stats`' memory."""
    return _scaled(n, 1024.0, ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"), 4)


def _scaled(n: float, base: float, units: tuple[str, ...], precision: int) -> str:
    i = 0
    n = float(n)
    while n >= base and i < len(units) - 1:
        n /= base
        i += 1
    s = f"{n:.{precision}g}"
    if "e" in s:  # Go's %g switches to exponent only past the precision; 100-999 with precision 2 is rare here
        s = f"{n:.0f}"
    return f"{s}{units[i]}"
