"""`run` and `create`: Docker's flags turned into Docker's create body (what `POST /containers/create` takes), then
the engine's create/start, then — in the foreground — the container's output and exit code.

Exit codes as `docker run`: the container's own; 125 when barque fails; 126 when the command cannot be invoked;
127 when it is not found.
"""

from __future__ import annotations

import os
import sys

import click

from barque.cli.errors import ExitStatus
from barque.cli.main import CONTEXT, engine_from

RUN_CONTEXT = {**CONTEXT, "allow_interspersed_args": False}


def _options(f):
    opts = [
        click.option("--name", default=None, help="Assign a name to the container."),
        click.option("-e", "--env", "env", multiple=True, help="Set environment variables."),
        click.option("--env-file", multiple=True, help="Read in a file of environment variables."),
        click.option("-w", "--workdir", default=None, help="Working directory inside the container."),
        click.option("-u", "--user", default=None, help="Username or UID (format: <name|uid>[:<group|gid>])."),
        click.option("--group-add", "group_add", multiple=True, help="Add additional groups to join."),
        click.option("--entrypoint", default=None, help="Overwrite the default ENTRYPOINT of the image."),
        click.option("-h", "--hostname", default=None, help="Container host name."),
        click.option("--domainname", default=None, help="Container NIS domain name."),
        click.option("-l", "--label", "labels", multiple=True, help="Set meta data on a container."),
        click.option("--label-file", multiple=True, help="Read in a line delimited file of labels."),
        click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached."),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY."),
        click.option("-m", "--memory", default=None, help="Memory limit."),
        click.option("--memory-swap", default=None, help="Swap limit equal to memory plus swap: '-1' for unlimited."),
        click.option("--memory-reservation", default=None, help="Memory soft limit."),
        click.option("--oom-kill-disable", is_flag=True, help="Disable OOM Killer."),
        click.option("--oom-score-adj", type=int, default=None, help="Tune host's OOM preferences (-1000 to 1000)."),
        click.option("--cpus", default=None, help="Number of CPUs."),
        click.option("-c", "--cpu-shares", default=None, help="CPU shares (relative weight)."),
        click.option("--cpu-period", default=None, help="Limit CPU CFS period."),
        click.option("--cpu-quota", default=None, help="Limit CPU CFS quota."),
        click.option("--cpuset-cpus", default=None, help="CPUs in which to allow execution (0-3, 0,1)."),
        click.option("--cpuset-mems", default=None, help="MEMs in which to allow execution (0-3, 0,1)."),
        click.option("--pids-limit", default=None, help="Tune container pids limit (set -1 for unlimited)."),
        click.option("--ulimit", "ulimits", multiple=True, help="Ulimit options."),
        click.option("--shm-size", default=None, help="Size of /dev/shm."),
        click.option("--read-only", is_flag=True, help="Mount the container's root filesystem as read only."),
        click.option("--cap-add", multiple=True, help="Add Linux capabilities."),
        click.option("--cap-drop", multiple=True, help="Drop Linux capabilities."),
        click.option("--privileged", is_flag=True, help="Give extended privileges to this container."),
        click.option("--security-opt", multiple=True, help="Security Options."),
        click.option("--sysctl", multiple=True, help="Sysctl options."),
        click.option("--userns", default=None, help="User namespace to use (host, or remap)."),
        click.option("--init", is_flag=True, help="Run an init inside the container that forwards signals and reaps "
                                                  "processes."),
        click.option("--restart", default=None, help="Restart policy to apply when a container exits."),
        click.option("--rm", "auto_remove", is_flag=True, help="Automatically remove the container when it exits."),
        click.option("--health-cmd", default=None, help="Command to run to check health."),
        click.option("--health-interval", default=None, help="Time between running the check (ms|s|m|h)."),
        click.option("--health-timeout", default=None, help="Maximum time to allow one check to run (ms|s|m|h)."),
        click.option("--health-retries", default=None, help="Consecutive failures needed to report unhealthy."),
        click.option("--health-start-period", default=None, help="Start period for the container to initialize."),
        click.option("--health-start-interval", default=None, help="Time between checks during the start period."),
        click.option("--no-healthcheck", is_flag=True, help="Disable any container-specified HEALTHCHECK."),
        click.option("--stop-signal", default=None, help="Signal to stop the container."),
        click.option("--stop-timeout", type=int, default=None, help="Timeout (in seconds) to stop a container."),
        click.option("-v", "--volume", "volumes", multiple=True, help="Bind mount a volume."),
        click.option("--mount", "mounts", multiple=True, help="Attach a filesystem mount to the container."),
        click.option("--tmpfs", multiple=True, help="Mount a tmpfs directory."),
        click.option("--volumes-from", multiple=True, help="Mount volumes from the specified container(s)."),
        click.option("--log-driver", default=None, help="Logging driver for the container (json-file, local, none)."),
        click.option("--log-opt", multiple=True, help="Log driver options."),
        click.option("--network", "--net", "network", default=None, help="Connect a container to a network."),
        click.option("--dns", multiple=True, help="Set custom DNS servers."),
        click.option("--dns-search", multiple=True, help="Set custom DNS search domains."),
        click.option("--dns-option", multiple=True, help="Set DNS options."),
        click.option("--pid", default=None, help="PID namespace to use."),
        click.option("--ipc", default=None, help="IPC mode to use."),
        click.option("--uts", default=None, help="UTS namespace to use."),
        click.option("-p", "--publish", multiple=True, help="Publish a container's port(s) to the host."),
        click.option("-P", "--publish-all", is_flag=True, help="Publish all exposed ports to random ports."),
        click.option("--expose", multiple=True, help="Expose a port or a range of ports."),
        click.option("--link", "links", multiple=True, help="Add link to another container."),
        click.option("--network-alias", "network_aliases", multiple=True,
                     help="Add network-scoped alias for the container."),
        click.option("--ip", default=None, help="IPv4 address (e.g., 172.30.100.104)."),
        click.option("--mac-address", default=None, help="Container MAC address (e.g., 92:d0:c6:0a:29:33)."),
        click.option("--add-host", "add_hosts", multiple=True, help="Add a custom host-to-IP mapping (host:ip)."),
        click.option("--platform", default=None, help="Set platform if server is multi-platform capable."),
        click.option("--pull", default="missing", help="Pull image before running (\"always\", \"missing\", \"never\")."),
        click.argument("image"),
        click.argument("command", nargs=-1, type=click.UNPROCESSED),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def body_from_flags(p: dict) -> dict:
    """Docker's create body from the parsed flags (every value checked; bad ones raise InvalidArgument)."""
    from barque.container import options as o
    from barque.errors import InvalidArgument

    host: dict = {}
    body: dict = {"Image": p["image"], "Tty": p["tty"], "OpenStdin": p["interactive"],
                  "StdinOnce": p["interactive"], "AttachStdin": p["interactive"]}
    if p["command"]:
        body["Cmd"] = list(p["command"])
    if p["entrypoint"] is not None:
        body["Entrypoint"] = [p["entrypoint"]] if p["entrypoint"] else [""]
    env = o.parse_env(p["env"], p["env_file"], os.environ)
    if env:
        body["Env"] = env
    for flag, key in (("workdir", "WorkingDir"), ("user", "User"), ("hostname", "Hostname"),
                      ("domainname", "Domainname")):
        if p[flag]:
            body[key] = p[flag]
    if p["workdir"] and not p["workdir"].startswith("/"):
        raise InvalidArgument(f"the working directory '{p['workdir']}' is invalid, it needs to be an absolute path")
    labels = o.parse_labels(p["labels"], p["label_file"])
    if labels:
        body["Labels"] = labels
    hc = o.parse_healthcheck(p["health_cmd"], p["health_interval"], p["health_timeout"], p["health_retries"],
                             p["health_start_period"], p["health_start_interval"], p["no_healthcheck"])
    if hc is not None:
        body["Healthcheck"] = hc
    if p["stop_signal"]:
        body["StopSignal"] = o.parse_signal(p["stop_signal"])
    if p["stop_timeout"] is not None:
        body["StopTimeout"] = p["stop_timeout"]
    if p["memory"]:
        host["Memory"] = o.parse_bytes(p["memory"], "-m, --memory")
    if p["memory_swap"]:
        host["MemorySwap"] = o.parse_memory_swap(p["memory_swap"])
    if p["memory_reservation"]:
        host["MemoryReservation"] = o.parse_bytes(p["memory_reservation"], "--memory-reservation")
    if p["oom_kill_disable"]:
        host["OomKillDisable"] = True
    if p["oom_score_adj"] is not None:
        if not -1000 <= p["oom_score_adj"] <= 1000:
            raise InvalidArgument(f"Invalid value {p['oom_score_adj']}, range for oom score adj is [-1000, 1000]")
        host["OomScoreAdj"] = p["oom_score_adj"]
    if p["cpus"]:
        host["NanoCpus"] = o.parse_cpus(p["cpus"])
    for flag, key in (("cpu_shares", "CpuShares"), ("cpu_period", "CpuPeriod"), ("cpu_quota", "CpuQuota")):
        if p[flag] is not None:
            host[key] = o.parse_int_flag(p[flag], "--" + flag.replace("_", "-"))
    if p["cpus"] and (p["cpu_period"] or p["cpu_quota"]):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if p["cpuset_cpus"]:
        host["CpusetCpus"] = o.parse_cpuset(p["cpuset_cpus"], "--cpuset-cpus")
    if p["cpuset_mems"]:
        host["CpusetMems"] = o.parse_cpuset(p["cpuset_mems"], "--cpuset-mems")
    if p["pids_limit"] is not None:
        host["PidsLimit"] = o.parse_pids_limit(p["pids_limit"])
    if p["ulimits"]:
        host["Ulimits"] = [o.parse_ulimit(u) for u in p["ulimits"]]
    if p["shm_size"]:
        host["ShmSize"] = o.parse_bytes(p["shm_size"], "--shm-size")
    host["ReadonlyRootfs"] = p["read_only"]
    if p["group_add"]:
        host["GroupAdd"] = list(p["group_add"])
    host["CapAdd"] = list(p["cap_add"]) or None
    host["CapDrop"] = list(p["cap_drop"]) or None
    host["Privileged"] = p["privileged"]
    if p["security_opt"]:
        parsed = o.parse_security_opts(p["security_opt"])
        host["SecurityOpt"] = o.security_opt_strings(parsed)
        if parsed.get("seccomp") not in (None, "unconfined"):
            from barque.container.seccomp_profile import read_profile_file

            # Docker's CLI sends the profile's content, not its path: the daemon may not see the client's files
            host["SecurityOpt"] = [s for s in host["SecurityOpt"] if not s.startswith("seccomp")] + [
                "seccomp=" + read_profile_file(parsed["seccomp"])]
    if p["sysctl"]:
        host["Sysctls"] = o.parse_key_value_opts(p["sysctl"], "--sysctl")
    if p["userns"] is not None:
        host["UsernsMode"] = o.parse_userns(p["userns"])
    if p["init"]:
        host["Init"] = True
    if p["restart"]:
        host["RestartPolicy"] = o.parse_restart(p["restart"])
    host["AutoRemove"] = p["auto_remove"]
    if p["volumes"]:
        host["Binds"] = list(p["volumes"])
        from barque.container.mounts import parse_volume_flag

        for v in p["volumes"]:
            parse_volume_flag(v)  # reject a bad spec before anything is made
    if p["mounts"]:
        from barque.container.mounts import parse_mount_flag

        host["Mounts"] = [parse_mount_flag(m) for m in p["mounts"]]
    if p["tmpfs"]:
        tmpfs = {}
        for t in p["tmpfs"]:
            path, _, opts = t.partition(":")
            tmpfs[path] = opts
        host["Tmpfs"] = tmpfs
    if p["volumes_from"]:
        host["VolumesFrom"] = list(p["volumes_from"])
    if p["log_driver"] or p["log_opt"]:
        host["LogConfig"] = {"Type": p["log_driver"] or "json-file",
                             "Config": o.parse_key_value_opts(p["log_opt"], "--log-opt")}
    _network_flags(p, body, host)
    if p["dns"]:
        import ipaddress

        for d in p["dns"]:
            try:
                ipaddress.ip_address(d)
            except ValueError:
                raise InvalidArgument(f"{d} is not an ip address") from None
        host["Dns"] = list(p["dns"])
    if p["dns_search"]:
        host["DnsSearch"] = list(p["dns_search"])
    if p["dns_option"]:
        host["DnsOptions"] = list(p["dns_option"])
    for flag, key in (("pid", "PidMode"), ("ipc", "IpcMode"), ("uts", "UTSMode")):
        if p[flag]:
            if p[flag] not in ("host", "private", "shareable", ""):
                raise InvalidArgument(f"--{flag}: invalid value {p[flag]!r}: only \"host\" is supported here")
            host[key] = p[flag] if p[flag] == "host" else ""
    if p["pull"] not in ("missing", "never", "always"):
        raise InvalidArgument(f"invalid pull option: '{p['pull']}': must be one of \"always\", \"missing\" or \"never\"")
    body["HostConfig"] = host
    return body


