"""`barque build` through the real CLI: the Docker-made fixture rebuilt, the Dockerfile language, the cache,
reproducibility, and what a built image shows when it runs."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def bld(barque, busybox_tar):
    """A root with the bootstrapped busybox image, also tagged bb:latest as the fixture's Dockerfile wants."""
    barque("load", "-i", busybox_tar)
    barque("tag", "busybox:latest", "bb:latest")
    try:
        yield barque
    finally:
        barque.remove_containers()


def context(base: Path, files: dict[str, str | bytes], name: str = "ctx") -> Path:
    root = base / name
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    return root


def image_id(out: str) -> str:
    m = re.search(r"Successfully built ([0-9a-f]{12})", out)
    assert m, out
    return m.group(1)


def run(b, image: str, *cmd: str) -> str:
    return b("run", "--rm", image, *cmd).stdout


def inspect(b, name: str) -> dict:
    return json.loads(b("image", "inspect", name).stdout)[0]


def tree_of(b, image: str, top: str) -> dict[str, tuple]:
    """What `export` of a container of `image` holds under `top`: type, mode, link target, content, link count."""
    cid = b("create", image, "true").stdout.strip()
    try:
        data = b("export", cid).stdout_bytes
    finally:
        b("rm", cid)
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = tf.getmembers()
        links: dict[str, int] = {}
        for m in members:
            if m.islnk():
                links[m.linkname.lstrip("./").rstrip("/")] = links.get(m.linkname.lstrip("./").rstrip("/"), 1) + 1
        for m in members:
            name = m.name.lstrip("./").rstrip("/")
            if not name.startswith(top.strip("/")):
                continue
            kind = "dir" if m.isdir() else "sym" if m.issym() else "hard" if m.islnk() else "file"
            content = tf.extractfile(m).read() if m.isfile() else b""
            out[name] = (kind, m.mode & 0o7777, m.linkname if (m.issym() or m.islnk()) else "", content,
                         links.get(name, 1))
    return out


# ------------------------------------------------------------------------------------------------ the fixture


def test_fixture_build_matches_the_docker_made_image(loaded):
    """The Dockerfile Docker built fixture/layers:1 from, built by barque: same files, modes, links and config."""
    b = loaded
    b("tag", "busybox:latest", "bb:latest")
    out = b("build", "-t", "mine/layers:1", FIXTURES / "build-context").stdout
    assert "Step 1/9 : FROM bb:latest" in out and "Step 9/9 : CMD [\"cat\", \"/data/a.txt\"]" in out
    assert "Successfully tagged mine/layers:1" in out
    ours, docker = inspect(b, "mine/layers:1"), inspect(b, "fixture/layers:1")
    for key in ("Env", "WorkingDir", "Labels", "Cmd", "Entrypoint"):
        assert ours["Config"][key] == docker["Config"][key], key
    assert len(ours["RootFS"]["Layers"]) == 5 == len(docker["RootFS"]["Layers"])
    # the data tree, file for file (the Docker side's context files were 0644, these are read-only copies)
    mine, theirs = tree_of(b, "mine/layers:1", "data"), tree_of(b, "fixture/layers:1", "data")
    assert sorted(mine) == sorted(theirs)
    for name in mine:
        m_kind, m_mode, m_link, m_data, m_links = mine[name]
        t_kind, t_mode, t_link, t_data, t_links = theirs[name]
        assert (m_link, m_data) == (t_link, t_data), name
        assert {m_kind, t_kind} <= {"file", "hard"} or m_kind == t_kind, name
        if name not in ("data/a.txt", "data/hard-a"):
            assert m_mode == t_mode, name
    assert mine["data/empty"][1] == 0o750
    assert run(b, "mine/layers:1") == "alpha\n"
    assert run(b, "mine/layers:1", "stat", "-c", "%h", "/data/hard-a") == "2\n"
    # history reads as Docker's classic builder writes it (the COPY digests are barque's own)
    history = b("history", "--no-trunc", "--format", "{{.CreatedBy}}", "mine/layers:1").stdout.splitlines()
    expected = (FIXTURES / "docker-history-layers.txt").read_text().splitlines()
    pattern = re.compile(r"(COPY (?:dir|multi|file)):[0-9a-f]{64}")
    assert [pattern.sub(r"\1:H", h) for h in history[:8]] == [pattern.sub(r"\1:H", h) for h in expected[:8]]


def test_fixture_build_on_every_driver(barque_driver, busybox_tar):
    b = barque_driver
    b("load", "-i", busybox_tar)
    b("tag", "busybox:latest", "bb:latest")
    b("build", "-t", "mine:1", FIXTURES / "build-context")
    assert b("run", "--rm", "mine:1", "sh", "-c", "ls /data; cat /data/dir/d.txt").stdout == \
        "a.txt\ndir\nempty\nhard-a\nlink-a\ndelta\n"
    b.remove_containers()


# ------------------------------------------------------------------------------------------------ the cache


