"""The builder's pure parts: settings instructions, history lines, cache keys, COPY's source and destination rules,
RUN's mounts and heredocs, and where a context comes from."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from barque.build import copy as cp
from barque.build.builder import _heredoc_command
from barque.build.cache import step_key
from barque.build.context import _stdin_context, is_git_url, open_context
from barque.build.dockerfile import parse, parse_trigger
from barque.build.instructions import Step, apply_settings, go_list, nop, workdir_path
from barque.build.run import parse_mount
from barque.build.state import State
from barque.errors import InvalidArgument, NotFound


class _Stage:
    cmd_set = False


def settings(dockerfile: str, config: dict | None = None, env: dict | None = None) -> tuple[dict, list[str]]:
    df = parse("FROM x\n" + dockerfile)
    state = State(config=dict(config or {}))
    stage = _Stage()
    lines = []
    for ins in df.stages[0].instructions:
        lines.append(apply_settings(Step(state, {**(env or {}), **state.env}, df.escape, stage), ins))
    return state.config, lines


def test_history_lines_are_the_classic_builders():
    _, lines = settings('ENV A=1 B="two words"\nLABEL k=v\nCMD ["cat", "/a b"]\nVOLUME /v /w\n'
                        'EXPOSE 80 53/udp\nUSER nobody\nSTOPSIGNAL SIGINT\nSHELL ["/bin/bash", "-c"]\n'
                        'ONBUILD RUN make\nENTRYPOINT ["x"]\n')
    assert lines == [
        '/bin/sh -c #(nop)  ENV A=1 B=two words',
        '/bin/sh -c #(nop)  LABEL k=v',
        '/bin/sh -c #(nop)  CMD ["cat" "/a b"]',
        '/bin/sh -c #(nop)  VOLUME [/v /w]',
        '/bin/sh -c #(nop)  EXPOSE 53/udp 80',
        '/bin/sh -c #(nop)  USER nobody',
        '/bin/sh -c #(nop)  STOPSIGNAL SIGINT',
        '/bin/bash -c #(nop)  SHELL [/bin/bash -c]',  # as Docker: under the new shell
        '/bin/bash -c #(nop)  ONBUILD RUN make',
        '/bin/bash -c #(nop)  ENTRYPOINT ["x"]',
    ]
    assert nop("WORKDIR /d", spaced=False) == "/bin/sh -c #(nop) WORKDIR /d"
    assert go_list(['a"b', "tab\t", "é"], quote=True) == '["a\\"b" "tab\\t" "é"]'


def test_env_sees_the_values_before_the_instruction():
    config, _ = settings("ENV A=old\nENV A=new B=$A\n")
    assert config["Env"] == ["A=new", "B=old"]


def test_entrypoint_drops_an_inherited_cmd_but_not_one_set_in_the_stage():
    config, _ = settings("ENTRYPOINT [\"e\"]\n", {"Cmd": ["base"]})
    assert config["Cmd"] is None and config["Entrypoint"] == ["e"]
    config, _ = settings("CMD [\"mine\"]\nENTRYPOINT e\n", {"Cmd": ["base"]})
    assert config["Cmd"] == ["mine"] and config["Entrypoint"] == ["/bin/sh", "-c", "e"]


def test_shell_form_uses_the_shell_instruction():
    config, _ = settings('SHELL ["/bin/bash", "-eu", "-c"]\nCMD echo $HOME\n')
    assert config["Cmd"] == ["/bin/bash", "-eu", "-c", "echo $HOME"]


@pytest.mark.parametrize("line, ports", [
    ("EXPOSE 80", {"80/tcp"}),
    ("EXPOSE 80/UDP 8000-8002", {"80/udp", "8000/tcp", "8001/tcp", "8002/tcp"}),
    ("EXPOSE ${P}/tcp", {"9/tcp"}),
])
def test_expose(line, ports):
    config, _ = settings(line + "\n", env={"P": "9"})
    assert set(config["ExposedPorts"]) == ports


@pytest.mark.parametrize("line", ["EXPOSE 0", "EXPOSE 80/icmp", "EXPOSE 9-1", "EXPOSE abc", "STOPSIGNAL NOPE",
                                  "HEALTHCHECK --interval=1ns CMD x", "HEALTHCHECK --retries=x CMD x"])
def test_refused_settings(line):
    with pytest.raises(InvalidArgument):
        settings(line + "\n")


def test_healthcheck():
    config, line = settings("HEALTHCHECK --interval=1m30s --timeout=5s CMD [\"probe\", \"-q\"]\n")
    assert config["Healthcheck"] == {"Test": ["CMD", "probe", "-q"], "Interval": 90_000_000_000,
                                     "Timeout": 5_000_000_000}
    assert line[0].endswith('HEALTHCHECK &{["CMD" "probe" "-q"] "1m30s" "5s" "0s" \'\\x00\'}')
    config, _ = settings("HEALTHCHECK NONE\n")
    assert config["Healthcheck"] == {"Test": ["NONE"]}


def test_workdir_paths():
    df = parse("FROM x\nWORKDIR rel/../b\n")
    state = State(config={"WorkingDir": "/a"})
    assert workdir_path(Step(state, {}, "\\", _Stage()), df.stages[0].instructions[0]) == "/a/b"


def test_step_keys_depend_on_every_input_and_nothing_else():
    base = step_key("sha256:p", "2024", "COPY", "digest", "/dest")
    assert base == step_key("sha256:p", "2024", "COPY", "digest", "/dest")
    assert len({base, step_key("sha256:q", "2024", "COPY", "digest", "/dest"),
                step_key("sha256:p", "2025", "COPY", "digest", "/dest"),
                step_key("sha256:p", "2024", "COPY", "other", "/dest"),
                step_key("sha256:p", "2024", "COPY", "digest", "/else")}) == 5


def test_sources_and_their_digest(tmp_path):
    (tmp_path / "d" / "s").mkdir(parents=True)
    (tmp_path / "d" / "s" / "f").write_text("x")
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    (tmp_path / "c.log").write_text("c")
    never = lambda rel: False  # noqa: E731
    assert [s.rel for s in cp.select_sources(tmp_path, ["*.txt"], never)] == ["a.txt", "b.txt"]
    assert [s.rel for s in cp.select_sources(tmp_path, ["/d/*/f"], never)] == ["d/s/f"]
    assert [s.rel for s in cp.select_sources(tmp_path, ["*.txt"], lambda rel: rel == "a.txt")] == ["b.txt"]
    with pytest.raises(NotFound, match="no source files were specified"):
        cp.select_sources(tmp_path, ["*.none"], never)
    with pytest.raises(cp.CopyError, match="outside the build context"):
        cp.select_sources(tmp_path, ["../x"], never)
    one = cp.sources_digest(cp.select_sources(tmp_path, ["d"], never), never)
    os.utime(tmp_path / "d" / "s" / "f", (5, 5))
    assert cp.sources_digest(cp.select_sources(tmp_path, ["d"], never), never) == one  # mtimes are not content
    os.chmod(tmp_path / "d" / "s" / "f", 0o600)
    assert cp.sources_digest(cp.select_sources(tmp_path, ["d"], never), never) != one  # modes are


def test_destinations_and_chmod():
    assert cp.destination("rel", "/w") == ("/w/rel", False)
    assert cp.destination("rel/", "/w") == ("/w/rel", True)
    assert cp.destination(".", "/w") == ("/w", True)
    assert cp.destination("/abs", "/w") == ("/abs", False)
    assert cp.parse_chmod("0755") == 0o755 and cp.parse_chmod(None) is None
    for bad in ("rwx", "99999", "8"):
        with pytest.raises(cp.CopyError):
            cp.parse_chmod(bad)


def test_chown_names_come_from_the_image(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1001:1002::/:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\n")
    assert cp.resolve_chown(tmp_path, "app") == (1001, 1002)
    assert cp.resolve_chown(tmp_path, "app:staff") == (1001, 50)
    assert cp.resolve_chown(tmp_path, "7") == (7, 7)
    assert cp.resolve_chown(tmp_path, "7:8") == (7, 8)
    with pytest.raises(cp.CopyError, match="can't find user 'ghost'"):
        cp.resolve_chown(tmp_path, "ghost")


def test_run_mount_fields():
    assert parse_mount("type=cache,target=/root/.cache,id=pip") == {"type": "cache", "target": "/root/.cache",
                                                                      "id": "pip"}
    assert parse_mount("type=bind,src=a,dst=/a,rw")["source"] == "a"
    assert parse_mount("type=secret,id=tok")["target"] == "/run/secrets/tok"
    for bad in ("type=volume,target=/x", "type=tmpfs", "type=bind,target=/x,bogus=1", "type=secret"):
        with pytest.raises(InvalidArgument):
            parse_mount(bad)


def test_run_heredocs():
    df = parse("FROM x\nRUN <<EOF\necho a\necho b\nEOF\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n"
               "RUN cat <<A > /f\nx\nA\n")
    script, shebang, inline = df.stages[0].instructions
    assert _heredoc_command(script, ["/bin/sh", "-c"]) == (["/bin/sh", "-c", "echo a\necho b\n"], None)
    assert _heredoc_command(shebang, ["/bin/sh", "-c"]) == (["/usr/bin/env", "python3"],
                                                            b"#!/usr/bin/env python3\nprint(1)\n")
    assert _heredoc_command(inline, ["/bin/sh", "-c"]) == (["/bin/sh", "-c", "cat <<A > /f\nx\nA"], None)


def test_onbuild_triggers_parse_as_instructions():
    ins = parse_trigger("COPY --chown=1:1 a /b", "base:1")
    assert ins.cmd == "COPY" and ins.flag("chown") == "1:1"
    with pytest.raises(InvalidArgument, match="isn't allowed"):
        parse_trigger("FROM x", "base:1")


def test_contexts(tmp_path):
    assert is_git_url("file:///srv/repo#main:sub") and is_git_url("https://example.com/r.git#v1")
    assert not is_git_url("https://example.com/archive.tar.gz") and not is_git_url("./dir")
    (tmp_path / "checkout" / ".git").mkdir(parents=True)
    assert is_git_url(f"{tmp_path}/checkout#main") and not is_git_url(f"{tmp_path}/checkout")
    root, text = _stdin_context(io.BytesIO(b"FROM scratch\n"))
    assert root is None and text == b"FROM scratch\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("Dockerfile")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"FROM "))
    root, text = _stdin_context(io.BytesIO(buf.getvalue()))
    try:
        assert text is None and (root / "Dockerfile").read_bytes() == b"FROM "
    finally:
        import shutil

        shutil.rmtree(root)
    with pytest.raises(InvalidArgument, match="empty"):
        _stdin_context(io.BytesIO(b""))
    (tmp_path / "dockerfile").write_text("FROM lower\n")
    (tmp_path / ".dockerignore").write_text("*.tmp\n")
    with open_context(str(tmp_path)) as ctx:
        assert ctx.dockerfile == "FROM lower\n" and ctx.excluded("x.tmp") and not ctx.excluded("x.txt")
    with pytest.raises(NotFound, match="not found"):
        open_context(str(tmp_path / "missing"))
    (tmp_path / "app.Dockerfile").write_text("FROM own\n")
    (tmp_path / "app.Dockerfile.dockerignore").write_text("*.txt\n")
    with open_context(str(tmp_path), str(tmp_path / "app.Dockerfile")) as ctx:
        assert ctx.excluded("x.txt") and not ctx.excluded("x.tmp")


def test_hash_cache_reads_a_file_again_only_when_its_stat_changed(tmp_path):
    from types import SimpleNamespace

    from barque.build.hashcache import HashCache
    from barque.metadata import Database

    db = Database(tmp_path / "db.sqlite")
    engine = SimpleNamespace(db=db)
    top = tmp_path / "ctx"
    top.mkdir()
    f = top / "f"
    f.write_bytes(b"aaaa")
    os.utime(f, (1_000_000, 1_000_000))
    import hashlib

    cache = HashCache(engine, str(top))
    cache.now_ns += 10 * 10**9  # as if the build ran 10 s after the file was written: past the racy window
    assert cache.digest(str(f), os.lstat(f)) == hashlib.sha256(b"aaaa").digest()
    assert len(cache.pending) == 1
    cache.flush()
    assert HashCache(engine, str(top)).known[str(f)][1] == hashlib.sha256(b"aaaa").digest()
    # same size, same mtime, new content: the ctime moved, so it is read again
    f.write_bytes(b"bbbb")
    os.utime(f, (1_000_000, 1_000_000))
    again = HashCache(engine, str(top))
    assert again.digest(str(f), os.lstat(f)) == hashlib.sha256(b"bbbb").digest()
    # a fresh file (inside the racy window) is not remembered
    g = top / "g"
    g.write_bytes(b"new")
    fresh = HashCache(engine, str(top))
    fresh.digest(str(g), os.lstat(g))
    assert [p[0] for p in fresh.pending] == []
    # what is remembered is trusted while the stat holds
    remembered = HashCache(engine, str(top))
    st = os.lstat(f)
    remembered.known[str(f)] = ((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns), b"X")
    assert remembered.digest(str(f), st) == b"X"
    db.close()


def test_heredoc_content_keeps_quotes_and_escapes():
    from barque.build.words import expand_heredoc

    text = 'echo "hi $WHO" \'q\' \\$HOME ${UNSET:-dflt}\n'
    assert expand_heredoc(text, {"WHO": "w"}) == 'echo "hi w" \'q\' \\$HOME dflt\n'
