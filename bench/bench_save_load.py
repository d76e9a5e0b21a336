#!/usr/bin/env python3
"""`barque save`/`load` against `docker save`/`load` on the same Debian image, best of 3, reported as ratios.

Standalone (run by `make bench`): starts its own private dockerd (bench/dockerd.py) and its own barque root, and
removes both at the end, failure included. The image is a debootstrap minbase bookworm made by
`barque bootstrap debian` (a few minutes, network to the Debian mirror apt uses); its `barque save` tar is cached as
/var/cache/barque-bench/debian-bookworm-YYYYMMDD.tar, so later runs that day start at once. BENCH_IMAGE_TAR=FILE
uses a given archive instead (anything both engines load: a `barque save` or `docker save` tar).

What is timed, each engine on the same image and the same input file:
- save: `barque save -o F IMAGE` vs `docker save -o F IMAGE` (barque fsyncs its output before renaming it into
  place; docker does not);
- load: `barque load -i T` vs `docker load -i T`, T the barque-saved tar, after removing the image and everything
  it held (`barque rmi` + `barque image prune -a -f`; `docker rmi`).
Page cache is warm (the input was just read); `sync` runs, untimed, before every timed command.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.dockerd import Dockerd, available, private_dockerd  # noqa: E402

log = logging.getLogger("bench.save_load")

CACHE = Path(os.environ.get("BENCH_CACHE_DIR", "/var/cache/barque-bench"))
SUITE = "bookworm"
NAME = "bench/debian:save-load"
RUNS = 3
COMMAND_TIMEOUT = 900  # one save or load
BOOTSTRAP_TIMEOUT = 1800  # debootstrap over the network
TOTAL_TIMEOUT = int(os.environ.get("BENCH_TIMEOUT", "5400"))


class BenchTimeout(Exception):
    pass


class BarqueCLI:
    def __init__(self, root: Path, run_root: Path) -> None:
        self.base = [sys.executable, "-m", "barque.cli.main", "--root", str(root), "--run-root", str(run_root)]

    def __call__(self, *args: str | os.PathLike, timeout: float = COMMAND_TIMEOUT) -> str:
        proc = subprocess.run(self.base + [str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"barque {' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout


def timed(fn: Callable[[], object]) -> float:
    subprocess.run(["sync"], check=False, timeout=COMMAND_TIMEOUT)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Bound the whole run: SIGALRM raises in the main thread, so the cleanups below still run."""
    def expired(signum, frame):
        raise BenchTimeout(f"the benchmark took longer than {seconds}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def barque_root() -> Iterator[tuple[BarqueCLI, Path]]:
    work = Path(tempfile.mkdtemp(prefix="barque-bench-saveload-", dir=os.environ.get("BENCH_TMPDIR")))
    try:
        yield BarqueCLI(work / "root", work / "run"), work
    finally:
        from barque.linux.mountinfo import mounted_under

        for mp in sorted(mounted_under(work), key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], capture_output=True)
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)], capture_output=True, timeout=600)


def image_tar(barque: BarqueCLI, work: Path) -> Path:
    """The archive to benchmark on: BENCH_IMAGE_TAR, today's cached one, or a fresh bootstrap (then cached)."""
    given = os.environ.get("BENCH_IMAGE_TAR")
    if given:
        path = Path(given)
        if not path.is_file():
            raise FileNotFoundError(f"BENCH_IMAGE_TAR={given}: no such file")
        return path
    cached = CACHE / f"debian-{SUITE}-{datetime.date.today():%Y%m%d}.tar"
    if cached.is_file():
        log.info("using the cached image %s", cached)
        return cached
    log.info("making the image: barque bootstrap debian --suite %s (a few minutes)", SUITE)
    start = time.monotonic()
    barque("bootstrap", "debian", "--suite", SUITE, "--tag", NAME, timeout=BOOTSTRAP_TIMEOUT)
    log.info("bootstrap took %.0fs", time.monotonic() - start)
    try:
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = CACHE / f".{cached.name}.{os.getpid()}"
        barque("save", "-o", tmp, NAME)
        os.replace(tmp, cached)
        for old in CACHE.glob(f"debian-{SUITE}-*.tar"):
            if old != cached:
                old.unlink(missing_ok=True)
        return cached
    except OSError as e:  # an unwritable cache only costs the next run its bootstrap
        log.warning("cannot cache the image under %s: %s", CACHE, e)
        out = work / "image.tar"
        barque("save", "-o", out, NAME)
        return out


def loaded_id(output: str) -> str | None:
    for line in output.splitlines():
        if line.startswith("Loaded image ID: "):
            return line.split(": ", 1)[1].strip()
    return None


