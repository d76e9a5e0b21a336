"""Security flags of `run`: seccomp profiles (default, unconfined, a Docker-format file), no-new-privileges, and
`--userns remap` (root inside is an unprivileged user outside, the image's files still root's inside)."""

from __future__ import annotations

import io
import json
import os

import pytest

pytestmark = pytest.mark.timeout(120)


def test_seccomp_default_unconfined_and_profile_file(bb, tmp_path):
    assert bb("run", "--rm", "busybox", "grep", "Seccomp:", "/proc/self/status").stdout.split()[1] == "2"
    out = bb("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "grep", "Seccomp:",
             "/proc/self/status").stdout
    assert out.split()[1] == "0"
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}))
    r = bb("run", "--rm", "--security-opt", f"seccomp={profile}", "busybox", "mkdir", "/tmp/x", check=False)
    assert r.returncode == 1 and "Operation not permitted" in r.stderr
    r = bb("run", "--rm", "--security-opt", "seccomp=/nonexistent.json", "busybox", "true", check=False)
    assert r.returncode == 125 and "opening seccomp profile" in r.stderr
    r = bb("run", "--rm", "--security-opt", "bogus", "busybox", "true", check=False)
    assert r.returncode == 125 and "invalid --security-opt" in r.stderr


def test_no_new_privileges(bb):
    assert bb("run", "--rm", "busybox", "grep", "NoNewPrivs", "/proc/self/status").stdout.split()[1] == "0"
    out = bb("run", "--rm", "--security-opt", "no-new-privileges", "busybox", "grep", "NoNewPrivs",
             "/proc/self/status").stdout
    assert out.split()[1] == "1"


def reachable(path) -> None:
    """As a userns-remap host needs: the directories above the run root searchable by the mapped root."""
    from pathlib import Path

    for d in [Path(path), *Path(path).parents]:
        if str(d) in ("/", "/tmp"):
            break
        if d.exists():
            os.chmod(d, os.stat(d).st_mode | 0o011)


def test_userns_remap(barque_driver, busybox_tar):
    b = barque_driver
    reachable(b.run_root.parent)
    reachable(b.root)
    b("load", "-i", busybox_tar)
    out = b("run", "--name", "remapped", "--userns", "remap", "busybox", "sh", "-c",
            "cat /proc/self/uid_map; stat -c %u /etc/passwd; echo data > /root-owned && stat -c %u /root-owned; "
            "sleep 0.2; [ -e /copied-stopped ] && sleep 60; exit 0").stdout.split()
    assert out[:3] == ["0", "231072", "65536"]  # root inside is 231072 outside
    assert out[3] == "0" and out[4] == "0"       # the image's files and new ones are root's inside
    info = json.loads(b("inspect", "remapped").stdout)[0]
    assert info["HostConfig"]["UsernsMode"] == "remap" and info["State"]["ExitCode"] == 0
    # cp into it, stopped and running: the files are the container's root's, as Docker's cp makes them
    src = b.root.parent / "copied.txt"
    src.write_text("copied\n")
    b("cp", str(src), "remapped:/copied-stopped")
    b("start", "remapped")
    b("cp", str(src), "remapped:/copied-running")
    out = b("exec", "remapped", "sh", "-c", "stat -c %u:%g /copied-stopped /copied-running; "
            "echo more >> /copied-running && cat /copied-running").stdout.split()
    assert out == ["0:0", "0:0", "copied", "more"]
    b("exec", "remapped", "sh", "-c", "mkdir /made && chown 5:6 /made")
    # what leaves the container carries its own ids, not the host's: commit, export, cp out, diff
    b("commit", "remapped", "remapped-img:1")
    out = b("run", "--rm", "remapped-img:1", "stat", "-c", "%u:%g", "/copied-running", "/made").stdout.split()
    assert out == ["0:0", "5:6"]
    import tarfile

    exported = tarfile.open(fileobj=io.BytesIO(b("export", "remapped").stdout_bytes))
    owners = {m.name: (m.uid, m.gid) for m in exported.getmembers()}
    assert owners["copied-running"] == (0, 0) and owners["made"] == (5, 6) and owners["etc/passwd"] == (0, 0)
    copied = tarfile.open(fileobj=io.BytesIO(b("cp", "remapped:/made", "-").stdout_bytes))
    assert [(m.name, m.uid, m.gid) for m in copied.getmembers()] == [("made", 5, 6)]
    assert "C /etc" not in b("diff", "remapped").stdout.splitlines()
    b("rm", "-f", "remapped")
    # volumes: a new empty one belongs to the container's root, one filled from the image keeps the image's owners
    out = b("run", "--rm", "--userns", "remap", "-v", "/fresh", "-v", "etcvol:/etc", "busybox", "sh", "-c",
            "stat -c %u /fresh /etc/passwd; touch /fresh/f /etc/f && echo writable").stdout.split()
    assert out == ["0", "0", "writable"]
    b("volume", "rm", "etcvol")
    r = b("run", "--rm", "--userns", "nonsense", "busybox", "true", check=False)
    assert r.returncode == 125


def test_remapped_root_is_unprivileged_on_the_host(bb, tmp_path):
    reachable(bb.run_root.parent)
    secret = tmp_path / "secret"
    secret.write_text("host only\n")
    os.chmod(secret, 0o600)
    os.chmod(tmp_path, 0o755)
    r = bb("run", "--rm", "--userns", "remap", "-v", f"{tmp_path}:/host", "busybox", "cat", "/host/secret",
           check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    assert bb("run", "--rm", "-v", f"{tmp_path}:/host", "busybox", "cat", "/host/secret").stdout == "host only\n"