def _network_flags(p: dict, body: dict, host: dict) -> None:
    """-p/-P/--expose, --network and its endpoint's --network-alias/--ip, --link, --add-host: as Docker's CLI puts
    them in the create body. What only the engine can judge (an alias or address on the default bridge, an unknown
    network or container) is left to the engine."""
    from barque.errors import InvalidArgument
    from barque.network.portspec import parse_expose, parse_port_specs

    exposed, bindings = parse_port_specs(p["publish"])
    for key in parse_expose(p["expose"]):
        exposed.setdefault(key, {})
    if exposed:
        body["ExposedPorts"] = exposed
    if bindings:
        host["PortBindings"] = bindings
    if p["publish_all"]:
        host["PublishAllPorts"] = True
    if p["network"]:
        host["NetworkMode"] = p["network"]
    links = [_link_flag(v) for v in p["links"]]
    if links:
        host["Links"] = links
    extra = [_add_host_flag(v) for v in p["add_hosts"]]
    if extra:
        host["ExtraHosts"] = extra
    if p["mac_address"]:  # the docker CLI's check; the engine applies it to the endpoint on the container's network
        from barque.network.ipam import check_mac

        try:
            check_mac(p["mac_address"])
        except InvalidArgument:
            raise InvalidArgument(f"{p['mac_address']} is not a valid mac address") from None
        body["MacAddress"] = p["mac_address"]
    endpoint: dict = {}
    if p["network_aliases"]:
        if (p["network"] or "default") in ("default", "bridge"):  # the docker CLI's own check (25+)
            raise InvalidArgument("network-scoped aliases are only supported for user-defined networks")
        endpoint["Aliases"] = list(p["network_aliases"])
    if p["ip"]:
        endpoint["IPAMConfig"] = {"IPv4Address": p["ip"]}
    mode = p["network"] or "default"
    user_defined = mode not in ("default", "bridge", "host", "none") and not mode.startswith("container:")
    if links and user_defined:
        endpoint["Links"] = list(links)  # Docker's CLI: on a user-defined network, links are the endpoint's too
    if endpoint:
        key = "bridge" if mode == "default" else mode
        body["NetworkingConfig"] = {"EndpointsConfig": {key: endpoint}}


