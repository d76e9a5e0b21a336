#!/usr/bin/env python3
"""Containers, barque against Docker on the same busybox image: a short-lived `run --rm`, the host memory an idle
detached container costs, and 100 containers started at once.

    python -m bench.bench_containers [-n RUNS]

Standalone (run by `make bench`): its own barque root and run root (one fresh directory under /tmp, the filesystem
the private dockerd of bench/dockerd.py keeps its data and exec roots on), its own dockerd, both removed at the end,
failure included; the measuring part is bounded by BENCH_TIMEOUT seconds (default 1800). The image is made once:
`barque bootstrap busybox`, then `barque save` → `docker load`, and both engines must report the same image ID.

Network: both engines on their default network, a bridge — what `run` gives a user who passes no `--network`:
barque's `barque0` and Docker's `docker0`, a veth pair and an address per container, plus the engine's NAT rules
(barque's nftables tables, Docker's iptables-nft). That costs time at every start and stop, on both sides, so
like is compared with like, and it is what users get. Neither engine may build bridges or rules in the machine's
own namespace: each runs in a throwaway network namespace of its own (bench/netns.py) — every barque command under
`nsenter --net`, dockerd started inside its namespace — deleted at the end. Before timing, a container of each must
show the same interfaces (/proc/net/dev: lo and eth0).

1. `run --rm busybox true`, the two engines taking turns (who goes first alternates), RUNS times each after one
   warm-up each; median and best.
2. Host memory per idle container: 20 `run -d busybox sleep 600` on each engine; once all are up and after a 2 s
   settle, the PSS (/proc/PID/smaps_rollup) of what stays beside them: barque's per-container monitors (command line
   naming `barque.container.monitor` and this bench's root; nothing else of barque stays) against the private
   containerd's `containerd-shim` processes, divided by 20. dockerd and containerd themselves are not counted (their
   PSS is shown for information).
3. 100 `run -d busybox sleep 600` launched as 100 concurrent processes, each engine in turn: the wall time until the
   last one exits; all must succeed, counted in `ps -q`.

The barque side is the installed console script (.venv/bin/barque) with barque byte-compiled first, as
scripts/install.sh leaves it; numbers on a small, shared machine are noisy, so read the ratios, not the absolutes.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.dockerd import Dockerd, available, private_dockerd  # noqa: E402
from bench.netns import Netns, in_netns, throwaway_netns  # noqa: E402

log = logging.getLogger("bench.containers")

IMAGE = "busybox:latest"
GOAL_RUN = 0.33  # barque/docker, `run --rm` median
GOAL_MEMORY = 0.5  # barque/docker, PSS per idle container
IDLE = 20
PARALLEL = 100
SETTLE = 2.0
MAX_RUNS = 100
COMMAND_TIMEOUT = 120  # one CLI command
PARALLEL_TIMEOUT = 900  # all of the 100 concurrent starts of one engine
UP_TIMEOUT = 60  # for the idle containers' monitors or shims to show up
TOTAL_TIMEOUT = int(os.environ.get("BENCH_TIMEOUT", "1800"))
CGROUP_ROOT = Path("/sys/fs/cgroup")


class BenchAbort(Exception):
    """The deadline passed or the bench was told to stop; cleanups still run."""


@dataclass
class Engine:
    """One engine's CLI: the argv every command starts with and its environment."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(repr=False)

    def cmd(self, *args: str | os.PathLike) -> list[str]:
        return self.argv + [str(a) for a in args]

    def __call__(self, *args: str | os.PathLike, timeout: float = COMMAND_TIMEOUT) -> str:
        proc = subprocess.run(self.cmd(*args), capture_output=True, text=True, timeout=timeout, env=self.env,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"{self.name} {' '.join(map(str, args))} exited {proc.returncode}: "
                               f"{proc.stderr.strip()}")
        return proc.stdout

    def ids(self) -> list[str]:
        return self("ps", "-aq", "--no-trunc").split()

    def running(self) -> int:
        return len(self("ps", "-q").split())

    def remove_all(self) -> None:
        ids = self.ids()
        if ids:
            self("rm", "-f", *ids, timeout=PARALLEL_TIMEOUT)


def docker_engine(d: Dockerd) -> Engine:
    return Engine("docker", [d.cli, "-H", d.host], d.env)


