"""Volume commands: volume create, ls, inspect, rm, prune — Docker's flags, output and exit statuses."""

from __future__ import annotations

import json
import sys

import click

from barque.cli.format import human_size, print_deleted, print_listing
from barque.cli.main import CONTEXT, engine_from
from barque.container.volume_listing import LS_FILTERS, PRUNE_FILTERS, bool_filter as _bool_filter, \
    natural_key as _natural_key, select_volumes
from barque.errors import InvalidArgument


def _store(ctx):
    engine = engine_from(ctx)
    store = getattr(engine, "volumes", None)
    if store is None:
        from barque.container.volumes import VolumeStore

        store = VolumeStore(engine.db, engine.root / "volumes", events_root=engine.root)
    return store


def _key_values(items, flag: str, ctx, labels: bool) -> dict[str, str]:
    """`k=v` flags into a map; a bare `k` means an empty value. Labels need a name (Docker's ValidateLabel)."""
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if labels and not key.strip():
            raise click.UsageError(f'invalid argument "{item}" for "{flag}" flag: invalid label \'{item}\': '
                                   "empty name", ctx)
        out[key] = value
    return out


def _filters(items, allowed, ctx, flag: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.UsageError(f'invalid argument "{item}" for "{flag}" flag: bad format of filter '
                                   "(expected name=value)", ctx)
        key = key.strip().lower()  # `label!=x` partitions as ("label!", "x")
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")
        out.setdefault(key, []).append(value)
    return out


@click.command("create", context_settings=CONTEXT)
@click.argument("name", required=False)
@click.option("--name", "name_opt", default=None, hidden=True, help="Specify volume name.")
@click.option("-d", "--driver", default="local", show_default=True, help="Specify volume driver name.")
@click.option("--label", "labels", multiple=True, help="Set metadata for a volume.")
@click.option("-o", "--opt", "opts", multiple=True, help="Set driver specific options.")
@click.pass_context
def create(ctx, name, name_opt, driver, labels, opts):
    """Create a volume."""
    if name and name_opt:
        raise InvalidArgument("conflicting options: either specify --name or provide positional arg, not both")
    label_map = _key_values(labels, "--label", ctx, labels=True)
    options = _key_values(opts, "-o, --opt", ctx, labels=False)
    volume = _store(ctx).create(name or name_opt or None, driver=driver, labels=label_map, options=options)
    click.echo(volume["Name"])


@click.command("ls", context_settings=CONTEXT)
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names.")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'dangling=true').")
@click.option("--format", "fmt", default=None, help="Format output using a custom template: 'table', 'json' or a Go template.")
@click.pass_context
def ls(ctx, quiet, filters, fmt):
    """List volumes."""
    parsed = _filters(filters, LS_FILTERS, ctx, "-f, --filter")
    volumes = select_volumes(_store(ctx), parsed)
    volumes.sort(key=lambda v: _natural_key(v["Name"]))
    if quiet:
        for v in volumes:
            click.echo(v["Name"])
        return
    rows = [{
        "Availability": "N/A",
        "Driver": v["Driver"],
        "Group": "N/A",
        "Labels": ",".join(f"{k}={x}" for k, x in sorted((v["Labels"] or {}).items())),
        "Links": "N/A",
        "Mountpoint": v["Mountpoint"],
        "Name": v["Name"],
        "Scope": v["Scope"],
        "Size": "N/A",
        "Status": "N/A",
    } for v in volumes]
    print_listing(rows, fmt, [("DRIVER", "Driver"), ("VOLUME NAME", "Name")])


@click.command("inspect", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", default=None, help="Format output using a custom template.")
@click.pass_context
def inspect(ctx, names, fmt):
    """Display detailed information on one or more volumes."""
    from barque.cli.errors import ExitStatus
    from barque.cli.format import render_template
    from barque.errors import NotFound

    store = _store(ctx)
    results, missing = [], []
    for name in names:
        try:
            results.append(store.get(name))
        except NotFound:
            missing.append(name)
    if fmt:
        for r in results:
            click.echo(json.dumps(r) if fmt == "json" else render_template(fmt, r))
    else:
        click.echo(json.dumps(results, indent=4))
    for name in missing:
        click.echo(f"Error: No such volume: {name}", err=True)
    if missing:
        raise ExitStatus(1)


@click.command("rm", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes.")
@click.pass_context
def rm(ctx, names, force):
    """Remove one or more volumes. You cannot remove a volume that is in use by a container."""
    from barque.cli.errors import ExitStatus, report
    from barque.errors import BarqueError

    store = _store(ctx)
    status = 0
    for name in names:
        try:
            store.remove(name, force=force)
        except BarqueError as e:
            status = report(e)
            continue
        click.echo(name)
    if status:
        raise ExitStatus(status)


def _confirm(message: str) -> bool:
    """Docker's prompt: the question, then `[y/N] `; only y or Y says yes (end of input says no)."""
    click.echo(f"{message} [y/N] ", nl=False)
    line = sys.stdin.readline()
    if not line:
        click.echo("")
    return line.strip().lower() == "y"


@click.command("prune", context_settings=CONTEXT)
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused volumes, not just anonymous ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<label>').")
@click.pass_context
def prune(ctx, all_, force, filters):
    """Remove unused local volumes."""
    parsed = _filters(filters, PRUNE_FILTERS, ctx, "--filter")
    every = all_ or bool(_bool_filter(parsed, "all"))
    if not force:
        what = "all local volumes" if every else "anonymous local volumes"
        if not _confirm(f"WARNING! This will remove {what} not used by at least one container.\n"
                        "Are you sure you want to continue?"):
            return
    names, reclaimed = _store(ctx).prune(all=every, labels=parsed.get("label", []),
                                         not_labels=parsed.get("label!", []))
    print_deleted("Deleted Volumes", names)
    click.echo(f"Total reclaimed space: {human_size(reclaimed, 4)}")
