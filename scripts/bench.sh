#!/usr/bin/env bash
# Benchmarks: barque side by side with its anchors, printing ratios. Results also go to bench/results/.
# A failing benchmark is reported and the others still run; the exit status says whether any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
failed=()
for b in bench/bench_*.py; do
  echo "== $b"
  # each benchmark in a throwaway network namespace of its own (loopback up): containers it runs get veths and
  # barque's nftables rules there, never on the machine's interfaces; benches that need more make their own
  if ! unshare --net sh -c 'ip link set lo up && exec .venv/bin/python "$0"' "$b" | tee "bench/results/$(basename "$b" .py).txt"; then
    failed+=("$b")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
