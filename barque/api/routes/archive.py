"""archive endpoints (not written yet)."""

ROUTES: list = []
