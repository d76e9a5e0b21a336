"""Observing and tuning containers: `top`, `stats`, `update`, `events`, and `system restore`.

The work is in barque.container.stats (processes, usage, limits), barque.container.events (the event log) and
barque.container.restore; this module parses flags and renders Docker's output. Docker's CLI lays these tables out
with Go's tabwriter — `top` with cells at least 20 wide, `stats` at least 10 — and both are reproduced exactly
(`_tabwrite`), so scripts that cut columns by position keep working.
"""

from __future__ import annotations

import json
import sys
import time

import click

from barque.cli.errors import ExitStatus
from barque.cli.main import CONTEXT, engine_from
from barque.errors import BarqueError, InvalidArgument

CLEAR_SCREEN = "\033[2J\033[H"
STATS_INTERVAL = 1.0   # dockerd samples every second; CPU % is over that second

_STATS_HEADERS = {
    "Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
}
_STATS_DEFAULT = ("ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs")


def _tabwrite(rows: list[list[str]], minwidth: int, padding: int = 3) -> str:
    """Go's tabwriter as Docker's CLI sets it up: every cell but a line's last padded to the column's widest cell
    plus `padding`, and to at least `minwidth`; the last cell as it is."""
    if not rows:
        return ""
    ncols = max(len(r) for r in rows)
    widths = []
    for i in range(ncols - 1):
        cells = [len(r[i]) for r in rows if i < len(r) - 1]
        widths.append(max(minwidth, max(cells, default=0) + padding))
    return "\n".join("".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:-1])) + r[-1] for r in rows)


# ---- top ------------------------------------------------------------------------------------------------------

