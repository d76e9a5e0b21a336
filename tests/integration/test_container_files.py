"""commit, diff, export and cp through the real CLI on real containers, on every storage driver — as a Docker user
would drive them, checking what they would see."""

from __future__ import annotations

import io
import json
import os
import pty
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import BARQUE, wait_for

pytestmark = pytest.mark.timeout(300)

SCRIPT = "echo hi > /f; rm /etc/group; mkdir -p /d/e"


@pytest.fixture
def box(barque_driver, busybox_tar):
    """A root on each driver with the busybox image; containers it leaves are removed even when a test fails."""
    barque_driver("load", "-i", busybox_tar)
    try:
        yield barque_driver
    finally:
        barque_driver.remove_containers()


@pytest.fixture
def bbox(barque, busybox_tar):
    """The same on the default driver, for what does not depend on the driver."""
    barque("load", "-i", busybox_tar)
    try:
        yield barque
    finally:
        barque.remove_containers()


def inspect(b, *args: str) -> dict:
    return json.loads(b(*args).stdout)[0]


def tar_members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: m for m in tf.getmembers()}


def tar_file(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        f = tf.extractfile(name)
        assert f is not None
        return f.read()


# ---- diff and commit ----------------------------------------------------------------------------------------------

def test_diff_lists_docker_letters_without_runtime_mount_points(box):
    box("run", "--name", "wk", "busybox", "sh", "-c", SCRIPT)
    # /etc/hostname and /etc/resolv.conf (mount points made by the runtime) are not the container's changes
    assert box("diff", "wk").stdout.splitlines() == ["A /d", "A /d/e", "C /etc", "D /etc/group", "A /f"]
    box("create", "--name", "fresh", "busybox", "true")
    assert box("diff", "fresh").stdout == ""
    r = box("diff", "nope", check=False)
    assert r.returncode == 1 and r.stderr.strip() == "Error: No such container: nope"


def test_commit_stopped_container_is_a_runnable_image(box):
    box("run", "--name", "wk", "busybox", "sh", "-c", SCRIPT)
    out = box("commit", "-a", "Ann <ann@example.com>", "-m", "my change", "-c", 'CMD ["cat","/f"]', "wk", "snap:1")
    image_id = out.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    assert box("run", "--rm", "snap:1").stdout == "hi\n", "the new CMD runs and sees the committed file"
    r = box("run", "--rm", "snap:1", "sh", "-c", "test -e /etc/group && echo still || echo gone; ls -d /d/e")
    assert r.stdout == "gone\n/d/e\n"

    info = inspect(box, "image", "inspect", "snap:1")
    base = inspect(box, "image", "inspect", "busybox")
    assert info["Id"] == image_id and info["Parent"] == base["Id"]
    assert info["Author"] == "Ann <ann@example.com>"
    assert info["Config"]["Cmd"] == ["cat", "/f"]
    assert info["RootFS"]["Layers"][:-1] == base["RootFS"]["Layers"] and len(info["RootFS"]["Layers"]) == \
        len(base["RootFS"]["Layers"]) + 1
    history = box("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}", "snap:1").stdout.splitlines()
    assert history[0] == f"sh -c {SCRIPT}|my change"
    assert "snap:1" in box("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()


def test_commit_running_container_pauses_it_and_leaves_it_running(box):
    box("run", "-d", "--name", "live", "busybox", "sh", "-c", "echo up > /up; exec sleep 600")
    wait_for(lambda: "A /up" in box("diff", "live").stdout)
    box("commit", "live", "live:1")
    assert inspect(box, "inspect", "live")["State"]["Status"] == "running"
    box("commit", "--pause=false", "live", "live:2")
    assert inspect(box, "inspect", "live")["State"]["Status"] == "running"
    assert box("run", "--rm", "live:1", "cat", "/up").stdout == "up\n"
    assert box("run", "--rm", "live:2", "cat", "/up").stdout == "up\n"
    cfg = inspect(box, "image", "inspect", "live:1")["Config"]
    assert cfg["Cmd"] == ["sh", "-c", "echo up > /up; exec sleep 600"], "the container's command becomes the image's"


def test_commit_without_changes_adds_no_layer(bbox):
    bbox("create", "--name", "idle", "busybox", "true")
    image_id = bbox("commit", "idle").stdout.strip()
    info = inspect(bbox, "image", "inspect", image_id)
    assert info["RootFS"]["Layers"] == inspect(bbox, "image", "inspect", "busybox")["RootFS"]["Layers"]
    assert info["RepoTags"] == []


def test_commit_changes_env_entrypoint_and_refusals(bbox):
    bbox("run", "--name", "wk", "-e", "A=1", "busybox", "true")
    bbox("commit", "-c", "ENV B=2", "-c", 'ENTRYPOINT ["sh", "-c", "echo $A$B"]', "wk", "ch:1")
    assert bbox("run", "--rm", "ch:1").stdout == "12\n", "container env kept, --change env added, its CMD dropped"
    r = bbox("commit", "-c", "RUN true", "wk", check=False)
    assert r.returncode == 1 and "RUN is not a valid change command" in r.stderr
    r = bbox("commit", "nope", check=False)
    assert r.returncode == 1 and "No such container: nope" in r.stderr


# ---- export ------------------------------------------------------------------------------------------------------

def test_export_flat_tar_of_the_whole_filesystem(box, tmp_path):
    box("run", "--name", "wk", "busybox", "sh", "-c", SCRIPT)
    data = box("export", "wk").stdout_bytes
    members = tar_members(data)
    assert tar_file(data, "f") == b"hi\n"
    assert "etc/group" not in members and "etc/passwd" in members and "d/e" in members
    assert members["bin/busybox"].isfile() and members["d/e"].isdir()
    assert not any(n.startswith(("/", "./")) for n in members)
    out = tmp_path / "w.tar"
    assert box("export", "-o", out, "wk").stdout == ""
    assert tar_members(out.read_bytes()).keys() == members.keys()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".w.tar")) == [], "no temporary left"
    # the export imports back as an image that runs
    box("import", out, "fromexport:1")
    assert box("run", "--rm", "fromexport:1", "cat", "/f").stdout == "hi\n"


