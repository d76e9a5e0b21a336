"""Images as files: save, load, import."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click

from barque.cli.main import CONTEXT, engine_from
from barque.errors import InvalidArgument


@click.command("save", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-o", "--output", default=None, help="Write to a file, instead of STDOUT.")
@click.option("--format", "fmt", default="docker-archive", type=click.Choice(["docker-archive", "oci-archive"]),
              help="Archive format: docker-archive (default; also an OCI layout) or oci-archive.")
@click.pass_context
def save(ctx, names, output, fmt):
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    from barque.images.save import save as save_images, select

    engine = engine_from(ctx)
    selected = select(engine, names)
    if output is None or output == "-":
        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        save_images(engine, selected, sys.stdout.buffer, fmt)
        return
    target = Path(output)
    fd, tmp = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".", prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            save_images(engine, selected, f, fmt)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.command("load", context_settings=CONTEXT)
@click.option("-i", "--input", "input_", default=None, help="Read from tar archive file (or OCI layout directory), "
              "instead of STDIN.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
@click.pass_context
def load(ctx, input_, quiet):
    """Load images from a tar archive (docker save or OCI layout; plain, gzip or zstd) or STDIN."""
    from barque.images.load import load as load_images

    engine = engine_from(ctx)
    if input_ is None or input_ == "-":
        if sys.stdin.isatty():
            raise InvalidArgument("requested load from stdin, but stdin is empty")
        result = load_images(engine, sys.stdin.buffer)
    else:
        path = Path(input_)
        if path.is_dir():
            result = load_images(engine, path)
        else:
            try:
                f = open(path, "rb")
            except FileNotFoundError:
                raise InvalidArgument(f"open {input_}: no such file or directory") from None
            with f:
                result = load_images(engine, f)
    if not quiet:
        for line in result.messages():
            click.echo(line)


@click.command("import", context_settings=CONTEXT)
@click.argument("source")
@click.argument("reference", required=False)
@click.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image.")
@click.option("-m", "--message", default="", help="Set commit message for imported image.")
@click.option("--platform", default=None, help="Set platform if server is multi-platform capable.")
@click.pass_context
def import_(ctx, source, reference, changes, message, platform):
    """Import the contents from a tarball to create a filesystem image. SOURCE is a file or - for STDIN."""
    from barque.images.importer import import_tar
    from barque.oci.reference import parse_reference

    engine = engine_from(ctx)
    ref = parse_reference(reference) if reference else None
    if ref is not None and ref.digest is not None:
        raise InvalidArgument("refusing to create a tag with a digest reference")
    if source == "-":
        result = import_tar(engine, sys.stdin.buffer, "-", ref, changes, message)
    else:
        if "://" in source:
            raise InvalidArgument(f"import from a URL is not supported here: {source}")
        try:
            f = open(source, "rb")
        except FileNotFoundError:
            raise InvalidArgument(f"open {source}: no such file or directory") from None
        with f:
            result = import_tar(engine, f, "-", ref, changes, message)  # Docker uploads files as "-" too
    click.echo(str(result.image.id))
