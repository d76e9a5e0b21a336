"""Volumes seen from containers: named volumes that outlive containers and start with the image's content, binds
(ro), tmpfs mounts, and the log-container pattern with --volumes-from."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.timeout(120)


def mounts(b, name: str) -> list[dict]:
    return json.loads(b("inspect", name).stdout)[0]["Mounts"]


def test_named_volume_persists_and_is_initialised_from_the_image(bb):
    bb("run", "--rm", "-v", "etcvol:/etc", "busybox", "sh", "-c", "echo kept > /etc/mine")
    out = bb("run", "--rm", "-v", "etcvol:/etc", "busybox", "sh", "-c", "cat /etc/mine; head -1 /etc/passwd").stdout
    assert out.splitlines() == ["kept", "root:x:0:0:root:/root:/bin/sh"]  # copied up from the image once
    info = json.loads(bb("volume", "inspect", "etcvol").stdout)[0]
    assert (bb.root / "volumes" / "etcvol" / "_data" / "mine").read_text() == "kept\n"
    assert info["Mountpoint"].endswith("/volumes/etcvol/_data")


def test_bind_mount_read_only(bb, tmp_path):
    host = tmp_path / "share"
    host.mkdir()
    (host / "in.txt").write_text("from host\n")
    out = bb("run", "--rm", "-v", f"{host}:/share:ro", "busybox", "cat", "/share/in.txt").stdout
    assert out == "from host\n"
    r = bb("run", "--rm", "-v", f"{host}:/share:ro", "busybox", "touch", "/share/x", check=False)
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    bb("run", "--rm", "--mount", f"type=bind,source={host},target=/share", "busybox", "sh", "-c",
       "echo back > /share/out.txt")
    assert (host / "out.txt").read_text() == "back\n"
    r = bb("run", "--rm", "--mount", "type=bind,source=/nonexistent-xyz,target=/x", "busybox", "true", check=False)
    assert r.returncode == 125 and "bind source path does not exist" in r.stderr


def test_tmpfs_mounts(bb):
    out = bb("run", "--rm", "--tmpfs", "/scratch:size=1m", "busybox", "sh", "-c",
             "grep ' /scratch ' /proc/mounts").stdout
    assert out.startswith("tmpfs /scratch tmpfs") and "size=1024k" in out
    out = bb("run", "--rm", "--mount", "type=tmpfs,target=/t2", "busybox", "sh", "-c",
             "grep ' /t2 ' /proc/mounts").stdout
    assert out.startswith("tmpfs /t2 tmpfs")


def test_log_container_pattern_with_volumes_from(bb):
    bb("run", "-d", "--name", "writer", "-v", "/var/log/app", "busybox", "sh", "-c",
       "i=0; while [ $i -lt 3 ]; do echo entry$i >> /var/log/app/app.log; i=$((i+1)); done; sleep 60")
    import time

    deadline = time.monotonic() + 10
    while True:
        out = bb("run", "--rm", "--volumes-from", "writer:ro", "busybox", "cat", "/var/log/app/app.log",
                 check=False).stdout
        if out.count("entry") == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert out == "entry0\nentry1\nentry2\n"
    r = bb("run", "--rm", "--volumes-from", "writer:ro", "busybox", "touch", "/var/log/app/x", check=False)
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    bb("create", "--name", "reader", "--volumes-from", "writer", "busybox", "true")
    assert [m["Name"] for m in mounts(bb, "reader")] == [m["Name"] for m in mounts(bb, "writer")]
    assert mounts(bb, "reader")[0]["RW"] is True


def test_volume_in_use_cannot_be_removed_and_survives_rm(bb):
    bb("create", "--name", "user1", "-v", "data1:/data", "busybox", "true")
    r = bb("volume", "rm", "data1", check=False)
    assert r.returncode == 1 and "volume is in use" in r.stderr
    bb("rm", "-v", "user1")  # -v removes anonymous volumes only
    assert "data1" in bb("volume", "ls", "-q").stdout.split()
    bb("volume", "rm", "data1")