def test_export_of_a_running_container(box):
    box("run", "-d", "--name", "live", "busybox", "sh", "-c", "echo now > /now; exec sleep 600")
    wait_for(lambda: "A /now" in box("diff", "live").stdout)
    assert tar_file(box("export", "live").stdout_bytes, "now") == b"now\n"


def test_export_refuses_a_terminal(bbox):
    bbox("create", "--name", "wk", "busybox", "true")
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(BARQUE + bbox.args() + ["export", "wk"], stdout=slave, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, timeout=60)
    finally:
        os.close(slave)
        os.close(master)
    assert proc.returncode == 1
    assert proc.stderr.decode().strip() == ("Error: cowardly refusing to save to a terminal. Use the -o flag or "
                                            "redirect")


# ---- cp ----------------------------------------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path) -> Path:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_text("one\n")
    (src / "sub" / "b").write_text("two\n")
    os.symlink("a", src / "link")
    os.chown(src / "a", 1000, 1000)
    return src


def ls(b, container: str, path: str) -> list[str]:
    return b("exec", container, "ls", "-A", path).stdout.split()


def test_cp_into_a_running_container(box, tree, tmp_path):
    box("run", "-d", "--name", "c1", "busybox", "sleep", "600")
    r = box("cp", tree / "a", "c1:/new-file")
    assert r.stderr.startswith("Successfully copied ") and r.stderr.rstrip().endswith(" to c1:/new-file")
    assert box("exec", "c1", "cat", "/new-file").stdout == "one\n"
    box("cp", tree, "c1:/tmp")                       # an existing directory: copied into it
    assert ls(box, "c1", "/tmp/src") == ["a", "link", "sub"]
    box("cp", tree, "c1:/fresh")                     # a new path: the directory takes its name
    assert ls(box, "c1", "/fresh") == ["a", "link", "sub"]
    box("exec", "c1", "mkdir", "/into")
    box("cp", f"{tree}/.", "c1:/into")               # "/." copies the content
    assert ls(box, "c1", "/into") == ["a", "link", "sub"]
    assert box("exec", "c1", "readlink", "/into/link").stdout == "a\n", "symlinks are copied as symlinks"
    owners = box("exec", "c1", "stat", "-c", "%u:%g", "/fresh/a", "/fresh/sub/b").stdout.split()
    assert owners == ["0:0", "0:0"], "files copied in belong to the container's root"
    box("cp", "-a", tree / "a", "c1:/kept")
    assert box("exec", "c1", "stat", "-c", "%u:%g", "/kept").stdout.strip() == "1000:1000"
    # a tar on stdin is extracted in a directory
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("from-stdin/x")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    box("cp", "-", "c1:/tmp", input=buf.getvalue())
    assert box("exec", "c1", "cat", "/tmp/from-stdin/x").stdout == "abc"


