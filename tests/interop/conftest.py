"""Interop fixtures: skopeo run with a policy of our own, a private dockerd for the session, more barque roots."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.conftest import Barque, _cleanup_root, unique


class Skopeo:
    """Runs skopeo with its own signature policy (accept anything: only local files are involved) and its own
    temporary directory, so neither /etc/containers nor /var/tmp matters."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.policy = work / "policy.json"
        self.tmp = work / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))

    def __call__(self, *args: str | os.PathLike, check: bool = True,
                 timeout: float = 300) -> subprocess.CompletedProcess:
        cmd = ["skopeo", "--policy", str(self.policy), *map(str, args)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              env={**os.environ, "TMPDIR": str(self.tmp)})
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\nstdout: {proc.stdout}\n"
                                 f"stderr: {proc.stderr}")
        return proc

    def json(self, *args: str | os.PathLike) -> dict:
        return json.loads(self(*args).stdout)


@pytest.fixture
def skopeo(tmp_path: Path) -> Skopeo:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    return Skopeo(tmp_path / "skopeo")


@pytest.fixture
def other_barque(tmp_path: Path) -> Iterator[Callable[[], Barque]]:
    """Fresh barque roots on demand: where an archive is loaded back, so nothing of the first root can help."""
    made: list[Path] = []

    def make() -> Barque:
        name = unique("b")
        made.append(tmp_path / name)
        return Barque(tmp_path / name / "root", tmp_path / name / "run")

    yield make
    for base in made:
        _cleanup_root(base / "root")


@pytest.fixture(scope="session")
def dockerd():
    """One private dockerd for the whole session (bench/dockerd.py): started on first use, gone before the leak
    check looks. Missing tools skip; a dockerd that is installed but does not start fails."""
    from bench.dockerd import available, private_dockerd

    reason = available()
    if reason:
        pytest.skip(reason)
    with private_dockerd() as daemon:
        yield daemon


@pytest.fixture
def docker(dockerd):
    """The session's dockerd, removing after the test every image the test made there (tests tag uniquely)."""
    before = set(dockerd.docker("images", "-aq", "--no-trunc").stdout.split())
    yield dockerd
    dockerd.docker("container", "prune", "-f", check=False)
    after = set(dockerd.docker("images", "-aq", "--no-trunc").stdout.split())
    if after - before:
        dockerd.docker("rmi", "-f", *sorted(after - before), check=False)
