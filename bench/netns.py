"""Throwaway network namespaces for the benchmarks that network containers.

barque gives each container a veth on its bridge and nftables rules, and a bridged dockerd makes docker0 and
iptables rules — both in the network namespace they run in. A benchmark must never do that in the machine's own
namespace, so each engine gets a *lab*: a namespace playing the host (the engine runs there; its bridge, rules and
published ports live there) and one playing the outside world, joined by a veth pair, as tests/netlab.py does:

    host    "<tag>-h": lo up, veth "up0"  198.51.100.1/24 (TEST-NET-2)
    outside "<tag>-o": lo up, veth "out0" 198.51.100.2/24, nothing else

The namespaces are named (`ip netns add`, held at /run/netns/NAME) so that other processes — the engine's CLI,
dockerd, a load generator — join them with `nsenter --net=PATH`. On exit every process still in one of them is
killed (found by its /proc/PID/ns/net, so only processes inside our own namespaces, which we started) and the
namespaces are deleted, failure included.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

log = logging.getLogger(__name__)

__all__ = ["HOST_ADDR", "OUTSIDE_ADDR", "Lab", "Netns", "in_netns", "lab", "throwaway_netns"]

HOST_ADDR = "198.51.100.1"
OUTSIDE_ADDR = "198.51.100.2"
NETNS_DIR = Path("/run/netns")


def _sh(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


@dataclass(frozen=True)
class Netns:
    """A named network namespace: `prefix` is what a command line starts with to run inside it."""

    name: str

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name

    @property
    def prefix(self) -> list[str]:
        return ["nsenter", f"--net={self.path}", "--"]

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        return _sh(*self.prefix, *args, check=check, timeout=timeout)

    def _ident(self) -> tuple[int, int]:
        st = os.stat(self.path)
        return st.st_dev, st.st_ino

    def pids(self) -> list[int]:
        """Processes whose network namespace is this one."""
        try:
            ident = self._ident()
        except OSError:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                st = os.stat(entry / "ns" / "net")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == ident:
                found.append(int(entry.name))
        return found

    def links(self) -> list[str]:
        out = self.run("ip", "-o", "link", "show").stdout
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]


@contextmanager
def throwaway_netns(name: str) -> Iterator[Netns]:
    """A new namespace with lo up; on exit, what still runs in it is killed and the namespace deleted."""
    ns = Netns(name)
    _sh("ip", "netns", "add", name)
    try:
        ns.run("ip", "link", "set", "lo", "up")
        yield ns
    finally:
        _empty(ns)
        _sh("ip", "netns", "delete", name, check=False)
        if ns.path.exists():
            log.warning("network namespace %s is still held at %s", name, ns.path)


def _empty(ns: Netns) -> None:
    """Kill what outlived its owner in `ns` (a docker-proxy of a killed dockerd, say): its namespace would live
    on, unnamed, for as long as it runs."""
    me = os.getpid()
    for _ in range(3):
        pids = [p for p in ns.pids() if p != me]
        if not pids:
            return
        log.warning("killing processes left in network namespace %s: %s", ns.name, pids)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
    log.warning("processes survived SIGKILL in network namespace %s: %s", ns.name, ns.pids())


@dataclass(frozen=True)
class Lab:
    """A host namespace and an outside one, joined by the veth up0 (host, HOST_ADDR) / out0 (outside, OUTSIDE_ADDR)."""

    host: Netns
    outside: Netns


@contextmanager
def lab(tag: str | None = None) -> Iterator[Lab]:
    tag = tag or f"bqb-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack:
        host = stack.enter_context(throwaway_netns(f"{tag}-h"))
        outside = stack.enter_context(throwaway_netns(f"{tag}-o"))
        host.run("ip", "link", "add", "up0", "type", "veth", "peer", "name", "out0", "netns", outside.name)
        host.run("ip", "addr", "add", f"{HOST_ADDR}/24", "dev", "up0")
        outside.run("ip", "addr", "add", f"{OUTSIDE_ADDR}/24", "dev", "out0")
        host.run("ip", "link", "set", "up0", "up")
        outside.run("ip", "link", "set", "out0", "up")
        yield Lab(host, outside)


def in_netns(ns: Netns | None, argv: Sequence[str]) -> list[str]:
    """`argv`, run inside `ns` when one is given."""
    return [*(ns.prefix if ns else []), *argv]
