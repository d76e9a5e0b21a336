"""`POST /build` (Docker's classic builder) through `barque serve`: the real docker CLI 28 (which, finding no buildx
plugin and `Builder-Version: 1` in /_ping, falls back to the classic builder by itself: no DOCKER_BUILDKIT needed),
docker-py's `images.build`, and raw requests for the stream's shape, compressed and remote contexts, the errors
dockerd answers with a status and those it reports in-band, credentials for a private FROM image, and clients that
go away mid-upload or mid-build (nothing left: no RUN process, mount, snapshot, context directory or image)."""

from __future__ import annotations

import base64
import bz2
import gzip
import io
import json
import lzma
import os
import re
import socket
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.api_support import http
from tests.api_support import api, docker, docker_client  # noqa: F401 - fixtures

pytestmark = pytest.mark.root

HEX64 = re.compile(r"sha256:[0-9a-f]{64}")


def context(base: Path, files: dict[str, str], name: str = "ctx") -> Path:
    root = base / name
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    return root


def tarball(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def messages(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def text_of(msgs: list[dict]) -> str:
    return "".join(m.get("stream", "") for m in msgs)


def image_ids(api) -> set[str]:
    return set(api.barque("images", "-aq", "--no-trunc").stdout.split())


def leftovers(api) -> list[str]:
    """What a build must never leave behind: its snapshots, mounts, run directories, received contexts."""
    found = []
    eng = api.barque.engine()
    found += [i.name for i in eng.snapshotter.walk() if i.name.startswith("build-")]
    for d in (api.barque.run_root / "build", api.barque.root / "tmp"):
        if d.exists():
            found += [str(p) for p in d.iterdir()]
    with open("/proc/self/mountinfo") as f:
        found += [line.split()[4] for line in f if str(api.barque.run_root / "build") in line.split()[4]]
    return found


def no_leftovers(api, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while leftovers(api) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftovers(api) == []


def run_in(api, image: str, *cmd: str) -> str:
    return api.barque("run", "--rm", "--network", "none", image, *cmd).stdout


# ---- the docker CLI ------------------------------------------------------------------------------------------------

def test_docker_build_with_the_classic_builder(api, docker, tmp_path):
    ctx = context(tmp_path, {
        "Dockerfile": "FROM busybox\nARG GREETING=hello\nRUN echo \"$GREETING from RUN\" > /greeting\n"
                      "COPY . /ctx/\nCMD [\"cat\", \"/greeting\"]\n",
        "kept.txt": "kept\n", "secret.txt": "must not be sent\n", "logs/a.log": "no\n",
        ".dockerignore": "secret.txt\nlogs\n",
    })
    r = docker("build", "-t", "built:1", "-t", "other/built:v2", "--build-arg", "GREETING=bonjour",
               "--label", "org.example.k=v", ctx)
    assert "legacy builder is deprecated" in r.stderr  # the CLI fell back to the classic builder by itself
    lines = r.stdout.splitlines()
    assert "Step 1/6 : FROM busybox" in lines and "Step 3/6 : RUN echo \"$GREETING from RUN\" > /greeting" in lines
    assert "Step 6/6 : LABEL \"org.example.k\"=\"v\"" in lines
    assert any(re.fullmatch(r" ---> [0-9a-f]{12}", line) for line in lines)
    built = [line for line in lines if line.startswith("Successfully built ")]
    assert len(built) == 1 and re.fullmatch(r"Successfully built [0-9a-f]{12}", built[0])
    assert lines[-2:] == ["Successfully tagged built:1", "Successfully tagged other/built:v2"]
    assert run_in(api, "built:1") == "bonjour from RUN\n"
    assert sorted(run_in(api, "other/built:v2", "ls", "-A", "/ctx").split()) == [".dockerignore", "Dockerfile",
                                                                                 "kept.txt"]
    info = json.loads(api.barque("image", "inspect", "built:1").stdout)[0]
    assert info["Id"].startswith("sha256:" + built[0].split()[-1])
    assert info["Config"]["Labels"] == {"org.example.k": "v"}
    # built again: every step from the cache, the same image
    again = docker("build", "-t", "built:1", "--build-arg", "GREETING=bonjour", "--label", "org.example.k=v", ctx)
    assert " ---> Using cache" in again.stdout and built[0] in again.stdout.splitlines()
    assert api.errors() == ""


def test_quiet_target_and_other_dockerfiles(api, docker, tmp_path):
    ctx = context(tmp_path, {
        "other.Dockerfile": "FROM busybox AS base\nRUN echo base > /stage\n"
                            "FROM base AS final\nRUN echo final > /stage\n",
        "f.txt": "from the context\n",
    })
    r = docker("build", "-q", "-f", ctx / "other.Dockerfile", "--target", "base", "-t", "stage:base", ctx)
    assert HEX64.fullmatch(r.stdout.strip()) and r.stdout.count("\n") == 1
    assert "Step" not in r.stdout + r.stderr
    assert json.loads(api.barque("image", "inspect", "stage:base").stdout)[0]["Id"] == r.stdout.strip()
    assert run_in(api, "stage:base", "cat", "/stage") == "base\n"
    # a Dockerfile outside the context: the CLI sends it in the tar under a name of its own (and .dockerignore
    # entries that make the daemon drop it from the context)
    outside = tmp_path / "elsewhere.Dockerfile"
    outside.write_text("FROM busybox\nCOPY . /ctx/\n")
    docker("build", "-f", outside, "-t", "outside:1", ctx)
    assert sorted(run_in(api, "outside:1", "ls", "-A", "/ctx").split()) == ["f.txt", "other.Dockerfile"]
    # the Dockerfile on standard input, no context
    r = docker("build", "-t", "stdin:1", "-", input="FROM busybox\nCMD [\"echo\", \"from stdin\"]\n")
    assert "Successfully tagged stdin:1" in r.stdout
    assert run_in(api, "stdin:1") == "from stdin\n"
    r = docker("build", "--target", "nope", "-f", ctx / "other.Dockerfile", ctx, check=False)
    assert r.returncode == 1
    assert "Error response from daemon: failed to reach build target nope in Dockerfile" in r.stderr


def test_run_steps_take_the_resource_flags(api, docker, tmp_path):
    ctx = context(tmp_path, {"Dockerfile": "FROM busybox\nRUN cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                                           "/sys/fs/cgroup/memory.max 2>/dev/null > /mem; ulimit -n > /nofile; "
                                           "grep myhost /etc/hosts > /hosts; df -k /dev/shm | tail -1 > /shm\n"})
    docker("build", "-t", "lim:1", "-m", "64m", "--ulimit", "nofile=512:512", "--add-host", "myhost:10.1.2.3",
           "--shm-size", "8m", "--network", "none", "--platform", "linux/" + _arch(), "--no-cache",
           "--force-rm", "--cache-from", "busybox", ctx)
    mem, nofile, hosts, shm = run_in(api, "lim:1", "sh", "-c", "cat /mem; cat /nofile /hosts /shm").splitlines()
    assert mem == str(64 * 1024 * 1024) and nofile == "512" and hosts.split() == ["10.1.2.3", "myhost"]
    assert shm.split()[1] == "8192"


def _arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()


@pytest.mark.parametrize("code", [1, 3])
def test_a_failing_run_fails_the_build_with_dockers_message(api, docker, tmp_path, code):
    ctx = context(tmp_path, {"Dockerfile": f"FROM busybox\nRUN echo about to fail && exit {code}\n"})
    before = image_ids(api)
    r = docker("build", "-t", "fails:1", ctx, check=False)
    assert r.returncode == code  # the CLI exits with the RUN's status (errorDetail.code)
    assert "about to fail" in r.stdout and "Step 2/2" in r.stdout
    assert f"The command '/bin/sh -c echo about to fail && exit {code}' returned a non-zero code: {code}" \
        in r.stderr
    assert "Successfully" not in r.stdout
    r = docker("build", "-q", ctx, check=False)
    assert r.returncode == code and r.stdout == ""
    assert "about to fail" in r.stderr and "returned a non-zero code" in r.stderr  # -q: the output shown then
    assert image_ids(api) == before
    no_leftovers(api)
    assert api.errors() == ""


def test_bad_dockerfiles_are_refused(api, docker, tmp_path):
    ctx = context(tmp_path, {"Dockerfile": "FROM busybox\nFOO bar\n", "empty.Dockerfile": "\n"})
    r = docker("build", ctx, check=False)
    assert r.returncode == 1
    assert "Error response from daemon: dockerfile parse error on line 2 of Dockerfile: unknown instruction: FOO" \
        in r.stderr
    r = docker("build", "-f", ctx / "empty.Dockerfile", ctx, check=False)
    assert r.returncode == 1 and "file with no instructions" in r.stderr
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY missing.txt /\n")
    r = docker("build", ctx, check=False)
    assert r.returncode == 1 and "Step 2/2 : COPY missing.txt /" in r.stdout
    assert "COPY failed: file not found in build context or excluded by .dockerignore" in r.stderr
    no_leftovers(api)
    assert api.errors() == ""


# ---- docker-py -----------------------------------------------------------------------------------------------------

def test_docker_py_builds_from_a_path_and_a_file_object(api, docker_client, tmp_path):
    import docker as dockerpy

    ctx = context(tmp_path, {"Dockerfile": "FROM busybox\nARG WHO\nCOPY hello.txt /\nRUN echo \"hi $WHO\" > /who\n",
                             "hello.txt": "hello\n"})
    image, logs = docker_client.images.build(path=str(ctx), tag="py:path", buildargs={"WHO": "py"},
                                             labels={"built.by": "docker-py"})
    assert "py:path" in image.tags and image.labels == {"built.by": "docker-py"}
    logs = list(logs)
    assert any(m.get("aux", {}).get("ID") == image.id for m in logs)
    assert any(m.get("stream", "").startswith("Successfully built ") for m in logs)
    assert run_in(api, "py:path", "cat", "/hello.txt", "/who") == "hello\nhi py\n"

    image, _ = docker_client.images.build(fileobj=io.BytesIO(b"FROM busybox\nENV FROM_FILEOBJ=1\n"), tag="py:fileobj")
    assert "FROM_FILEOBJ=1" in image.attrs["Config"]["Env"]
    custom = io.BytesIO(gzip.compress(tarball({"Dockerfile": "FROM busybox\nCOPY x /x\n", "x": "gz\n"})))
    image, _ = docker_client.images.build(fileobj=custom, custom_context=True, encoding="gzip", tag="py:gz")
    assert run_in(api, "py:gz", "cat", "/x") == "gz\n"

    with pytest.raises(dockerpy.errors.BuildError) as err:
        docker_client.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 7\n"))
    assert "returned a non-zero code: 7" in str(err.value)
    with pytest.raises(dockerpy.errors.APIError) as err:
        docker_client.images.build(fileobj=io.BytesIO(b"FROM busybox\nNOPE x\n"))
    assert err.value.status_code == 400 and "unknown instruction: NOPE" in str(err.value)
    assert api.errors() == ""


# ---- the stream and the errors, raw --------------------------------------------------------------------------------

def test_the_stream_has_dockers_shape(api, tmp_path):
    body = tarball({"Dockerfile": "FROM busybox\nARG A\nRUN echo \"a=$A\"\n"})
    args = "buildargs=%7B%22A%22%3A%221%22%2C%22UNUSED%22%3A%22x%22%7D&networkmode=none"
    status, _, out = http(api.sock, "POST", f"/v1.41/build?t=shape:1&{args}", body)
    assert status == 200
    msgs = messages(out)
    assert all(set(m) <= {"stream", "aux"} for m in msgs)
    assert msgs[0] == {"stream": "Step 1/3 : FROM busybox\n"}
    assert {"stream": "a=1\n"} in msgs
    aux = [m["aux"]["ID"] for m in msgs if "aux" in m]
    assert len(aux) == 1 and HEX64.fullmatch(aux[0])
    tail = [m.get("stream") for m in msgs[-4:]]
    assert tail == [None, "[Warning] One or more build-args [UNUSED] were not consumed\n",
                    f"Successfully built {aux[0][7:19]}\n", "Successfully tagged shape:1\n"]
    # before 1.30 there is no aux line; -q: only the ID
    status, _, out = http(api.sock, "POST", f"/v1.29/build?{args}", body)
    assert status == 200 and not any("aux" in m for m in messages(out))
    status, _, out = http(api.sock, "POST", f"/v1.41/build?q=1&{args}", body)
    assert status == 200 and messages(out) == [{"stream": aux[0] + "\n"}]
    # a failing RUN: the output, then the error in-band with the exit status as its code
    fail = tarball({"Dockerfile": "FROM busybox\nRUN echo out && exit 4\n"})
    status, _, out = http(api.sock, "POST", "/v1.41/build?networkmode=none", fail)
    msgs = messages(out)
    assert status == 200 and {"stream": "out\n"} in msgs
    message = "The command '/bin/sh -c echo out && exit 4' returned a non-zero code: 4"
    assert msgs[-1] == {"errorDetail": {"code": 4, "message": message}, "error": message}
    status, _, out = http(api.sock, "POST", "/v1.41/build?q=1&networkmode=none", fail)
    msgs = messages(out)
    assert status == 200 and msgs[0] == {"stream": "Step 1/2 : FROM busybox\n"} and msgs[-1]["error"] == message


def test_run_steps_cannot_write_into_the_api_stream(api):
    """The call's socket is not inherited by RUN's processes: they cannot forge lines of the response."""
    line = '{"stream":"INJECTED\\n"}'
    body = tarball({"Dockerfile": "FROM busybox\nRUN for fd in 3 4 5 6 7 8 9; do echo '" + line + "' >&$fd; done "
                                  "2>/dev/null; ls -l /proc/self/fd/ | grep -c socket || true\n"})
    status, _, out = http(api.sock, "POST", "/build?networkmode=none&nocache=1", body)
    assert status == 200 and {"stream": "INJECTED\n"} not in messages(out)  # (the Step line shows the text)
    assert {"stream": "0\n"} in messages(out)


def test_run_stderr_is_one_red_message_per_piece(api):
    """Docker's classic builder: what a RUN writes to its standard error goes as it comes, one message, between
    `\x1b[91m` and `\x1b[0m` (never split at lines); standard output as it was. -q holds it back like the rest."""
    body = tarball({"Dockerfile": "FROM busybox\nRUN sh -c 'echo out; >&2 echo oops'\n"})
    status, _, out = http(api.sock, "POST", "/v1.41/build?networkmode=none&nocache=1", body)
    msgs = messages(out)
    assert status == 200 and {"stream": "\x1b[91moops\n\x1b[0m"} in msgs and {"stream": "out\n"} in msgs
    assert [m for m in msgs if "oops\n" in m.get("stream", "")] == [{"stream": "\x1b[91moops\n\x1b[0m"}]
    fail = tarball({"Dockerfile": "FROM busybox\nRUN sh -c '>&2 echo bad; exit 3'\n"})
    status, _, out = http(api.sock, "POST", "/v1.41/build?networkmode=none&q=1", fail)
    msgs = messages(out)
    assert status == 200 and msgs[-2] == {"stream": "\x1b[91mbad\n\x1b[0m"} and msgs[-1]["errorDetail"]["code"] == 3
    # a failed RUN's container: dockerd keeps it unless forcerm, and only then says it is removed (barque never
    # keeps it)
    status, _, out = http(api.sock, "POST", "/v1.41/build?networkmode=none&forcerm=1", fail)
    assert messages(out)[-2]["stream"].startswith("Removing intermediate container ")
    status, _, out = http(api.sock, "POST", "/v1.41/build?networkmode=none&q=1&nocache=1", body)
    assert status == 200 and len(messages(out)) == 1 and HEX64.fullmatch(messages(out)[0]["stream"].strip())


def test_cache_from_limits_the_cache_to_the_named_images(api):
    """Docker's classic builder with cachefrom: a step comes from the cache only when what it gives is one of the
    named images or an ancestor of one; names that resolve to nothing are skipped, so with only those nothing is
    cached. Without cachefrom, the whole cache."""
    from urllib.parse import quote

    def hits(query: str, dockerfile: str = "FROM busybox\nENV FOO=bar\nRUN touch baz\nRUN touch bax\n") -> int:
        status, _, out = http(api.sock, "POST", "/v1.41/build?networkmode=none&" + query,
                              tarball({"Dockerfile": dockerfile}))
        assert status == 200 and not any("error" in m for m in messages(out)), out
        return text_of(messages(out)).count(" ---> Using cache")

    def cache_from(*names: str) -> str:
        return "cachefrom=" + quote(json.dumps(list(names)))

    assert hits("t=build1") in (0, 3)
    assert hits("t=build2&" + cache_from("build1")) == 3
    assert hits("t=build2&" + cache_from("nosuchtag")) == 0
    assert hits(cache_from("busybox")) == 0  # the base: an ancestor of no cached step
    assert hits(cache_from("nosuchtag", "build1")) == 3
    assert hits("") == 3
    # an ancestor of the named image: the steps it shares with it, not the one after
    assert hits(cache_from("build1"), "FROM busybox\nENV FOO=bar\nRUN touch baz\nRUN touch other\n") == 2
    status, _, body = http(api.sock, "POST", "/v1.41/build?cachefrom=%5B1%5D", tarball({"Dockerfile": "FROM x\n"}))
    assert status == 400 and "error reading cache-from" in json.loads(body)["message"]
    assert api.errors() == ""


def test_cache_from_an_image_built_elsewhere(api, tmp_path):
    """cachefrom names an image the build cache knows nothing of (loaded, or pulled): as dockerd's image cache, each
    step whose created_by is the image's next history entry after the stage's (same history and layers so far)
    comes from it, and the last gives the image itself. Without cachefrom that image is no cache."""
    from urllib.parse import quote

    dockerfile = "FROM busybox\nENV FOO=bar\nWORKDIR /w\nCOPY f /w/\nRUN touch baz\nRUN touch bax\n"

    def build(query: str, df: str = dockerfile) -> tuple[int, str]:
        status, _, out = http(api.sock, "POST", "/v1.41/build?networkmode=none&" + query,
                              tarball({"Dockerfile": df, "f": "content\n"}))
        msgs = messages(out)
        assert status == 200 and not any("error" in m for m in msgs), out
        return text_of(msgs).count(" ---> Using cache"), [m["aux"]["ID"] for m in msgs if "aux" in m][0]

    _, built = build("t=elsewhere:1")
    api.barque("save", "-o", str(tmp_path / "img.tar"), "elsewhere:1")
    api.barque("rmi", "elsewhere:1")
    api.barque("builder", "prune", "-f")
    api.barque("load", "-i", str(tmp_path / "img.tar"))
    assert build("nocache=1")[1] == built  # (the same steps give the same image: the check below means something)
    api.barque("builder", "prune", "-f")
    assert build("")[0] == 0
    api.barque("builder", "prune", "-f")
    cache_from = "cachefrom=" + quote(json.dumps(["elsewhere:1"]))
    assert build(cache_from) == (5, built)
    assert build(cache_from) == (5, built)  # now from the build cache, an ancestor of the image
    # a step that differs: the image gives the steps before it, none after
    assert build(cache_from, dockerfile.replace("touch baz", "touch other"))[0] == 3
    assert api.errors() == ""


def test_networkmode_names_a_network_or_a_container(api, docker):
    """networkmode: a user-defined network's name or ID (RUN gets an address there and its embedded DNS, which
    answers the network's aliases), or container:NAME (RUN shares that container's network). One that does not
    exist fails the first RUN, in the stream, with Docker's message; a build without RUN never looks."""
    net = docker("network", "create", "buildnet").stdout.strip()
    docker("run", "-d", "--name", "pingee", "--network", "buildnet", "--network-alias", "pingtarget.docker",
           "busybox", "sleep", "600")
    try:
        ping = tarball({"Dockerfile": "FROM busybox\nRUN ping -c1 -W5 pingtarget.docker && cat /etc/resolv.conf\n"})
        for mode in ("buildnet", net, net[:12], "container:pingee"):
            status, _, out = http(api.sock, "POST", f"/v1.41/build?nocache=1&networkmode={mode}", ping)
            msgs = messages(out)
            assert status == 200 and not any("error" in m for m in msgs), (mode, out)
            assert "1 packets received" in text_of(msgs) and "nameserver 127.0.0.11" in text_of(msgs)
        # the default bridge has no embedded DNS: the alias is not known there
        status, _, out = http(api.sock, "POST", "/v1.41/build?nocache=1", ping)
        assert status == 200 and messages(out)[-1]["errorDetail"]["code"] == 1
        for mode, message in (("nosuchnet", "network nosuchnet not found"),
                              ("container:nosuch", "No such container: nosuch")):
            status, _, out = http(api.sock, "POST", f"/v1.41/build?nocache=1&networkmode={mode}", ping)
            msgs = messages(out)
            assert status == 200 and msgs[-1] == {"errorDetail": {"message": message}, "error": message}
            assert msgs[-2]["stream"].startswith(" ---> Running in ")
        status, _, out = http(api.sock, "POST", "/v1.41/build?networkmode=nosuchnet",
                              tarball({"Dockerfile": "FROM busybox\nENV A=b\n"}))
        assert status == 200 and "Successfully built" in text_of(messages(out))
        # where a step ran is no part of its cache key (as dockerd's): built on the network, found again anywhere,
        # even on a network that does not exist (dockerd's build never gets to look for it either)
        for mode in ("none", "host", "bridge", "nosuchnet"):
            status, _, out = http(api.sock, "POST", f"/v1.41/build?networkmode={mode}", ping)
            assert status == 200 and text_of(messages(out)).count(" ---> Using cache") == 1, (mode, out)
        no_leftovers(api)
        assert not [r for r in api.barque.engine().db.query("SELECT container_id FROM endpoints")
                    if r["container_id"].startswith("build-")]
    finally:
        docker("rm", "-f", "pingee", check=False)
    assert api.errors() == ""


@pytest.mark.parametrize("query, files, status, message", [
    ("", {"x": "y"}, 400, "Cannot locate specified Dockerfile: Dockerfile"),
    ("?dockerfile=other.Dockerfile", {"Dockerfile": "FROM busybox\n"}, 400,
     "Cannot locate specified Dockerfile: other.Dockerfile"),
    ("?dockerfile=../../../../etc/hostname", {"Dockerfile": "FROM busybox\n"}, 400,
     "Cannot locate specified Dockerfile: ../../../../etc/hostname"),
    ("", {"Dockerfile": "FROM busybox\nFOO bar\n"}, 400,
     "dockerfile parse error on line 2 of Dockerfile: unknown instruction: FOO"),
    ("", {"Dockerfile": "\n"}, 400, "file with no instructions"),
    ("?target=nope", {"Dockerfile": "FROM busybox AS a\n"}, 400, "failed to reach build target nope in Dockerfile"),
    ("?buildargs=%7Bx", {"Dockerfile": "FROM busybox\n"}, 400, "error reading build args"),
    ("?labels=%5B%5D", {"Dockerfile": "FROM busybox\n"}, 400, "error reading labels"),
    ("?t=Bad:Tag", {"Dockerfile": "FROM busybox\n"}, 400, "invalid reference format"),
    ("?platform=linux/s390x", {"Dockerfile": "FROM busybox\n"}, 400, "this machine's platform only"),
    ("?extrahosts=nohost", {"Dockerfile": "FROM busybox\n"}, 400, "invalid IP address in add-host"),
    ("?squash=1", {"Dockerfile": "FROM busybox\n"}, 400, "squash is only supported with experimental mode"),
    ("?version=2", {"Dockerfile": "FROM busybox\n"}, 400, "buildkit not supported by daemon"),
    ("?memory=lots", {"Dockerfile": "FROM busybox\n"}, 400, "invalid value for memory"),
])
def test_refusals_before_the_build_are_http_errors(api, query, files, status, message):
    got, _, body = http(api.sock, "POST", "/v1.41/build" + query, tarball(files))
    assert (got, message in json.loads(body)["message"]) == (status, True), body
    assert api.errors() == ""


def test_bad_bodies(api):
    status, _, body = http(api.sock, "POST", "/build", b"")
    assert status == 400 and json.loads(body)["message"] == "Cannot locate specified Dockerfile: Dockerfile"
    status, _, body = http(api.sock, "POST", "/build", b"not a tar at all" * 100)
    assert status == 400 and "the build context is not a valid tar archive" in json.loads(body)["message"]
    status, _, body = http(api.sock, "POST", "/build", gzip.compress(b"not a tar at all" * 100)[:-20])
    assert status == 400 and "not a valid gzip tar archive" in json.loads(body)["message"]
    # cut after the last file's data, without its padding or the end blocks (what the docker CLI 28 sends when
    # it adds a Dockerfile from outside the context): complete, as Go's reader takes it; cut inside data: refused
    whole = tarball({"Dockerfile": "FROM busybox\nCOPY data /\n", "data": "0123456789"})
    end_of_data = 3 * 512 + 10
    status, _, body = http(api.sock, "POST", "/build?t=cut:1", whole[:end_of_data])
    assert status == 200 and "Successfully tagged cut:1" in text_of(messages(body))
    assert run_in(api, "cut:1", "cat", "/data") == "0123456789"
    status, _, body = http(api.sock, "POST", "/build", whole[:end_of_data - 3])
    assert status == 400 and "truncated" in json.loads(body)["message"]
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as t:
        link = tarfile.TarInfo("up")
        link.type, link.linkname = tarfile.SYMTYPE, "/"
        t.addfile(link)
        data = b"pwned\n"
        f = tarfile.TarInfo("up/tmp/barque-api-build-escape")
        f.size = len(data)
        t.addfile(f, io.BytesIO(data))
    status, _, body = http(api.sock, "POST", "/build", evil.getvalue())
    assert not Path("/tmp/barque-api-build-escape").exists()
    assert status == 400
    no_leftovers(api)
    assert http(api.sock, "GET", "/_ping")[0] == 200


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_compressed_contexts(api, compress):
    body = compress(tarball({"Dockerfile": "FROM busybox\nCOPY a /a\n", "a": compress.__module__ + "\n"}))
    status, _, out = http(api.sock, "POST", f"/build?t=comp:{compress.__module__}", body)
    assert status == 200 and "Successfully tagged" in text_of(messages(out)), out
    assert run_in(api, f"comp:{compress.__module__}", "cat", "/a") == compress.__module__ + "\n"


def test_remote_git_context(api, tmp_path):
    repo = context(tmp_path, {"app/Dockerfile": "FROM busybox\nCOPY version /version\n", "app/version": "v1\n"},
                   "repo")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "v1"], check=True)
    status, _, out = http(api.sock, "POST", f"/build?t=remote:1&remote=file://{repo}%23:app", b"")
    assert status == 200 and "Successfully tagged remote:1" in text_of(messages(out)), out
    assert run_in(api, "remote:1", "cat", "/version") == "v1\n"
    status, _, body = http(api.sock, "POST", f"/build?remote={repo}", b"")
    assert status == 400 and "could not be recognized as URL" in json.loads(body)["message"]
    no_leftovers(api)


def test_remote_url_context(api, tmp_path):
    """`remote` as an http URL (a loopback server here): a tar (compressed or not) is the context, anything else
    the Dockerfile of an empty context."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    site = tmp_path / "site"
    site.mkdir()
    (site / "ctx.tar.gz").write_bytes(gzip.compress(tarball({"Dockerfile": "FROM busybox\nCOPY f /f\n",
                                                             "f": "from the tarball\n"})))
    (site / "Dockerfile").write_text("FROM busybox\nENV FROM_URL=yes\n")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        status, _, out = http(api.sock, "POST", f"/build?t=url:tar&remote={base}/ctx.tar.gz")
        assert status == 200 and "Successfully tagged url:tar" in text_of(messages(out)), out
        assert run_in(api, "url:tar", "cat", "/f") == "from the tarball\n"
        status, _, out = http(api.sock, "POST", f"/build?t=url:df&remote={base}/Dockerfile")
        assert status == 200 and "Successfully tagged url:df" in text_of(messages(out)), out
        status, _, body = http(api.sock, "POST", f"/build?remote={base}/missing")
        assert status == 503 and "404" in json.loads(body)["message"], body
    finally:
        server.shutdown()
        server.server_close()
    info = json.loads(api.barque("image", "inspect", "url:df").stdout)[0]
    assert "FROM_URL=yes" in info["Config"]["Env"]
    no_leftovers(api)


def test_prune_and_cancel(api, docker, tmp_path):
    ctx = context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo cached > /c\n"})
    docker("build", "--network", "none", ctx)
    status, _, body = http(api.sock, "POST", "/v1.41/build/prune")
    doc = json.loads(body)
    assert status == 200 and set(doc) == {"CachesDeleted", "SpaceReclaimed"}
    assert doc["CachesDeleted"] and isinstance(doc["SpaceReclaimed"], int)
    assert json.loads(http(api.sock, "POST", "/build/prune")[2]) == {"CachesDeleted": None, "SpaceReclaimed": 0}
    assert http(api.sock, "POST", "/build/prune?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D")[0] == 400
    r = docker("builder", "prune", "-f")
    assert "Total reclaimed space: 0B" in r.stdout
    assert http(api.sock, "POST", "/build/cancel?id=whatever")[0] == 200


# ---- credentials for a private base image ----------------------------------------------------------------------------

def test_x_registry_config_reaches_the_pull_of_a_private_base(api, docker, tmp_path):
    from tests.registry_support import barque_registry

    with barque_registry(tmp_path / "registry", auth="htpasswd", users={"alice": "secret"}) as reg:
        cfg = tmp_path / "pusher"
        cfg.mkdir()
        auth = base64.b64encode(b"alice:secret").decode()
        (cfg / "config.json").write_text(json.dumps({"auths": {reg.host: {"auth": auth}}}))
        private = f"{reg.host}/private/bb:1"
        api.barque("tag", "busybox:latest", private)
        api.barque("push", private, env={"DOCKER_CONFIG": str(cfg)})
        api.barque("rmi", private)
        ctx = context(tmp_path, {"Dockerfile": f"FROM {private}\nRUN echo on the private base > /p\n"})
        r = docker("build", "--network", "none", "-t", "onprivate:1", ctx, check=False)
        assert r.returncode == 1 and "Step 1/2" in r.stdout  # no credentials sent: the pull is refused in-band
        assert "unauthorized" in r.stderr or "denied" in r.stderr, r.stderr
        docker_config = Path(api.env["DOCKER_CONFIG"])
        docker_config.mkdir(exist_ok=True)
        (docker_config / "config.json").write_text(json.dumps({"auths": {reg.host: {"auth": auth}}}))
        r = docker("build", "--network", "none", "-t", "onprivate:1", ctx)  # the CLI sends X-Registry-Config
        assert "Successfully tagged onprivate:1" in r.stdout
        assert run_in(api, "onprivate:1", "cat", "/p") == "on the private base\n"
    no_leftovers(api)


# ---- clients that go away ---------------------------------------------------------------------------------------------

def _processes() -> str:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


def _start_build(api, body: bytes, length: int | None = None, path: str = "/build?networkmode=none"):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(str(api.sock))
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\n"
              f"Content-Length: {length or len(body)}\r\n\r\n".encode() + body)
    return s


def _read_until(s, marker: bytes, timeout: float = 60) -> bytes:
    """What the build's answer brings until `marker` (or its end, or `timeout`)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        chunk = s.recv(4096)
        if not chunk:
            break
        seen += chunk
    return seen


def test_a_client_gone_mid_build_leaves_nothing(api, tmp_path):
    marker = "4321"  # the RUN's sleep, to find its process
    body = tarball({"Dockerfile": f"FROM busybox\nRUN echo started && sleep {marker}\n"})
    before = image_ids(api)
    s = _start_build(api, body, path="/build?networkmode=none&t=never:1")
    try:
        assert b"started" in _read_until(s, b"started")
        assert leftovers(api)  # the step's snapshot and mount are there while it runs
    finally:
        s.close()
    no_leftovers(api)
    deadline = time.monotonic() + 20
    while f"sleep {marker}" in _processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert f"sleep {marker}" not in _processes()
    assert image_ids(api) == before and "never" not in api.barque("images").stdout
    assert http(api.sock, "GET", "/_ping")[0] == 200
    assert api.errors() == ""


def test_a_client_gone_mid_build_of_parallel_stages_leaves_nothing(api):
    """Two stages built at the same time (each in a process of its own): both stopped."""
    body = tarball({"Dockerfile": "FROM busybox AS a\nRUN echo started-a && sleep 4322\n"
                                  "FROM busybox AS b\nRUN echo started-b && sleep 4323\n"
                                  "FROM busybox\nCOPY --from=a /etc/hostname /a\nCOPY --from=b /etc/hostname /b\n"})
    s = _start_build(api, body)
    try:
        assert b"started-a" in _read_until(s, b"started-a")
        if (os.cpu_count() or 1) > 1:  # both RUNs at once
            deadline = time.monotonic() + 30
            while "sleep 4323" not in _processes() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "sleep 4322" in _processes() and "sleep 4323" in _processes()
    finally:
        s.close()
    no_leftovers(api)
    deadline = time.monotonic() + 20
    while re.search(r"sleep 432[23]", _processes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not re.search(r"sleep 432[23]", _processes())
    assert api.errors() == ""


def test_a_client_gone_mid_upload_leaves_nothing(api):
    body = tarball({"Dockerfile": "FROM busybox\n", "big": "x" * (4 << 20)})
    s = _start_build(api, body[: 1 << 20], length=len(body))
    time.sleep(0.5)
    assert (api.barque.root / "tmp").exists() and list((api.barque.root / "tmp").iterdir())  # it was receiving
    s.close()
    no_leftovers(api)
    assert http(api.sock, "GET", "/_ping")[0] == 200
    assert api.errors() == ""