# ---- the barque side: root, run root, and everything left under them removed at the end --------------------------

@dataclass
class BarqueSide:
    engine: Engine
    work: Path
    root: Path
    seen: set[str] = field(default_factory=set)  # container IDs, for the cgroup check at the end

    def monitor_pids(self) -> list[int]:
        """This root's per-container monitors, after their re-exec as lean interpreters."""
        marker = (str(self.root) + "/").encode()
        return [pid for pid, argv in _processes() if b"barque.container.monitor" in argv and marker in argv]

    def note_ids(self) -> None:
        self.seen.update(self.engine.ids())
        containers = self.root / "containers"
        if containers.is_dir():
            self.seen.update(p.name for p in containers.iterdir())


@contextmanager
def barque_side(netns: Netns | None = None, prefix: str = "barque-bench-ctr-") -> Iterator[BarqueSide]:
    """A fresh barque root; with `netns`, every barque command runs inside that network namespace (barque0, the
    containers' veths and the nftables rules are made there). It must outlive this context: the cleanup runs
    `barque rm -f` there."""
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("BENCH_TMPDIR", "/tmp")))
    root, run_root = work / "root", work / "run"
    binary = REPO / ".venv" / "bin" / "barque"
    argv = [str(binary)] if binary.is_file() else [sys.executable, "-m", "barque.cli.main"]
    argv = in_netns(netns, argv + ["--root", str(root), "--run-root", str(run_root)])
    side = BarqueSide(Engine("barque", argv, dict(os.environ)), work, root)
    try:
        yield side
    finally:
        _clean_barque(side)


