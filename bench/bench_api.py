#!/usr/bin/env python3
"""The Engine API, `barque serve` against dockerd, both driven by the same docker CLI on the same busybox image:

    python -m bench.bench_api [-n RUNS]

1. `docker run --rm busybox true`, the two servers taking turns (who goes first alternates), RUNS times each after
   one warm-up each; median and best. Goal: barque ≤ 0.5× dockerd (median).
2. `docker ps` with 100 running containers on each server (`docker run -d busybox sleep 600` × 100 first), RUNS
   times each, alternating; median. Goal: ≤ 1.0×. `docker ps -a --size` is shown for information.

Standalone (run by `make bench`): its own barque root served by `barque serve` on a unix socket, its own dockerd
(bench/dockerd.py), each in a throwaway network namespace (bench/netns.py) with its default bridge, all removed at
the end, failure included; bounded by BENCH_TIMEOUT seconds (default 1800). The docker CLI is whichever `docker` is
first on PATH (it negotiates down to each server's API version). Read the ratios, not the absolutes.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator, Sequence

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.bench_containers import (  # noqa: E402
    IMAGE, BarqueSide, BenchAbort, Engine, barque_side, compile_barque, deadline, docker_engine, prepare_image,
    timed)
from bench.dockerd import available, docker_cli, private_dockerd  # noqa: E402
from bench.netns import Netns, throwaway_netns  # noqa: E402

log = logging.getLogger("bench.api")

GOAL_RUN = 0.5
GOAL_PS = 1.0
CONTAINERS = 100
MAX_RUNS = 100
LISTENING = b"barque API listening on"
TOTAL_TIMEOUT = int(os.environ.get("BENCH_TIMEOUT", "1800"))


@contextmanager
def barque_server(side: BarqueSide, netns: Netns) -> Iterator[Engine]:
    """`barque serve` on the side's root, inside `netns`; an Engine whose commands are the docker CLI against it."""
    sock = side.work / "api.sock"
    argv = side.engine.argv + ["serve", "-H", f"unix://{sock}"]
    log_path = side.work / "serve.log"
    with open(log_path, "wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        end = time.monotonic() + 60
        line = b""
        while time.monotonic() < end:
            line = proc.stdout.readline()
            if not line or line.startswith(LISTENING):
                break
        if not line.startswith(LISTENING):
            raise RuntimeError(f"barque serve did not start: {log_path.read_text()[-2000:]}")
        cli = docker_cli()
        env = {**os.environ, "DOCKER_CONFIG": str(side.work / "docker-config")}
        yield Engine("barque", [cli, "-H", f"unix://{sock}"], env)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        proc.stdout.close()


def alternate(engines: Sequence[Engine], args: Sequence[str], runs: int, what: str) -> dict[str, list[float]]:
    for e in engines:  # warm-up
        timed(e, list(args))
    times: dict[str, list[float]] = {e.name: [] for e in engines}
    for i in range(runs):
        for e in engines if i % 2 == 0 else list(reversed(engines)):
            times[e.name].append(timed(e, list(args)))
        log.info("%s %d/%d: %s", what, i + 1, runs, ", ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items()))
    return times


def fill(engine: Engine, count: int) -> None:
    for _ in range(count):
        engine("run", "-d", IMAGE, "sleep", "600")
    up = engine.running()
    if up != count:
        raise RuntimeError(f"{engine.name}: {up} containers running, not {count}")


def report(runs: int, run_times: dict, ps_times: dict, ps_size: dict, header: list[str]) -> str:
    def row(label: str, t: dict, goal: float | None = None) -> tuple[str, float]:
        med = {k: statistics.median(v) for k, v in t.items()}
        ratio = med["barque"] / med["docker"]
        verdict = "" if goal is None else f"   goal <= {goal:.2f}x: {'met' if ratio <= goal else 'NOT met'}"
        return f"{label:<44}{med['barque']:>10.3f}{med['docker']:>10.3f}{ratio:>15.2f}{verdict}", ratio

    w = 44
    r1, ratio_run = row(f"docker run --rm true, median of {runs} (s)", run_times, GOAL_RUN)
    r2, ratio_ps = row(f"docker ps, {CONTAINERS} running, median of {runs} (s)", ps_times, GOAL_PS)
    r3, ratio_size = row(f"docker ps -a --size, median of {runs} (s)", ps_size)
    best = {k: min(v) for k, v in run_times.items()}
    lines = header + [
        f"{'':<{w}}{'barque':>10}{'dockerd':>10}{'barque/docker':>15}",
        r1,
        f"{'  best (s)':<{w}}{best['barque']:>10.3f}{best['docker']:>10.3f}{best['barque'] / best['docker']:>15.2f}",
        f"{'  runs (s)':<{w}}barque {' '.join(f'{t:.3f}' for t in run_times['barque'])}",
        f"{'':<{w}}docker {' '.join(f'{t:.3f}' for t in run_times['docker'])}",
        r2,
        r3,
        f"ratios barque/docker (lower is better): run --rm median {ratio_run:.2f} (goal {GOAL_RUN}); "
        f"ps with {CONTAINERS} {ratio_ps:.2f} (goal {GOAL_PS}); ps -a --size {ratio_size:.2f}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=15, help=f"timed runs of each (at most {MAX_RUNS})")
    args = parser.parse_args(argv)
    runs = max(1, min(args.runs, MAX_RUNS))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    reason = available()
    if reason:
        log.error("cannot benchmark against Docker: %s", reason)
        return 1
    compile_barque()
    try:
        with ExitStack() as stack:
            barque_ns = stack.enter_context(throwaway_netns(f"bqb-api-{os.getpid()}-b"))
            docker_ns = stack.enter_context(throwaway_netns(f"bqb-api-{os.getpid()}-d"))
            side = stack.enter_context(barque_side(barque_ns, prefix="barque-bench-api-"))
            d = stack.enter_context(private_dockerd(netns=docker_ns.path))
            stack.enter_context(deadline(TOTAL_TIMEOUT))
            docker = docker_engine(d)
            image_id = prepare_image(side.engine, docker, side.work)
            barque = stack.enter_context(barque_server(side, barque_ns))
            engines = [barque, docker]
            run_times = alternate(engines, ["run", "--rm", IMAGE, "true"], runs, "run --rm")
            for e in engines:
                if e.ids():
                    raise RuntimeError(f"{e.name}: containers left after run --rm")
            for e in engines:
                fill(e, CONTAINERS)
            side.note_ids()
            ps_times = alternate(engines, ["ps"], runs, "ps")
            ps_size = alternate(engines, ["ps", "-a", "--size"], max(3, runs // 3), "ps -a --size")
            for e in engines:
                e.remove_all()
            cli_version = docker("version", "--format", "{{.Client.Version}}").strip()
            theirs = docker("version", "--format", "{{.Server.Version}}").strip()
            header = [f"image {IMAGE} {image_id[:19]} on both; docker CLI {cli_version} against barque serve and "
                      f"dockerd {theirs} ({d.storage_driver}); each in its own network namespace on its default "
                      f"bridge; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"]
            print(report(runs, run_times, ps_times, ps_size, header))
    except (BenchAbort, RuntimeError, OSError, subprocess.SubprocessError, AssertionError):
        log.exception("the benchmark failed (dockerd and the barque root are cleaned up)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
