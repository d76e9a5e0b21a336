#!/usr/bin/env python3
"""Networking, barque against Docker on the same busybox image: how long `run -d -p` takes, and how many HTTP
requests per second pass through a published port.

    python -m bench.bench_network [-n RUNS] [--requests N] [--concurrency K] [--rounds R]

Standalone (run by `make bench`), in the style of bench/bench_containers.py: its own barque root, its own dockerd
(bench/dockerd.py), the image made once (`barque bootstrap busybox`, `barque save` → `docker load`, the same image ID
on both), everything removed at the end, failure included; the measuring part is bounded by BENCH_TIMEOUT seconds
(default 1200).

Where it runs: nothing touches the machine's own interfaces or firewall. Each engine gets a lab of two throwaway
network namespaces (bench/netns.py): a "host" one, where the engine runs and makes its bridge, veths and NAT rules
(every barque command under `nsenter --net`; dockerd started inside its own with its default bridge, iptables and
userland proxy), and an "outside" one joined to it by a veth pair (host 198.51.100.1/24, outside 198.51.100.2/24).
The two labs are alike, and neither engine's bridge (both default to 172.17.0.0/16) or NAT rules see the other's
traffic.

1. Start time: `run -d -p 8080:80 busybox httpd -f -p 80`, the engines taking turns (who goes first alternates),
   RUNS times each (default 10) after one warm-up each whose page is fetched through 127.0.0.1:8080 to prove the
   port works; median and best of the wall time of the CLI command. Each container is removed after (`rm -f`, not
   timed).
2. Requests per second: one container per engine, `-p 8000:80`, busybox httpd serving a 1 KiB file. A bounded load
   generator (this file, `--load`: Python threads, a fixed number of requests — default 2000 — over K concurrent
   connections, default 8, one request per connection, `Connection: close`, every answer checked: status 200 and
   the whole body; stopped at a time limit) runs inside the engine's lab, from two places:
   - loopback: in the host namespace, to 127.0.0.1:8000. barque's path is its nftables DNAT in the kernel
     (`route_localnet` on barque0); Docker's is docker-proxy, its userland proxy (dockerd's default
     `--userland-proxy=true`) — that difference is part of what is compared;
   - outside: in the outside namespace, to 198.51.100.1:8000 — kernel DNAT on both (barque's `ip barque` table,
     Docker's iptables-nft DOCKER chain) and forwarding onto the bridge.
   ROUNDS rounds (default 5), engines alternating, median requests per second; the ratio barque/docker (goal ≥ 1.0).
   For scale, the same generator against busybox httpd run directly in barque's host namespace (no container, no
   NAT) shows what the generator and this machine can do at most.

The barque side is the installed console script (.venv/bin/barque) with barque byte-compiled first; numbers on a
small, shared machine are noisy, and with few CPUs the generator, the server and the proxy share them: read the
ratios, not the absolutes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.bench_containers import (BenchAbort, Engine, barque_side, compile_barque, deadline,  # noqa: E402
                                    docker_engine, prepare_image)
from bench.dockerd import available, private_dockerd  # noqa: E402
from bench.netns import HOST_ADDR, Lab, Netns, in_netns, lab  # noqa: E402

log = logging.getLogger("bench.network")

IMAGE = "busybox:latest"
GOAL_RPS = 1.0  # barque/docker requests per second, at least
START_PORT = 8080
SERVE_PORT = 8000
DIRECT_PORT = 9000  # busybox httpd straight in barque's host namespace, for scale
PAGE_BYTES = 1024
SERVE = ["sh", "-c", f"mkdir -p /www && yes barque | head -c {PAGE_BYTES} > /www/index.html && "
         "exec httpd -f -p 80 -h /www"]
MAX_RUNS = 100
MAX_REQUESTS = 100_000
MAX_CONCURRENCY = 256
MAX_ROUNDS = 10
COMMAND_TIMEOUT = 120  # one CLI command
LOAD_TIME_LIMIT = 60.0  # one load run
CONNECT_TIMEOUT = 10.0  # one request
READY_TIMEOUT = 30.0  # a new container's port to answer
TOTAL_TIMEOUT = int(os.environ.get("BENCH_TIMEOUT", "1200"))


# ---- the load generator (also run as `bench_network.py --load ...` inside a namespace) -------------------------

@dataclass
class LoadResult:
    ok: int
    errors: int
    first_error: str
    elapsed: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict:
        lat = sorted(self.latencies)
        pick = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000) if lat else (lambda q: 0.0)
        return {"ok": self.ok, "errors": self.errors, "first_error": self.first_error, "elapsed": self.elapsed,
                "rps": self.rps, "p50_ms": pick(0.50), "p99_ms": pick(0.99)}


def fetch(host: str, port: int, request: bytes, timeout: float = CONNECT_TIMEOUT) -> bytes:
    """One request on a new connection; the whole answer (the server closes the connection)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def check_answer(answer: bytes, body_bytes: int | None) -> str:
    """'' when `answer` is a 200 with a body of `body_bytes` (any length when None), else what is wrong."""
    head, sep, body = answer.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if not status.startswith(b"HTTP/1.") or status.split(b" ")[1:2] != [b"200"]:
        return f"status {status[:60]!r}"
    if not sep or (body_bytes is not None and len(body) != body_bytes):
        return f"body of {len(body)} bytes, not {body_bytes}"
    return ""


