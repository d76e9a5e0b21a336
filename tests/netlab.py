"""Throwaway network namespaces for networking tests: one plays the host (barque runs in it, its bridges and rules
live there), one plays the outside world, joined by a veth pair:

    host  "h-<id>" : lo up, veth "up0" 198.51.100.1/24 (TEST-NET-2)
    outside "o-<id>": lo up, veth "out0" 198.51.100.2/24, nothing else

Nothing touches the machine's own interfaces or firewall; the namespaces (and everything in them) go when the
test ends, also when it fails.
"""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass

import pytest

HOST_ADDR = "198.51.100.1"
OUTSIDE_ADDR = "198.51.100.2"


def eventually(fn, timeout: float = 5.0):
    """`fn()` until it returns something true or `timeout` passes (a container's server takes a moment to listen):
    its last result."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def sh(*args: str, check: bool = True, timeout: float = 30, input: bytes | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), capture_output=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return proc


@dataclass
class Lab:
    host: str          # netns names (ip netns)
    outside: str

    @property
    def host_path(self) -> str:
        return f"/run/netns/{self.host}"

    @property
    def outside_path(self) -> str:
        return f"/run/netns/{self.outside}"

    def in_host(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return sh("nsenter", f"--net={self.host_path}", "--", *args, **kw)

    def in_outside(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return sh("nsenter", f"--net={self.outside_path}", "--", *args, **kw)

    def links(self) -> set[str]:
        out = self.in_host("ip", "-o", "link", "show").stdout.decode()
        return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}

    def ruleset(self) -> str:
        return self.in_host("nft", "list", "ruleset").stdout.decode()


def make_lab() -> Lab:
    tag = uuid.uuid4().hex[:8]
    lab = Lab(f"bqh-{tag}", f"bqo-{tag}")
    sh("ip", "netns", "add", lab.host)
    try:
        sh("ip", "netns", "add", lab.outside)
        sh("ip", "-n", lab.host, "link", "set", "lo", "up")
        sh("ip", "-n", lab.outside, "link", "set", "lo", "up")
        sh("ip", "-n", lab.host, "link", "add", "up0", "type", "veth", "peer", "name", "out0", "netns", lab.outside)
        sh("ip", "-n", lab.host, "addr", "add", f"{HOST_ADDR}/24", "dev", "up0")
        sh("ip", "-n", lab.outside, "addr", "add", f"{OUTSIDE_ADDR}/24", "dev", "out0")
        sh("ip", "-n", lab.host, "link", "set", "up0", "up")
        sh("ip", "-n", lab.outside, "link", "set", "out0", "up")
    except BaseException:
        drop_lab(lab)
        raise
    return lab


def drop_lab(lab: Lab) -> None:
    for name in (lab.host, lab.outside):
        sh("ip", "netns", "delete", name, check=False)


@pytest.fixture
def netlab():
    lab = make_lab()
    yield lab
    drop_lab(lab)


def in_lab(barque, lab: Lab):
    """Make every command of `barque` (a tests.conftest.Barque) run inside the lab's host namespace."""
    barque.prefix = ["nsenter", f"--net={lab.host_path}", "--"]
    return barque


@pytest.fixture
def lab_barque(bb, netlab):
    """A barque root holding busybox whose every command runs in `netlab`'s host namespace; its containers are
    removed before the namespaces go."""
    in_lab(bb, netlab)
    yield bb
    bb.remove_containers()