def test_cp_out_of_a_container(box, tmp_path):
    box("run", "--name", "c2", "busybox", "sh", "-c", "mkdir -p /data/sub && echo x > /data/sub/y && echo f > /file"
        " && ln -s /data /to-data && ln /data/sub/y /data/hard && mkfifo /data/fifo")
    dst = tmp_path / "out"
    dst.mkdir()
    box("cp", "c2:/file", dst / "copy")
    assert (dst / "copy").read_text() == "f\n"
    box("cp", "c2:/file", dst)
    assert (dst / "file").read_text() == "f\n"
    box("cp", "c2:/data", dst)
    assert (dst / "data" / "sub" / "y").read_text() == "x\n"
    assert (dst / "data" / "hard").stat().st_ino == (dst / "data" / "sub" / "y").stat().st_ino, "hard links kept"
    assert stat.S_ISFIFO((dst / "data" / "fifo").lstat().st_mode)
    box("cp", "c2:/data", dst / "renamed")
    assert (dst / "renamed" / "sub" / "y").read_text() == "x\n"
    assert (dst / "renamed" / "hard").stat().st_ino == (dst / "renamed" / "sub" / "y").stat().st_ino
    box("cp", "c2:/to-data", dst / "link")
    assert os.readlink(dst / "link") == "/data", "without -L a symlink is copied as one"
    box("cp", "-L", "c2:/to-data", dst / "followed")
    assert (dst / "followed" / "sub" / "y").read_text() == "x\n"
    data = box("cp", "c2:/data", "-").stdout_bytes
    members = tar_members(data)
    assert sorted(members) == ["data", "data/fifo", "data/hard", "data/sub", "data/sub/y"]
    assert members["data/sub/y"].islnk() and members["data/sub/y"].linkname == "data/hard", "the second name links"
    assert tar_file(data, "data/sub/y") == b"x\n"


def test_cp_into_a_stopped_container_then_start(box, tree):
    box("create", "--name", "c3", "busybox", "cat", "/in/sub/b")
    box("cp", tree, "c3:/in")
    assert box("start", "-a", "c3").stdout == "two\n"


def test_cp_errors_as_docker_words_them(bbox, tree, tmp_path):
    bbox("run", "--name", "c4", "busybox", "sh", "-c", "echo f > /file")
    cases = [
        (["cp", "c4:/nope", tmp_path], "Error: Could not find the file /nope in container c4"),
        (["cp", tree / "a", "c4:/nope/x"], "Error: Could not find the file /nope in container c4"),
        (["cp", tmp_path / "missing", "c4:/"], f"Error: lstat {tmp_path}/missing: no such file or directory"),
        (["cp", tree, "c4:/file"], "Error: cannot copy directory"),
        (["cp", "-", "c4:/file"], 'Error: destination "c4:/file" must be a directory'),
        (["cp", tree / "a", tmp_path / "b"], "Error: must specify at least one container source"),
        (["cp", "c4:/file", "c4:/x"], "Error: copying between containers is not supported"),
        (["cp", "c4:/file", tmp_path / "no" / "where"],
         f'Error: invalid output path: directory "{tmp_path}/no" does not exist'),
        (["cp", "nope:/file", tmp_path], "Error: No such container: nope"),
    ]
    for args, message in cases:
        r = bbox(*args, check=False, input=b"")
        assert (r.returncode, r.stderr.strip()) == (1, message), args


def test_cp_cannot_escape_through_container_symlinks(bbox, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("host only\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    # symlinks pointing at host paths: inside the container they resolve inside the container
    bbox("run", "--name", "c5", "busybox", "sh", "-c",
         f"ln -s {secret} /s; ln -s {outside} /o; ln -s ../../../../.. /up; mkdir /tmp/real")
    r = bbox("cp", "-L", "c5:/s", "-", check=False)
    assert r.returncode == 1 and "Could not find the file /s in container c5" in r.stderr
    r = bbox("cp", secret, "c5:/o/x", check=False)
    assert r.returncode == 1 and "Could not find the file" in r.stderr
    assert list(outside.iterdir()) == [], "nothing written on the host"
    bbox("cp", secret, "c5:/up/tmp/real/")  # ".." stops at the container's root
    assert tar_file(bbox("cp", "c5:/tmp/real/secret", "-").stdout_bytes, "secret") == b"host only\n"


def test_cp_reaches_volumes_running_or_stopped(box, tmp_path):
    box("run", "-d", "--name", "c6", "-v", "vol6:/data", "busybox", "sh", "-c", "echo v > /data/v; exec sleep 600")
    wait_for(lambda: box("exec", "c6", "cat", "/data/v", check=False).stdout == "v\n")
    assert tar_file(box("cp", "c6:/data/v", "-").stdout_bytes, "v") == b"v\n"
    src = tmp_path / "in"
    src.write_text("w\n")
    box("cp", src, "c6:/data/in")
    assert box("exec", "c6", "cat", "/data/in").stdout == "w\n", "written to the volume the container sees"
    box("stop", "-t", "0", "c6")
    box("cp", "c6:/data/in", tmp_path / "back")
    assert (tmp_path / "back").read_text() == "w\n"
    box("run", "--rm", "-v", "vol6:/v", "busybox", "cat", "/v/in")  # the volume itself holds it


def test_cp_into_read_only_volume_or_rootfs_is_refused(bbox, tmp_path):
    bbox("create", "--name", "ro", "--read-only", "-v", "rov:/data:ro", "busybox", "true")
    src = tmp_path / "f"
    src.write_text("x")
    r = bbox("cp", src, "ro:/data/", check=False)
    assert (r.returncode, r.stderr.strip()) == (1, "Error: mounted volume is marked read-only")
    r = bbox("cp", src, "ro:/", check=False)
    assert (r.returncode, r.stderr.strip()) == (1, "Error: container rootfs is marked read-only")