def load(host: str, port: int, requests: int, concurrency: int, time_limit: float,
         body_bytes: int | None = PAGE_BYTES) -> LoadResult:
    """`requests` GETs of / over `concurrency` threads, each opening a connection per request; stops early at
    `time_limit`. Errors are counted, not retried."""
    request = f"GET / HTTP/1.0\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
    lock = threading.Lock()
    state = {"issued": 0, "ok": 0, "errors": 0, "first_error": ""}
    latencies: list[float] = []
    stop_at = time.monotonic() + time_limit

    def take() -> bool:
        with lock:
            if state["issued"] >= requests or time.monotonic() >= stop_at:
                return False
            state["issued"] += 1
            return True

    def worker() -> None:
        mine = []
        while take():
            t0 = time.perf_counter()
            try:
                wrong = check_answer(fetch(host, port, request), body_bytes)
            except OSError as e:
                wrong = f"{type(e).__name__}: {e}"
            took = time.perf_counter() - t0
            with lock:
                if wrong:
                    state["errors"] += 1
                    state["first_error"] = state["first_error"] or wrong
                else:
                    state["ok"] += 1
            if not wrong:
                mine.append(took)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, stop_at + CONNECT_TIMEOUT + 5 - time.monotonic()))
    elapsed = time.perf_counter() - start
    with lock:
        return LoadResult(state["ok"], state["errors"], state["first_error"], elapsed, list(latencies))


def load_main(args: argparse.Namespace) -> int:
    host, _, port = args.load.rpartition(":")
    if args.probe:
        return probe_main(host, int(port), args.time_limit)
    res = load(host, int(port), args.requests, args.concurrency, args.time_limit,
               None if args.body_bytes < 0 else args.body_bytes)
    print(json.dumps(res.as_dict()))
    return 0


def probe_main(host: str, port: int, time_limit: float) -> int:
    """Wait until HOST:PORT answers an HTTP request (any status): a new container's server may not listen yet."""
    request = f"GET / HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode()
    end = time.monotonic() + time_limit
    last = ""
    while time.monotonic() < end:
        try:
            answer = fetch(host, port, request, timeout=2)
            if answer.startswith(b"HTTP/1."):
                print(json.dumps({"status": answer.split(b"\r\n", 1)[0].decode(errors="replace")}))
                return 0
            last = f"answer {answer[:60]!r}"
        except OSError as e:
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.05)
    print(json.dumps({"error": last}))
    return 1


# ---- running things inside a lab ----------------------------------------------------------------------------------

def _generator(ns: Netns, target: str, *args: str) -> list[str]:
    return in_netns(ns, [sys.executable, str(Path(__file__).resolve()), "--load", target, *args])


def probe(ns: Netns, host: str, port: int, timeout: float = READY_TIMEOUT) -> str:
    """The status line HOST:PORT answers from inside `ns`; RuntimeError if nothing does within `timeout`."""
    proc = subprocess.run(_generator(ns, f"{host}:{port}", "--probe", "--time-limit", str(timeout)),
                          capture_output=True, text=True, timeout=timeout + 30, stdin=subprocess.DEVNULL)
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"probe of {host}:{port} in {ns.name}: {proc.stderr.strip()[-500:]}") from None
    if proc.returncode != 0:
        raise RuntimeError(f"nothing answers HTTP on {host}:{port} in {ns.name} after {timeout}s: {out['error']}")
    return out["status"]


