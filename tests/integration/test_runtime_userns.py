"""User namespaces: the spec's mappings are in force (uid_map inside; root inside is 100000 outside), and with the
`org.barque.idmap-rootfs` annotation the rootfs is an idmapped mount, so the image's root-owned files are root's
inside and what the container writes lands on disk owned by the image's ids, not the host range."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.integration.runtime_support import (  # noqa: F401 - fixtures
    assert_nothing_left, busybox_tree, make_bundle, mount_points, rt, wait_exit,
)

pytestmark = pytest.mark.root

MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]


@pytest.fixture
def bundle(busybox_tree, rt):
    """A bundle the remapped root can reach: pytest's own temporary directories are 0700 root, which a container
    root that is uid 100000 outside could not traverse (Docker's userns-remap makes its directories 0711 likewise)."""
    base = Path(tempfile.mkdtemp(prefix="barque-rt-userns-"))
    base.chmod(0o711)
    try:
        b = make_bundle(base, busybox_tree, ["true"])
        rt.made.append(b.cid)
        yield b
        rt.cleanup()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def remap(b, idmap: bool) -> None:
    b.spec["linux"]["namespaces"].append({"type": "user"})
    b.spec["linux"]["uidMappings"] = MAP
    b.spec["linux"]["gidMappings"] = MAP
    if idmap:
        b.spec.setdefault("annotations", {})["org.barque.idmap-rootfs"] = "true"


def test_mappings_and_idmapped_rootfs(rt, bundle):
    mounts_before = mount_points()
    remap(bundle, idmap=True)
    bundle.set_args("sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; echo id=$(id -u); "
                                "stat -c owner=%u:%g /bin/busybox; echo hi > /tmp/written; sleep 30")
    with open(bundle.out, "w") as out:
        rt("create", "--bundle", bundle.path, bundle.cid, stdout=out, stderr=out)
    pid = rt.state(bundle.cid)["pid"]
    rt("start", bundle.cid)
    for _ in range(300):
        if "owner=" in bundle.output():
            break
        subprocess.run(["sleep", "0.02"])
    # outside, the container's root is an ordinary user of the mapped range
    status = open(f"/proc/{pid}/status").read()
    assert "Uid:\t100000\t100000\t100000\t100000" in status
    out = bundle.output()
    assert out.split()[:6] == ["0", "100000", "65536", "0", "100000", "65536"]
    assert "id=0" in out
    assert "owner=0:0" in out, "the idmapped rootfs shows the image's root-owned files as root's"
    rt("delete", "--force", bundle.cid)
    wait_exit(pid)
    written = bundle.rootfs / "tmp" / "written"
    assert written.read_text() == "hi\n"
    st = os.stat(written)
    assert (st.st_uid, st.st_gid) == (0, 0), "writes through the idmapped mount are stored with the image's ids"
    assert_nothing_left(rt, bundle, mounts_before)


def test_without_idmap_files_belong_to_nobody(rt, bundle):
    remap(bundle, idmap=False)
    bundle.set_args("sh", "-c", "stat -c owner=%u:%g /bin/busybox; echo id=$(id -u)")
    out = rt("run", "--bundle", bundle.path, bundle.cid).stdout
    assert "owner=65534:65534" in out and "id=0" in out


def test_unmapped_user_is_refused(rt, bundle):
    remap(bundle, idmap=False)
    bundle.spec["process"]["user"] = {"uid": 70000, "gid": 0}
    bundle.write()
    res = rt("create", "--bundle", bundle.path, bundle.cid, check=False)
    assert res.returncode != 0 and "uid 70000 is not mapped" in res.stderr


def test_unreachable_rootfs_is_explained(rt, busybox_tree, tmp_path):
    b = make_bundle(tmp_path, busybox_tree, ["true"])  # under pytest's 0700 directories
    rt.made.append(b.cid)
    remap(b, idmap=False)
    b.write()
    res = rt("create", "--bundle", b.path, b.cid, check=False)
    assert res.returncode != 0 and "cannot reach its rootfs" in res.stderr


def test_exec_joins_the_user_namespace(rt, bundle):
    remap(bundle, idmap=True)
    bundle.set_args("sleep", "30")
    rt("create", "--bundle", bundle.path, bundle.cid, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = rt.state(bundle.cid)["pid"]
    rt("start", bundle.cid)
    out = rt("exec", bundle.cid, "sh", "-c", "cat /proc/self/uid_map; id -u; stat -c %u /bin/busybox").stdout.split()
    assert out == ["0", "100000", "65536", "0", "0"]
    rt("delete", "--force", bundle.cid)
    wait_exit(pid)
