"""Whiteouts as layer tars carry them (the AUFS convention the OCI image spec adopted)."""

from __future__ import annotations

__all__ = ["WHITEOUT_PREFIX", "WHITEOUT_META_PREFIX", "OPAQUE", "whiteout_name", "whiteout_target"]

WHITEOUT_PREFIX = ".wh."
# names starting with ".wh..wh." are AUFS bookkeeping, not deletions; the opaque marker is the one that matters
WHITEOUT_META_PREFIX = WHITEOUT_PREFIX + WHITEOUT_PREFIX
OPAQUE = WHITEOUT_META_PREFIX + ".opq"


def whiteout_name(base: str) -> str:
    """The entry name that deletes ``base`` from the same directory."""
    return WHITEOUT_PREFIX + base


def whiteout_target(base: str) -> str | None:
    """For a ".wh.NAME" entry name, the NAME it deletes; None if ``base`` is not a plain whiteout."""
    if not base.startswith(WHITEOUT_PREFIX) or base.startswith(WHITEOUT_META_PREFIX):
        return None
    return base[len(WHITEOUT_PREFIX) :]
