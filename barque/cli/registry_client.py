"""Registry commands: pull, push, login, logout (Docker's flags, output and exit codes)."""

from __future__ import annotations

import sys

import click

from barque.cli.main import CONTEXT, engine_from
from barque.errors import InvalidArgument


@click.command("pull", context_settings=CONTEXT)
@click.argument("name", metavar="NAME[:TAG|@DIGEST]")
@click.option("-a", "--all-tags", is_flag=True, help="Download all tagged images in the repository.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--platform", default=None, help="Set platform if server is multi-platform capable.")
@click.option("--disable-content-trust", is_flag=True, default=True, hidden=True, help="Accepted (no trust).")
@click.pass_context
def pull(ctx, name, all_tags, quiet, platform, disable_content_trust):
    """Download an image from a registry."""
    from barque.registry.client.progress import make_progress
    from barque.registry.client.pull import pull as do_pull

    engine = engine_from(ctx)
    progress = make_progress(sys.stdout, quiet)
    try:
        do_pull(engine, name, progress, platform=platform, all_tags=all_tags)
    except InvalidArgument as e:
        _bare_reference_error(e)
        raise
    finally:
        progress.close()


@click.command("push", context_settings=CONTEXT)
@click.argument("name", metavar="NAME[:TAG]")
@click.option("-a", "--all-tags", is_flag=True, help="Push all tags of an image to the repository.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--compression-format", "compression", type=click.Choice(["gzip", "zstd"]), default=None,
              help="Compression of the layers pushed (default: as stored, gzip for uncompressed layers).")
@click.option("--disable-content-trust", is_flag=True, default=True, hidden=True, help="Accepted (no trust).")
@click.pass_context
def push(ctx, name, all_tags, quiet, compression, disable_content_trust):
    """Upload an image to a registry."""
    from barque.oci.reference import parse_reference
    from barque.registry.client.progress import make_progress
    from barque.registry.client.push import push as do_push

    from barque.cli.errors import EXIT_ERROR, ExitStatus
    from barque.registry.client.push import NoLocalImage

    try:
        if all_tags and not parse_reference(name).is_name_only:
            raise InvalidArgument("tag can't be used with --all-tags/-a")
    except InvalidArgument as e:
        _bare_reference_error(e)
        raise
    engine = engine_from(ctx)
    progress = make_progress(sys.stdout, quiet)
    try:
        do_push(engine, name, progress, compression=compression, all_tags=all_tags)
    except NoLocalImage as e:
        # Docker prints this one as the push's own output, not as an error of the daemon
        progress.close()
        print(e.message, file=sys.stderr)
        raise ExitStatus(EXIT_ERROR) from e
    except InvalidArgument as e:
        _bare_reference_error(e)
        raise
    finally:
        progress.close()
    if quiet:
        click.echo(str(parse_reference(name)))


def _bare_reference_error(e: InvalidArgument) -> None:
    """Docker's CLI reports a name it cannot parse itself, without an "Error" prefix: ``invalid reference
    format…``, exit status 1."""
    if e.message.startswith("invalid reference format"):
        from barque.cli.errors import EXIT_ERROR, ExitStatus

        print(e.message, file=sys.stderr)
        raise ExitStatus(EXIT_ERROR) from e


@click.command("login", context_settings=CONTEXT)
@click.argument("server", required=False, metavar="[SERVER]")
@click.option("-u", "--username", default=None, help="Username.")
@click.option("-p", "--password", default=None, help="Password.")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
def login(server, username, password, password_stdin):
    """Log in to a registry (Docker Hub when no server is given)."""
    from barque.registry.client.login import login as do_login

    if password is not None and password_stdin:
        raise InvalidArgument("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise InvalidArgument("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password is not None:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
    if not username or password is None:
        if not sys.stdin.isatty():
            raise InvalidArgument("Cannot perform an interactive login from a non TTY device")
        if not username:
            username = click.prompt("Username", err=False).strip()
        if password is None:
            password = click.prompt("Password", hide_input=True)
    if not username:
        raise InvalidArgument("Username is required")
    if not password:
        raise InvalidArgument("Password is required")
    do_login(server, username, password)
    click.echo("Login Succeeded")


@click.command("logout", context_settings=CONTEXT)
@click.argument("server", required=False, metavar="[SERVER]")
def logout(server):
    """Log out from a registry (Docker Hub when no server is given)."""
    from barque.registry.client.login import logout as do_logout

    name, found = do_logout(server)
    if not found:
        click.echo(f"Not logged in to {name}")
        return
    click.echo(f"Removing login credentials for {name}")
