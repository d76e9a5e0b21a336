"""images endpoints (not written yet)."""

ROUTES: list = []