def _flag_error(value: str, flag: str, why: str) -> click.UsageError:
    """A bad flag value, worded as Docker's flag parser words it (exit 125, with the usage hint)."""
    return click.UsageError(f'invalid argument "{value}" for "{flag}" flag: {why}',
                            click.get_current_context(silent=True))


def _link_flag(value: str) -> str:
    """`--link NAME[:ALIAS]`, kept as given (Docker's opts.ValidateLink); the engine resolves the name."""
    if value == "":
        raise _flag_error(value, "--link", "empty string specified for links")
    if len(value.split(":")) > 2:
        raise _flag_error(value, "--link", f"bad format for links: {value}")
    return value


def _add_host_flag(value: str) -> str:
    """`--add-host NAME:IP` (or NAME=IP; IPv6 in brackets or not; `host-gateway`) → `NAME:IP`, as Docker's
    opts.ValidateExtraHost."""
    import ipaddress

    name, sep, addr = value.partition("=")
    if not sep:
        name, sep, addr = value.partition(":")
    if not sep or not name or ":" in name:
        raise _flag_error(value, "--add-host", f'bad format for add-host: "{value}"')
    if addr != "host-gateway":
        if len(addr) > 2 and addr.startswith("[") and addr.endswith("]"):
            addr = addr[1:-1]
        try:
            if "%" in addr:
                raise ValueError(addr)
            ipaddress.ip_address(addr.strip())
        except ValueError:
            raise _flag_error(value, "--add-host", f'invalid IP address in add-host: "{addr}"') from None
    return f"{name}:{addr}"


