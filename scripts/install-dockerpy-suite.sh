#!/usr/bin/env bash
# docker-py's own integration tests, run against `barque serve` by tests/interop/test_dockerpy_suite.py.
#
# They are not copied into this repository: they are fetched from PyPI, in docker-py 7.0.0's source distribution
# (the last one that ships its tests; 7.1.0's has none), checked against its sha256, and unpacked under
# .venv-dockerpy/src. They run in a virtualenv of their own, with the versions docker-py 7.0.0 was released against:
# its tests import paramiko, and docker-py 7.0.0 needs requests < 2.32 (the main .venv has docker-py 7.1.0).
# Idempotent: a second run only checks the stamp.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=7.0.0
SHA256=323736fb92cd9418fc5e7133bc953e11a9da04f4483f828b527db553f1e7e5a3
REQUIREMENTS=(
  "docker==$VERSION" "requests==2.31.0" "paramiko==5.1.0" "websocket-client==1.9.2"
  "pytest==7.4.2" "pytest-timeout==2.1.0"
)
DIR=.venv-dockerpy
stamp=$DIR/.installed-$(printf '%s\n' "$SHA256" "${REQUIREMENTS[@]}" | sha256sum | cut -c1-16)
[ -f "$stamp" ] && exit 0

PY=${PYTHON:-python3}
[ -x $DIR/bin/python ] || "$PY" -m venv $DIR
$DIR/bin/pip install -q --upgrade pip
$DIR/bin/pip install -q "${REQUIREMENTS[@]}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$DIR/bin/pip download -q --no-deps --no-binary docker -d "$tmp" "docker==$VERSION"
sdist="$tmp/docker-$VERSION.tar.gz"
echo "$SHA256  $sdist" | sha256sum -c --quiet -
rm -rf "$DIR/src"
mkdir -p "$DIR/src"
tar -xzf "$sdist" -C "$DIR/src" "docker-$VERSION/tests" "docker-$VERSION/pytest.ini"
rm -f $DIR/.installed-*
touch "$stamp"
