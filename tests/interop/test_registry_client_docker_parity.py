"""`barque pull`/`push` say what `docker pull`/`push` say, line by line, with the same exit status: the real docker CLI
(the session's private dockerd) and barque, each against a docker-registry of its own, their outputs piped (no
progress bars) and compared modulo layer IDs, digests, manifest sizes and the registry's address. Docker's
"Error response from daemon: …" is barque's "Error: …" (barque has no daemon)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tests.conftest import FIXTURES
from tests.registry_support_peers import available, docker_registry

pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")

_LAYER = re.compile(r"^([0-9a-f]{12}): (.*)$")


@dataclass
class Said:
    status: int
    lines: list[str]          # stdout's lines that are not a layer's, normalised
    layers: list[tuple[str, ...]]   # each layer's statuses in order, the layers sorted
    shape: list[str]          # stdout with every layer line as "<layer>" (where the layer lines stand)
    err: list[str]


def said(proc, host: str) -> Said:
    def norm(line: str) -> str:
        line = line.replace(host, "HOST")
        line = re.sub(r"sha256:[0-9a-f]{64}", "sha256:DIGEST", line)
        line = re.sub(r"size: \d+", "size: N", line)
        # Docker 20.10's reference parser does not name the repository in this message, later ones and barque do
        line = re.sub(r"repository name \([^)]*\) must", "repository name must", line)
        return line.replace("Error response from daemon: ", "Error: ")

    lines, shape, layers = [], [], {}
    for raw in proc.stdout.splitlines():
        m = _LAYER.match(raw)
        if m:
            # dockerd's transfer watchers coalesce progress: a small layer's "Verifying Checksum" is sometimes not
            # shown at all (barque always shows it), so it is left out of the comparison
            if m.group(2) != "Verifying Checksum":
                layers.setdefault(m.group(1), []).append(m.group(2))
            if not shape or shape[-1] != "<layer>":
                shape.append("<layer>")
        else:
            lines.append(norm(raw))
            shape.append(norm(raw))
    return Said(proc.returncode, lines, sorted(tuple(v) for v in layers.values()), shape,
                [norm(x) for x in proc.stderr.splitlines()])


def assert_same(ours, theirs, our_host: str, their_host: str, what: str) -> None:
    a, b = said(ours, our_host), said(theirs, their_host)
    assert a == b, f"{what}:\nbarque ({ours.returncode}):\n{ours.stdout}{ours.stderr}\n" \
                   f"docker ({theirs.returncode}):\n{theirs.stdout}{theirs.stderr}"


def test_pull_and_push_say_what_docker_says(docker, barque, tmp_path):
    docker.docker("load", "-i", FIXTURES / "docker-save-layers.tar")
    barque("load", "-i", FIXTURES / "docker-save-layers.tar")
    with docker_registry(tmp_path / "theirs") as theirs, docker_registry(tmp_path / "ours") as ours:
        env = ours.env()

        def both(what: str, *args: str, tag: str = "") -> None:
            d = docker.docker(*[a.replace("HOST", theirs.host) for a in args], check=False, timeout=300)
            b = barque(*[a.replace("HOST", ours.host) for a in args], check=False, env=env)
            assert_same(b, d, ours.host, theirs.host, what)

        for reg, run in ((theirs, docker.docker), (ours, barque)):
            run("tag", "fixture/layers:1", f"{reg.host}/parity/img:1")
        both("push of a new image", "push", "HOST/parity/img:1")
        both("push again", "push", "HOST/parity/img:1")
        both("push of an image that is not here", "push", "HOST/parity/absent:1")
        both("push of a bare name that is not here", "push", "HOST/parity/absent")

        docker.docker("rmi", f"{theirs.host}/parity/img:1", "fixture/layers:1")
        barque("rmi", f"{ours.host}/parity/img:1", "fixture/layers:1")
        assert barque("images", "-q").stdout == ""
        both("pull of a new image", "pull", "HOST/parity/img:1")
        both("pull again", "pull", "HOST/parity/img:1")
        both("pull of a missing tag", "pull", "HOST/parity/img:nope")
        both("pull of a missing repository", "pull", "HOST/parity/nothing")
        both("pull of an invalid name", "pull", "HOST/parity/Bad:1")
        both("pull of an invalid reference", "pull", "foo:bar:baz")
