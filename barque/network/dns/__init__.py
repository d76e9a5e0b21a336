"""barque's embedded DNS server: containers on user-defined networks resolve each other by name at 127.0.0.11,
as under Docker, and every other name through their own resolvers (`--dns`, the config file's `dns`) or the host's.

    attach(root, run_root, container_id, netns_path, upstreams=None)
                                 serve a starting container (starts the server if needed); `upstreams`: its own
                                 resolvers, None for the host's
    upstreams_for(host_config)   those resolvers as Docker picks them: HostConfig.Dns, else the config file's dns
    detach(run_root, container_id)
                                 stop serving it (a no-op when no server runs)

One server process per run root (`python -m barque.network.dns`) listens on 127.0.0.11 at random ports inside each
served container's network namespace, where a table of barque's own sends 127.0.0.11:53 to them — port 53 stays
free for the container's own use. See server.py for how, nat.py for the table, and daemon.py for its life.
"""

from barque.network.dns.client import attach, detach, upstreams_for

__all__ = ["attach", "detach", "upstreams_for"]
