"""`barque build` against `docker build` (dockerd 20.10's classic builder) on the same Dockerfile, context and base:
the same files, owners and modes, the same config, the same history lines, and the image barque built runs under
Docker. Runs against the session's private dockerd (bench/dockerd.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.interop.test_docker import barque_inspect, barque_tree, docker_tree, hand_to_docker, run

pytestmark = pytest.mark.interop

DOCKERFILE = """\
ARG GREETING=hello
FROM {base} AS first
ARG GREETING
ARG LEVEL=3
ENV APP=/srv/app PATH=/srv/app/bin:$PATH
WORKDIR $APP
COPY . ./
COPY --chown=7:8 sub/ /owned/
COPY one.txt two.txt /multi/
ADD pkg.tar /unpacked/
RUN echo "$GREETING $LEVEL" > greeting && ln -s greeting link && mkdir -p empty && chmod 0750 empty
RUN rm two.txt
LABEL org.example.a="first label" b=2
EXPOSE 80 53/udp
VOLUME ["/data"]
USER 1000:1000
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --retries=2 CMD test -e /srv/app/greeting
SHELL ["/bin/sh", "-e", "-c"]
ONBUILD RUN echo child
ENTRYPOINT ["cat"]
CMD ["greeting"]

FROM first
USER root
RUN echo second > /second
"""

CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels", "StopSignal",
               "Healthcheck", "OnBuild", "Shell")
COPY_HASH = re.compile(r"((?:COPY|ADD) (?:--chown=\S*?)?(?:dir|multi|file)):[0-9a-f]{64}")


def _context(tmp_path: Path, base: str) -> Path:
    import io
    import tarfile

    ctx = tmp_path / "ctx"
    (ctx / "sub" / "deep").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    (ctx / ".dockerignore").write_text("*.log\n!keep.log\n")
    for name, text in (("one.txt", "one\n"), ("two.txt", "two\n"), ("sub/s.txt", "s\n"), ("sub/deep/d.txt", "d\n"),
                       ("drop.log", "ignored\n"), ("keep.log", "kept\n")):
        (ctx / name).write_text(text)
    (ctx / "sub" / "exec.sh").write_text("#!/bin/sh\n")
    (ctx / "sub" / "exec.sh").chmod(0o755)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("pkg/a", b"in tar\n"),):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.uid, info.gid, info.mode = 5, 6, 0o640
            tf.addfile(info, io.BytesIO(data))
    (ctx / "pkg.tar").write_bytes(buf.getvalue())
    return ctx


def test_build_matches_docker_classic_builder(bb, docker, tmp_path):
    base = hand_to_docker(bb, docker, "busybox:latest", tmp_path)
    ctx = _context(tmp_path, base)
    tag = base.replace(":1", "-built:1")
    docker.docker("build", "--build-arg", "LEVEL=7", "-t", tag + "-docker", str(ctx))
    out = bb("build", "--build-arg", "LEVEL=7", "-t", tag, ctx).stdout
    assert "Successfully tagged" in out

    ours, theirs = barque_inspect(bb, tag), docker.inspect("image", tag + "-docker")
    for key in CONFIG_KEYS:
        assert ours["Config"].get(key) == theirs["Config"].get(key), key
    history = bb("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag).stdout.splitlines()
    docker_history = docker.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}",
                                   tag + "-docker").stdout.splitlines()
    assert [COPY_HASH.sub(r"\1:H", h) for h in history] == [COPY_HASH.sub(r"\1:H", h) for h in docker_history]
    assert len(ours["RootFS"]["Layers"]) == len(theirs["RootFS"]["Layers"])

    # the same files with the same owners, modes, sizes and links (mtimes differ by design: barque's are the epoch)
    assert barque_tree(bb, tag) == docker_tree(docker, tag + "-docker", tmp_path)

    # and what barque built runs under Docker
    name = hand_to_docker(bb, docker, tag, tmp_path)
    assert run(docker, name) == "hello 7\n"
