"""exec endpoints (not written yet)."""

ROUTES: list = []
