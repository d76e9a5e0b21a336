"""swarm endpoints (not written yet)."""

ROUTES: list = []
