#!/usr/bin/env bash
# Benchmarks: barque side by side with its anchors, printing ratios. Results also go to bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
for b in bench/bench_*.py; do
  echo "== $b"
  .venv/bin/python "$b" | tee "bench/results/$(basename "$b" .py).txt"
done
