"""`bootstrap busybox|debian`: base images made offline from the host's packages."""

from __future__ import annotations

import click

from barque.cli.main import CONTEXT, engine_from


@click.command("busybox", context_settings=CONTEXT)
@click.option("-t", "--tag", default="busybox:latest", show_default=True, help="Name the image.")
@click.pass_context
def busybox(ctx, tag):
    """A small base image from the host's static busybox (Debian busybox-static)."""
    from barque.images import bootstrap
    from barque.oci.reference import parse_reference

    result = bootstrap.busybox(engine_from(ctx), parse_reference(tag))
    click.echo(f"Loaded image: {parse_reference(tag).familiar()}")
    click.echo(str(result.image.id))


@click.command("debian", context_settings=CONTEXT)
@click.option("--suite", default="bookworm", show_default=True, help="Debian suite.")
@click.option("--mirror", default=None, help="Mirror URL (default: the one apt is configured with).")
@click.option("--variant", default="minbase", show_default=True, help="debootstrap variant.")
@click.option("-t", "--tag", default=None, help="Name the image (default debian:SUITE).")
@click.pass_context
def debian(ctx, suite, mirror, variant, tag):
    """A minbase Debian image made with debootstrap from the configured mirror."""
    from barque.images import bootstrap
    from barque.oci.reference import parse_reference

    ref = parse_reference(tag or f"debian:{suite}")
    result = bootstrap.debian(engine_from(ctx), ref, suite=suite, mirror=mirror, variant=variant)
    click.echo(f"Loaded image: {ref.familiar()}")
    click.echo(str(result.image.id))
