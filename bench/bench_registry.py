#!/usr/bin/env python3
"""Registries, side by side in one run, loopback only, reported as ratios.

Standalone (run by `make bench`): its own private dockerd (bench/dockerd.py), barque root, Debian `docker-registry`
instances and barque registries, all removed at the end, failure included; bounded by BENCH_TIMEOUT seconds. The
image is the debootstrap bookworm image of bench/bench_save_load.py (cached per day under /var/cache/barque-bench, or
BENCH_IMAGE_TAR), loaded into both engines, which must agree on its ID.

1. The clients (issue 6: push ≤ 0.4× docker, pull ≤ 0.7× docker), both against Debian's docker-registry:
   - push: `barque push` vs `docker push` of the image to a fresh, empty docker-registry each run (nothing to skip,
     nothing to mount: every layer is compressed and uploaded);
   - pull: `barque pull` vs `docker pull` of the image docker pushed (the same registry, the same bytes), each run
     starting from an engine without the image or its layers.
2. The servers alone (goal ≥ 1.0× docker-registry's throughput): one client, skopeo, copies the image's compressed
   blobs from a `dir:` layout into a fresh registry (push) and back out into a new `dir:` (pull), against barque's
   registry and against docker-registry.
Each measurement RUNS times, alternating who goes first; medians.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable, Iterator

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.bench_save_load import BenchTimeout, barque_root, deadline, image_tar, prepare, timed  # noqa: E402
from bench.dockerd import available, private_dockerd  # noqa: E402

log = logging.getLogger("bench.registry")

NAME = "bench/debian:registry"
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
COMMAND_TIMEOUT = 900
TOTAL_TIMEOUT = int(os.environ.get("BENCH_TIMEOUT", "3600"))
GOAL_PUSH = 0.4
GOAL_PULL = 0.7
GOAL_SERVER = 1.0


def alternate(i: int, ours: Callable[[], float], theirs: Callable[[], float]) -> tuple[float, float]:
    """Run both, barque first on even runs and second on odd ones."""
    if i % 2 == 0:
        a = ours()
        return a, theirs()
    b = theirs()
    return ours(), b


@contextmanager
def workdir(parent: Path, name: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def bench_clients(barque, docker, work: Path, image_id: str) -> list[tuple[str, list[float], list[float], float]]:
    from tests.registry_support_peers import docker_registry

    push_ours, push_theirs = [], []
    for i in range(RUNS):
        def ours() -> float:
            with workdir(work, "reg") as w, docker_registry(w) as reg:
                ref = f"{reg.host}/bench/debian:barque"
                barque("tag", NAME, ref)
                try:
                    return timed(lambda: barque("push", ref))
                finally:
                    barque("rmi", ref)

        def theirs() -> float:
            with workdir(work, "reg") as w, docker_registry(w) as reg:
                ref = f"{reg.host}/bench/debian:docker"
                docker.docker("tag", NAME, ref)
                try:
                    return timed(lambda: docker.docker("push", ref, timeout=COMMAND_TIMEOUT))
                finally:
                    docker.docker("rmi", ref)

        a, b = alternate(i, ours, theirs)
        push_ours.append(a)
        push_theirs.append(b)
        log.info("push run %d: barque %.3fs, docker %.3fs", i + 1, a, b)

    pull_ours, pull_theirs = [], []
    with workdir(work, "reg") as w, docker_registry(w) as reg:
        ref = f"{reg.host}/bench/debian:pull"
        docker.docker("tag", NAME, ref)
        docker.docker("push", ref, timeout=COMMAND_TIMEOUT)
        docker.docker("rmi", "-f", image_id, timeout=COMMAND_TIMEOUT)
        barque("rmi", "-f", image_id)
        barque("image", "prune", "-a", "-f")
        for i in range(RUNS):
            def ours() -> float:
                if barque("images", "-aq").split():
                    raise RuntimeError("barque still holds images: the pull would not start from empty")
                t = timed(lambda: barque("pull", ref))
                got = barque("image", "inspect", "--format", "{{.Id}}", ref).strip()
                if got != image_id:
                    raise RuntimeError(f"barque pulled {got}, expected {image_id}")
                barque("rmi", "-f", image_id)
                barque("image", "prune", "-a", "-f")
                return t

            def theirs() -> float:
                if docker.docker("images", "-aq").stdout.split():
                    raise RuntimeError("docker still holds images: the pull would not start from empty")
                t = timed(lambda: docker.docker("pull", ref, timeout=COMMAND_TIMEOUT))
                docker.docker("rmi", "-f", image_id, timeout=COMMAND_TIMEOUT)
                return t

            a, b = alternate(i, ours, theirs)
            pull_ours.append(a)
            pull_theirs.append(b)
            log.info("pull run %d: barque %.3fs, docker %.3fs", i + 1, a, b)
        # leave both engines holding the image again, for anything after this
        barque("pull", ref)
        barque("tag", ref, NAME)
        docker.docker("pull", ref, timeout=COMMAND_TIMEOUT)
        docker.docker("tag", ref, NAME)
    return [("push (client)", push_ours, push_theirs, GOAL_PUSH), ("pull (client)", pull_ours, pull_theirs, GOAL_PULL)]


def blob_bytes(layout: Path) -> int:
    return sum(p.stat().st_size for p in layout.iterdir() if p.is_file())


def bench_servers(work: Path, docker) -> tuple[list[tuple[str, list[float], list[float], float]], int]:
    """skopeo against both registries: throughput ratios are time ratios inverted (same bytes both sides)."""
    from tests.registry_support import barque_registry
    from tests.registry_support_peers import docker_registry

    from tests.interop.conftest import Skopeo  # the interop tests' runner: its own policy and temporary directory

    skopeo = Skopeo(work / "skopeo")
    source = work / "layout"
    # the compressed blobs docker pushed, as a dir: layout skopeo copies without recompressing
    with workdir(work, "reg") as w, docker_registry(w) as reg:
        ref = f"{reg.host}/bench/debian:skopeo"
        docker.docker("tag", NAME, ref)
        docker.docker("push", ref, timeout=COMMAND_TIMEOUT)
        docker.docker("rmi", ref)
        skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"dir:{source}")
    size = blob_bytes(source)

    def servers(kind: str):
        if kind == "barque":
            return lambda w: barque_registry(w)
        return lambda w: docker_registry(w)

    rows = []
    push_t: dict[str, list[float]] = {"barque": [], "docker-registry": []}
    pull_t: dict[str, list[float]] = {"barque": [], "docker-registry": []}
    for i in range(RUNS):
        order = ["barque", "docker-registry"] if i % 2 == 0 else ["docker-registry", "barque"]
        for kind in order:
            with workdir(work, "srv") as w, servers(kind)(w) as reg:
                dest = f"docker://{reg.host}/bench/debian:skopeo"
                push_t[kind].append(timed(lambda: skopeo("copy", "--dest-tls-verify=false", f"dir:{source}", dest)))
                out = w / "pulled"
                pull_t[kind].append(timed(lambda: skopeo("copy", "--src-tls-verify=false", dest, f"dir:{out}")))
                if blob_bytes(out) != size:
                    raise RuntimeError(f"{kind}: skopeo pulled {blob_bytes(out)} bytes, pushed {size}")
            log.info("server run %d %s: push %.3fs, pull %.3fs", i + 1, kind, push_t[kind][-1], pull_t[kind][-1])
    rows.append(("push (server)", push_t["barque"], push_t["docker-registry"], GOAL_SERVER))
    rows.append(("pull (server)", pull_t["barque"], pull_t["docker-registry"], GOAL_SERVER))
    return rows, size


def report(clients, servers, size: int, image_id: str, docker) -> str:
    version = docker.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    lines = [f"image {image_id[:19]}, {size / 1e6:.1f} MB compressed; medians of {RUNS}; loopback",
             f"clients: barque vs docker {version}, both against Debian's docker-registry (time ratio, lower is "
             "faster)",
             f"{'operation':<16}{'barque s':>10}{'docker s':>10}{'ratio':>8}{'goal':>8}"]
    summary = []
    for op, ours, theirs, goal in clients:
        ratio = statistics.median(ours) / statistics.median(theirs)
        summary.append(f"{op} {ratio:.2f}×")
        lines.append(f"{op:<16}{statistics.median(ours):>10.3f}{statistics.median(theirs):>10.3f}{ratio:>8.2f}"
                     f"{'≤' + format(goal, '.1f'):>8}")
        lines.append(f"{'':<16}runs: barque {' '.join(f'{t:.2f}' for t in ours)}; "
                     f"docker {' '.join(f'{t:.2f}' for t in theirs)}")
    lines.append("servers: skopeo against barque's registry vs Debian's docker-registry (throughput ratio, higher "
                 "is faster)")
    lines.append(f"{'operation':<16}{'barque MB/s':>12}{'d-reg MB/s':>12}{'ratio':>8}{'goal':>8}")
    for op, ours, theirs, goal in servers:
        a, b = size / statistics.median(ours) / 1e6, size / statistics.median(theirs) / 1e6
        summary.append(f"{op} {a / b:.2f}×")
        lines.append(f"{op:<16}{a:>12.1f}{b:>12.1f}{a / b:>8.2f}{'≥' + format(goal, '.1f'):>8}")
        lines.append(f"{'':<16}runs (s): barque {' '.join(f'{t:.2f}' for t in ours)}; "
                     f"docker-registry {' '.join(f'{t:.2f}' for t in theirs)}")
    lines.append("ratios: " + ", ".join(summary))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    reason = available()
    if reason:
        log.error("cannot benchmark against Docker: %s", reason)
        return 1
    from tests.registry_support_peers import available as registry_available

    reason = registry_available() or (None if shutil.which("skopeo") else "skopeo is not installed")
    if reason:
        log.error("cannot benchmark: %s", reason)
        return 1
    try:
        with deadline(TOTAL_TIMEOUT), ExitStack() as stack:
            barque, work = stack.enter_context(barque_root())
            docker = stack.enter_context(private_dockerd())
            tar = image_tar(barque, work)
            image_id = prepare(barque, docker, tar, NAME)
            clients = bench_clients(barque, docker, work, image_id)
            servers, size = bench_servers(work, docker)
            print(report(clients, servers, size, image_id, docker))
    except (BenchTimeout, RuntimeError, OSError, subprocess.SubprocessError, AssertionError):
        log.exception("the benchmark failed (dockerd, registries and the barque root are cleaned up)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
