"""What both edges of a build (the `build` command and the API's `POST /build`) check the same way: the platform
asked for, the RUN steps' network mode and their extra /etc/hosts entries."""

from __future__ import annotations

from barque.errors import InvalidArgument

__all__ = ["check_platform", "run_network", "extra_host", "NETWORK_MODES"]

#: what the builder's RUN steps may use ("bridge" is Docker's name for the default)
NETWORK_MODES = ("default", "none", "host", "bridge")


def check_platform(platform: str, what: str = "--platform") -> None:
    """Refused unless every platform named (comma-separated) is this machine's."""
    from barque.oci.platform import host_architecture

    wanted = [p.strip() for p in platform.split(",")]
    if any(p not in (f"linux/{host_architecture()}", "linux", host_architecture()) for p in wanted):
        raise InvalidArgument(f"{what} {platform}: barque builds for this machine's platform only "
                              f"(linux/{host_architecture()})")


def run_network(mode: str) -> str:
    """The builder's name for a network mode (`bridge` is the default), or InvalidArgument."""
    if mode not in NETWORK_MODES:
        raise InvalidArgument(f"network mode {mode!r} not supported by the builder: default, none or host")
    return "default" if mode == "bridge" else mode


def extra_host(value: str) -> str:
    """`HOST:IP` (or `HOST=IP`) as the `IP\\tHOST` line of a RUN step's /etc/hosts; InvalidArgument with Docker's
    words (the CLI adds which flag)."""
    import ipaddress

    name, sep, ip = value.partition(":") if "=" not in value else value.partition("=")
    try:
        ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        raise InvalidArgument(f"invalid IP address in add-host: \"{ip}\"") from None
    if not sep or not name:
        raise InvalidArgument("bad format for add-host")
    return f"{ip.strip('[]')}\t{name}"
