#!/usr/bin/env python3
"""Unpacking a layer: barque's apply_layer against GNU tar on the same tar, same filesystem, same machine.

    python bench/bench_unpack.py                  # a generated tree: ~20k files, ~300 MB, deterministic
    python bench/bench_unpack.py /path/to/rootfs  # or any existing tree (e.g. a debootstrap)
    python bench/bench_unpack.py --files 5000 --size-mb 50 --runs 3 --workdir /var/tmp

Each case is timed best-of-N into a fresh directory, the two tools taking turns, with `sync` before every run
and all the unpacked trees removed only at the end (outside any timing). The table shows
MB/s of uncompressed tar and the ratio of barque's time to GNU tar's (below 1.0: barque is faster).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from barque.layers import apply_layer, open_decompressed  # noqa: E402

log = logging.getLogger("bench_unpack")


def generate_tree(root: Path, files: int, size_mb: int, seed: int = 20240601) -> None:
    """A deterministic tree shaped like a distribution image: mostly small files, a few big ones, some links."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    dirs = [root]
    for i in range(max(1, files // 20)):
        parent = rng.choice(dirs[-200:]) if dirs else root
        d = parent / f"d{i:05d}"
        d.mkdir()
        dirs.append(d)
    # sizes: 85% small (0-8 KiB), 13% medium (8-256 KiB), 2% large (256 KiB - 8 MiB), scaled to the target
    sizes = []
    for _ in range(files):
        r = rng.random()
        if r < 0.85:
            sizes.append(rng.randint(0, 8 << 10))
        elif r < 0.98:
            sizes.append(rng.randint(8 << 10, 256 << 10))
        else:
            sizes.append(rng.randint(256 << 10, 8 << 20))
    scale = (size_mb << 20) / max(1, sum(sizes))
    text = b"".join(b"line %d of some fairly compressible text in a config or script\n" % i for i in range(20000))
    for i, size in enumerate(sizes):
        size = int(size * scale)
        path = rng.choice(dirs) / f"f{i:06d}"
        if i % 2:
            data = rng.randbytes(size)
        else:
            data = (text * (size // len(text) + 1))[:size]
        path.write_bytes(data)
        if i % 50 == 0:
            os.symlink(path.name, path.with_name(path.name + ".link"))
        if i % 97 == 0:
            os.link(path, path.with_name(path.name + ".hard"))


def best_of(runs: int, work: Path, contenders: dict[str, Callable[[Path], None]]) -> dict[str, float]:
    """Best time of each contender; runs are interleaved so that a change in machine load hits both alike.

    Every run unpacks into a new directory and all are removed only at the end: deleting hundreds of MB
    between runs makes the filesystem discard and journal in the background of the next timed run.
    """
    best = {name: float("inf") for name in contenders}
    targets = work / "targets"
    targets.mkdir()
    try:
        for i in range(runs):
            for name, fn in contenders.items():
                dest = targets / f"{name}-{i}"
                dest.mkdir()
                subprocess.run(["sync"], check=True)  # no writeback of the previous run inside this one's timing
                start = time.perf_counter()
                fn(dest)
                best[name] = min(best[name], time.perf_counter() - start)
    finally:
        shutil.rmtree(targets)
        subprocess.run(["sync"], check=True)
    return best


def gnu_tar(archive: Path, gz: bool) -> Callable[[Path], None]:
    def run(dest: Path) -> None:
        subprocess.run(["tar", "--numeric-owner", "-x" + ("z" if gz else "") + "f", str(archive), "-C", str(dest)],
                       check=True)
    return run


def barque(archive: Path, gz: bool) -> Callable[[Path], None]:
    def run(dest: Path) -> None:
        with open(archive, "rb") as f:
            apply_layer(open_decompressed(f, "gzip") if gz else f, dest)
    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tree", nargs="?", help="an existing directory tree to use instead of a generated one")
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--size-mb", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", default=None, help="where to put the tree, tars and targets (same filesystem)")
    ap.add_argument("--no-gzip", action="store_true", help="skip the gzip-compressed case")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if shutil.which("tar") is None:
        log.error("GNU tar is needed")
        return 2

    work = Path(tempfile.mkdtemp(prefix="barque-bench-", dir=args.workdir))
    try:
        if args.tree:
            tree = Path(args.tree).resolve()
        else:
            tree = work / "tree"
            log.info("generating %d files, ~%d MB in %s", args.files, args.size_mb, tree)
            generate_tree(tree, args.files, args.size_mb)
        archive = work / "layer.tar"
        subprocess.run(["tar", "--numeric-owner", "-cf", str(archive), "-C", str(tree), "."], check=True)
        entries = int(subprocess.run(f"tar -tf {archive} | wc -l", shell=True, check=True, capture_output=True,
                                     text=True).stdout)
        size = archive.stat().st_size
        cases = [("tar", archive, False)]
        if not args.no_gzip:
            gz = work / "layer.tar.gz"
            subprocess.run(f"gzip -1 -c {archive} > {gz}", shell=True, check=True)
            cases.append(("tar.gz (gzip -1)", gz, True))
        log.info("layer: %d entries, %.1f MB uncompressed; best of %d runs each", entries, size / 1e6, args.runs)

        subprocess.run(["sync"], check=True)
        rows = []
        load_before = os.getloadavg()[0]
        for label, path, gzipped in cases:
            best = best_of(args.runs, work, {"tar": gnu_tar(path, gzipped), "barque": barque(path, gzipped)})
            rows.append((label, best["tar"], best["barque"]))
        load_after = os.getloadavg()[0]

        print(f"\nunpack of {entries} entries, {size / 1e6:.1f} MB (uncompressed tar) into {work}, best of "
              f"{args.runs}; load average {load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} CPUs")
        print(f"{'input':<18} {'GNU tar s':>10} {'MB/s':>8} {'barque s':>10} {'MB/s':>8} {'barque/tar':>11}")
        for label, t_tar, t_barque in rows:
            print(f"{label:<18} {t_tar:>10.3f} {size / 1e6 / t_tar:>8.0f} {t_barque:>10.3f} "
                  f"{size / 1e6 / t_barque:>8.0f} {t_barque / t_tar:>11.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
