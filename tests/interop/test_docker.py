"""Docker, the reference: `docker load` takes what `barque save` writes (a barque-made image and a Docker-made one),
with the same image ID, layers and files; and barque loads what `docker save` writes of images Docker itself made
(`docker build` with whiteouts, an opaque directory, a broken hard link, setuid and chown; `docker import`), with
the same ID and the files Docker's own containers see. Runs against a private dockerd (bench/dockerd.py)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.conftest import FIXTURE_ID, unique
from tests.integration.imagetree import image_rootfs
from tests.interop.trees import DOCKER_INIT_PATHS, fs_listing, tar_listing, without

pytestmark = pytest.mark.interop




def barque_inspect(b, name: str) -> dict:
    return json.loads(b("image", "inspect", name).stdout)[0]


def barque_tree(b, name: str) -> dict[str, tuple]:
    with image_rootfs(b.engine(), name) as root:
        return without(fs_listing(root), DOCKER_INIT_PATHS)


def docker_tree(docker, image: str, tmp_path: Path) -> dict[str, tuple]:
    """The image's files as Docker's containers get them: `docker create` then `docker export` (no process runs)."""
    cid = docker.docker("create", "--network", "none", image, "/never-run").stdout.strip()
    out = tmp_path / f"export-{cid[:12]}.tar"
    try:
        docker.docker("export", "-o", out, cid)
    finally:
        docker.docker("rm", "-f", cid)
    return without(tar_listing(out), DOCKER_INIT_PATHS)


def run(docker, image: str, *cmd: str) -> str:
    return docker.docker("run", "--rm", "--network", "none", image, *cmd).stdout


def hand_to_docker(b, docker, source: str, tmp_path: Path) -> str:
    """Tag `source` uniquely in barque, save that tag, `docker load` it; the unique name."""
    name = f"interop/{unique('b')}:1"
    b("tag", source, name)
    archive = tmp_path / f"{unique('save')}.tar"
    b("save", "-o", archive, name)
    assert docker.docker("load", "-i", archive).stdout.strip() == f"Loaded image: {name}"
    return name


@pytest.mark.parametrize("source", ["busybox:latest", "fixture/layers:1"])
def test_docker_loads_barque_save(loaded, docker, tmp_path, source):
    name = hand_to_docker(loaded, docker, source, tmp_path)
    ours, theirs = barque_inspect(loaded, name), docker.inspect("image", name)
    assert theirs["Id"] == ours["Id"]
    assert theirs["RootFS"]["Layers"] == ours["RootFS"]["Layers"]
    for key in ("Cmd", "Env", "WorkingDir", "Entrypoint", "Labels"):
        assert theirs["Config"].get(key) == ours["Config"].get(key), key
    assert theirs["Architecture"] == ours["Architecture"] and theirs["Os"] == ours["Os"]
    assert docker_tree(docker, name, tmp_path) == barque_tree(loaded, name)

    if source == "fixture/layers:1":
        assert theirs["Id"] == FIXTURE_ID
        assert run(docker, name) == "alpha\n", "the image's own Cmd: cat /data/a.txt"
        assert run(docker, name, "ls", "-A", "/data/dir").split() == ["d.txt"]
        run(docker, name, "sh", "-c", "test ! -e /data/b.txt && test ! -e /data/dir/c.txt")  # fails if either is
        hard_a = run(docker, name, "ls", "-ln", "/data/hard-a").split()
        assert hard_a[:2] == ["-rw-r--r--", "2"], "Docker's container sees the hard link too"
    else:
        with image_rootfs(loaded.engine(), name) as root:
            passwd = (root / "etc/passwd").read_text()
        assert run(docker, name, "cat", "/etc/passwd") == passwd
        assert run(docker, name, "busybox", "echo", "hello from barque") == "hello from barque\n"


def test_docker_loads_a_multi_image_barque_archive(loaded, docker, tmp_path):
    names = [f"interop/{unique('m')}:1", f"interop/{unique('m')}:2"]
    loaded("tag", "busybox:latest", names[0])
    loaded("tag", "fixture/layers:1", names[1])
    archive = tmp_path / "both.tar"
    loaded("save", "-o", archive, *names)
    out = docker.docker("load", "-i", archive).stdout.splitlines()
    assert sorted(out) == sorted(f"Loaded image: {n}" for n in names)
    for n in names:
        assert docker.inspect("image", n)["Id"] == barque_inspect(loaded, n)["Id"]


DOCKERFILE = """\
FROM {base}
RUN echo hi > /x && ln /x /x-hard && ln -s /x /x-sym \\
 && mkdir -p /d/sub && echo 1 > /d/sub/f && echo 2 > /d/g && mkdir /keep && echo k > /keep/k
RUN rm /etc/group && rm -r /d && mkdir /d && echo 3 > /d/h && chown 1000:1000 /d/h \\
 && chmod 4755 /x && chmod 1777 /keep && rm /keep/k
