"""build endpoints (not written yet)."""

ROUTES: list = []
