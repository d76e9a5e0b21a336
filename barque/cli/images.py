"""Image commands: images, image inspect, rmi, tag, history, image prune."""

from __future__ import annotations

import json

import click

from barque.cli.format import created_at, human_size, print_listing, since
from barque.cli.main import CONTEXT, engine_from
from barque.errors import InvalidArgument, NotFound


@click.command("images", context_settings=CONTEXT)
@click.argument("repository", required=False)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all images (default hides intermediate images).")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided.")
@click.option("--digests", is_flag=True, help="Show digests.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("--format", "fmt", default=None, help="Format output using a custom template: 'table', 'json' or a Go template.")
@click.pass_context
def images(ctx, repository, all_, quiet, filters, digests, no_trunc, fmt):
    """List images."""
    from barque.images.filters import parse_filters
    from barque.images.query import select_images
    from barque.oci.reference import parse_reference

    engine = engine_from(ctx)
    parsed = parse_filters(filters)
    if repository:
        parsed.setdefault("reference", []).append(repository if ":" in repository.rsplit("/", 1)[-1]
                                                 else repository + ":*")
    found = select_images(engine, parsed, all_)
    rows = []
    for img in found:
        names = [parse_reference(t) for t in img.tags] or [None]
        repo_digests = {parse_reference(d.split("@")[0]).familiar_name: d.split("@")[1] for d in img.digests}
        for ref in names:
            repo = ref.familiar_name if ref else "<none>"
            rows.append({
                "Containers": "N/A",
                "CreatedAt": created_at(img.created),
                "CreatedSince": since(img.created),
                "Digest": repo_digests.get(repo, "<none>"),
                "ID": str(img.id) if no_trunc else img.id.short,
                "Repository": repo,
                "SharedSize": "N/A",
                "Size": human_size(img.size),
                "Tag": (ref.tag or "<none>") if ref else "<none>",
                "UniqueSize": "N/A",
                "VirtualSize": human_size(img.size),
            })
    if quiet:
        seen = []
        for r in rows:
            if r["ID"] not in seen:
                seen.append(r["ID"])
        for i in seen:
            click.echo(i)
        return
    columns = [("REPOSITORY", "Repository"), ("TAG", "Tag")]
    if digests:
        columns.append(("DIGEST", "Digest"))
    columns += [("IMAGE ID", "ID"), ("CREATED", "CreatedSince"), ("SIZE", "Size")]
    print_listing(rows, fmt, columns)


def _inspect_images(ctx, names, fmt) -> int:
    from barque.cli.format import render_template
    from barque.images.inspect import inspect_image
    from barque.images.query import graph_driver

    engine = engine_from(ctx)
    results, missing = [], []
    for name in names:
        try:
            image = engine.images.resolve(name)
        except NotFound:
            missing.append(name)
            continue
        results.append(inspect_image(engine, image, graph_driver(engine, image)))
    if fmt:
        for r in results:
            click.echo(json.dumps(r) if fmt == "json" else render_template(fmt, r))
    else:
        click.echo(json.dumps(results, indent=4))
    for name in missing:
        click.echo(f"Error: No such image: {name}", err=True)
    return 1 if missing else 0


@click.command("inspect", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", default=None, help="Format output using a custom template.")
@click.pass_context
def image_inspect(ctx, names, fmt):
    """Display detailed information on one or more images."""
    from barque.cli.errors import ExitStatus

    status = _inspect_images(ctx, names, fmt)
    if status:
        raise ExitStatus(status)


@click.command("inspect", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", default=None, help="Format output using a custom template.")
@click.option("--type", "type_", default=None, type=click.Choice(["image", "container"]),
              help="Return JSON for specified type.")
@click.pass_context
def inspect(ctx, names, fmt, type_):
    """Return low-level information on barque objects (containers first, then images, as Docker looks them up)."""
    from barque.cli.errors import ExitStatus
    from barque.cli.format import render_template
    from barque.container.inspect import inspect as inspect_container
    from barque.images.inspect import inspect_image
    from barque.images.query import graph_driver

    engine = engine_from(ctx)
    results, failed = [], False
    for name in names:
        found = None
        if type_ in (None, "container"):
            try:
                found = inspect_container(engine, engine.containers.get(name))
            except NotFound:
                pass
        if found is None and type_ in (None, "image"):
            try:
                image = engine.images.resolve(name)
                found = inspect_image(engine, image, graph_driver(engine, image))
            except (NotFound, InvalidArgument):
                pass
        if found is None:
            what = {"image": "image", "container": "container"}.get(type_ or "", "object")
            click.echo(f"Error: No such {what}: {name}", err=True)
            failed = True
            continue
        results.append(found)
    if fmt:
        for r in results:
            click.echo(json.dumps(r) if fmt == "json" else render_template(fmt, r))
    else:
        click.echo(json.dumps(results, indent=4))
    if failed:
        raise ExitStatus(1)


@click.command("rmi", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents.")
@click.pass_context
def rmi(ctx, names, force, no_prune):
    """Remove one or more images."""
    from barque.cli.errors import ExitStatus, report
    from barque.errors import BarqueError
    from barque.images.remove import remove_image

    engine = engine_from(ctx)
    status = 0
    for name in names:
        try:
            result = remove_image(engine, name, force=force, prune_layers=not no_prune)
        except BarqueError as e:
            status = report(e)
            continue
        for line in result.lines():
            click.echo(line)
    if status:
        raise ExitStatus(status)


@click.command("tag", context_settings=CONTEXT)
@click.argument("source")
@click.argument("target")
@click.pass_context
def tag(ctx, source, target):
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    from barque.images.tag import tag_image

    tag_image(engine_from(ctx), source, target)


@click.command("history", context_settings=CONTEXT)
@click.argument("name")
@click.option("-H", "--human", default=True, type=bool, help="Print sizes and dates in human readable format.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("--format", "fmt", default=None, help="Format output using a custom template.")
@click.pass_context
def history(ctx, name, human, quiet, no_trunc, fmt):
    """Show the history of an image."""
    from barque.images.inspect import history as image_history

    engine = engine_from(ctx)
    image = engine.images.resolve(name)
    rows = []
    for h in image_history(engine, image):
        image_id = h.id if (no_trunc or h.id == "<missing>") else h.id.split(":")[1][:12]
        created_by = h.created_by if no_trunc or len(h.created_by) <= 45 else h.created_by[:44] + "…"
        rows.append({
            "ID": image_id,
            "CreatedAt": h.created,
            "CreatedSince": since(h.created) if human else h.created,
            "CreatedBy": created_by,
            "Size": human_size(h.size) if human else str(h.size),
            "Comment": h.comment,
        })
    if quiet:
        for r in rows:
            click.echo(r["ID"])
        return
    print_listing(rows, fmt, [("IMAGE", "ID"), ("CREATED", "CreatedSince"), ("CREATED BY", "CreatedBy"),
                              ("SIZE", "Size"), ("COMMENT", "Comment")])


@click.command("prune", context_settings=CONTEXT)
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<key>=<value>').")
@click.pass_context
def image_prune(ctx, all_, force, filters):
    """Remove unused images."""
    from barque.images.remove import prune_images

    labels = []
    for f in filters:
        key, _, value = f.partition("=")
        if key != "label":
            raise InvalidArgument(f"invalid filter '{key}'")
        labels.append(value)
    if not force:
        warning = ("WARNING! This will remove all images without at least one container associated to them."
                   if all_ else "WARNING! This will remove all dangling images.")
        if not click.confirm(f"{warning}\nAre you sure you want to continue?", default=False):
            return
    report, _ = prune_images(engine_from(ctx), all_images=all_, label_filters=labels)
    print_prune_report(report, report.reclaimed)


def print_prune_report(report, reclaimed: int) -> None:
    """Docker's prune output: the untagged and deleted images, then the space reclaimed."""
    from barque.cli.format import print_deleted

    print_deleted("Deleted Images",
                  [f"untagged: {n}" for n in report.untagged] + [f"deleted: {d}" for d in report.deleted])
    click.echo(f"Total reclaimed space: {human_size(reclaimed, 4)}")