CMD ["cat", "/x"]
"""


def test_barque_loads_docker_build(loaded, docker, other_barque, tmp_path):
    """A Dockerfile build on the barque-made busybox. Docker's overlay2 diff turns `rm /etc/group` into a whiteout
    and `rm -r /d && mkdir /d` into an opaque directory; `chmod` of /x copies it up, which breaks its hard link
    with /x-hard (Docker's own containers see two files)."""
    base = hand_to_docker(loaded, docker, "busybox:latest", tmp_path)
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    built = f"interop/{unique('built')}:1"
    docker.docker("build", "--network", "none", "-t", built, context)
    archive = tmp_path / "built.tar"
    docker.docker("save", "-o", archive, built)
    with tarfile.open(archive) as tf:  # what makes this case worth having: Docker wrote whiteouts
        top = json.load(tf.extractfile("manifest.json"))[0]["Layers"][-1]
        top_names = tarfile.open(fileobj=io.BytesIO(tf.extractfile(top).read())).getnames()
    assert "etc/.wh.group" in top_names and "d/.wh..wh..opq" in top_names and "keep/.wh.k" in top_names

    other = other_barque()
    assert other("load", "-i", archive).stdout.strip() == f"Loaded image: {built}"
    theirs, ours = docker.inspect("image", built), barque_inspect(other, built)
    assert ours["Id"] == theirs["Id"]
    assert ours["RootFS"]["Layers"] == theirs["RootFS"]["Layers"] and len(ours["RootFS"]["Layers"]) == 3
    assert ours["Config"]["Cmd"] == ["cat", "/x"]

    view = barque_tree(other, built)
    assert view == docker_tree(docker, built, tmp_path)
    assert view["x"] == ("f", 0o4755, 0, 0, 3, "", False)
    assert view["x-hard"] == ("f", 0o644, 0, 0, 3, "", False), "the copy-up broke the hard link"
    assert view["x-sym"][0] == "l" and view["x-sym"][5] == "/x"
    assert "etc/group" not in view and "etc/passwd" in view
    assert sorted(k for k in view if k.startswith("d/")) == ["d/h"]
    assert view["d/h"][2:4] == (1000, 1000)
    assert view["keep"][:2] == ("d", 0o1777) and not [k for k in view if k.startswith("keep/")]
    with image_rootfs(other.engine(), built) as root:
        assert (root / "x").read_text() == "hi\n" and (root / "d/h").read_text() == "3\n"
        assert not [p.name for p in root.rglob(".wh.*")], "whiteouts are applied, not stored as files"
    assert run(docker, built) == "hi\n"


def test_hard_link_header_metadata_applies_as_in_docker(docker, barque, tmp_path):
    """A tar whose hard link entry carries other metadata than its target (no tar tool writes one; a hand-made
    layer may): Docker's extraction chowns and chmods the link after making it, so the last header wins for the
    inode both names share. barque should show the same files as Docker for the same layer."""
    source = tmp_path / "rootfs.tar"
    with tarfile.open(source, "w", format=tarfile.PAX_FORMAT) as tf:
        target = tarfile.TarInfo("run.sh")
        target.mode, target.uid, target.gid, target.size = 0o4711, 33, 33, 3
        tf.addfile(target, io.BytesIO(b"hi\n"))
        link = tarfile.TarInfo("same.sh")
        link.type, link.linkname, link.mode, link.uid, link.gid = tarfile.LNKTYPE, "run.sh", 0o640, 7, 8
        tf.addfile(link)
    name = f"interop/{unique('hl')}:1"
    docker.docker("import", source, name)
    archive = tmp_path / "imported.tar"
    docker.docker("save", "-o", archive, name)
    barque("load", "-i", archive)
    theirs = docker_tree(docker, name, tmp_path)
    assert theirs["run.sh"][:4] == ("f", 0o640, 7, 8), "Docker: the link's header won"
    assert barque_tree(barque, name) == theirs


def _rootfs_tar(path: Path) -> None:
    """A small root filesystem as `docker import` takes it: every kind of entry a layer carries but devices."""
    def add(tf, name, kind=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, link=""):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.uid, ti.gid, ti.linkname, ti.mtime = kind, mode, uid, gid, link, 1_700_000_000
        ti.size = len(data) if kind == tarfile.REGTYPE else 0
        tf.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        add(tf, "etc", tarfile.DIRTYPE, mode=0o755)
        add(tf, "etc/motd", data=b"imported\n")
        add(tf, "srv", tarfile.DIRTYPE, mode=0o750, uid=33, gid=33)
        add(tf, "srv/run.sh", data=b"#!/bin/sh\necho run\n", mode=0o4711, uid=33, gid=33)
        add(tf, "srv/same.sh", tarfile.LNKTYPE, link="srv/run.sh", mode=0o4711, uid=33, gid=33)  # as tar writes
        add(tf, "srv/latest", tarfile.SYMTYPE, link="run.sh", mode=0o777)
        add(tf, "srv/fifo", tarfile.FIFOTYPE, mode=0o600)
        add(tf, "tmp", tarfile.DIRTYPE, mode=0o1777)
        add(tf, "unicode-ü ß", data=b"x" * 5000, mode=0o600, uid=1234, gid=5678)


def test_barque_loads_docker_import(docker, barque, tmp_path):
    source = tmp_path / "rootfs.tar"
    _rootfs_tar(source)
    name = f"interop/{unique('imp')}:1"
    docker.docker("import", "--change", "CMD [\"/srv/run.sh\"]", source, name)
    archive = tmp_path / "imported.tar"
    docker.docker("save", "-o", archive, name)

    assert barque("load", "-i", archive).stdout.strip() == f"Loaded image: {name}"
    theirs, ours = docker.inspect("image", name), barque_inspect(barque, name)
    assert ours["Id"] == theirs["Id"] and ours["RootFS"]["Layers"] == theirs["RootFS"]["Layers"]
    assert ours["Config"]["Cmd"] == ["/srv/run.sh"]
    view = barque_tree(barque, name)
    assert view == docker_tree(docker, name, tmp_path)
    assert view == without(tar_listing(source), DOCKER_INIT_PATHS)
    assert view["srv/fifo"][0] == "p" and view["srv/run.sh"][6] is True

