"""networks endpoints (not written yet)."""

ROUTES: list = []
