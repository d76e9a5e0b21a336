"""Container commands: start, stop, kill, restart, rm, ps, logs, wait, rename, pause, unpause, attach, inspect,
container prune. (`run` and `create` are in run.py.)

Commands that take several containers act on each, print each name as given on success, report each failure, and
exit 1 if any failed — as Docker's CLI does.
"""

from __future__ import annotations

import json
import sys
import time

import click

from barque.cli.errors import ExitStatus
from barque.cli.format import print_listing
from barque.container.listing import filter_containers, parse_ps_filters, ports_column, status_text  # noqa: F401 - status_text: others import it from here
from barque.cli.main import CONTEXT, engine_from
from barque.errors import BarqueError, InvalidArgument


def _each(ctx, refs, action) -> None:
    engine = engine_from(ctx)
    failed = False
    for ref in refs:
        try:
            c = engine.containers.get(ref)
            out = action(engine, c)
            click.echo(ref if out is None else out)
        except BarqueError as e:
            print(f"Error: {e.message}", file=sys.stderr)
            failed = True
    if failed:
        raise ExitStatus(1)


@click.command("start", context_settings=CONTEXT)
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals.")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN.")
@click.option("--detach-keys", default=None, help="Override the key sequence for detaching a container.")
@click.option("--restarting", is_flag=True, hidden=True)
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def start(ctx, attach, interactive, detach_keys, restarting, containers):
    """Start one or more stopped containers."""
    from barque.cli.run import _fail
    from barque.container.start import start as do_start

    engine = engine_from(ctx)
    if attach or interactive:
        if len(containers) > 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        from barque.cli.attach_io import attach_foreground

        try:
            c = engine.containers.get(containers[0])
            tty = bool(c.record["Config"].get("Tty"))
            size = None
            if tty:
                from barque.cli.run import _terminal_size

                size = _terminal_size()
            streams = {"stdout", "stderr", *(["stdin"] if interactive else [])}
            from barque.cli.attach_io import hello_for

            sock = do_start(engine, c, attach=hello_for(streams), size=size)
        except BarqueError as e:
            raise _fail(e) from None
        code = attach_foreground(c, sock, streams, tty=tty, detach_keys=detach_keys)
        if code is not None:
            raise ExitStatus(code)
        return
    if restarting:
        try:
            c = engine.containers.get(containers[0])
        except BarqueError:
            return  # removed meanwhile: nothing to restart
        from barque.container.monitor import STOPPED_BY_USER_KEY

        state = c.refresh()
        if state.get(STOPPED_BY_USER_KEY) or state.get("Status") != "restarting":
            return  # stopped by the user during the back-off
        do_start(engine, c, restarting=True)
        return
    _each(ctx, containers, lambda engine, c: do_start(engine, c) and None)