def test_cache_hits_misses_and_content_keys(bld, tmp_path):
    b = bld
    ctx = context(tmp_path, {
        "Dockerfile": "FROM bb:latest\nENV A=1\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy\nCOPY b.txt /b.txt\n"
                      "RUN echo done\n",
        "a.txt": "a1\n", "b.txt": "b1\n",
    })
    first = b("build", "-t", "c:1", ctx).stdout
    assert "Using cache" not in first and "done" in first
    again = b("build", "-t", "c:1", ctx).stdout
    assert again.count("---> Using cache") == 5 and "Running in" not in again
    assert image_id(again) == image_id(first)
    # an mtime is not content: still cached
    os.utime(ctx / "a.txt", (1, 1))
    assert b("build", ctx).stdout.count("Using cache") == 5
    # a changed file invalidates its COPY and everything after, nothing before
    (ctx / "b.txt").write_text("b2\n")
    out = b("build", "-t", "c:2", ctx).stdout
    steps = out.split("Step ")[1:]
    assert ["Using cache" in s for s in steps] == [False, True, True, True, False, False]
    assert run(b, "c:2", "cat", "/b.txt") == "b2\n" and run(b, "c:1", "cat", "/b.txt") == "b1\n"
    # --no-cache builds every step again, and the same inputs give the same image
    fresh = b("build", "--no-cache", "-t", "c:3", ctx).stdout
    assert "Using cache" not in fresh and image_id(fresh) == image_id(out)


def test_cache_survives_other_commands_and_builder_prune_clears_it(bld, tmp_path):
    b = bld
    ctx = context(tmp_path, {"Dockerfile": "FROM bb:latest\nRUN echo x > /x\n"})
    b("build", "-t", "p:1", ctx)
    b("rmi", "p:1")
    b("image", "prune", "-f")  # the image is gone, its cache stays
    assert "Using cache" in b("build", ctx).stdout
    df = b("system", "df", "--format", "{{.Type}} {{.TotalCount}}").stdout
    assert "Build Cache 1" in df
    out = b("builder", "prune", "-f").stdout
    assert "Deleted build cache objects" in out and "Total reclaimed space" in out
    assert "Build Cache 0" in b("system", "df", "--format", "{{.Type}} {{.TotalCount}}").stdout
    assert "Using cache" not in b("build", ctx).stdout


# ------------------------------------------------------------------------------------------------ reproducibility


def test_two_checkouts_two_roots_same_digest(barque, busybox_tar, tmp_path):
    """The same context in two directories with different mtimes, built in two barque roots at different times."""
    from tests.conftest import Barque

    files = {"Dockerfile": "FROM busybox:latest\nCOPY . /src/\nRUN mkdir /out && cp -a /src/. /out/ && touch /t\n"
                           "ENV X=1\nCMD [\"ls\"]\n",
             "f1": "one\n", "d/f2": "two\n"}
    one = context(tmp_path, files, "one")
    two = context(tmp_path, files, "two")
    for p in two.rglob("*"):
        os.utime(p, (1_000_000, 1_000_000))
    other = Barque(tmp_path / "root2", tmp_path / "run2")
    ids = []
    try:
        for b, ctx in ((barque, one), (other, two)):
            b("load", "-i", busybox_tar)
            ids.append(b("build", "-q", ctx).stdout.strip())
            time.sleep(1.1)
        assert ids[0] == ids[1] and ids[0].startswith("sha256:")
        # SOURCE_DATE_EPOCH sets the time the image and its new files carry
        out = barque("build", "-q", "--build-arg", "SOURCE_DATE_EPOCH=1700000000", one).stdout.strip()
        assert out != ids[0]
        created = inspect(barque, out)["Created"]
        assert created.startswith("2023-11-14T22:13:20")
        assert barque("run", "--rm", out, "stat", "-c", "%Y", "/t").stdout.strip() == "1700000000"
    finally:
        other.close()
        shutil.rmtree(tmp_path / "root2", ignore_errors=True)


# ------------------------------------------------------------------------------------------------ the language


