"""volumes endpoints (not written yet)."""

ROUTES: list = []
