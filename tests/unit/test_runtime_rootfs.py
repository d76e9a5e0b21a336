"""The container's filesystem set-up against a recording fake of the syscall seam (youki's pattern): the exact
mounts, device nodes, symlinks and pivot_root sequence, without root. Queries hit a real temporary rootfs."""

from __future__ import annotations

import os
import stat

import pytest

from barque.errors import InvalidArgument
from barque.runtime import rootfs as rf
from barque.runtime.defaults import base_spec
from barque.runtime.syscalls import Syscalls

MS = rf  # flag constants


class Recorder(Syscalls):
    """Records every change; creates directories and files for real (inside the temporary tree) so later
    path resolution sees them, as it would on the kernel."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def mount(self, source, target, fstype, flags=0, data=None):
        self.calls.append(("mount", source, target, fstype, flags, data or None))

    def umount(self, target, flags=0):
        self.calls.append(("umount", target, flags))

    def pivot_root(self, new_root, put_old):
        self.calls.append(("pivot_root", new_root, put_old))

    def chdir(self, path):
        self.calls.append(("chdir", path))

    def mkdir(self, path, mode=0o755):
        os.makedirs(path, exist_ok=True)

    def create_file(self, path, mode=0o644):
        open(path, "a").close()
        self.calls.append(("create_file", path))

    def mknod(self, path, mode, device):
        self.calls.append(("mknod", path, stat.S_IFMT(mode), stat.S_IMODE(mode), os.major(device), os.minor(device)))

    def chmod(self, path, mode):
        self.calls.append(("chmod", path, mode))

    def chown(self, path, uid, gid):
        self.calls.append(("chown", path, uid, gid))

    def symlink(self, target, path):
        os.symlink(target, path)
        self.calls.append(("symlink", target, path))

    def unlink(self, path):
        os.unlink(path)
        self.calls.append(("unlink", path))

    def move_mount(self, fd, target):
        self.calls.append(("move_mount", fd, target))

    def of(self, kind: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == kind]

    def mounts_on(self, target: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == "mount" and c[2] == target]


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "rootfs"
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp"):
        (root / d).mkdir(parents=True)
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n")
    return root


def ctx_for(spec: dict, root, **kw) -> rf.RootfsContext:
    return rf.RootfsContext.from_spec(spec, str(root), str(root.parent), **kw)


def test_prepare_follows_the_spec_in_order(tree):
    spec = base_spec(["true"], str(tree))
    ctx = ctx_for(spec, tree, cgroup_binds=[rf.CgroupBind("memory", "/sys/fs/cgroup/memory/barque/c1"),
                                            rf.CgroupBind("cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct/barque/c1")])
    sc = Recorder()
    rf.prepare(ctx, sc)
    r = str(tree)
    # first: nothing propagates back to the host; the rootfs becomes a mount point of its own
    assert sc.calls[0] == ("mount", None, "/", None, rf.MS_SLAVE | rf.MS_REC, None)
    assert sc.calls[1] == ("mount", r, r, None, rf.MS_BIND | rf.MS_REC, None)
    targets = [c[2] for c in sc.of("mount")]
    # the spec's mounts, in the spec's order
    order = [r + m["destination"] for m in spec["mounts"]]
    positions = [targets.index(t) for t in order]
    assert positions == sorted(positions)
    proc = sc.mounts_on(r + "/proc")[0]
    assert proc[1:4] == ("proc", r + "/proc", "proc")
    dev = sc.mounts_on(r + "/dev")[0]
    assert dev[3] == "tmpfs" and dev[4] & rf.MS_NOSUID and "mode=755" in dev[5]
    pts = sc.mounts_on(r + "/dev/pts")[0]
    assert pts[3] == "devpts" and "newinstance" in pts[5] and "ptmxmode=0666" in pts[5]
    sysfs = sc.mounts_on(r + "/sys")[0]
    assert sysfs[3] == "sysfs" and sysfs[4] & rf.MS_RDONLY


def test_v1_cgroup_mount_is_a_tmpfs_of_read_only_binds(tree):
    spec = base_spec(["true"], str(tree))
    ctx = ctx_for(spec, tree, cgroup_binds=[rf.CgroupBind("memory", str(tree / "hostcg/memory")),
                                            rf.CgroupBind("cpu,cpuacct", str(tree / "hostcg/cpu,cpuacct"))])
    for b in ctx.cgroup_binds:
        os.makedirs(b.host_dir)
    sc = Recorder()
    rf.prepare(ctx, sc)
    cg = str(tree) + "/sys/fs/cgroup"
    assert sc.mounts_on(cg)[0][3] == "tmpfs"
    mem = sc.mounts_on(cg + "/memory")
    assert mem[0] == ("mount", str(tree / "hostcg/memory"), cg + "/memory", None, rf.MS_BIND, None)
    assert mem[1][4] & rf.MS_REMOUNT and mem[1][4] & rf.MS_RDONLY, "the container sees its cgroup read-only"
    assert ("symlink", "cpu,cpuacct", cg + "/cpu") in sc.calls
    assert ("symlink", "cpu,cpuacct", cg + "/cpuacct") in sc.calls
    assert sc.mounts_on(cg)[-1][4] & rf.MS_REMOUNT | rf.MS_RDONLY, "then the tmpfs itself is made read-only"


def test_v2_cgroup_with_its_own_namespace_mounts_cgroup2(tree):
    spec = base_spec(["true"], str(tree))
    sc = Recorder()
    rf.prepare(ctx_for(spec, tree, cgroup_v2_only=True, new_cgroupns=True), sc)
    (m,) = sc.mounts_on(str(tree) + "/sys/fs/cgroup")
    assert m[1] == "cgroup2" and m[3] == "cgroup2" and m[4] & rf.MS_RDONLY


def test_default_devices_and_symlinks(tree):
    spec = base_spec(["true"], str(tree))
    sc = Recorder()
    rf.prepare(ctx_for(spec, tree), sc)
    nodes = {c[1][len(str(tree)):]: c[2:] for c in sc.of("mknod")}
    assert nodes["/dev/null"] == (stat.S_IFCHR, 0o666, 1, 3)
    assert nodes["/dev/zero"][2:] == (1, 5) and nodes["/dev/urandom"][2:] == (1, 9)
    assert nodes["/dev/tty"][2:] == (5, 0)
    links = {c[2][len(str(tree)):]: c[1] for c in sc.of("symlink")}
    assert links["/dev/fd"] == "/proc/self/fd"
    assert links["/dev/stdin"] == "/proc/self/fd/0" and links["/dev/stderr"] == "/proc/self/fd/2"
    assert links["/dev/ptmx"] == "pts/ptmx"


def test_in_a_user_namespace_device_nodes_are_host_binds(tree):
    spec = base_spec(["true"], str(tree))
    sc = Recorder()
    rf.prepare(ctx_for(spec, tree, in_userns=True), sc)
    assert sc.of("mknod") == []
    null = str(tree) + "/dev/null"
    assert ("create_file", null) in sc.calls
    assert ("mount", "/dev/null", null, None, rf.MS_BIND, None) in sc.calls


def test_bind_mount_of_a_file_with_flags_is_remounted(tree, tmp_path):
    src = tmp_path / "resolv.conf"
    src.write_text("nameserver 127.0.0.1\n")
    spec = {"mounts": [{"destination": "/etc/resolv.conf", "type": "bind", "source": str(src),
                        "options": ["rbind", "ro", "nosuid", "rprivate"]}]}
    sc = Recorder()
    rf.prepare(ctx_for(spec, tree), sc)
    dest = str(tree) + "/etc/resolv.conf"
    binds = sc.mounts_on(dest)
    assert binds[0] == ("mount", str(src), dest, None, rf.MS_BIND | rf.MS_REC, None)
    assert binds[1][4] & (rf.MS_BIND | rf.MS_REMOUNT | rf.MS_RDONLY | rf.MS_NOSUID) == \
        rf.MS_BIND | rf.MS_REMOUNT | rf.MS_RDONLY | rf.MS_NOSUID
    assert binds[2] == ("mount", None, dest, None, (1 << 18) | rf.MS_REC, None), "then its propagation"
    assert (tree / "etc/resolv.conf").is_file(), "a file bind gets a file to mount on"


def test_mount_destinations_cannot_escape_through_symlinks(tree):
    os.symlink("/../../../../etc", tree / "escape")
    assert rf.secure_join(str(tree), "/escape/passwd") == str(tree / "etc/passwd")
    os.symlink("../..", tree / "tmp/up")
    assert rf.secure_join(str(tree), "/tmp/up/x") == str(tree / "x"), "a relative link cannot climb above /"
    assert rf.secure_join(str(tree), "/tmp/up/tmp/up/etc") == str(tree / "etc")
    os.symlink("loop", tree / "loop")
    with pytest.raises(InvalidArgument, match="too many levels"):
        rf.secure_join(str(tree), "/loop/x")


def test_missing_bind_source_names_it(tree):
    spec = {"mounts": [{"destination": "/data", "type": "bind", "source": "/no/such/dir", "options": ["rbind"]}]}
    with pytest.raises(InvalidArgument, match="/no/such/dir"):
        rf.prepare(ctx_for(spec, tree), Recorder())


def test_idmapped_rootfs_is_moved_not_bound(tree):
    sc = Recorder()
    rf.prepare(ctx_for({}, tree, idmap_fd=42), sc)
    assert ("move_mount", 42, str(tree)) in sc.calls
    assert sc.mounts_on(str(tree)) == []


def test_pivot_root_detaches_the_old_root():
    sc = Recorder()
    rf.pivot_root("/new/root", sc)
    assert sc.calls == [
        ("chdir", "/new/root"),
        ("pivot_root", ".", "."),
        ("mount", None, ".", None, rf.MS_SLAVE | rf.MS_REC, None),
        ("umount", ".", rf.MNT_DETACH),
        ("chdir", "/"),
    ]


def test_finalize_masks_and_makes_read_only(tree):
    (tree / "proc/kcore").write_text("secret")
    (tree / "proc/acpi").mkdir()
    (tree / "proc/sys").mkdir()
    (tree / "dev/null").write_text("")
    ctx = ctx_for({"root": {"readonly": True},
                   "linux": {"maskedPaths": ["/proc/kcore", "/proc/acpi", "/proc/absent"],
                             "readonlyPaths": ["/proc/sys", "/proc/absent-too"]}}, tree)
    sc = Recorder()
    rf.finalize(ctx, sc, root=str(tree))
    r = str(tree)
    assert ("mount", r + "/proc/sys", r + "/proc/sys", None, rf.MS_BIND | rf.MS_REC, None) in sc.calls
    ro = [c for c in sc.mounts_on(r + "/proc/sys") if c[4] & rf.MS_REMOUNT]
    assert ro and ro[0][4] & rf.MS_RDONLY
    assert ("mount", r + "/dev/null", r + "/proc/kcore", None, rf.MS_BIND, None) in sc.calls
    assert ("mount", "tmpfs", r + "/proc/acpi", "tmpfs", rf.MS_RDONLY, None) in sc.calls
    assert not [c for c in sc.calls if "absent" in str(c)], "paths that do not exist are skipped"
    last = sc.calls[-1]
    assert last[2] == r and last[4] & rf.MS_REMOUNT and last[4] & rf.MS_RDONLY, "root read-only comes last"


def test_host_cgroup_binds_are_named_after_the_hierarchy():
    binds = rf.host_cgroup_binds({"/sys/fs/cgroup/memory": "/sys/fs/cgroup/memory/barque/x",
                                  "/sys/fs/cgroup/unified": "/sys/fs/cgroup/unified/barque/x"})
    assert [b.name for b in binds] == ["memory", "unified"]