def _clean_barque(side: BarqueSide) -> None:
    from barque.linux.mountinfo import mounted_under

    try:
        side.note_ids()
        side.engine.remove_all()
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        log.warning("barque rm -f of the bench's containers failed: %s", e)
    marker = str(side.work).encode()
    strays = [pid for pid, argv in _processes() if marker in argv and pid != os.getpid()]
    for cid in side.seen:
        strays += _cgroup_pids(cid)
    for pid in set(strays):
        log.warning("killing a process left by the bench: %d", pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if strays:
        time.sleep(0.5)
    for mp in sorted(mounted_under(side.work), key=len, reverse=True):
        log.warning("unmounting a mount left by the bench: %s", mp)
        subprocess.run(["umount", "-l", mp], capture_output=True, timeout=60)
    for cid in side.seen:
        for d in _cgroup_dirs(cid):
            log.warning("removing a cgroup left by the bench: %s", d)
            try:
                d.rmdir()
            except OSError as e:
                log.warning("could not remove %s: %s", d, e)
    subprocess.run(["rm", "-rf", "--one-file-system", str(side.work)], capture_output=True, timeout=600)
    left = ([f"process {pid}" for pid, argv in _processes() if marker in argv and pid != os.getpid()]
            + [f"mount {mp}" for mp in mounted_under(side.work)]
            + [f"cgroup {d}" for cid in side.seen for d in _cgroup_dirs(cid)]
            + ([f"directory {side.work}"] if side.work.exists() else []))
    if left:
        log.warning("the barque side left behind: %s", ", ".join(left))
    else:
        log.info("barque side clean: no process, mount or cgroup left of its %d containers", len(side.seen))


def _cgroup_dirs(cid: str) -> list[Path]:
    """A barque container's cgroup (`/barque/<id>`) in every hierarchy (v1) or the unified one (v2)."""
    if not CGROUP_ROOT.is_dir():
        return []
    found = [h / "barque" / cid for h in CGROUP_ROOT.iterdir() if (h / "barque" / cid).is_dir()]
    return found or ([CGROUP_ROOT / "barque" / cid] if (CGROUP_ROOT / "barque" / cid).is_dir() else [])


def _cgroup_pids(cid: str) -> list[int]:
    pids = []
    for d in _cgroup_dirs(cid):
        try:
            pids += [int(p) for p in (d / "cgroup.procs").read_text().split()]
        except OSError:
            continue
    return pids


# ---- processes and their memory ---------------------------------------------------------------------------------

def _processes() -> Iterator[tuple[int, bytes]]:
    """(pid, NUL-separated command line) of every live process; zombies have an empty one and are skipped."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if argv:
                yield int(entry.name), argv


def shim_pids(d: Dockerd) -> list[int]:
    marker = str(d.base).encode()
    return [pid for pid, argv in _processes()
            if Path(argv.split(b"\0", 1)[0].decode(errors="replace")).name.startswith("containerd-shim")
            and marker in argv]


def daemon_pids(d: Dockerd) -> list[int]:
    """The private dockerd and containerd (their command lines name our directory; shims excluded)."""
    marker = str(d.base).encode()
    return [pid for pid, argv in _processes()
            if Path(argv.split(b"\0", 1)[0].decode(errors="replace")).name in ("dockerd", "containerd")
            and marker in argv]


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/smaps_rollup has no Pss line")


def wait_for(what: str, find, count: int) -> list[int]:
    """Poll until `find()` returns at least `count` pids."""
    end = time.monotonic() + UP_TIMEOUT
    while True:
        pids = find()
        if len(pids) >= count:
            return pids
        if time.monotonic() > end:
            raise RuntimeError(f"{what}: {len(pids)} of {count} up after {UP_TIMEOUT}s")
        time.sleep(0.2)


# ---- the three parts --------------------------------------------------------------------------------------------

def prepare_image(barque: Engine, docker: Engine, work: Path) -> str:
    barque("bootstrap", "busybox", "--tag", IMAGE, timeout=600)
    tar = work / "busybox.tar"
    barque("save", "-o", tar, IMAGE)
    docker("load", "-i", tar)
    tar.unlink()
    theirs = docker("image", "inspect", "--format", "{{.Id}}", IMAGE).strip()
    ours = barque("image", "inspect", "--format", "{{.Id}}", IMAGE).strip()
    if ours != theirs:
        raise RuntimeError(f"the engines disagree on the image ID: barque {ours}, docker {theirs}")
    return ours


def interfaces(engine: Engine, net: Sequence[str] = ()) -> list[str]:
    out = engine("run", "--rm", *net, IMAGE, "cat", "/proc/net/dev")
    return sorted(line.split(":", 1)[0].strip() for line in out.splitlines()[2:] if ":" in line)


def network_args(barque: Engine, docker: Engine) -> tuple[list[str], str]:
    """Docker's extra flags (none) and a line saying what was checked: both engines' default network must give a
    container the same interfaces, loopback and one veth on the default bridge."""
    ours, theirs = interfaces(barque), interfaces(docker)
    if ours != theirs or ours != ["eth0", "lo"]:
        raise RuntimeError(f"the engines' default networks differ: barque gives {ours}, docker {theirs} "
                           "(expected eth0 and lo on both: a veth on the default bridge)")
    return [], ("network: both engines' default bridge (barque0 / docker0: lo + eth0 per container, NAT rules), "
                "each engine in a throwaway network namespace of its own")


def timed(engine: Engine, args: Sequence[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(engine.cmd(*args), capture_output=True, timeout=COMMAND_TIMEOUT, env=engine.env,
                          stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{engine.name} {' '.join(args)} exited {proc.returncode}: "
                           f"{proc.stderr.decode(errors='replace').strip()}")
    return elapsed


def bench_run(barque: Engine, docker: Engine, docker_net: list[str], runs: int) -> dict[str, list[float]]:
    argv = {"barque": ["run", "--rm", IMAGE, "true"], "docker": ["run", "--rm", *docker_net, IMAGE, "true"]}
    engines = [barque, docker]
    for e in engines:  # warm-up: page cache, first-use caches
        timed(e, argv[e.name])
    times: dict[str, list[float]] = {"barque": [], "docker": []}
    for i in range(runs):
        for e in engines if i % 2 == 0 else reversed(engines):
            times[e.name].append(timed(e, argv[e.name]))
        log.info("run --rm %d/%d: barque %.3fs, docker %.3fs", i + 1, runs, times["barque"][-1], times["docker"][-1])
    for e in engines:
        if e.ids():
            raise RuntimeError(f"{e.name}: containers left after run --rm: {e.ids()}")
    return times


def start_detached(engine: Engine, count: int, net: Sequence[str] = ()) -> None:
    for _ in range(count):
        engine("run", "-d", *net, IMAGE, "sleep", "600")


def bench_memory(side: BarqueSide, docker: Engine, d: Dockerd, docker_net: list[str]) -> dict[str, float]:
    """KiB of PSS per idle container for each engine, plus the daemons' PSS before and after (information)."""
    barque = side.engine
    daemons_before = sum(pss_kib(p) for p in daemon_pids(d))
    start_detached(barque, IDLE)
    side.note_ids()
    start_detached(docker, IDLE, docker_net)
    for e in (barque, docker):
        if e.running() != IDLE:
            raise RuntimeError(f"{e.name}: {e.running()} containers running, not {IDLE}")
    wait_for("barque monitors", side.monitor_pids, IDLE)
    wait_for("containerd shims", lambda: shim_pids(d), 1)
    time.sleep(SETTLE)
    monitors, shims = side.monitor_pids(), shim_pids(d)
    if len(monitors) != IDLE:
        raise RuntimeError(f"{len(monitors)} barque monitors for {IDLE} containers")
    result = {
        "barque": sum(pss_kib(p) for p in monitors) / IDLE,
        "docker": sum(pss_kib(p) for p in shims) / IDLE,
        "monitors": len(monitors), "shims": len(shims),
        "daemons_before": daemons_before, "daemons_after": sum(pss_kib(p) for p in daemon_pids(d)),
    }
    log.info("idle: %d barque monitors %.0f KiB each, %d shims %.0f KiB per container", len(monitors),
             result["barque"], len(shims), result["docker"])
    for e in (barque, docker):
        e.remove_all()
    return result


def parallel_starts(engine: Engine, net: Sequence[str] = ()) -> tuple[float, int, str]:
    """Wall time of PARALLEL concurrent `run -d`, how many are running after, and the first failure's stderr."""
    procs: list[subprocess.Popen] = []
    start = time.perf_counter()
    try:
        for _ in range(PARALLEL):
            procs.append(subprocess.Popen(engine.cmd("run", "-d", *net, IMAGE, "sleep", "600"), env=engine.env,
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE))
        end = time.monotonic() + PARALLEL_TIMEOUT
        errors = []
        for p in procs:
            _, err = p.communicate(timeout=max(1.0, end - time.monotonic()))
            if p.returncode != 0:
                errors.append(" | ".join(err.decode(errors="replace").split("\n")).strip(" |"))
        elapsed = time.perf_counter() - start
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    running = engine.running()
    if errors:
        log.warning("%s: %d of %d starts failed, the first: %s", engine.name, len(errors), PARALLEL, errors[0])
    return elapsed, running, errors[0] if errors else ""


def bench_parallel(side: BarqueSide, docker: Engine, docker_net: list[str]) -> dict[str, tuple[float, int, str]]:
    result = {}
    for e, net in ((side.engine, ()), (docker, docker_net)):
        if e.running():
            raise RuntimeError(f"{e.name}: containers still running before the parallel starts")
        try:
            result[e.name] = parallel_starts(e, net)
            log.info("%d parallel starts: %s %.2fs, %d running", PARALLEL, e.name, *result[e.name][:2])
        finally:
            if e is side.engine:
                side.note_ids()
            e.remove_all()
    return result


# ---- report -----------------------------------------------------------------------------------------------------

def verdict(ratio: float, goal: float) -> str:
    return f"goal <= {goal:.2f}x: {'met' if ratio <= goal else 'NOT met'}"


def report(runs: int, run_times: dict[str, list[float]], memory: dict[str, float],
           parallel: dict[str, tuple[float, int, str]], header: list[str]) -> tuple[str, bool]:
    med = {k: statistics.median(v) for k, v in run_times.items()}
    best = {k: min(v) for k, v in run_times.items()}
    r_med, r_best = med["barque"] / med["docker"], best["barque"] / best["docker"]
    r_mem = memory["barque"] / memory["docker"]
    wall = {k: v[0] for k, v in parallel.items()}
    r_par = wall["barque"] / wall["docker"]
    all_up = all(v[1] == PARALLEL and not v[2] for v in parallel.values())
    w = 40
    lines = header + [
        f"{'':<{w}}{'barque':>10}{'docker':>10}{'barque/docker':>15}",
        f"{f'run --rm true, median of {runs} (s)':<{w}}{med['barque']:>10.3f}{med['docker']:>10.3f}{r_med:>15.2f}"
        f"   {verdict(r_med, GOAL_RUN)}",
        f"{f'run --rm true, best of {runs} (s)':<{w}}{best['barque']:>10.3f}{best['docker']:>10.3f}{r_best:>15.2f}",
        f"{'  runs (s)':<{w}}barque {' '.join(f'{t:.3f}' for t in run_times['barque'])}",
        f"{'':<{w}}docker {' '.join(f'{t:.3f}' for t in run_times['docker'])}",
        f"{f'idle container, PSS each (MiB, n={IDLE})':<{w}}{memory['barque'] / 1024:>10.2f}"
        f"{memory['docker'] / 1024:>10.2f}{r_mem:>15.2f}   {verdict(r_mem, GOAL_MEMORY)}",
        f"{'':<{w}}{memory['monitors']:.0f} monitors vs {memory['shims']:.0f} containerd-shims; not counted: "
        f"dockerd+containerd {memory['daemons_before'] / 1024:.1f} -> {memory['daemons_after'] / 1024:.1f} MiB",
        f"{f'{PARALLEL} parallel run -d, wall (s)':<{w}}{wall['barque']:>10.2f}{wall['docker']:>10.2f}{r_par:>15.2f}",
        f"{'  running after (ps -q)':<{w}}{parallel['barque'][1]:>10d}{parallel['docker'][1]:>10d}"
        f"{'':>15}   {'all up' if all_up else 'NOT all up'}",
    ]
    for name, (_, _, err) in parallel.items():
        if err:
            lines.append(f"  {name}'s first failed start: {err}")
    lines.append(f"ratios barque/docker (lower is better): run --rm median {r_med:.2f} (goal {GOAL_RUN}), "
                 f"best {r_best:.2f}; idle memory {r_mem:.2f} (goal {GOAL_MEMORY}); "
                 f"{PARALLEL} parallel starts {r_par:.2f}")
    return "\n".join(lines), all_up


# ---- main -------------------------------------------------------------------------------------------------------

@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Bound the measuring part: SIGALRM (or SIGTERM) raises in the main thread, so the cleanups still run."""
    def stop(signum, frame):
        raise BenchAbort(f"stopped by {signal.Signals(signum).name} (deadline {seconds}s)")

    previous = {s: signal.signal(s, stop) for s in (signal.SIGALRM, signal.SIGTERM)}
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        for s, handler in previous.items():
            signal.signal(s, handler)


def compile_barque() -> None:
    """As scripts/install.sh does: this environment may set PYTHONDONTWRITEBYTECODE."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(REPO / "barque")],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=15, help=f"timed `run --rm` of each (at most {MAX_RUNS})")
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
            # exits in reverse: dockerd, then the barque root (`rm -f` inside its namespace), then the namespaces
            barque_ns = stack.enter_context(throwaway_netns(f"bqb-ctr-{os.getpid()}-b"))
            docker_ns = stack.enter_context(throwaway_netns(f"bqb-ctr-{os.getpid()}-d"))
            side = stack.enter_context(barque_side(barque_ns))
            d = stack.enter_context(private_dockerd(netns=docker_ns.path))
            stack.enter_context(deadline(TOTAL_TIMEOUT))
            barque, docker = side.engine, docker_engine(d)
            load_before = os.getloadavg()[0]
            image_id = prepare_image(barque, docker, side.work)
            docker_net, net_line = network_args(barque, docker)
            run_times = bench_run(barque, docker, docker_net, runs)
            memory = bench_memory(side, docker, d, docker_net)
            parallel = bench_parallel(side, docker, docker_net)
            ours = barque("version", "--format", "{{.Client.Version}}").strip()
            theirs = docker("version", "--format", "{{.Server.Version}}").strip()
            header = [
                f"image {IMAGE} {image_id[:19]} on both; barque {ours} vs dockerd {theirs} ({d.storage_driver}); "
                f"{os.cpu_count()} CPUs, load average {load_before:.1f} at the start",
                net_line,
            ]
            text, all_up = report(runs, run_times, memory, parallel, header)
            print(text)
    except (BenchAbort, RuntimeError, OSError, subprocess.SubprocessError, AssertionError):
        log.exception("the benchmark failed (dockerd and the barque root are cleaned up)")
        return 1
    return 0 if all_up else 1


if __name__ == "__main__":
    sys.exit(main())
