"""Both engines, side by side, for the networking parity tests (tests/interop/test_network_docker_parity.py).

barque runs in a lab of throwaway namespaces (tests/netlab.py: its commands under `nsenter --net` into the lab's
host namespace); dockerd runs in a throwaway namespace of its own (bench/netns.py) with its real networking — docker0,
iptables, docker-proxy (bench/dockerd.py `private_dockerd(netns=)`). Both default to 172.17.0.0/16, which is fine:
they never share a namespace. Everything is removed on exit, failure included.

The docker side is every docker CLI found here against that one dockerd: the one matching Debian's dockerd
(/usr/bin/docker, 20.10) and a newer one earlier in PATH (e.g. 28.x) — some messages are the CLI's, not the
daemon's, and changed between versions. barque says "Error: …" where Docker says "Error response from daemon: …"
(barque has no daemon), so messages are compared by their meaning (`meaning`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from tests.conftest import Barque, _cleanup_root
from tests.netlab import drop_lab, in_lab, make_lab

HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
HEX12 = re.compile(r"\b[0-9a-f]{12}\b")
#: lines the docker CLI adds around a message: usage hints (20.10: "See 'docker run --help'.", 28.x: "Run 'docker
#: run --help' for more information") and 28.x's "exit status 1" after a daemon error of `network rm`
_NOISE = re.compile(r"^(See '.*--help'\.|Run '.*--help' for more information|exit status \d+)$")
_PREFIXES = ("docker: ", "Error response from daemon: ", "Error: ")
#: docker's port-clash message names the endpoint's ID in parentheses; barque's has no such ID
_ENDPOINT_ID = re.compile(r" \([0-9a-f]{64}\)")


@dataclass
class Said:
    status: int
    out: str
    err: str


@dataclass
class Docker:
    """One docker CLI against the private dockerd."""

    daemon: Any          # bench.dockerd.Dockerd with its cli set to this CLI
    version: str         # the CLI's version, e.g. "20.10.24+dfsg1"

    @property
    def name(self) -> str:
        return f"docker {self.version}"

    def __call__(self, *args: str, timeout: float = 120) -> Said:
        p = self.daemon.docker(*args, check=False, timeout=timeout)
        return Said(p.returncode, p.stdout, p.stderr)


@dataclass
class BarqueSide:
    b: Barque
    name: str = "barque"

    def __call__(self, *args: str, timeout: float = 120) -> Said:
        r = self.b(*args, check=False, timeout=timeout)
        return Said(r.returncode, r.stdout, r.stderr)


def must(said: Said, what: str = "") -> Said:
    if said.status != 0:
        raise AssertionError(f"{what} exited {said.status}\nstdout: {said.out}\nstderr: {said.err}")
    return said


def meaning(err: str) -> list[str]:
    """The meaningful lines of an error message: without the CLI's prefixes, usage hints, trailing period, the case
    of the first letter (docker 20.10's CLI capitalised its own messages, 28.x does not) and IDs."""
    lines = []
    for line in err.splitlines():
        line = line.strip()
        if not line or _NOISE.match(line):
            continue
        stripped = True
        while stripped:
            stripped = False
            for prefix in _PREFIXES:
                if line.startswith(prefix):
                    line, stripped = line[len(prefix):], True
        line = _ENDPOINT_ID.sub("", line.rstrip("."))
        lines.append(HEX64.sub("<ID>", line[:1].lower() + line[1:]))
    return lines


def shape(value: Any) -> Any:
    """The structure of a JSON value without its values: dicts keep their keys, lists become the set of their
    items' shapes, scalars their JSON type."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return ["list", *sorted({repr(shape(v)) for v in value})]
    return {str: "string", bool: "bool", int: "number", float: "number", type(None): "null"}[type(value)]


def docker_clis(daemon) -> list[Docker]:
    """Each distinct docker CLI here, the daemon's own first."""
    paths = [daemon.cli]
    other = shutil.which("docker")
    if other and os.path.realpath(other) != os.path.realpath(daemon.cli):
        paths.append(other)
    clis = []
    for path in paths:
        d = dataclasses.replace(daemon, cli=path)
        version = d.docker("version", "--format", "{{.Client.Version}}").stdout.strip()
        clis.append(Docker(d, version))
    return clis


@contextmanager
def bridged_dockerd() -> Iterator[list[Docker]]:
    """A private dockerd with Docker's own networking, in a throwaway network namespace of its own."""
    from bench.dockerd import private_dockerd
    from bench.netns import throwaway_netns

    with throwaway_netns(f"bqd-{uuid.uuid4().hex[:8]}") as ns, private_dockerd(netns=ns.path) as daemon:
        yield docker_clis(daemon)


@contextmanager
def barque_in_lab(base: Path) -> Iterator[BarqueSide]:
    """A barque root whose every command runs in the host namespace of a fresh lab; its containers, embedded DNS
    server, root and lab are gone on exit."""
    with ExitStack() as stack:
        lab = make_lab()
        stack.callback(drop_lab, lab)
        b = in_lab(Barque(base / "root", base / "run"), lab)
        stack.callback(_cleanup_root, b.root)
        stack.callback(b.close)
        yield BarqueSide(b)
