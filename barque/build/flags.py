"""What both edges of a build (the `build` command and the API's `POST /build`) check the same way: the platform
asked for, the RUN steps' network mode and their extra /etc/hosts entries."""

from __future__ import annotations

from barque.errors import InvalidArgument

__all__ = ["check_platform", "run_network", "extra_host"]

def check_platform(platform: str, what: str = "--platform") -> None:
    """Refused unless every platform named (comma-separated) is this machine's."""
    from barque.oci.platform import host_architecture

    wanted = [p.strip() for p in platform.split(",")]
    if any(p not in (f"linux/{host_architecture()}", "linux", host_architecture()) for p in wanted):
        raise InvalidArgument(f"{what} {platform}: barque builds for this machine's platform only "
                              f"(linux/{host_architecture()})")


def run_network(mode: str) -> str:
    """The builder's name for a network mode: `bridge` is the default; `none`, `host`, `container:NAME` and a
    user-defined network's name or ID as they are. As in Docker's classic builder, a network or container that does
    not exist is an error of the first RUN step (Docker's NotFound), not of the request: a build without RUN never
    looks."""
    return "default" if mode in ("", "bridge") else mode


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
