"""Dockerfiles read into stages (barque.build.dockerfile): BuildKit's grammar, Docker's refusals with file and line."""

from __future__ import annotations

import re

import pytest

from barque.build.dockerfile import DockerfileError, parse

FULL = """\
# syntax=docker/dockerfile:1
# escape=\\
ARG BASE=busybox
ARG VERSION
FROM $BASE AS Build
ENV A=1 B="two words"
RUN echo hi \\
  && echo there
RUN ["echo", "json"]
RUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t --network=none echo mounts
COPY --from=build --chown=1:1 --chmod=644 a b /dst/
RUN <<EOF
echo heredoc
EOF
COPY <<EOT /file
content
EOT
HEALTHCHECK --interval=5s --retries=2 CMD ["true"]
ONBUILD RUN echo child
FROM --platform=linux/amd64 build
COPY --from=0 /dst /dst
"""


def test_full_dockerfile():
    df = parse(FULL, "ctx/Dockerfile")
    assert df.syntax == "docker/dockerfile:1" and df.escape == "\\"
    assert [a.args for a in df.meta_args] == [("BASE=busybox",), ("VERSION",)]
    first, second = df.stages
    assert (first.base, first.name, first.index, first.line) == ("$BASE", "build", 0, 5)
    assert (second.base, second.name, second.platform) == ("build", None, "linux/amd64")
    cmds = [i.cmd for i in first.instructions]
    assert cmds == ["ENV", "RUN", "RUN", "RUN", "COPY", "RUN", "COPY", "HEALTHCHECK", "ONBUILD"]
    env, run_shell, run_json, run_mounts, copy, run_heredoc, copy_heredoc, health, onbuild = first.instructions
    assert env.args == ("A", "1", "B", '"two words"')
    assert run_shell.args == ("echo hi   && echo there",) and not run_shell.json and run_shell.line == 7
    assert run_json.args == ("echo", "json") and run_json.json
    assert run_mounts.flags == {"mount": ["type=cache,target=/c", "type=tmpfs,target=/t"], "network": ["none"]}
    assert copy.flag("from") == "build" and copy.flag("chown") == "1:1" and copy.args == ("a", "b", "/dst/")
    assert run_heredoc.heredocs == (("EOF", "echo heredoc\n"),)
    assert copy_heredoc.heredocs == (("EOT", "content\n"),) and copy_heredoc.args == ("<<EOT", "/file")
    assert health.flag("interval") == "5s" and health.args == ("CMD", "true") and health.json
    assert onbuild.sub is not None and onbuild.sub.cmd == "RUN" and onbuild.sub.args == ("echo child",)
    assert df.stage("BUILD") is first and df.stage("1") is second and df.stage("nope") is None


def test_backtick_escape_directive():
    df = parse("# escape=`\nFROM busybox\nRUN echo a `\n  b\n")
    assert df.escape == "`" and df.stages[0].instructions[0].args == ("echo a   b",)


@pytest.mark.parametrize("text, message", [
    ("FROM busybox\nBOGUS x\n", "line 2 of Dockerfile: unknown instruction: BOGUS"),
    ("RUN echo\nFROM busybox\n", "line 1 of Dockerfile: no build stage in current context"),
    ("# just a comment\n", "line 1 of Dockerfile: file with no instructions"),
    ("ARG A=1\n", "the Dockerfile has no FROM"),
    ("FROM busybox\nENV A\n", "line 2 of Dockerfile: ENV must have two arguments"),
    ("FROM busybox\nENV A=1 B\n", "line 2 of Dockerfile: Syntax error - can't find ="),
    ("FROM busybox\nENV\n", "ENV requires at least one argument"),
    ("FROM busybox\nCOPY onlyone\n", "COPY requires at least two arguments"),
    ("FROM busybox\nWORKDIR\n", "WORKDIR requires exactly one argument"),
    ("FROM busybox\nSHELL sh -c\n", "SHELL requires the arguments to be in JSON form"),
    ("FROM busybox\nCOPY --bogus=1 a b\n", "unknown flag: --bogus"),
    ("FROM busybox\nRUN --from=x echo\n", "unknown flag: --from"),
    ("FROM busybox\nHEALTHCHECK true\n", "Unknown type 'true' in HEALTHCHECK"),
    ("FROM busybox\nHEALTHCHECK CMD\n", "Missing command after HEALTHCHECK CMD"),
    ("FROM busybox\nONBUILD ONBUILD RUN x\n", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("FROM busybox\nONBUILD FROM x\n", "FROM isn't allowed as an ONBUILD trigger"),
    ("FROM a AS\n", "FROM requires either one or three arguments"),
    ("FROM a AS 1bad\n", "invalid name for build stage"),
    ("FROM a AS x\nFROM b AS X\n", "duplicate stage name"),
    ("FROM me AS me\n", "refers to itself"),
    ("# escape=x\nFROM a\n", "invalid escape token"),
])
def test_refusals_name_file_and_line(text, message):
    with pytest.raises(DockerfileError, match=re.escape(message)):
        parse(text)