def _fail(e: BaseException) -> ExitStatus:
    """A failure of run/create/start: Docker's message and code (125, or 126/127 when the command is at fault)."""
    from barque.cli.errors import report
    from barque.container.start import StartFailed
    from barque.errors import BarqueError

    if isinstance(e, StartFailed):
        print(f"Error: {e.message}", file=sys.stderr)
        return ExitStatus(e.code)
    if isinstance(e, BarqueError):
        print(f"Error: {e.message}", file=sys.stderr)
        return ExitStatus(125)
    report(e)
    return ExitStatus(125)


@click.command("create", context_settings=RUN_CONTEXT)
@_options
@click.pass_context
def create(ctx, **p):
    """Create a new container."""
    from barque.container.create import create as do_create
    from barque.errors import BarqueError

    engine = engine_from(ctx)
    try:
        body = body_from_flags(p)
        _ensure_image(engine, p)
        c = do_create(engine, body, p["name"])
    except (BarqueError, OSError) as e:
        raise _fail(e) from None
    click.echo(c.id)


def _ensure_image(engine, p: dict) -> None:
    """`--pull`: the image pulled when missing (or always) before the container is made. The registry client is
    imported only when a pull happens: a present image costs `run` one lookup."""
    from barque.errors import NotFound

    if p["pull"] != "always":
        try:
            engine.images.lookup(p["image"])
            return
        except NotFound:
            if p["pull"] == "never":
                raise
    from barque.registry.client.missing import ensure_image

    ensure_image(engine, p["image"], sys.stderr, p["pull"], p["platform"])