@click.command("stop", context_settings=CONTEXT)
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds to wait before killing the container.")
@click.option("-s", "--signal", "sig", default=None, help="Signal to send to the container.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def stop(ctx, timeout, sig, containers):
    """Stop one or more running containers."""
    from barque.container.stop import stop as do_stop

    _each(ctx, containers, lambda engine, c: do_stop(c, timeout, sig))


@click.command("restart", context_settings=CONTEXT)
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds to wait before killing the container.")
@click.option("-s", "--signal", "sig", default=None, help="Signal to send to the container.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def restart(ctx, timeout, sig, containers):
    """Restart one or more containers."""
    from barque.container.stop import restart as do_restart

    _each(ctx, containers, lambda engine, c: do_restart(engine, c, timeout, sig))


@click.command("kill", context_settings=CONTEXT)
@click.option("-s", "--signal", "sig", default="SIGKILL", help="Signal to send to the container.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def kill(ctx, sig, containers):
    """Kill one or more running containers."""
    from barque.container.stop import kill as do_kill

    _each(ctx, containers, lambda engine, c: do_kill(c, sig))


@click.command("pause", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def pause(ctx, containers):
    """Pause all processes within one or more containers."""
    from barque.container.stop import pause as do_pause

    _each(ctx, containers, lambda engine, c: do_pause(c))


@click.command("unpause", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def unpause(ctx, containers):
    """Unpause all processes within one or more containers."""
    from barque.container.stop import unpause as do_unpause

    _each(ctx, containers, lambda engine, c: do_unpause(c))


@click.command("rm", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL).")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container.")
@click.option("-l", "--link", is_flag=True, help="Remove the specified link.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def rm(ctx, force, volumes, link, containers):
    """Remove one or more containers."""
    from barque.container.remove import remove

    _each(ctx, containers, lambda engine, c: remove(engine, c, force=force, volumes=volumes))


@click.command("wait", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def wait(ctx, containers):
    """Block until one or more containers stop, then print their exit codes."""
    from barque.container.attach import wait_exit

    def action(engine, c):
        if c.refresh().get("Status") in ("running", "paused", "restarting"):
            got = wait_exit(c)
            while got is None and c.refresh().get("Status") in ("running", "paused", "restarting"):
                time.sleep(0.05)
                got = wait_exit(c)
            if got is not None and not got.get("Removed"):
                return str(got["ExitCode"])
            if got is not None:
                return str(got["ExitCode"])
        return str(c.refresh().get("ExitCode", 0))

    _each(ctx, containers, action)


@click.command("rename", context_settings=CONTEXT)
@click.argument("container")
@click.argument("new_name")
@click.pass_context
def rename(ctx, container, new_name):
    """Rename a container."""
    from barque.container.names import rename as do_rename

    engine = engine_from(ctx)
    do_rename(engine, engine.containers.get(container), new_name)


@click.command("ps", context_settings=CONTEXT)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running).")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states).")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states).")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided.")
@click.option("--format", "fmt", default=None, help="Format output using a custom template: 'table', 'json' or a Go template.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.pass_context
def ps(ctx, all_, quiet, last, latest, filters, fmt, no_trunc, size):
    """List containers."""
    from barque.cli.format import created_at, human_size, since
    from barque.container.inspect import command_text

    engine = engine_from(ctx)
    if latest:
        last = 1
    chosen = filter_containers(engine, parse_ps_filters(filters), all_=all_, last=last)
    if quiet:
        for c in chosen:
            click.echo(c.id if no_trunc else c.id[:12])
        return
    rows = []
    for c in chosen:
        cmd = command_text(c)
        if not no_trunc and len(cmd) > 20:
            cmd = cmd[:19] + "…"
        image = c.record["Config"].get("Image") or c.record["Image"]
        labels = c.record["Config"].get("Labels") or {}
        row = {
            "Command": json.dumps(cmd, ensure_ascii=False) if not fmt or fmt == "table" else cmd,
            "CreatedAt": created_at(c.record["Created"]),
            "ID": c.id if no_trunc else c.id[:12],
            "Image": image,
            "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
            "LocalVolumes": str(sum(1 for m in c.record.get("Mounts") or [] if m.get("Type") == "volume")),
            "Mounts": ",".join(m.get("Name") or m.get("Source", "") for m in c.record.get("Mounts") or []),
            "Names": c.name,
            "Networks": "" if (c.record["HostConfig"].get("NetworkMode") in ("default", None)) else
                        c.record["HostConfig"]["NetworkMode"],
            "Ports": ports_column(engine, c),
            "RunningFor": since(c.record["Created"]),
            "Size": "",
            "State": c.state.get("Status", "created"),
            "Status": status_text(c.state),
        }
        if size:
            try:
                rw = engine.snapshotter.usage(c.private["snapshot"]).size
            except Exception:  # noqa: BLE001
                rw = 0
            row["Size"] = human_size(rw)
        rows.append(row)
    columns = [("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"), ("CREATED", "RunningFor"),
               ("STATUS", "Status"), ("PORTS", "Ports"), ("NAMES", "Names")]
    if size:
        columns.insert(6, ("SIZE", "Size"))
    print_listing(rows, fmt, columns)


@click.command("logs", context_settings=CONTEXT)
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("--tail", "-n", "tail", default="all", help="Number of lines to show from the end of the logs.")
@click.option("--since", default=None, help="Show logs since timestamp or relative (e.g. 42m).")
@click.option("--until", default=None, help="Show logs before a timestamp or relative (e.g. 42m).")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("--details", is_flag=True, help="Show extra details provided to logs.")
@click.argument("container")
@click.pass_context
def logs(ctx, follow, tail, since, until, timestamps, details, container):
    """Fetch the logs of a container."""
    import os

    from barque.container.logs import format_entry, parse_since, read_logs

    engine = engine_from(ctx)
    c = engine.containers.get(container)
    driver = (c.record["HostConfig"].get("LogConfig") or {}).get("Type", "json-file")
    if driver == "none" or not c.record.get("LogPath"):
        raise BarqueError('configured logging driver does not support reading')
    if tail in ("all", ""):
        n = None
    else:
        try:
            n = int(tail)
        except ValueError:
            raise InvalidArgument(f"invalid value for \"tail\": {tail!r}") from None
        if n < 0:
            n = None
    now = time.time()
    t_since = parse_since(since, now) if since else None
    t_until = parse_since(until, now) if until else None
    out, err = sys.stdout.buffer, sys.stderr.buffer

    def running() -> bool:
        return c.refresh().get("Status") in ("running", "paused", "restarting")

    path = c.record["LogPath"]
    if not os.path.exists(path) and not follow:
        return
    try:
        for entry in read_logs(path, tail=n, since=t_since, until=t_until, follow=follow, still_running=running):
            (err if entry.stream == "stderr" else out).write(format_entry(entry, timestamps))
            if follow:
                (err if entry.stream == "stderr" else out).flush()
    except KeyboardInterrupt:
        pass
    out.flush()
    err.flush()


@click.command("attach", context_settings=CONTEXT)
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy all received signals to the process.")
@click.option("--detach-keys", default=None, help="Override the key sequence for detaching a container.")
@click.argument("container")
@click.pass_context
def attach(ctx, no_stdin, sig_proxy, detach_keys, container):
    """Attach local standard input, output, and error streams to a running container."""
    from barque.cli.attach_io import attach_foreground
    from barque.errors import Conflict

    engine = engine_from(ctx)
    c = engine.containers.get(container)
    status = c.refresh().get("Status")
    if status != "running":
        if status == "paused":
            raise Conflict("You cannot attach to a paused container, unpause it first")
        raise Conflict("You cannot attach to a stopped container, start it first")
    cfg = c.record["Config"]
    streams = {"stdout", "stderr"}
    if cfg.get("OpenStdin") and not no_stdin:
        streams.add("stdin")
    code = attach_foreground(c, None, streams, tty=bool(cfg.get("Tty")), sig_proxy=sig_proxy,
                             detach_keys=detach_keys)
    if code is not None:
        raise ExitStatus(code)


@click.command("inspect", context_settings=CONTEXT)
@click.option("-f", "--format", "fmt", default=None, help="Format output using a custom template.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def container_inspect(ctx, fmt, size, containers):
    """Display detailed information on one or more containers."""
    from barque.cli.format import render_template
    from barque.container.inspect import inspect

    engine = engine_from(ctx)
    out, failed = [], False
    for ref in containers:
        try:
            out.append(inspect(engine, engine.containers.get(ref), size=size))
        except BarqueError as e:
            print(f"Error: {e.message}", file=sys.stderr)
            failed = True
    if fmt:
        for obj in out:
            click.echo(render_template(fmt, obj))
    else:
        click.echo(json.dumps(out, indent=4))
    if failed:
        raise ExitStatus(1)


@click.command("prune", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=<timestamp>').")
@click.pass_context
def container_prune(ctx, force, filters):
    """Remove all stopped containers."""
    from barque.container.prune import parse_prune_filters, prune_containers

    parsed = parse_prune_filters(filters)
    if not force:
        click.echo("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ",
                   nl=False)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return
    report = prune_containers(engine_from(ctx), parsed)
    for message in report.errors:
        print(f"Error: {message}", file=sys.stderr)
    print_container_prune(report)


def print_container_prune(report) -> None:
    from barque.cli.format import human_size, print_deleted

    print_deleted("Deleted Containers", report.deleted)
    click.echo(f"Total reclaimed space: {human_size(report.reclaimed)}")