def test_args_env_and_substitution(bld, tmp_path):
    b = bld
    df = (
        "ARG TAG=latest\n"
        "ARG GLOBAL=g\n"
        "FROM bb:${TAG}\n"
        "ARG GLOBAL\n"
        "ARG WITH_DEFAULT=dflt\n"
        "ARG OVERRIDDEN=no\n"
        "ARG SHADOWED=arg\n"
        "ENV SHADOWED=env E1=\"a b\" E2=${WITH_DEFAULT:-x}\n"
        "ENV E3=${UNSET:-fallback} E4=${WITH_DEFAULT:+alt} E5=\\$literal E6='$single'\n"
        "LABEL l1=$E1 \"l 2\"=\"${GLOBAL}\"\n"
        "RUN echo \"$GLOBAL $WITH_DEFAULT $OVERRIDDEN $SHADOWED\" > /args\n"
        "WORKDIR /w/$GLOBAL\n"
    )
    ctx = context(tmp_path, {"Dockerfile": df})
    out = b("build", "-t", "a:1", "--build-arg", "OVERRIDDEN=yes", "--build-arg", "NOT_DECLARED=1", ctx)
    assert "[Warning] One or more build-args [NOT_DECLARED] were not consumed" in out.stdout
    cfg = inspect(b, "a:1")["Config"]
    env = dict(e.split("=", 1) for e in cfg["Env"])
    assert env["SHADOWED"] == "env" and env["E1"] == "a b" and env["E2"] == "dflt"
    assert env["E3"] == "fallback" and env["E4"] == "alt" and env["E5"] == "$literal" and env["E6"] == "$single"
    assert "GLOBAL" not in env and "OVERRIDDEN" not in env  # build arguments are not in the image
    assert cfg["Labels"] == {"l1": "a b", "l 2": "g"}
    assert cfg["WorkingDir"] == "/w/g"
    assert run(b, "a:1", "cat", "/args") == "g dflt yes env\n"
    history = b("history", "--no-trunc", "--format", "{{.CreatedBy}}", "a:1").stdout
    assert "|3 GLOBAL=g OVERRIDDEN=yes WITH_DEFAULT=dflt /bin/sh -c echo" in history


def test_settings_instructions(bld, tmp_path):
    b = bld
    df = (
        "FROM bb:latest\n"
        "CMD [\"echo\", \"base\"]\n"
        "FROM 0\n"
        "MAINTAINER Jane <jane@example.com>\n"
        "SHELL [\"/bin/sh\", \"-e\", \"-c\"]\n"
        "RUN echo $0 $- > /shell\n"
        "EXPOSE 80 53/udp 9000-9001\n"
        "VOLUME [\"/v1\", \"/v2\"]\n"
        "VOLUME /v3\n"
        "USER nobody\n"
        "STOPSIGNAL SIGUSR1\n"
        "HEALTHCHECK --interval=30s --timeout=3s --start-period=1s --retries=4 CMD wget -q localhost || exit 1\n"
        "ENTRYPOINT echo entry\n"
    )
    ctx = context(tmp_path, {"Dockerfile": df})
    b("build", "-t", "s:1", "--label", "from.flag=yes", ctx)
    img = inspect(b, "s:1")
    cfg = img["Config"]
    assert img["Author"] == "Jane <jane@example.com>"
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "9000/tcp": {}, "9001/tcp": {}}
    assert cfg["Volumes"] == {"/v1": {}, "/v2": {}, "/v3": {}}
    assert cfg["User"] == "nobody" and cfg["StopSignal"] == "SIGUSR1"
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q localhost || exit 1"], "Interval": 30_000_000_000,
                                  "Timeout": 3_000_000_000, "StartPeriod": 1_000_000_000, "Retries": 4}
    assert cfg["Entrypoint"] == ["/bin/sh", "-e", "-c", "echo entry"]
    assert cfg["Cmd"] is None  # an ENTRYPOINT drops the CMD inherited from the base
    assert cfg["Shell"] == ["/bin/sh", "-e", "-c"]
    assert cfg["Labels"] == {"from.flag": "yes"}
    assert run(b, "s:1") == "entry\n"
    shell, flags = b("run", "--rm", "--entrypoint", "cat", "s:1", "/shell").stdout.split()
    assert shell == "/bin/sh" and "e" in flags  # RUN went through the SHELL
    assert b("run", "--rm", "--entrypoint", "id", "s:1", "-un").stdout == "nobody\n"
    # from the cache, the same image (the author survives the cached steps); a child does not inherit the author
    assert image_id(b("build", "-t", "s:2", "--label", "from.flag=yes", ctx).stdout) == img["Id"][7:19]
    (ctx / "Dockerfile").write_text("FROM s:1\nLABEL child=1\n")
    b("build", "-t", "s:child", ctx)
    assert not inspect(b, "s:child").get("Author")


def test_dockerignore(bld, tmp_path):
    b = bld
    ctx = context(tmp_path, {
        "Dockerfile": "FROM bb:latest\nCOPY . /ctx/\n",
        ".dockerignore": "# comment\n*.log\n!keep.log\n**/cache\nsecret/\n/top-only.txt\n",
        "a.log": "x", "keep.log": "k", "sub/b.log": "not top-level: kept", "x/y/cache/f": "c", "cache": "c",
        "secret/key": "s", "top-only.txt": "t", "sub/top-only.txt": "kept", "ok.txt": "o",
    })
    b("build", "-t", "i:1", ctx)
    listing = run(b, "i:1", "find", "/ctx", "-type", "f").split()
    assert sorted(listing) == sorted(["/ctx/Dockerfile", "/ctx/.dockerignore", "/ctx/keep.log", "/ctx/sub/b.log",
                                      "/ctx/sub/top-only.txt", "/ctx/ok.txt"])
    (ctx / "Dockerfile").write_text("FROM bb:latest\nCOPY a.log /\n")
    r = b("build", ctx, check=False)
    assert r.returncode == 1
    assert "file not found in build context or excluded by .dockerignore" in r.stderr and "a.log" in r.stderr