@click.command("run", context_settings=RUN_CONTEXT)
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID.")
@click.option("--detach-keys", default=None, help="Override the key sequence for detaching a container.")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy received signals to the process.")
@click.option("-a", "--attach", "attach_streams", multiple=True, help="Attach to STDIN, STDOUT or STDERR.")
@_options
@click.pass_context
def run(ctx, detach, detach_keys, sig_proxy, attach_streams, **p):
    """Create and run a new container from an image."""
    from barque.container.create import create as do_create
    from barque.container.start import start
    from barque.errors import BarqueError

    engine = engine_from(ctx)
    try:
        body = body_from_flags(p)
        if not detach and p["tty"] and not os.isatty(0) and p["interactive"]:
            raise BarqueError("the input device is not a TTY")
        _ensure_image(engine, p)
        c = do_create(engine, body, p["name"])
    except (BarqueError, OSError) as e:
        raise _fail(e) from None
    from barque.cli.attach_io import hello_for

    size = _terminal_size() if p["tty"] else None
    streams = {s.lower() for s in attach_streams} or {"stdout", "stderr", *(["stdin"] if p["interactive"] else [])}
    if detach:
        click.echo(c.id)  # as the docker CLI: the ID of the created container, before its start (which may fail)
    try:
        sock = start(engine, c, attach=None if detach else hello_for(streams), size=size)
    except (BarqueError, OSError) as e:
        raise _fail(e) from None  # a --rm container that cannot start is gone already (start removes it)
    if detach:
        return
    from barque.cli.attach_io import attach_foreground

    code = attach_foreground(c, sock, streams, tty=p["tty"], sig_proxy=sig_proxy,
                             detach_keys=detach_keys)
    if code is None:  # detached with ctrl-p ctrl-q
        return
    raise ExitStatus(code)


def _terminal_size() -> tuple[int, int] | None:
    try:
        size = os.get_terminal_size(0)
    except OSError:
        try:
            size = os.get_terminal_size(1)
        except OSError:
            return None
    return size.lines, size.columns
