"""info, version, system df, system prune."""

from __future__ import annotations

import json
import os
import platform

import click

from barque import __version__
from barque.cli.format import human_size, print_listing
from barque.cli.main import CONTEXT, engine_from


def _info(engine) -> dict:
    from barque.linux.mountinfo import fs_type

    images = engine.images.list()
    statuses = [c.status for c in engine.containers.list()]
    running = sum(s in ("running", "restarting") for s in statuses)
    paused = statuses.count("paused")
    return {
        "ID": "",
        "Containers": len(statuses),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": len(statuses) - running - paused,
        "Images": len(images),
        "Driver": engine.driver_name,
        "DriverStatus": [["Backing Filesystem", fs_type(engine.root)]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"], "Log": ["json-file", "local"]},
        "MemoryLimit": True,
        "SwapLimit": True,
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1",
        "KernelVersion": platform.release(),
        "OperatingSystem": _os_name(),
        "OSType": "linux",
        "Architecture": platform.machine(),
        "NCPU": os.cpu_count(),
        "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "DockerRootDir": str(engine.root),
        "Name": platform.node(),
        "ServerVersion": __version__,
        "DefaultRuntime": "barque-runtime",
        "SecurityOptions": ["name=seccomp,profile=builtin"],
    }


def _os_name() -> str:
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


@click.command("info", context_settings=CONTEXT)
@click.option("-f", "--format", "fmt", default=None, help="Format output using a custom template.")
@click.pass_context
def info(ctx, fmt):
    """Display system-wide information."""
    from barque.cli.format import render_template

    data = _info(engine_from(ctx))
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


def _df(engine) -> dict:
    from barque.images.gc import used_chains

    images = engine.images.list()
    in_use = {r["image_id"] for r in engine.db.query("SELECT image_id FROM containers")}
    layers = {r["chain_id"]: r["size"] for r in engine.db.query("SELECT chain_id, size FROM layers")}
    used = used_chains(engine)
    total = sum(layers.get(c, 0) for c in used)
    active_images = [i for i in images if str(i.id) in in_use]
    active_chains: set[str] = set()
    if active_images:
        from barque.images.unpack import chain_ids
        from barque.oci.digest import Digest

        for img in active_images:
            config = json.loads(engine.content.read(img.id))
            active_chains.update(str(c) for c in chain_ids([Digest.parse(d) for d in config["rootfs"]["diff_ids"]]))
    reclaimable = total - sum(layers.get(c, 0) for c in active_chains)
    return {
        "Images": {"TotalCount": len(images), "Active": len(active_images), "Size": total,
                   "Reclaimable": reclaimable},
        "Containers": _df_containers(engine),
        "Volumes": _df_volumes(engine),
        "BuildCache": cache_usage(engine),
    }


def cache_usage(engine) -> dict:
    from barque.build.prune import cache_usage as usage

    return usage(engine)


def _usage(items) -> dict:
    """`system df`'s row from (bytes, in use) pairs: what is not in use is reclaimable."""
    total = active = size = reclaimable = 0
    for used_bytes, in_use in items:
        total += 1
        size += used_bytes
        active += bool(in_use)
        reclaimable += 0 if in_use else used_bytes
    return {"TotalCount": total, "Active": active, "Size": size, "Reclaimable": reclaimable}


def _report_size(measure) -> int:
    try:
        return measure()
    except Exception:  # noqa: BLE001 - a report only
        return 0


def _df_containers(engine) -> dict:
    return _usage((_report_size(lambda: engine.snapshotter.usage(c.private["snapshot"]).size), c.running)
                  for c in engine.containers.list())


def _df_volumes(engine) -> dict:
    used = engine.volumes.used()
    return _usage((_report_size(lambda: engine.volumes.usage(v["Name"])), used.get(v["Name"]))
                  for v in engine.volumes.list())


@click.command("df", context_settings=CONTEXT)
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage.")
@click.option("--format", "fmt", default=None, help="Format output using a custom template.")
@click.pass_context
def df(ctx, verbose, fmt):
    """Show barque disk usage."""
    data = _df(engine_from(ctx))
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