def run_load(ns: Netns, host: str, port: int, requests: int, concurrency: int) -> dict:
    argv = _generator(ns, f"{host}:{port}", "--requests", str(requests), "--concurrency", str(concurrency),
                      "--time-limit", str(LOAD_TIME_LIMIT))
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=LOAD_TIME_LIMIT + CONNECT_TIMEOUT + 60,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator in {ns.name} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- the two parts ------------------------------------------------------------------------------------------------

@dataclass
class Side:
    """One engine and the lab it runs in; `seen` collects the IDs of the containers it ran (the barque side's
    cleanup checks their cgroups)."""

    engine: Engine
    lab: Lab
    seen: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.engine.name

    def run_d(self, *args: str) -> tuple[float, str]:
        """`run -d ARGS`: its wall time and the container ID."""
        took, cid = timed(self.engine, ["run", "-d", *args])
        self.seen.add(cid)
        return took, cid


def timed(engine: Engine, args: Sequence[str]) -> tuple[float, str]:
    """Wall time of one CLI command, and its stdout (the container ID for `run -d`)."""
    start = time.perf_counter()
    proc = subprocess.run(engine.cmd(*args), capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                          env=engine.env, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{engine.name} {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return elapsed, proc.stdout.strip()


def bench_start(sides: list[Side], runs: int) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Times of `run -d -p START_PORT:80 ... httpd`, and the status line each warm-up container answered."""
    argv = ["-p", f"{START_PORT}:80", IMAGE, "httpd", "-f", "-p", "80"]
    answered = {}
    for s in sides:  # warm-up, and proof that the published port works
        _, cid = s.run_d(*argv)
        try:
            answered[s.name] = probe(s.lab.host, "127.0.0.1", START_PORT)
        finally:
            s.engine("rm", "-f", cid)
    times: dict[str, list[float]] = {s.name: [] for s in sides}
    for i in range(runs):
        for s in sides if i % 2 == 0 else reversed(sides):
            took, cid = s.run_d(*argv)
            times[s.name].append(took)
            s.engine("rm", "-f", cid)
        log.info("run -d -p %d/%d: %s", i + 1, runs, ", ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items()))
    for s in sides:
        if s.engine.ids():
            raise RuntimeError(f"{s.name}: containers left after rm -f: {s.engine.ids()}")
    return times, answered


@contextmanager
def direct_server(ns: Netns) -> Iterator[bool]:
    """busybox httpd straight in `ns` (no container, no NAT) on 127.0.0.1:DIRECT_PORT, serving the same page; yields
    False when there is no busybox here. Killed by its pid on exit."""
    import shutil
    import tempfile

    busybox = shutil.which("busybox")
    if busybox is None:
        yield False
        return
    www = Path(tempfile.mkdtemp(prefix="barque-bench-www-"))
    proc = None
    try:
        (www / "index.html").write_bytes((b"barque\n" * (PAGE_BYTES // 7 + 1))[:PAGE_BYTES])
        proc = subprocess.Popen(in_netns(ns, [busybox, "httpd", "-f", "-p", f"127.0.0.1:{DIRECT_PORT}",
                                              "-h", str(www)]), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe(ns, "127.0.0.1", DIRECT_PORT)
        yield True
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)  # the nsenter exec'd busybox: the same pid
            proc.wait(30)
        for f in www.iterdir():
            f.unlink()
        www.rmdir()


def bench_rps(sides: list[Side], rounds: int, requests: int, concurrency: int) -> dict[str, dict[str, list[dict]]]:
    """Per engine and vantage ("loopback", "outside", plus "direct" for scale): the load results of each round."""
    for s in sides:
        s.run_d("-p", f"{SERVE_PORT}:80", IMAGE, *SERVE)
        probe(s.lab.host, "127.0.0.1", SERVE_PORT)
        probe(s.lab.outside, HOST_ADDR, SERVE_PORT)
    results: dict[str, dict[str, list[dict]]] = {s.name: {"loopback": [], "outside": []} for s in sides}
    results["no engine"] = {"direct": []}
    with direct_server(sides[0].lab.host) as direct:
        for s in sides:  # warm-up: first connections, conntrack, the page cache
            run_load(s.lab.host, "127.0.0.1", SERVE_PORT, min(200, requests), concurrency)
        for r in range(rounds):
            for s in sides if r % 2 == 0 else reversed(sides):
                for vantage, ns, host in (("loopback", s.lab.host, "127.0.0.1"), ("outside", s.lab.outside, HOST_ADDR)):
                    res = run_load(ns, host, SERVE_PORT, requests, concurrency)
                    results[s.name][vantage].append(res)
                    log.info("round %d/%d %s %s: %.0f req/s, %d errors", r + 1, rounds, s.name, vantage, res["rps"],
                             res["errors"])
            if direct:
                res = run_load(sides[0].lab.host, "127.0.0.1", DIRECT_PORT, requests, concurrency)
                results["no engine"]["direct"].append(res)
                log.info("round %d/%d direct: %.0f req/s", r + 1, rounds, res["rps"])
    for s in sides:
        s.engine.remove_all()
    return results


# ---- report -------------------------------------------------------------------------------------------------------

def median_of(results: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in results) if results else float("nan")


def report(runs: int, start: dict[str, list[float]], answered: dict[str, str], rps: dict, requests: int,
           concurrency: int, rounds: int, header: list[str]) -> tuple[str, bool]:
    med = {k: statistics.median(v) for k, v in start.items()}
    best = {k: min(v) for k, v in start.items()}
    r_start, r_best = med["barque"] / med["docker"], best["barque"] / best["docker"]
    w = 44
    lines = header + [
        f"{'':<{w}}{'barque':>10}{'docker':>10}{'barque/docker':>15}",
        f"{f'run -d -p, median of {runs} (s)':<{w}}{med['barque']:>10.3f}{med['docker']:>10.3f}{r_start:>15.2f}"
        "   (lower is better)",
        f"{f'run -d -p, best of {runs} (s)':<{w}}{best['barque']:>10.3f}{best['docker']:>10.3f}{r_best:>15.2f}",
        f"{'  runs (s)':<{w}}barque {' '.join(f'{t:.3f}' for t in start['barque'])}",
        f"{'':<{w}}docker {' '.join(f'{t:.3f}' for t in start['docker'])}",
        f"{'  warm-up answer via 127.0.0.1':<{w}}barque {answered['barque']!r}, docker {answered['docker']!r} "
        "(any HTTP status proves the port; httpd's directory is empty)",
    ]
    ratios, missing = {}, 0
    for vantage, title in (("loopback", "127.0.0.1 (barque nft DNAT; docker-proxy)"),
                           ("outside", "outside ns -> 198.51.100.1 (both DNAT)")):
        b, d = (median_of(rps[e][vantage], "rps") for e in ("barque", "docker"))
        ratios[vantage] = b / d
        lines.append(f"{f'req/s {title}':<{w}}{b:>10.0f}{d:>10.0f}{ratios[vantage]:>15.2f}"
                     f"   goal >= {GOAL_RPS:.1f}x: {'met' if ratios[vantage] >= GOAL_RPS else 'NOT met'}")
        lat = {e: (median_of(rps[e][vantage], "p50_ms"), median_of(rps[e][vantage], "p99_ms"))
               for e in ("barque", "docker")}
        lines.append(f"{'  latency p50 / p99 (ms)':<{w}}barque {lat['barque'][0]:.2f} / {lat['barque'][1]:.2f}, "
                     f"docker {lat['docker'][0]:.2f} / {lat['docker'][1]:.2f}")
        for e in ("barque", "docker"):
            errs = sum(r["errors"] for r in rps[e][vantage])
            done = sum(r["ok"] for r in rps[e][vantage])
            missing += requests * len(rps[e][vantage]) - done
            if errs or done + errs < requests * len(rps[e][vantage]):
                first = next((r["first_error"] for r in rps[e][vantage] if r["first_error"]), "time limit")
                lines.append(f"  {e} {vantage}: {done} answered, {errs} errors (first: {first})")
    if rps["no engine"]["direct"]:
        lines.append(f"{'req/s httpd in the host ns, no NAT (scale)':<{w}}"
                     f"{median_of(rps['no engine']['direct'], 'rps'):>10.0f}")
    lines.append(f"  load: {requests} requests x {rounds} rounds per engine and vantage, {concurrency} concurrent "
                 f"connections, one request each (Connection: close), 1 KiB page, medians of the rounds")
    lines.append(f"ratios barque/docker: run -d -p median {r_start:.2f} (lower is better), best {r_best:.2f}; "
                 f"req/s via 127.0.0.1 {ratios['loopback']:.2f}, from outside {ratios['outside']:.2f} "
                 f"(higher is better, goal >= {GOAL_RPS})")
    return "\n".join(lines), missing == 0


# ---- main ---------------------------------------------------------------------------------------------------------

def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=10, help=f"timed `run -d -p` of each (at most {MAX_RUNS})")
    parser.add_argument("--requests", type=int, default=2000, help=f"per load run (at most {MAX_REQUESTS})")
    parser.add_argument("--concurrency", type=int, default=8, help=f"connections at once (at most {MAX_CONCURRENCY})")
    parser.add_argument("--rounds", type=int, default=5, help=f"load runs per engine and place (at most {MAX_ROUNDS})")
    parser.add_argument("--load", metavar="HOST:PORT", help=argparse.SUPPRESS)  # the generator, in a namespace
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--time-limit", type=float, default=LOAD_TIME_LIMIT, help=argparse.SUPPRESS)
    parser.add_argument("--body-bytes", type=int, default=PAGE_BYTES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.runs = max(1, min(args.runs, MAX_RUNS))
    args.requests = max(1, min(args.requests, MAX_REQUESTS))
    args.concurrency = max(1, min(args.concurrency, MAX_CONCURRENCY))
    args.rounds = max(1, min(args.rounds, MAX_ROUNDS))
    args.time_limit = max(0.1, min(args.time_limit, 600.0))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.load:
        return load_main(args)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    reason = available()
    if reason:
        log.error("cannot benchmark against Docker: %s", reason)
        return 1
    compile_barque()
    try:
        with ExitStack() as stack:
            # exits in reverse: dockerd, then the barque root (`rm -f` inside its lab), then the labs
            barque_lab = stack.enter_context(lab(f"bqb-net-{os.getpid()}-b"))
            docker_lab = stack.enter_context(lab(f"bqb-net-{os.getpid()}-d"))
            side = stack.enter_context(barque_side(barque_lab.host, prefix="barque-bench-net-"))
            d = stack.enter_context(private_dockerd(netns=docker_lab.host.path))
            stack.enter_context(deadline(TOTAL_TIMEOUT))
            barque, docker = side.engine, docker_engine(d)
            sides = [Side(barque, barque_lab, side.seen), Side(docker, docker_lab)]
            load_before = os.getloadavg()[0]
            image_id = prepare_image(barque, docker, side.work)
            start, answered = bench_start(sides, args.runs)
            rps = bench_rps(sides, args.rounds, args.requests, args.concurrency)
            ours = barque("version", "--format", "{{.Client.Version}}").strip()
            theirs = docker("version", "--format", "{{.Server.Version}}").strip()
            header = [
                f"image {IMAGE} {image_id[:19]} on both; barque {ours} vs dockerd {theirs} ({d.storage_driver}, "
                f"default bridge, iptables, userland proxy); {os.cpu_count()} CPUs, load average {load_before:.1f} "
                "at the start",
                "each engine in its own throwaway lab: a host netns (engine, bridge, NAT rules) + an outside netns "
                "joined by a veth (198.51.100.1 <-> .2)",
                "127.0.0.1 paths differ by design: barque DNATs loopback in nftables (route_localnet), "
                "Docker relays it through docker-proxy (userland)",
            ]
            text, clean = report(args.runs, start, answered, rps, args.requests, args.concurrency, args.rounds,
                                 header)
            print(text)
    except (BenchAbort, RuntimeError, OSError, subprocess.SubprocessError, AssertionError, ValueError):
        log.exception("the benchmark failed (dockerd, the barque root and the namespaces are cleaned up)")
        return 1
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
