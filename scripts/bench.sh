#!/usr/bin/env bash
# Benchmarks: barque side by side with its anchors, printing ratios. Results also go to bench/results/.
# A failing benchmark is reported and the others still run; the exit status says whether any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
failed=()
for b in bench/bench_*.py; do
  echo "== $b"
  if ! .venv/bin/python "$b" | tee "bench/results/$(basename "$b" .py).txt"; then
    failed+=("$b")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