def test_copy_semantics(bld, tmp_path):
    b = bld
    df = (
        "FROM bb:latest\n"
        "RUN echo usr:x:4242:4242::/:/bin/sh >> /etc/passwd && echo grp:x:4242: >> /etc/group && mkdir /existing\n"
        "WORKDIR /work\n"
        "COPY f1 rel-file\n"
        "COPY f1 rel-dir/\n"
        "COPY f1 /existing\n"
        "COPY dir /dir-contents/\n"
        "COPY dir /dir-contents-no-slash\n"
        "COPY f* /glob/\n"
        "COPY --chown=usr:grp f1 /owned/deep/f1\n"
        "COPY --chown=7:8 dir /owned-num/\n"
        "COPY --chmod=0640 f2 /chmod\n"
        "COPY link-to-f1 /followed\n"
        "COPY dir/sub/.. /dotdot/\n"
    )
    ctx = context(tmp_path, {"Dockerfile": df, "f1": "one\n", "f2": "two\n", "dir/a": "A", "dir/sub/b": "B"})
    os.chmod(ctx / "f2", 0o755)
    os.symlink("nested-target", ctx / "dir" / "sub" / "link")
    os.symlink("f1", ctx / "link-to-f1")
    b("build", "-t", "cp:1", ctx)
    script = (
        "cat /work/rel-file /work/rel-dir/f1 /existing/f1; ls /dir-contents; ls /dir-contents-no-slash; "
        "readlink /dir-contents/sub/link; ls /glob; stat -c '%U:%G %a' /owned/deep/f1 /owned/deep /owned-num/a "
        "/chmod /work/rel-file; cat /followed; ls /dotdot"
    )
    assert run(b, "cp:1", "sh", "-c", script).splitlines() == [
        "one", "one", "one", "a", "sub", "a", "sub", "nested-target", "f1", "f2",
        "usr:grp 644", "usr:grp 755", "UNKNOWN:UNKNOWN 644", "root:root 640", "root:root 644", "one", "a", "sub",
    ]


def test_copy_destination_stays_inside_the_image(bld, tmp_path):
    """An image's symlink pointing at a host path cannot send COPY, ADD or WORKDIR outside the root filesystem."""
    b = bld
    host_dir = tmp_path / "host-target"
    host_dir.mkdir()
    df = (
        "FROM bb:latest\n"
        f"RUN ln -s {host_dir} /escape && ln -s ../../../../../../../{host_dir} /escape2\n"
        "COPY f /escape/\n"
        "COPY f /escape2/f-two\n"
        "ADD t.tar /escape/\n"
        "WORKDIR /escape/wd\n"
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("from-tar")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"t"))
    ctx = context(tmp_path, {"Dockerfile": df, "f": "x", "t.tar": buf.getvalue()})
    b("build", "-t", "esc:1", ctx)
    assert list(host_dir.iterdir()) == []
    found = run(b, "esc:1", "find", str(host_dir)).split()
    assert sorted(found) == sorted([str(host_dir), f"{host_dir}/f", f"{host_dir}/f-two", f"{host_dir}/from-tar",
                                    f"{host_dir}/wd"])