@click.command("top", context_settings={**CONTEXT, "ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("container")
@click.argument("ps_options", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def top(ctx, container, ps_options):
    """Display the running processes of a container."""
    from barque.container.stats import processes

    engine = engine_from(ctx)
    c = engine.containers.get(container)
    titles, rows = processes(engine.runtime_root, c, " ".join(ps_options))
    click.echo(_tabwrite([titles, *rows], 20))


# ---- stats ----------------------------------------------------------------------------------------------------

def stats_row(c, ref: str, prev, cur, trunc: bool = True) -> dict:
    """One `stats` line as Docker's formatter names its fields (sorted, as `--format json` prints them)."""
    from barque.cli.format import human_size
    from barque.oci.times import bytes_size
    from barque.container.stats import cpu_percent, mem_percent

    return {
        "BlockIO": f"{human_size(cur.blk_read, 3)} / {human_size(cur.blk_write, 3)}",
        "CPUPerc": f"{cpu_percent(prev, cur):.2f}%",
        "Container": ref,
        "ID": c.id[:12] if trunc else c.id,
        "MemPerc": f"{mem_percent(cur):.2f}%",
        "MemUsage": f"{bytes_size(cur.mem_usage)} / {bytes_size(cur.mem_limit)}",
        "Name": c.name or "--",
        "NetIO": f"{human_size(cur.net_rx, 3)} / {human_size(cur.net_tx, 3)}",
        "PIDs": str(cur.pids),
    }


def _render_stats(rows: list[dict], fmt: str | None) -> str:
    import re

    from barque.cli.format import print_listing, render_template

    if fmt and fmt != "table" and not fmt.startswith("table"):
        out: list[str] = []
        print_listing(rows, fmt, [], echo=out.append)
        return "\n".join(out)
    if fmt and fmt.startswith("table") and fmt[5:].strip():
        fields = [f.strip() for f in fmt[5:].strip().replace("\\t", "\t").split("\t")]  # typed \t or a tab
        headers = []
        for f in fields:
            m = re.fullmatch(r"{{\s*\.(\w+)\s*}}", f)
            headers.append(_STATS_HEADERS.get(m.group(1), m.group(1).upper()) if m else f.upper())
        body = [[render_template(f, r) for f in fields] for r in rows]
        return _tabwrite([headers, *body], 10)
    return _tabwrite([[_STATS_HEADERS[k] for k in _STATS_DEFAULT],
                      *[[r[k] for k in _STATS_DEFAULT] for r in rows]], 10)


@click.command("stats", context_settings=CONTEXT)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running).")
@click.option("--format", "fmt", default=None, help="Format output using a custom template ('table', 'json', or a "
                                                     "Go template).")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.argument("containers", nargs=-1)
@click.pass_context
def stats(ctx, all_, fmt, no_stream, no_trunc, containers):
    """Display a live stream of container(s) resource usage statistics.

    Streaming ends when none of the containers shown runs any more (or on Ctrl-C)."""
    from barque.container.stats import sample

    engine = engine_from(ctx)
    named = []
    failed = False
    for ref in containers:
        try:
            named.append((ref, engine.containers.get(ref)))
        except BarqueError as e:
            print(f"Error: {e.message}", file=sys.stderr)
            failed = True
    if failed:
        raise ExitStatus(1)

    def shown() -> list:
        if containers:
            return named
        return [(c.id, c) for c in engine.containers.list() if all_ or c.running]

    def take(targets) -> dict:
        return {c.id: sample(c, engine.runtime_root) for _, c in targets}

    prev = take(shown())
    if any(s.running for s in prev.values()):
        time.sleep(STATS_INTERVAL)
    while True:
        targets = shown()
        cur = take(targets)
        rows = [stats_row(c, ref, prev.get(c.id), cur[c.id], trunc=not no_trunc) for ref, c in targets]
        text = _render_stats(rows, fmt)
        if not no_stream:
            click.echo(CLEAR_SCREEN, nl=False, color=True)  # kept when piped, as Docker does
        if text:
            click.echo(text)
        if no_stream or not any(s.running for s in cur.values()):
            return
        prev = cur
        time.sleep(STATS_INTERVAL)


# ---- update ---------------------------------------------------------------------------------------------------

@click.command("update", context_settings=CONTEXT)
@click.option("-m", "--memory", default=None, help="Memory limit.")
@click.option("--memory-swap", default=None, help="Swap limit equal to memory plus swap: -1 to enable unlimited "
                                                  "swap.")
@click.option("--memory-reservation", default=None, help="Memory soft limit.")
@click.option("--cpus", default=None, help="Number of CPUs.")
@click.option("-c", "--cpu-shares", default=None, help="CPU shares (relative weight).")
@click.option("--cpu-period", default=None, help="Limit CPU CFS (Completely Fair Scheduler) period.")
@click.option("--cpu-quota", default=None, help="Limit CPU CFS (Completely Fair Scheduler) quota.")
@click.option("--cpuset-cpus", default=None, help="CPUs in which to allow execution (0-3, 0,1).")
@click.option("--cpuset-mems", default=None, help="MEMs in which to allow execution (0-3, 0,1).")
@click.option("--pids-limit", default=None, help="Tune container pids limit (set -1 for unlimited).")
@click.option("--restart", default=None, help="Restart policy to apply when a container exits.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def update(ctx, memory, memory_swap, memory_reservation, cpus, cpu_shares, cpu_period, cpu_quota, cpuset_cpus,
           cpuset_mems, pids_limit, restart, containers):
    """Update configuration of one or more containers."""
    from barque.cli.containers import _each
    from barque.container import options as o
    from barque.container.stats import update as do_update

    changes: dict = {}
    if memory is not None:
        changes["Memory"] = o.parse_bytes(memory, "-m, --memory")
    if memory_swap is not None:
        changes["MemorySwap"] = o.parse_memory_swap(memory_swap)
    if memory_reservation is not None:
        changes["MemoryReservation"] = o.parse_bytes(memory_reservation, "--memory-reservation")
    if cpus is not None:
        changes["NanoCpus"] = o.parse_cpus(cpus)
    for value, key, flag in ((cpu_shares, "CpuShares", "-c, --cpu-shares"), (cpu_period, "CpuPeriod", "--cpu-period"),
                             (cpu_quota, "CpuQuota", "--cpu-quota")):
        if value is not None:
            changes[key] = o.parse_int_flag(value, flag)
    if cpuset_cpus is not None:
        changes["CpusetCpus"] = o.parse_cpuset(cpuset_cpus, "--cpuset-cpus")
    if cpuset_mems is not None:
        changes["CpusetMems"] = o.parse_cpuset(cpuset_mems, "--cpuset-mems")
    if pids_limit is not None:
        changes["PidsLimit"] = o.parse_pids_limit(pids_limit)
    if restart is not None:
        changes["RestartPolicy"] = o.parse_restart(restart)
    if not changes:
        raise InvalidArgument("you must provide one or more flags when using this command")
    _each(ctx, containers, lambda engine, c: do_update(engine, c, changes))


# ---- events ---------------------------------------------------------------------------------------------------

@click.command("events", context_settings=CONTEXT)
@click.option("--since", default=None, help="Show all events created since timestamp.")
@click.option("--until", default=None, help="Stream events until this timestamp.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided.")
@click.option("--format", "fmt", default=None, help="Format output using a custom template ('json' or a Go "
                                                     "template).")
@click.pass_context
def events(ctx, since, until, filters, fmt):
    """Get real time events from barque.

    Without --until, new events are shown as they happen until interrupted."""
    from barque.cli.format import render_template
    from barque.container.events import format_event, parse_filters, read
    from barque.container.logs import parse_since

    flt = parse_filters(filters)
    now = time.time()
    t_since = parse_since(since, now) if since else None
    t_until = parse_since(until, now) if until else None
    if t_since is not None and t_until is not None and t_until < t_since:
        raise InvalidArgument(f"`since` time ({since}) cannot be after `until` time ({until})")
    if t_since is None and t_until is None:
        t_since = now  # no past events: only those from now on, as dockerd's subscription
    follow = t_until is None or t_until > now
    engine = engine_from(ctx)
    for event in read(engine.root, t_since, t_until, flt, follow=follow):
        if fmt == "json":
            click.echo(json.dumps(event, separators=(",", ":")))
        elif fmt:
            click.echo(render_template(fmt, event))
        else:
            click.echo(format_event(event))


# ---- system restore -------------------------------------------------------------------------------------------

@click.command("restore", context_settings=CONTEXT)
@click.pass_context
def restore(ctx):
    """Start again the containers whose restart policy asks for it (run once at boot).

    `always` containers, and `unless-stopped` ones the user had not stopped, that do not run are started; each
    one's name is printed. Running it again is harmless."""
    from barque.container.restore import restore as do_restore

    engine = engine_from(ctx)
    report = do_restore(engine, on_started=lambda c: click.echo(c.name))
    for c, message in report.failed:
        print(f"Error: container {c.name}: {message}", file=sys.stderr)
    if report.failed:
        raise ExitStatus(1)
