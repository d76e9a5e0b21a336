"""info, version, system df, system prune."""

from __future__ import annotations

import json
import platform

import click

from barque import __version__
from barque.cli.format import human_size, print_listing
from barque.cli.main import CONTEXT, engine_from
from barque.sysinfo import disk_usage, system_info


@click.command("info", context_settings=CONTEXT)
@click.option("-f", "--format", "fmt", default=None, help="Format output using a custom template.")
@click.pass_context
def info(ctx, fmt):
    """Display system-wide information."""
    from barque.cli.format import render_template

    data = system_info(engine_from(ctx))
    if fmt:
        click.echo(json.dumps(data) if fmt == "json" else render_template(fmt, data))
        return
    lines = [
        "Server:",
        f" Containers: {data['Containers']}",
        f"  Running: {data['ContainersRunning']}",
        f"  Paused: {data['ContainersPaused']}",
        f"  Stopped: {data['ContainersStopped']}",
        f" Images: {data['Images']}",
        f" Server Version: {data['ServerVersion']}",
        f" Storage Driver: {data['Driver']}",
    ]
    lines += [f"  {k}: {v}" for k, v in data["DriverStatus"]]
    lines += [
        f" Cgroup Driver: {data['CgroupDriver']}",
        f" Cgroup Version: {data['CgroupVersion']}",
        f" Default Runtime: {data['DefaultRuntime']}",
        f" Kernel Version: {data['KernelVersion']}",
        f" Operating System: {data['OperatingSystem']}",
        f" OSType: {data['OSType']}",
        f" Architecture: {data['Architecture']}",
        f" CPUs: {data['NCPU']}",
        f" Total Memory: {data['MemTotal'] / (1 << 30):.2f}GiB",
        f" Name: {data['Name']}",
        f" Docker Root Dir: {data['DockerRootDir']}",
    ]
    click.echo("\n".join(lines))


@click.command("version", context_settings=CONTEXT)
@click.option("-f", "--format", "fmt", default=None, help="Format output using a custom template.")
def version(fmt):
    """Show the barque version information."""
    data = {"Client": {"Version": __version__, "Os": "linux", "Arch": platform.machine()},
            "Server": {"Version": __version__, "ApiVersion": "1.43", "MinAPIVersion": "1.24"}}
    if fmt:
        from barque.cli.format import render_template

        click.echo(json.dumps(data) if fmt == "json" else render_template(fmt, data))
        return
    click.echo(f"Version:    {__version__}\nOS/Arch:    linux/{platform.machine()}")


@click.command("df", context_settings=CONTEXT)
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage.")
@click.option("--format", "fmt", default=None, help="Format output using a custom template.")
@click.pass_context
def df(ctx, verbose, fmt):
    """Show barque disk usage."""
    data = disk_usage(engine_from(ctx))
    rows = []
    for kind, label in (("Images", "Images"), ("Containers", "Containers"), ("Volumes", "Local Volumes"),
                        ("BuildCache", "Build Cache")):
        d = data[kind]
        pct = f" ({d['Reclaimable'] * 100 // d['Size']}%)" if d["Size"] else ""
        rows.append({"Type": label, "TotalCount": str(d["TotalCount"]), "Active": str(d["Active"]),
                     "Size": human_size(d["Size"], 4), "Reclaimable": human_size(d["Reclaimable"], 4) + pct})
    print_listing(rows, fmt, [("TYPE", "Type"), ("TOTAL", "TotalCount"), ("ACTIVE", "Active"), ("SIZE", "Size"),
                              ("RECLAIMABLE", "Reclaimable")])


@click.command("prune", context_settings=CONTEXT)
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--volumes", is_flag=True, help="Prune anonymous volumes.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<key>=<value>').")
@click.pass_context
def system_prune(ctx, all_, force, volumes, filters):
    """Remove unused data: stopped containers, dangling (with -a: unused) images, with --volumes anonymous
    volumes no container uses."""
    from barque.cli.format import print_deleted
    from barque.cli.images import print_prune_report
    from barque.container.prune import parse_prune_filters, prune_containers
    from barque.images.remove import prune_images

    parsed = parse_prune_filters(filters)
    if not force:
        what = ["all stopped containers", "all networks not used by at least one container"]
        if volumes:
            what.append("all anonymous volumes not used by at least one container")
        what.append("all images without at least one container associated to them" if all_
                    else "all dangling images")
        what.append("all build cache")
        click.echo("WARNING! This will remove:\n" + "".join(f"  - {w}\n" for w in what))
        if not click.confirm("Are you sure you want to continue?", default=False):
            return
    engine = engine_from(ctx)
    containers = prune_containers(engine, parsed)
    for message in containers.errors:
        click.echo(f"Error: {message}", err=True)
    print_deleted("Deleted Containers", containers.deleted)
    from barque.network.manage import prune_networks

    print_deleted("Deleted Networks", prune_networks(engine, keep=_label_veto(parsed)))
    reclaimed = containers.reclaimed
    if volumes:
        names, freed = engine.volumes.prune(all=False, labels=parsed["label"], not_labels=parsed["label!"])
        reclaimed += freed
        print_deleted("Deleted Volumes", names)
    from barque.build.prune import prune_cache

    cache_keys, cache_freed = prune_cache(engine)
    print_deleted("Deleted build cache objects", [k[:25] for k in cache_keys])
    report, gc = prune_images(engine, all_images=all_, label_filters=parsed["label"])
    print_prune_report(report, reclaimed + report.reclaimed + gc.bytes_removed + cache_freed)


def _label_veto(parsed: dict):
    """prune's label filters as a network's veto (label=K[=V] keeps what does not match, label!= the opposite)."""
    def matches(labels: dict, spec: str) -> bool:
        key, eq, value = spec.partition("=")
        return key in labels and (not eq or labels[key] == value)

    def keep(net) -> bool:
        labels = net.record.get("Labels") or {}
        return (any(not matches(labels, s) for s in parsed.get("label") or [])
                or any(matches(labels, s) for s in parsed.get("label!") or []))

    return keep


@click.command("check", context_settings=CONTEXT)
@click.option("--repair", is_flag=True, help="Fix what is found, not only report it.")
@click.pass_context
def check(ctx, repair):
    """Find (and with --repair, fix) what a crash can leave behind: network namespaces, interfaces, published
    ports and addresses of containers that are gone or stopped. Exit 1 when something was found and left."""
    from barque.network.reconcile import check as check_network

    findings = check_network(engine_from(ctx), repair=repair)
    for f in findings:
        click.echo(("repaired: " if repair else "found: ") + f)
    if not findings:
        click.echo("nothing to repair")
    elif not repair:
        raise SystemExit(1)
