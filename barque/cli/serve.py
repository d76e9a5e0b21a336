"""`barque serve`: the Docker Engine API on a unix socket (and/or TCP with TLS), driving the same engine as the CLI."""

from __future__ import annotations

import click

from barque.cli.main import CONTEXT


@click.command("serve", context_settings=CONTEXT)
@click.option("-H", "--host", "hosts", multiple=True, metavar="ADDR",
              help="Where to listen: unix:///PATH (default unix:///run/barque/barque.sock), tcp://HOST:PORT, fd://.")
@click.option("-G", "--group", default="barque", show_default=True,
              help="Group of the unix sockets (mode 0660); an unknown group leaves them root-only.")
@click.option("--tls", is_flag=True, help="Use TLS; implied by --tlsverify.")
@click.option("--tlsverify", is_flag=True, help="Use TLS and verify the client's certificate.")
@click.option("--tlscacert", default=None, help="Trust client certificates signed by this CA only.")
@click.option("--tlscert", default=None, help="Path to the server's TLS certificate.")
@click.option("--tlskey", default=None, help="Path to the server's TLS key.")
@click.pass_context
def serve(ctx, hosts, group, tls, tlsverify, tlscacert, tlscert, tlskey):
    """Serve the Docker Engine API (docker CLI, docker-py, docker-compose) on this engine."""
    from barque.api.serve import DEFAULT_SOCKET, ServeOptions
    from barque.api.serve import serve as run

    opts = ServeOptions(hosts=list(hosts) or [f"unix://{DEFAULT_SOCKET}"], group=group or None, tls=tls,
                        tlsverify=tlsverify, tlscacert=tlscacert, tlscert=tlscert, tlskey=tlskey)
    run(ctx.find_root().obj, opts)
