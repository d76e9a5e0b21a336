#!/usr/bin/env bash
# Installs everything barque and its tests need on Debian 12, as root. Idempotent: a second run does
# nothing but check.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  # storage and base images
  busybox-static debootstrap btrfs-progs attr xz-utils zstd
  # real peers the interop tests and benchmarks run against
  skopeo docker.io runc tini docker-registry docker-compose
  # networking and security (runtime/network issues)
  nftables iptables iproute2 uidmap libseccomp2
  # the C monitor of detached containers (barque/container/cmonitor)
  gcc libc6-dev
  # build contexts from git repositories (barque build file://REPO#REF:DIR)
  git
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# docker-py's own integration tests (fetched from PyPI, never copied here) in a virtualenv of their own
bash scripts/install-dockerpy-suite.sh

# Fast launchers in place of pip's console scripts: `python -S` skips site.py, whose processing of the editable
# install's .pth finder costs 20-40 ms on every command (the CLI's start-up is on the path of every `run`); the two
# directories it would have put on sys.path are put there directly.
repo=$PWD
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for pair in barque:barque.cli.main barque-runtime:barque.runtime.cli; do
  name=${pair%%:*}; module=${pair#*:}
  cat > ".venv/bin/$name.tmp" <<LAUNCHER
#!$repo/.venv/bin/python -S
# barque's launcher, written by scripts/install.sh (see there): no site.py, the paths set here.
import sys
sys.path[0:0] = ["$repo", "$site"]
from $module import main
sys.exit(main())
LAUNCHER
  chmod 755 ".venv/bin/$name.tmp"
  mv -f ".venv/bin/$name.tmp" ".venv/bin/$name"
done

# The C monitor detached containers keep (barque/container/monitor.py decides when it serves): rebuilt when its
# source is newer than the binary.
src=barque/container/cmonitor/barque-monitor.c
if [ ! -x .venv/bin/barque-monitor ] || [ "$src" -nt .venv/bin/barque-monitor ]; then
  gcc -O2 -Wall -Wextra -Werror -o .venv/bin/barque-monitor.tmp "$src"
  mv -f .venv/bin/barque-monitor.tmp .venv/bin/barque-monitor
fi

# Byte-compile barque and its dependencies: some environments set PYTHONDONTWRITEBYTECODE, and without .pyc files
# every CLI start compiles its imports again (the CLI's start-up is on the path of every command).
.venv/bin/python -m compileall -q -j 0 barque .venv/lib/python3*/site-packages >/dev/null 2>&1 || true
