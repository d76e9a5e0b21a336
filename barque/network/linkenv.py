"""Docker's legacy-link environment variables (moby daemon/links: `Link.ToEnv`), for a container started with
`--link NAME:ALIAS`. For a target `db` at 172.17.0.2 exposing 5432/tcp, linked as `db` by `web`:

    DB_PORT=tcp://172.17.0.2:5432
    DB_PORT_5432_TCP=tcp://172.17.0.2:5432
    DB_PORT_5432_TCP_ADDR=172.17.0.2
    DB_PORT_5432_TCP_PORT=5432
    DB_PORT_5432_TCP_PROTO=tcp
    DB_NAME=/web/db
    DB_ENV_POSTGRES_USER=…          (the target's configured Env, except HOME and PATH)

The prefix is the alias upper-cased with `-` turned into `_` (only that: Docker keeps a `.` of a name as it is).
Ports are ordered tcp first, then by protocol name, each by number; `…_PORT` is the first of them. A run of
consecutive ports of one protocol adds `…_START`, `…_PORT_START`, `…_END`, `…_PORT_END` on the run's first port.
"""

from __future__ import annotations

import re
from typing import Iterable

__all__ = ["link_env"]

_PORT = re.compile(r"([0-9]+)(?:-([0-9]+))?")


def _ports(exposed: Iterable[str]) -> list[tuple[int, str]]:
    """ExposedPorts keys ("80/tcp", "80", "7000-7002/udp") → [(number, proto)], in Docker's order."""
    out: set[tuple[int, str]] = set()
    for key in exposed:
        number, _, proto = str(key).partition("/")
        m = _PORT.fullmatch(number)
        if not m:
            continue
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) else start
        out.update((n, (proto or "tcp").lower()) for n in range(start, end + 1))
    return sorted(out, key=lambda p: (p[1] != "tcp", p[1], p[0]))


def link_env(alias: str, container_name: str, target_ip: str, exposed_ports: Iterable[str] | None,
             target_env: Iterable[str] | None) -> list[str]:
    """The variables `--link TARGET:alias` gives the container named `container_name`, in Docker's order.

    `target_ip`: the target's address on the network the two share (the default bridge); `exposed_ports`: the keys
    of the target's Config.ExposedPorts; `target_env`: the target's Config.Env (as configured, not the runtime
    additions such as HOSTNAME). Names may be given with their leading `/`.
    """
    alias = alias.strip("/").rsplit("/", 1)[-1]
    prefix = alias.upper().replace("-", "_")
    name = f"/{container_name.strip('/')}/{alias}"
    ports = _ports(exposed_ports or ())
    env: list[str] = []
    if ports:
        number, proto = ports[0]
        env.append(f"{prefix}_PORT={proto}://{target_ip}:{number}")
    start = end = ports[0] if ports else None
    for i, (number, proto) in enumerate(ports):
        each = f"{prefix}_PORT_{number}_{proto.upper()}"
        env += [f"{each}={proto}://{target_ip}:{number}", f"{each}_ADDR={target_ip}", f"{each}_PORT={number}",
                f"{each}_PROTO={proto}"]
        if number == end[0] + 1 and proto == start[1]:
            end = (number, proto)
            if i < len(ports) - 1:
                continue
        if end != start:
            first = f"{prefix}_PORT_{start[0]}_{start[1].upper()}"
            env += [f"{first}_START={start[1]}://{target_ip}:{start[0]}", f"{first}_PORT_START={start[0]}",
                    f"{first}_END={end[1]}://{target_ip}:{end[0]}", f"{first}_PORT_END={end[0]}"]
        start = end = (number, proto)
    env.append(f"{prefix}_NAME={name}")
    for item in target_env or ():
        key, sep, value = item.partition("=")
        if not sep or key in ("HOME", "PATH"):
            continue
        env.append(f"{prefix}_ENV_{key}={value}")
    return env
