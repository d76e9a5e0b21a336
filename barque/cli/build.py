"""`barque build`: Docker's `build` (the classic builder's flags and output)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from barque.cli.errors import ExitStatus
from barque.cli.main import CONTEXT, engine_from
from barque.errors import InvalidArgument


def _build_args(values) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        key, eq, value = v.partition("=")
        if not key:
            raise InvalidArgument(f"invalid build argument {v!r}: the name is empty")
        if eq:
            out[key] = value
        elif key in os.environ:  # `--build-arg NAME` takes the value from the environment, as Docker's CLI
            out[key] = os.environ[key]
    return out


def _limits(memory, memory_swap, cpu_shares, cpu_period, cpu_quota, cpuset_cpus, cpuset_mems, shm_size,
            ulimits) -> dict:
    """The resource flags as the HostConfig of each RUN step (Docker's build takes them for its containers)."""
    host: dict = {}
    if not any((memory, memory_swap, cpu_shares, cpu_period, cpu_quota, cpuset_cpus, cpuset_mems, shm_size,
                ulimits)):
        return host
    from barque.container import options as o

    if memory:
        host["Memory"] = o.parse_bytes(memory, "-m, --memory")
    if memory_swap:
        host["MemorySwap"] = o.parse_memory_swap(memory_swap)
    for value, key, flag in ((cpu_shares, "CpuShares", "--cpu-shares"), (cpu_period, "CpuPeriod", "--cpu-period"),
                             (cpu_quota, "CpuQuota", "--cpu-quota")):
        if value is not None:
            host[key] = o.parse_int_flag(value, flag)
    if cpuset_cpus:
        host["CpusetCpus"] = o.parse_cpuset(cpuset_cpus, "--cpuset-cpus")
    if cpuset_mems:
        host["CpusetMems"] = o.parse_cpuset(cpuset_mems, "--cpuset-mems")
    if shm_size:
        host["ShmSize"] = o.parse_bytes(shm_size, "--shm-size")
    if ulimits:
        host["Ulimits"] = [o.parse_ulimit(u) for u in ulimits]
    return host


def _extra_hosts(values) -> list[str]:
    """--add-host HOST:IP, as Docker's CLI checks it; `HOST IP` lines for the RUN steps' /etc/hosts."""
    from barque.build.flags import extra_host

    out = []
    for v in values:
        try:
            out.append(extra_host(v))
        except InvalidArgument as e:
            raise InvalidArgument(f"invalid argument \"{v}\" for \"--add-host\" flag: {e.message}") from None
    return out


def _labels(values) -> dict[str, str]:
    out = {}
    for v in values:
        key, _, value = v.partition("=")
        if not key:
            raise InvalidArgument(f"invalid label {v!r}: the name is empty")
        out[key] = value
    return out


def _secrets(values, temporary: list[Path]) -> dict[str, Path]:
    """--secret id=NAME,src=FILE (or env=VAR, or type=file|env) as BuildKit's CLI takes them."""
    import csv

    out: dict[str, Path] = {}
    for v in values:
        fields = dict(item.partition("=")[::2] for item in next(csv.reader([v])))
        ident = fields.get("id")
        src = fields.get("src") or fields.get("source")
        env = fields.get("env")
        if fields.get("type") == "env" and not env:
            env = src or ident
            src = None
        if not ident:
            raise InvalidArgument(f"invalid secret {v!r}: an id is required")
        if src:
            path = Path(src)
            if not path.is_file():
                raise InvalidArgument(f"secret {ident}: {src} is not a readable file")
            out[ident] = path
        else:
            value = os.environ.get(env or ident)
            if value is None:
                raise InvalidArgument(f"secret {ident}: no src= and no environment variable {env or ident}")
            import tempfile

            f = tempfile.NamedTemporaryFile(prefix="barque-secret-", delete=False)
            f.write(value.encode())
            f.close()
            temporary.append(Path(f.name))
            out[ident] = Path(f.name)
    return out


@click.command("build", context_settings=CONTEXT)
@click.option("-t", "--tag", "tags", multiple=True, help="Name and optionally a tag in the 'name:tag' format.")
@click.option("-f", "--file", "dockerfile", default=None, help="Name of the Dockerfile (default: 'PATH/Dockerfile').")
@click.option("--build-arg", "build_args", multiple=True, help="Set build-time variables.")
@click.option("--target", default=None, help="Set the target build stage to build.")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image.")
@click.option("--label", "labels", multiple=True, help="Set metadata for an image.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID on success.")
@click.option("--iidfile", default=None, help="Write the image ID to the file.")
@click.option("--network", default="default", help="Set the networking mode for the RUN instructions: default, "
              "none, host, container:NAME or a network's name or ID.")
@click.option("--secret", "secrets", multiple=True, help="Secret to expose to the build (id=mysecret,src=/path).")
@click.option("--add-host", "add_hosts", multiple=True, help="Add a custom host-to-IP mapping (host:ip) for RUN.")
@click.option("-m", "--memory", default=None, help="Memory limit of RUN steps.")
@click.option("--memory-swap", default=None, help="Swap limit equal to memory plus swap: -1 for unlimited swap.")
@click.option("--cpu-shares", default=None, help="CPU shares (relative weight) of RUN steps.")
@click.option("--cpu-period", default=None, help="Limit the CPU CFS (Completely Fair Scheduler) period.")
@click.option("--cpu-quota", default=None, help="Limit the CPU CFS (Completely Fair Scheduler) quota.")
@click.option("--cpuset-cpus", default=None, help="CPUs in which to allow execution (0-3, 0,1).")
@click.option("--cpuset-mems", default=None, help="MEMs in which to allow execution (0-3, 0,1).")
@click.option("--shm-size", default=None, help="Size of /dev/shm of RUN steps.")
@click.option("--ulimit", "ulimits", multiple=True, help="Ulimit options of RUN steps.")
@click.option("--pull", is_flag=True, help="Always attempt to pull a newer version of the base images.")
@click.option("--rm/--no-rm", default=True, hidden=True, help="Remove intermediate containers (always).")
@click.option("--force-rm", is_flag=True, hidden=True, help="Always remove intermediate containers (always).")
@click.option("--platform", default=None, hidden=True, help="Accepted when it names this machine's platform.")
@click.option("--progress", default=None, hidden=True, help="Accepted for compatibility; output is classic.")
@click.argument("context_path", metavar="PATH | URL | -")
@click.pass_context
def build(ctx, tags, dockerfile, build_args, target, no_cache, labels, quiet, iidfile, network, secrets, add_hosts,
          memory, memory_swap, cpu_shares, cpu_period, cpu_quota, cpuset_cpus, cpuset_mems, shm_size, ulimits, pull,
          rm, force_rm, platform, progress, context_path):
    """Build an image from a Dockerfile."""
    from barque.build.builder import BuildOptions
    from barque.oci.reference import parse_reference

    refs = []
    for t in tags:
        ref = parse_reference(t)
        if ref.digest is not None:
            raise InvalidArgument(f"invalid reference format: {t}: a tag can not hold a digest")
        refs.append(ref)
    from barque.build.flags import check_platform, run_network

    if platform:
        check_platform(platform)
    network = run_network(network)
    temporary: list[Path] = []
    try:
        opts = BuildOptions(tags=refs, build_args=_build_args(build_args), target=target, no_cache=no_cache,
                            labels=_labels(labels), network=network,
                            secrets=_secrets(secrets, temporary),
                            host=_limits(memory, memory_swap, cpu_shares, cpu_period, cpu_quota, cpuset_cpus,
                                         cpuset_mems, shm_size, ulimits),
                            extra_hosts=_extra_hosts(add_hosts), pull="always" if pull else "missing",
                            force_rm=force_rm)
        _build(ctx, opts, quiet, iidfile, context_path, dockerfile)
    finally:
        for t in temporary:
            t.unlink(missing_ok=True)


def _build(ctx, opts, quiet: bool, iidfile: str | None, context_path: str, dockerfile: str | None) -> None:
    from barque.build.builder import BuildFailed, build as run_build
    from barque.build.context import open_context

    engine = engine_from(ctx)
    buffered: list[str] = []

    def out(text: str) -> None:
        if quiet:
            buffered.append(text)
            return
        sys.stdout.write(text)
        sys.stdout.flush()

    try:
        with open_context(context_path, dockerfile) as context:
            result = run_build(engine, context, opts, out)
    except BuildFailed as e:
        if quiet:
            sys.stderr.write("".join(buffered))
        print(e.message, file=sys.stderr)
        raise ExitStatus(e.code or 1) from None
    except BaseException:
        if quiet:
            sys.stderr.write("".join(buffered))
        raise
    if result.unused_args:
        out(f"[Warning] One or more build-args [{' '.join(result.unused_args)}] were not consumed\n")
    if iidfile:
        Path(iidfile).write_text(result.image_id)
    if quiet:
        print(result.image_id)
        return
    out(f"Successfully built {result.image_id.split(':', 1)[1][:12]}\n")
    for ref in result.tags:
        out(f"Successfully tagged {ref.tag_or_latest().familiar()}\n")


@click.command("prune", context_settings=CONTEXT)
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused build cache (barque keeps no other kind).")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.pass_context
def builder_prune(ctx, all_, force):
    """Remove build cache."""
    from barque.build.prune import prune_cache
    from barque.cli.format import human_size, print_deleted

    if not force:
        click.echo("WARNING! This will remove all dangling build cache.")
        if not click.confirm("Are you sure you want to continue?", default=False):
            return
    keys, freed = prune_cache(engine_from(ctx))
    print_deleted("Deleted build cache objects", [k[:25] for k in keys])
    click.echo(f"Total reclaimed space: {human_size(freed, 4)}")
