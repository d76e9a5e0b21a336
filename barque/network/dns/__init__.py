"""barque's embedded DNS server: containers on user-defined networks resolve each other by name at 127.0.0.11,
as under Docker, and every other name through the host's resolvers.

    attach(root, run_root, container_id, netns_path)   serve a starting container (starts the server if needed)
    detach(run_root, container_id)                     stop serving it (a no-op when no server runs)

One server process per run root (`python -m barque.network.dns`) listens on 127.0.0.11:53 inside each served
container's network namespace; see server.py for how, and daemon.py for its life.
"""

from barque.network.dns.client import attach, detach

__all__ = ["attach", "detach"]