def prepare(barque: BarqueCLI, docker: Dockerd, tar: Path, name: str = NAME) -> str:
    """Load the archive into both engines under `name`; returns the image ID (the same in both, or we stop)."""
    out = barque("load", "-i", tar)
    ref = loaded_id(out) or out.splitlines()[0].split(": ", 1)[1].strip()
    barque("tag", ref, name)
    image_id = barque("image", "inspect", "--format", "{{.Id}}", name).strip()
    out = docker.docker("load", "-i", tar, timeout=COMMAND_TIMEOUT).stdout
    ref = loaded_id(out) or out.strip().splitlines()[-1].split(": ", 1)[1].strip()
    docker.docker("tag", ref, name)
    docker_id = docker.docker("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()
    if docker_id != image_id:
        raise RuntimeError(f"the engines disagree on the image ID: barque {image_id}, docker {docker_id}")
    return image_id


def bench_save(barque: BarqueCLI, docker: Dockerd, work: Path) -> tuple[list[float], list[float]]:
    ours, theirs = [], []
    for i in range(RUNS):
        out = work / "save-barque.tar"
        ours.append(timed(lambda: barque("save", "-o", out, NAME)))
        out.unlink()
        out = work / "save-docker.tar"
        theirs.append(timed(lambda: docker.docker("save", "-o", out, NAME, timeout=COMMAND_TIMEOUT)))
        out.unlink()
        log.info("save run %d: barque %.3fs, docker %.3fs", i + 1, ours[-1], theirs[-1])
    return ours, theirs


def bench_load(barque: BarqueCLI, docker: Dockerd, tar: Path, image_id: str) -> tuple[list[float], list[float]]:
    """Each load starts from an engine without the image: removed by ID (all its names), then its layers gone."""
    ours, theirs = [], []
    for i in range(RUNS):
        barque("rmi", "-f", image_id)
        barque("image", "prune", "-a", "-f")
        if barque("images", "-aq").split():
            raise RuntimeError("barque still holds images after rmi and prune: the load would not start from empty")
        ours.append(timed(lambda: barque("load", "-i", tar)))
        docker.docker("rmi", "-f", image_id, timeout=COMMAND_TIMEOUT)
        if docker.docker("images", "-aq").stdout.split():
            raise RuntimeError("docker still holds images after rmi: the load would not start from empty")
        theirs.append(timed(lambda: docker.docker("load", "-i", tar, timeout=COMMAND_TIMEOUT)))
        log.info("load run %d: barque %.3fs, docker %.3fs", i + 1, ours[-1], theirs[-1])
    return ours, theirs


def report(rows: list[tuple[str, list[float], list[float]]], tar: Path, image_id: str, barque: BarqueCLI,
           docker: Dockerd) -> str:
    size_mb = tar.stat().st_size / 1e6
    driver = json.loads(barque("info", "--format", "json")).get("Driver", "?")
    lines = [
        f"image {image_id[:19]} ({tar.name}, {size_mb:.1f} MB); best of {RUNS}; "
        f"barque ({driver}) vs dockerd {docker.docker('version', '--format', '{{.Server.Version}}').stdout.strip()} "
        f"({docker.storage_driver})",
        f"{'operation':<12}{'barque s':>12}{'docker s':>12}{'barque/docker':>16}",
    ]
    ratios = []
    for op, ours, theirs in rows:
        ratio = min(ours) / min(theirs)
        ratios.append(f"{op} {ratio:.2f}")
        lines.append(f"{op:<12}{min(ours):>12.3f}{min(theirs):>12.3f}{ratio:>16.2f}")
        lines.append(f"{'':<12}runs: barque {' '.join(f'{t:.3f}' for t in ours)}; "
                     f"docker {' '.join(f'{t:.3f}' for t in theirs)}")
    lines.append("ratios barque/docker (lower is faster): " + ", ".join(ratios))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    reason = available()
    if reason:
        log.error("cannot benchmark against Docker: %s", reason)
        return 1
    try:
        with deadline(TOTAL_TIMEOUT), barque_root() as (barque, work), private_dockerd() as docker:
            tar = image_tar(barque, work)
            image_id = prepare(barque, docker, tar)
            save = bench_save(barque, docker, work)
            load = bench_load(barque, docker, tar, image_id)
            print(report([("save -o", *save), ("load -i", *load)], tar, image_id, barque, docker))
    except (BenchTimeout, RuntimeError, OSError, subprocess.SubprocessError, AssertionError):
        log.exception("the benchmark failed (dockerd and the barque root are cleaned up)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
