#!/usr/bin/env python3
"""`barque build` against `docker build` (the classic builder, DOCKER_BUILDKIT=0) on the same Dockerfile, context and
base image, side by side in one run, reported as ratios.

Standalone (run by `make bench`): its own private dockerd (bench/dockerd.py) and barque root, both removed at the
end, failure included; bounded by BENCH_TIMEOUT seconds. The base is the debootstrap bookworm image of
bench/bench_save_load.py (cached per day under /var/cache/barque-bench, or BENCH_IMAGE_TAR), loaded into both
engines, which must agree on its ID.

The build: 5 steps — ENV, WORKDIR, COPY of a 200-file context (20 directories of 10 files, 1–16 KiB each), a RUN
that reads them, CMD — timed three ways, each engine RUNS times, alternating who goes first; medians:
- cold: `build --no-cache` (every step runs);
- cached: the same build again (every step from the cache);
- one file changed: one context file rewritten before each run (the COPY and the steps after it run again).
Goals (issue 5): cold ≤ 0.7× docker, cached ≤ 1.0× docker.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.bench_save_load import BenchTimeout, barque_root, deadline, image_tar, prepare  # noqa: E402
from bench.dockerd import available, private_dockerd  # noqa: E402

log = logging.getLogger("bench.build")

BASE = "bench/debian:build"
RUNS = 5
FILES = 200
COMMAND_TIMEOUT = 900
TOTAL_TIMEOUT = int(os.environ.get("BENCH_TIMEOUT", "3600"))
GOAL_COLD = 0.7
GOAL_CACHED = 1.0
DOCKERFILE = f"""FROM {BASE}
ENV APP_HOME=/srv/app
WORKDIR /srv/app
COPY . .
RUN find . -type f | wc -l > /files.count && cat /files.count
CMD ["cat", "/files.count"]
"""


def make_context(top: Path) -> Path:
    rng = random.Random(5)
    ctx = top / "context"
    for d in range(FILES // 10):
        sub = ctx / f"dir{d:02d}"
        sub.mkdir(parents=True)
        for f in range(10):
            (sub / f"file{f:02d}.txt").write_bytes(rng.randbytes(rng.randint(1024, 16384)))
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return ctx


def clock(argv: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, env=env,
                          stdin=subprocess.DEVNULL)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}… exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=RUNS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    reason = available()
    if reason:
        log.error("cannot benchmark against Docker: %s", reason)
        return 1
    try:
        with deadline(TOTAL_TIMEOUT), barque_root() as (barque, work), private_dockerd() as docker:
            tar = image_tar(barque, work)
            prepare(barque, docker, tar, BASE)
            ctx = make_context(work)
            ours = [REPO / ".venv" / "bin" / "barque", *barque.base[3:]]
            theirs = [docker.cli, "-H", docker.host]
            engines = {
                "barque": lambda *a: clock([str(x) for x in ours] + [str(x) for x in a]),
                "docker": lambda *a: clock(theirs + [str(x) for x in a], env=docker.env),
            }
            for name, build in engines.items():  # warm-up: page cache, byte-compiled modules, the base unpacked
                build("build", "-q", "-t", "bench/built:1", ctx)
            times: dict[tuple[str, str], list[float]] = {}
            changed = ctx / "dir00" / "file00.txt"
            for i in range(args.runs):
                order = list(engines.items()) if i % 2 == 0 else list(reversed(engines.items()))
                for name, build in order:
                    times.setdefault(("cold", name), []).append(
                        build("build", "-q", "--no-cache", "-t", "bench/built:1", ctx))
                for name, build in order:
                    times.setdefault(("cached", name), []).append(build("build", "-q", "-t", "bench/built:1", ctx))
                for name, build in order:
                    changed.write_bytes(os.urandom(4096))
                    times.setdefault(("one file changed", name), []).append(
                        build("build", "-q", "-t", "bench/built:1", ctx))
                log.info("run %d done", i + 1)
            version = docker.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
            print(f"5-step build, {FILES}-file context, base {BASE}; medians of {args.runs}; "
                  f"barque vs dockerd {version} classic builder ({docker.storage_driver})")
            print(f"{'build':<20}{'barque s':>10}{'docker s':>10}{'barque/docker':>16}{'goal':>8}")
            for what, goal in (("cold", GOAL_COLD), ("cached", GOAL_CACHED), ("one file changed", None)):
                b = statistics.median(times[(what, "barque")])
                d = statistics.median(times[(what, "docker")])
                print(f"{what:<20}{b:>10.3f}{d:>10.3f}{b / d:>16.2f}{'≤ ' + str(goal) if goal else '':>8}")
    except (BenchTimeout, RuntimeError, OSError, subprocess.SubprocessError, AssertionError):
        log.exception("the benchmark failed (dockerd and the barque root are cleaned up)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