def test_add_archives_and_urls(bld, tmp_path):
    import hashlib
    import http.server
    import threading

    b = bld
    payload = b"fetched over http\n"
    served = tmp_path / "www"
    served.mkdir()
    (served / "file.txt").write_bytes(payload)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(served), **kw)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/file.txt"
        good = hashlib.sha256(payload).hexdigest()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            for name, data in (("pkg/a", b"in tar\n"), ("pkg/b", b"b\n")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.uid = 123
                tf.addfile(info, io.BytesIO(data))
        ctx = context(tmp_path, {
            "Dockerfile": f"FROM bb:latest\nADD pkg.tar.gz /opt/\nADD plain.txt /plain.txt\n"
                          f"ADD --checksum=sha256:{good} {url} /dl/\n",
            "pkg.tar.gz": buf.getvalue(), "plain.txt": "plain\n",
        })
        b("build", "-t", "add:1", ctx)
        assert run(b, "add:1", "sh", "-c", "cat /opt/pkg/a /plain.txt /dl/file.txt; stat -c '%u %a' /opt/pkg/a "
                                           "/dl/file.txt").splitlines() == \
            ["in tar", "plain", "fetched over http", "123 644", "0 600"]
        (ctx / "Dockerfile").write_text(f"FROM bb:latest\nADD --checksum=sha256:{'0' * 64} {url} /dl/\n")
        r = b("build", ctx, check=False)
        assert r.returncode == 1 and "digest mismatch" in r.stderr
    finally:
        server.shutdown()
        server.server_close()


def test_multi_stage_builds_only_what_the_target_needs(bld, tmp_path):
    b = bld
    df = (
        "FROM bb:latest AS base\n"
        "RUN echo base > /base\n"
        "FROM base AS build\n"
        "RUN echo built > /artifact\n"
        "FROM bb:latest AS broken\n"
        "RUN echo this stage must not run && exit 9\n"
        "FROM scratch AS files\n"
        "COPY data /data\n"
        "FROM bb:latest\n"
        "COPY --from=build /artifact /base /\n"
        "COPY --from=3 /data /from-index\n"
        "COPY --from=bb:latest /bin/busybox /busybox-copy\n"
    )
    ctx = context(tmp_path, {"Dockerfile": df, "data": "d\n"})
    out = b("build", "-t", "m:1", ctx).stdout
    assert "this stage must not run" not in out and "exit 9" not in out
    assert run(b, "m:1", "sh", "-c", "cat /artifact /base /from-index; test -x /busybox-copy && echo ok") == \
        "built\nbase\nd\nok\n"
    out = b("build", "-t", "m:base", "--target", "base", ctx).stdout
    assert "Step 3/3" not in out and "Using cache" in out
    r = b("run", "--rm", "m:base", "cat", "/base")
    assert r.stdout == "base\n"
    assert b("run", "--rm", "m:base", "test", "-e", "/artifact", check=False).returncode == 1
    r = b("build", "--target", "nosuch", ctx, check=False)
    assert r.returncode == 1 and "failed to reach build target nosuch" in r.stderr


def test_heredocs(bld, tmp_path):
    b = bld
    df = (
        "FROM bb:latest\n"
        "ARG WHO=world\n"
        "RUN <<EOF\n"
        "echo hello > /h1\n"
        "echo $WHO >> /h1\n"
        "EOF\n"
        "RUN <<EOF\n"
        "#!/bin/sh -e\n"
        "echo from-shebang > /h2\n"
        "EOF\n"
        "RUN cat <<EOF > /h3\n"
        "inline $WHO\n"
        "EOF\n"
        "COPY <<EOF /h4\n"
        "expanded \"$WHO\" 'q' \\$WHO\n"
        "EOF\n"
        "COPY <<\"EOF\" /h5\n"
        "kept $WHO\n"
        "EOF\n"
    )
    ctx = context(tmp_path, {"Dockerfile": df})
    b("build", "-t", "h:1", ctx)
    assert run(b, "h:1", "cat", "/h1", "/h2", "/h3", "/h4", "/h5") == \
        "hello\nworld\nfrom-shebang\ninline world\nexpanded \"world\" 'q' \\$WHO\nkept $WHO\n"


def test_onbuild_triggers_run_in_the_child(bld, tmp_path):
    b = bld
    parent = context(tmp_path, {"Dockerfile": "FROM bb:latest\nONBUILD COPY marker /marker\n"
                                              "ONBUILD RUN echo triggered > /triggered\n"}, "parent")
    b("build", "-t", "ob:parent", parent)
    assert inspect(b, "ob:parent")["Config"]["OnBuild"] == ["COPY marker /marker", "RUN echo triggered > /triggered"]
    child = context(tmp_path, {"Dockerfile": "FROM ob:parent\n", "marker": "m\n"}, "child")
    out = b("build", "-t", "ob:child", child).stdout
    assert "# Executing 2 build triggers" in out
    assert run(b, "ob:child", "cat", "/marker", "/triggered") == "m\ntriggered\n"
    assert not inspect(b, "ob:child")["Config"].get("OnBuild")


def test_run_mounts_and_network(bld, tmp_path):
    b = bld
    secret = tmp_path / "token"
    secret.write_text("s3cr3t")
    df = (
        "FROM bb:latest\n"
        "RUN --mount=type=cache,target=/cache sh -c 'echo x >> /cache/runs; wc -l < /cache/runs > /runs'\n"
        "RUN --mount=type=bind,source=src,target=/mnt/src cp /mnt/src/file /from-bind\n"
        "RUN --mount=type=tmpfs,target=/scratch sh -c 'echo t > /scratch/t && cat /scratch/t > /from-tmpfs'\n"
        "RUN --mount=type=secret,id=token sh -c 'cat /run/secrets/token | wc -c > /secret-len'\n"
        "RUN --network=none sh -c 'ls /sys/class/net > /nets'\n"
    )
    ctx = context(tmp_path, {"Dockerfile": df, "src/file": "bound\n"})
    b("build", "-t", "mnt:1", "--secret", f"id=token,src={secret}", ctx)
    b("build", "--no-cache", "-t", "mnt:2", "--secret", f"id=token,src={secret}", ctx)
    out = run(b, "mnt:2", "sh", "-c", "cat /runs /from-bind /from-tmpfs /secret-len /nets; ls /cache /scratch "
                                      "/mnt /run/secrets 2>&1; true")
    lines = out.splitlines()
    assert lines[:5] == ["2", "bound", "t", "6", "lo"]
    assert all("No such file" in line for line in lines[5:]) and len(lines) == 9
    history = b("history", "--no-trunc", "--format", "{{.CreatedBy}}", "mnt:2").stdout
    assert "s3cr3t" not in history
    b("build", "--no-cache", "-t", "mnt:3", ctx)  # an optional secret not given: the RUN sees no file
    assert run(b, "mnt:3", "cat", "/secret-len") == "0\n"
    (ctx / "Dockerfile").write_text("FROM bb:latest\nRUN --mount=type=secret,id=token,required=true true\n")
    r = b("build", ctx, check=False)
    assert r.returncode == 1 and "secret token not found" in r.stderr


# ------------------------------------------------------------------------------------------------ contexts, output


def test_contexts_from_stdin_and_git(bld, tmp_path):
    b = bld
    # a tar on standard input
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in (("Dockerfile", b"FROM bb:latest\nCOPY in-tar /in-tar\n"), ("in-tar", b"from stdin\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    b("build", "-t", "st:1", "-", input=buf.getvalue())
    assert run(b, "st:1", "cat", "/in-tar") == "from stdin\n"
    # a Dockerfile alone on standard input: an empty context
    b("build", "-t", "st:2", "-", input="FROM bb:latest\nRUN echo alone > /alone\n")
    assert run(b, "st:2", "cat", "/alone") == "alone\n"
    # -f - with a directory context
    ctx = context(tmp_path, {"f": "ctx file\n", "Dockerfile": "FROM bb:latest\nRUN false\n"})
    b("build", "-t", "st:3", "-f", "-", ctx, input="FROM bb:latest\nCOPY f /f\n")
    assert run(b, "st:3", "cat", "/f") == "ctx file\n"
    # -f naming another file
    (ctx / "other.Dockerfile").write_text("FROM bb:latest\nCOPY f /other\n")
    b("build", "-t", "st:4", "-f", ctx / "other.Dockerfile", ctx)
    assert run(b, "st:4", "cat", "/other") == "ctx file\n"
    # a local git repository, at a ref and in a sub-directory
    repo = tmp_path / "repo"
    (repo / "app").mkdir(parents=True)
    (repo / "app" / "Dockerfile").write_text("FROM bb:latest\nCOPY version /version\n")
    (repo / "app" / "version").write_text("v1\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "v1"], check=True)
    subprocess.run(git + ["tag", "v1"], check=True)
    (repo / "app" / "version").write_text("v2\n")
    subprocess.run(git + ["commit", "-qam", "v2"], check=True)
    b("build", "-t", "git:1", f"file://{repo}#v1:app")
    assert run(b, "git:1", "cat", "/version") == "v1\n"
    b("build", "-t", "git:2", f"file://{repo}#:app")
    assert run(b, "git:2", "cat", "/version") == "v2\n"
    b("build", "-t", "git:3", f"{repo}#v1:app")  # a local repository's path, with a ref
    assert run(b, "git:3", "cat", "/version") == "v1\n"


def test_quiet_and_iidfile(bld, tmp_path):
    b = bld
    ctx = context(tmp_path, {"Dockerfile": "FROM bb:latest\nRUN echo noisy\n"})
    out = b("build", "-q", "--iidfile", tmp_path / "iid", "-t", "q:1", ctx).stdout
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", out)
    assert (tmp_path / "iid").read_text() == out.strip() == inspect(b, "q:1")["Id"]


# ------------------------------------------------------------------------------------------------ bad input


def _no_build_leftovers(b) -> None:
    eng = b.engine()
    assert [i.name for i in eng.snapshotter.walk() if i.name.startswith("build-")] == []
    build_dir = b.run_root / "build"
    assert not build_dir.exists() or list(build_dir.iterdir()) == []


@pytest.mark.parametrize("dockerfile, message", [
    ("FROM bb:latest\nRUNN echo\n", "dockerfile parse error on line 2 of {df}: unknown instruction: RUNN"),
    ("FROM bb:latest\nCOPY only-one\n", "line 2 of {df}: COPY requires at least two arguments"),
    ("RUN echo\nFROM bb:latest\n", "line 1 of {df}: no build stage in current context"),
    ("FROM bb:latest AS me\nFROM me AS me\n", "duplicate stage name"),
    ("FROM loop AS loop\n", "refers to itself"),
    ("FROM bb:latest\nCOPY --nope=1 a b\n", "unknown flag: --nope"),
    ("FROM bb:latest\nCOPY missing.txt /\n", "file not found in build context"),
    ("FROM bb:latest\nCOPY ../outside /\n", "forbidden path outside the build context"),
    ("FROM bb:latest\nCOPY a b /not-a-dir\n", "the destination must be a directory and end with a /"),
    ("FROM no-such-image:1\n", "cannot reach Docker Hub (registry-1.docker.io)"),
    ("FROM bb:latest\nRUN echo about to fail && exit 3\n", "returned a non-zero code: 3"),
    ("FROM bb:latest\nRUN [\"/no/such/binary\"]\n", "/no/such/binary"),
])
def test_bad_input_is_refused_and_leaves_nothing(bld, tmp_path, dockerfile, message):
    b = bld
    ctx = context(tmp_path, {"Dockerfile": dockerfile, "a": "a", "b": "b"})
    before = b("images", "-aq").stdout
    r = b("build", "-t", "bad:1", ctx, check=False)
    assert r.returncode == (3 if "code: 3" in message else 127 if "binary" in message else 1), r.stderr
    assert message.format(df=ctx / "Dockerfile") in r.stderr
    assert b("images", "-aq").stdout == before  # nothing tagged, nothing half-registered
    _no_build_leftovers(b)
    if "about to fail" in dockerfile:
        assert "about to fail" in r.stdout and "Step 2/2" in r.stdout


def test_bad_command_lines(bld, tmp_path):
    b = bld
    r = b("build", tmp_path / "nonexistent", check=False)
    assert r.returncode == 1 and "unable to prepare context: path" in r.stderr
    empty = context(tmp_path, {"x": "x"})
    r = b("build", empty, check=False)
    assert r.returncode == 1 and "Dockerfile" in r.stderr
    r = b("build", "--nope", empty, check=False)
    assert r.returncode == 125 and "unknown flag" in r.stderr
    r = b("build", "-t", "UPPER:case", empty, check=False)
    assert r.returncode != 0 and "invalid reference format" in r.stderr
    r = b("build", "-", input=b"\x1f\x8b\x08\x00garbage", check=False)
    assert r.returncode == 1 and "context" in r.stderr


def test_interrupted_build_is_swept(bld, tmp_path):
    """A build killed mid-RUN leaves a snapshot and a mount; the next garbage collection takes them."""
    from tests.conftest import BARQUE

    b = bld
    ctx = context(tmp_path, {"Dockerfile": "FROM bb:latest\nRUN echo started && sleep 60\n"})
    proc = subprocess.Popen(BARQUE + b.args() + ["build", str(ctx)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        seen = b""
        deadline = time.monotonic() + 30
        while b"started" not in seen and time.monotonic() < deadline:
            seen += proc.stdout.read1(4096)
        assert b"started" in seen
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    time.sleep(0.3)
    b("image", "prune", "-f")
    _no_build_leftovers(b)


def test_platform_and_network_flags(bld, tmp_path):
    b = bld
    ctx = context(tmp_path, {"Dockerfile": "FROM --platform=$BUILDPLATFORM bb:latest\nARG TARGETARCH\n"
                                           "RUN echo $TARGETARCH > /arch && ls /sys/class/net | wc -l > /nets\n"})
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    b("build", "-t", "pl:1", "--platform", f"linux/{arch}", "--network", "host", ctx)
    arch_in, nets = run(b, "pl:1", "cat", "/arch", "/nets").split()
    assert arch_in == arch
    host_nets = len(socket.if_nameindex())  # this namespace's (the suite runs in its own; /sys/class/net shows the
    # machine's, being the sysfs of the namespace that mounted it)
    assert int(nets) == host_nets  # the RUN saw the host's interfaces
    r = b("build", "--platform", "linux/s390x", ctx, check=False)
    assert r.returncode == 1 and "this machine's platform only" in r.stderr
    (ctx / "Dockerfile").write_text("FROM --platform=linux/s390x bb:latest\n")
    r = b("build", ctx, check=False)
    assert r.returncode == 1 and "FROM --platform=linux/s390x" in r.stderr


def test_writes_under_a_declared_volume_are_discarded(bld, tmp_path):
    """Docker's classic builder: once a VOLUME is declared, later RUNs write to a throwaway copy of it."""
    b = bld
    ctx = context(tmp_path, {"Dockerfile": "FROM bb:latest\nRUN mkdir /vol && echo before > /vol/kept\n"
                                           "VOLUME /vol\nRUN echo after > /vol/lost && cat /vol/kept > /seen\n"})
    b("build", "-t", "vol:1", ctx)
    assert run(b, "vol:1", "sh", "-c", "ls /vol; cat /seen") == "kept\nbefore\n"


def test_copy_exclude_and_refused_flags(bld, tmp_path):
    b = bld
    ctx = context(tmp_path, {"Dockerfile": "FROM bb:latest\nCOPY --exclude=*.tmp --exclude=sub/skip src/ /dst/\n",
                             "src/keep.txt": "k", "src/drop.tmp": "d", "src/sub/skip/x": "x", "src/sub/y": "y"})
    b("build", "-t", "ex:1", ctx)
    assert sorted(run(b, "ex:1", "find", "/dst", "-type", "f").split()) == ["/dst/keep.txt", "/dst/sub/y"]
    for line, message in (("COPY --parents src/ /x/", "--parents"), ("RUN --security=insecure true", "sandboxed")):
        (ctx / "Dockerfile").write_text(f"FROM bb:latest\n{line}\n")
        r = b("build", ctx, check=False)
        assert r.returncode == 1 and message in r.stderr


def test_run_steps_take_the_resource_flags(bld, tmp_path):
    b = bld
    ctx = context(tmp_path, {"Dockerfile": "FROM bb:latest\nRUN cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                                           "/sys/fs/cgroup/memory.max 2>/dev/null > /mem; ulimit -n > /nofile; "
                                           "grep -c myhost /etc/hosts > /hosts; df -k /dev/shm | tail -1 > /shm\n"})
    b("build", "-t", "lim:1", "-m", "64m", "--ulimit", "nofile=512:512", "--add-host", "myhost:10.1.2.3",
      "--shm-size", "8m", ctx)
    mem, nofile, hosts, shm = run(b, "lim:1", "sh", "-c", "cat /mem; cat /nofile /hosts /shm").splitlines()
    assert mem == str(64 * 1024 * 1024) and nofile == "512" and hosts == "1"
    assert shm.split()[1] == "8192"
    r = b("build", "--add-host", "bad", ctx, check=False)
    assert r.returncode == 1 and "--add-host" in r.stderr


def test_independent_stages_build_at_the_same_time(bld, tmp_path):
    """Two stages meet through a shared cache mount: each waits (bounded) for the other's mark, which only works
    when both run at once. The output still reads as a sequential build's."""
    b = bld
    wait = "for i in $(seq 100); do [ -e /meet/{other} ] && break; sleep 0.1; done; [ -e /meet/{other} ]"
    stage = ("FROM bb:latest AS {me}\n"
             "RUN --mount=type=cache,target=/meet,id=meet-{tag} sh -c 'touch /meet/{me}; " + wait +
             " && echo {me} met {other} > /{me}'\n")
    def dockerfile() -> str:
        tag = os.urandom(4).hex()  # a fresh meeting place each build: the cache mount outlives builds
        return (stage.format(me="a", other="b", tag=tag) + stage.format(me="b", other="a", tag=tag) +
                "FROM bb:latest\nCOPY --from=a /a /\nCOPY --from=b /b /\n")
    ctx = context(tmp_path, {"Dockerfile": dockerfile()})
    out = b("build", "-t", "par:1", ctx).stdout
    assert run(b, "par:1", "cat", "/a", "/b") == "a met b\nb met a\n"
    numbers = [int(n) for n in re.findall(r"^Step (\d+)/7 :", out, re.M)]
    assert numbers == list(range(1, 8))
    # one at a time, the first stage waits for a mark that never comes: the build fails, and leaves nothing
    (ctx / "Dockerfile").write_text(dockerfile())
    r = b("build", "--no-cache", ctx, check=False, env={"BARQUE_BUILD_PARALLELISM": "1"})
    assert r.returncode == 1 and "returned a non-zero code: 1" in r.stderr
    _no_build_leftovers(b)


def test_escape_directive_continuations_and_arg_scope_per_stage(bld, tmp_path):
    b = bld
    df = (
        "# escape=`\n"
        "# syntax=docker/dockerfile:1\n"
        "ARG GLOBAL=g\n"
        "FROM bb:latest AS one\n"
        "ARG LOCAL=one-only\n"
        "ENV PRICE=`$5 PATHISH=C:\\dir\n"
        "RUN echo first `\n"
        "    second > /joined\n"
        "FROM bb:latest\n"
        "COPY --from=one /joined /\n"
        "RUN echo \"[$LOCAL][$GLOBAL]\" > /scope\n"
        "ARG GLOBAL\n"
        "RUN echo \"[$GLOBAL]\" > /redeclared\n"
    )
    ctx = context(tmp_path, {"Dockerfile": df})
    b("build", "-t", "esc:1", "--target", "one", ctx)
    env = dict(e.split("=", 1) for e in inspect(b, "esc:1")["Config"]["Env"])
    assert env["PRICE"] == "$5" and env["PATHISH"] == "C:\\dir"
    b("build", "-t", "esc:2", ctx)
    assert run(b, "esc:2", "cat", "/joined", "/scope", "/redeclared") == "first second\n[][]\n[g]\n"


def test_network_names_a_user_defined_network(bld, tmp_path):
    """`--network NAME`: RUN on that network (an address in its subnet, its embedded DNS server); a network that
    does not exist fails the first RUN with Docker's message, and a build without RUN never looks."""
    b = bld
    b("network", "create", "--subnet", "10.91.0.0/24", "clinet")
    ctx = context(tmp_path, {"Dockerfile": "FROM bb:latest\nRUN sh -c 'hostname -i > /ip; cat /etc/resolv.conf > "
                                           "/resolv'\n"})
    b("build", "--network", "clinet", "-t", "onnet:1", ctx)
    assert run(b, "onnet:1", "cat", "/ip").startswith("10.91.0.")
    assert "nameserver 127.0.0.11" in run(b, "onnet:1", "cat", "/resolv")
    r = b("build", "--no-cache", "--network", "nosuchnet", ctx, check=False)
    assert r.returncode == 1 and "network nosuchnet not found" in r.stderr
    (ctx / "Dockerfile").write_text("FROM bb:latest\nENV A=b\n")
    b("build", "--network", "nosuchnet", ctx)
    b("network", "rm", "clinet")
