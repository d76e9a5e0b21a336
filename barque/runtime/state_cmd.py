"""`state`: the runtime spec's state of one container, as JSON."""

from __future__ import annotations

from barque.runtime.state import StateStore

__all__ = ["state"]


def state(store: StateStore, cid: str) -> dict:
    return store.load(cid).oci_state()
