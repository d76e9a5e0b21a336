"""Container filesystem commands: commit, diff, export, cp."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click

from barque.cli.main import CONTEXT, engine_from
from barque.errors import InvalidArgument

_TRUE = ("1", "t", "true")
_FALSE = ("0", "f", "false")


class _DockerBoolCommand(click.Command):
    """Docker's boolean flags also take `=VALUE` (`commit --pause=false`); click's flags take none, so such
    arguments are rewritten to the flag or its `--no-` form before parsing."""

    bool_flags: dict[str, str] = {}

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out = []
        for arg in args:
            name, eq, value = arg.partition("=")
            if eq and name in self.bool_flags:
                long = self.bool_flags[name]
                if value.lower() in _TRUE:
                    out.append(f"--{long}")
                elif value.lower() in _FALSE:
                    out.append(f"--no-{long}")
                else:
                    raise click.UsageError(f'invalid argument "{value}" for "{name}" flag: strconv.ParseBool: '
                                           f'parsing "{value}": invalid syntax', ctx=ctx)
            else:
                out.append(arg)
        return super().parse_args(ctx, out)


class _CommitCommand(_DockerBoolCommand):
    bool_flags = {"-p": "pause", "--pause": "pause"}


@click.command("commit", cls=_CommitCommand, context_settings=CONTEXT)
@click.option("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").')
@click.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image.")
@click.option("-m", "--message", default="", help="Commit message.")
@click.option("-p", "--pause/--no-pause", "pause", default=True,
              help="Pause container during commit (default true; --pause=false to keep it running).")
@click.argument("container")
@click.argument("repository", required=False)
@click.pass_context
def commit(ctx, author, changes, message, pause, container, repository):
    """Create a new image from a container's changes. Prints the new image's ID."""
    from barque.container.commit import commit as do_commit
    from barque.oci.reference import parse_reference

    engine = engine_from(ctx)
    ref = parse_reference(repository) if repository else None
    c = engine.containers.get(container)
    result = do_commit(engine, c, ref, author=author, message=message, changes=changes, pause=pause)
    click.echo(str(result.image.id))


@click.command("diff", context_settings=CONTEXT)
@click.argument("container")
@click.pass_context
def diff(ctx, container):
    """Inspect changes to files or directories on a container's filesystem.

    A: added, C: changed, D: deleted."""
    from barque.container.changes import diff as changes

    engine = engine_from(ctx)
    c = engine.containers.get(container)
    for letter, path in changes(engine, c):
        click.echo(f"{letter} {path}")


@click.command("export", context_settings=CONTEXT)
@click.option("-o", "--output", default=None, help="Write to a file, instead of STDOUT.")
@click.argument("container")
@click.pass_context
def export(ctx, output, container):
    """Export a container's filesystem as a tar archive (volumes are not included)."""
    from barque.container.export import export as do_export

    engine = engine_from(ctx)
    c = engine.containers.get(container)
    if output is None or output == "-":
        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        do_export(engine, c, sys.stdout.buffer)
        return
    target = Path(output)
    fd, tmp = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".", prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            do_export(engine, c, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.command("cp", context_settings=CONTEXT)
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information).")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the report of what was copied.")
@click.argument("src", metavar="SRC")
@click.argument("dst", metavar="DST")
@click.pass_context
def cp(ctx, archive, follow_link, quiet, src, dst):
    """Copy files/folders between a container and the local filesystem.

    \b
    barque cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-
    barque cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH

    Use '-' as the source to read a tar archive from stdin and extract it to a directory destination in a
    container. Use '-' as the destination to stream a tar archive of a container source to stdout. Volumes and
    bind mounts of the container are copied to and from their host directories, running or not; tmpfs mounts
    are not included.
    """
    from barque.cli.format import human_size
    from barque.container.copy import copy_in, copy_out, split_cp_arg

    src_container, src_path = split_cp_arg(src)
    dst_container, dst_path = split_cp_arg(dst)
    if not src_path:
        raise InvalidArgument("source can not be empty")
    if not dst_path:
        raise InvalidArgument("destination can not be empty")
    if src_container and dst_container:
        raise InvalidArgument("copying between containers is not supported")
    if not src_container and not dst_container:
        raise InvalidArgument("must specify at least one container source")
    engine = engine_from(ctx)
    if src_container:
        c = engine.containers.get(src_container)
        if dst_path == "-":
            copy_out(engine, c, src_container, src_path, sys.stdout.buffer, follow_link=follow_link)
            return
        size, shown = copy_out(engine, c, src_container, src_path, dst_path, follow_link=follow_link)
    else:
        c = engine.containers.get(dst_container)
        source = sys.stdin.buffer if src_path == "-" else src_path
        size = copy_in(engine, c, dst_container, source, dst_path, follow_link=follow_link, archive=archive)
        shown = f"{dst_container}:{dst_path}"
    if not quiet:
        print(f"Successfully copied {human_size(size, 3)} to {shown}", file=sys.stderr)
