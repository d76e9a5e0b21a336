"""`barque-runtime run` of `true` vs `runc run` of the same busybox bundle (the same config.json: barque's defaults,
`base_spec`, with Docker's seccomp profile, capabilities, masked paths and device rules), best of N each,
interleaved; the ratio; then where barque's time goes: interpreter start-up, the imports (`python -X importtime`),
a cProfile of one run and an `strace -c -f` summary.

Both runtimes keep their state on tmpfs (/run), as they do in production, and the bundle is on the same
filesystem. barque's modules are byte-compiled first, as scripts/install.sh does (this environment sets
PYTHONDONTWRITEBYTECODE). The first barque run compiles and caches the seccomp program (barque/runtime/bpf.py); it
is a warm-up, like runc's first run paging its binary in, and not counted.

    python -m bench.bench_runtime [-n RUNS]
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BARQUE_RUNTIME = REPO / ".venv" / "bin" / "barque-runtime"
PYTHON = REPO / ".venv" / "bin" / "python"
GOAL = 3.0
MAX_RUNS = 50
RUN_TIMEOUT = 60


def _spec(cgroup_parent: str) -> dict:
    from barque.runtime.defaults import base_spec

    spec = base_spec(["true"], "rootfs")
    spec["linux"]["cgroupsPath"] = f"/{cgroup_parent}/placeholder"
    return spec


def _timed(cmd: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=RUN_TIMEOUT)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return elapsed


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.bundle = work / "bundle"
        self.cgroup_parent = f"barque-bench-{uuid.uuid4().hex[:8]}"
        self.barque_root = Path(tempfile.mkdtemp(prefix="barque-bench-", dir="/run"))
        self.runc_root = Path(tempfile.mkdtemp(prefix="runc-bench-", dir="/run"))

    def setup(self) -> None:
        from barque.images.bootstrap import make_busybox_tree

        make_busybox_tree(self.bundle / "rootfs")
        self.spec = _spec(self.cgroup_parent)
        subprocess.run([str(PYTHON), "-m", "compileall", "-q", "-j", "0", str(REPO / "barque")],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _config(self, cid: str) -> None:
        self.spec["linux"]["cgroupsPath"] = f"/{self.cgroup_parent}/{cid}"
        (self.bundle / "config.json").write_text(json.dumps(self.spec))

    def barque_cmd(self, cid: str) -> list[str]:
        return [str(BARQUE_RUNTIME), "--root", str(self.barque_root), "run", cid]

    def runc_cmd(self, cid: str) -> list[str]:
        return ["runc", "--root", str(self.runc_root), "run", cid]

    def one(self, which: str) -> float:
        cid = f"b{uuid.uuid4().hex[:10]}"
        self._config(cid)
        return _timed(self.barque_cmd(cid) if which == "barque" else self.runc_cmd(cid), self.bundle)

    def cleanup(self) -> None:
        for d in Path("/sys/fs/cgroup").iterdir():
            top = d / self.cgroup_parent
            if top.is_dir():
                for sub in sorted((p for p in top.iterdir() if p.is_dir()), reverse=True):
                    try:
                        sub.rmdir()
                    except OSError:
                        pass
                try:
                    top.rmdir()
                except OSError as e:
                    print(f"could not remove {top}: {e}", file=sys.stderr)
        shutil.rmtree(self.barque_root, ignore_errors=True)
        shutil.rmtree(self.runc_root, ignore_errors=True)


def _importtime(b: Bench, top: int = 12) -> list[str]:
    cid = f"b{uuid.uuid4().hex[:10]}"
    b._config(cid)
    proc = subprocess.run([str(PYTHON), "-X", "importtime", str(BARQUE_RUNTIME), "--root", str(b.barque_root), "run",
                           cid], cwd=b.bundle, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)
    rows = []
    for line in proc.stderr.splitlines():
        fields = line.split(":", 1)[1].split("|") if line.startswith("import time:") else []
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue  # not an import line, or the header
        cumulative, name = fields[1], fields[2]
        if name.startswith(" ") and not name.startswith("  "):  # top-level imports only
            rows.append((int(cumulative), name.strip()))
    total = sum(c for c, _ in rows)
    out = [f"  top-level imports, cumulative (importtime's own overhead inflates these): {total / 1000:.1f} ms"]
    out += [f"    {c / 1000:6.1f} ms  {n}" for c, n in sorted(rows, reverse=True)[:top]]
    return out


def _startup(runs: int = 10) -> float:
    best = min(_timed([str(PYTHON), "-c", "pass"], REPO) for _ in range(runs))
    return best


def _cprofile(b: Bench, top: int = 15) -> list[str]:
    cid = f"b{uuid.uuid4().hex[:10]}"
    b._config(cid)
    out_file = b.work / "run.prof"
    subprocess.run([str(PYTHON), "-m", "cProfile", "-o", str(out_file), str(BARQUE_RUNTIME), "--root",
                    str(b.barque_root), "run", cid], cwd=b.bundle, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=RUN_TIMEOUT, check=True)
    stats = pstats.Stats(str(out_file))
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]  # by own (tottime)
    out = [f"  cProfile of the parent process, by own time ({stats.total_tt * 1000:.1f} ms profiled):"]
    for (filename, line, func), (_cc, nc, tt, ct, _callers) in rows:
        where = f"{Path(filename).name}:{line}({func})" if line else func
        out.append(f"    {tt * 1000:6.1f} ms own {ct * 1000:6.1f} ms cum {nc:5d}x  {where}")
    return out


def _strace(b: Bench, top: int = 12) -> list[str]:
    if shutil.which("strace") is None:
        return ["  (strace not installed)"]
    cid = f"b{uuid.uuid4().hex[:10]}"
    b._config(cid)
    summary = b.work / "strace.txt"
    subprocess.run(["strace", "-c", "-f", "-o", str(summary), *b.barque_cmd(cid)], cwd=b.bundle,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=RUN_TIMEOUT)
    lines = summary.read_text().splitlines()
    return ["  strace -c -f (all processes; time is the kernel's):"] + [f"    {ln}" for ln in lines[:top + 2]] + \
        [f"    {ln}" for ln in lines[-2:]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--runs", type=int, default=10, help=f"runs of each (at most {MAX_RUNS})")
    args = p.parse_args(argv)
    runs = max(1, min(args.runs, MAX_RUNS))
    if os.geteuid() != 0:
        print("bench_runtime needs root", file=sys.stderr)
        return 2
    if shutil.which("runc") is None:
        print("runc is not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as tmp:
        b = Bench(Path(tmp))
        try:
            b.setup()
            b.one("barque")  # warm-up: caches the compiled seccomp program
            b.one("runc")
            times: dict[str, list[float]] = {"barque": [], "runc": []}
            for _ in range(runs):
                for which in ("runc", "barque"):
                    times[which].append(b.one(which))
            best = {k: min(v) for k, v in times.items()}
            median = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
            ratio = best["barque"] / best["runc"]
            print(f"run of `true` in a busybox bundle, best of {runs} (median in brackets):")
            print(f"  runc           {best['runc'] * 1000:7.1f} ms  ({median['runc'] * 1000:.1f})")
            print(f"  barque-runtime {best['barque'] * 1000:7.1f} ms  ({median['barque'] * 1000:.1f})")
            print(f"  ratio          {ratio:7.2f}x   (goal <= {GOAL:.0f}x: {'met' if ratio <= GOAL else 'NOT met'})")
            print()
            print("where barque's time goes:")
            print(f"  interpreter start-up alone (python -c pass): {_startup() * 1000:.1f} ms")
            for line in _importtime(b) + _cprofile(b) + _strace(b):
                print(line)
        finally:
            b.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
