"""barque.cgroups against fixture trees: fake cgroupfs roots (plain directories and files) and fake mountinfo.

The fake "kernel" is `populate`: after `create()` makes the directories, a test puts in them the files the real
kernel would show, then checks what the manager wrote.
"""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest

import barque.cgroups as cgroups
from barque.cgroups import CgroupManager, detect_mode, ensure_parent
from barque.cgroups._fs import refusal
from barque.cgroups._paths import expand_slice, systemd_to_cgroupfs
from barque.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable

V1_MOUNTS = {  # directory → super options, as a Debian host with systemd mounts them
    "cpu,cpuacct": "rw,cpu,cpuacct",
    "cpuset": "rw,cpuset",
    "memory": "rw,memory",
    "pids": "rw,pids",
    "freezer": "rw,freezer",
    "devices": "rw,devices",
    "blkio": "rw,blkio",
    "systemd": "rw,xattr,name=systemd",
}

V1_FILES = {
    "cpu": ["cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.rt_period_us", "cpu.rt_runtime_us",
            "cpu.idle", "cpu.stat"],
    "cpuacct": ["cpuacct.usage", "cpuacct.stat"],
    "cpuset": ["cpuset.cpus", "cpuset.mems"],
    "memory": ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes",
               "memory.swappiness", "memory.oom_control", "memory.usage_in_bytes"],
    "pids": ["pids.max", "pids.current"],
    "freezer": ["freezer.state"],
    "devices": ["devices.allow", "devices.deny"],
    "blkio": ["blkio.throttle.read_bps_device"],
}
V2_FILES = ["cpu.weight", "cpu.max", "cpu.stat", "cpuset.cpus", "cpuset.mems", "memory.max", "memory.low",
            "memory.swap.max", "memory.high", "pids.max", "hugetlb.2MB.max", "cgroup.freeze", "cgroup.events",
            "cgroup.kill", "cgroup.controllers", "cgroup.subtree_control"]


def mountinfo_line(n: int, mount_point: Path, fstype: str, super_opts: str, root: str = "/") -> str:
    mp = str(mount_point).replace(" ", "\\040")
    return f"{n} 25 0:{n} {root} {mp} rw,nosuid,nodev,noexec,relatime shared:{n} - {fstype} {fstype} {super_opts}"


def make_tree(tmp: Path, v1: bool = True, unified: str | None = None, v2_root: str | None = None,
              omit: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """A fake /sys/fs/cgroup and its mountinfo. v1 hierarchies; `unified`: a cgroup2 mount at root/unified offering
    those controllers (hybrid); `v2_root`: cgroup2 at the root itself offering those controllers (pure v2)."""
    root = tmp / "sys fs cgroup"  # a space, to exercise mountinfo's octal escapes
    root.mkdir()
    lines = ["20 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
             mountinfo_line(21, tmp / "elsewhere", "cgroup", "rw,memory")]  # not under root: ignored
    if v2_root is not None:
        for f in ("cgroup.procs", "cgroup.subtree_control"):
            (root / f).write_text("")
        (root / "cgroup.controllers").write_text(v2_root)
        lines.append(mountinfo_line(30, root, "cgroup2", "rw,nsdelegate,memory_recursiveprot"))
    else:
        lines.append(mountinfo_line(30, root, "tmpfs", "rw,mode=755"))
    if v1:
        for i, (name, opts) in enumerate(V1_MOUNTS.items()):
            if name in omit:
                continue
            d = root / name
            d.mkdir()
            (d / "cgroup.procs").write_text("")
            lines.append(mountinfo_line(31 + i, d, "cgroup", opts))
        if "cpu,cpuacct" not in omit:
            (root / "cpu").symlink_to("cpu,cpuacct")
            (root / "cpuacct").symlink_to("cpu,cpuacct")
        if "cpuset" not in omit:
            (root / "cpuset" / "cpuset.cpus").write_text("0-3\n")
            (root / "cpuset" / "cpuset.mems").write_text("0\n")
    if unified is not None:
        u = root / "unified"
        u.mkdir()
        (u / "cgroup.controllers").write_text(unified)
        (u / "cgroup.subtree_control").write_text("")
        (u / "cgroup.procs").write_text("")
        lines.append(mountinfo_line(50, u, "cgroup2", "rw,nsdelegate"))
    mountinfo = tmp / "mountinfo"
    mountinfo.write_text("\n".join(lines) + "\n")
    return root, mountinfo


def populate(m: CgroupManager, defaults: dict[str, str] | None = None) -> None:
    """Play the kernel: give every directory of `m` the files its controllers would show."""
    defaults = defaults or {}
    for key, d in m.paths.items():
        names = V2_FILES if key == "unified" else V1_FILES.get(key, [])
        for name in names + ["cgroup.procs"]:
            f = d / name
            if not f.exists():
                f.write_text(defaults.get(name, ""))


@pytest.fixture
def v1(tmp_path):
    return make_tree(tmp_path)


@pytest.fixture
def hybrid(tmp_path):
    return make_tree(tmp_path, unified="hugetlb")


@pytest.fixture
def v2(tmp_path):
    return make_tree(tmp_path, v1=False, v2_root="cpuset cpu io memory hugetlb pids rdma misc")


def test_public_surface():
    assert sorted(cgroups.__all__) == ["CgroupManager", "detect_mode", "ensure_parent"]


# ---- detection ------------------------------------------------------------------------------------------------------

def test_detect_modes(tmp_path):
    for sub, kwargs, expected in [("a", {}, "v1"), ("b", {"unified": ""}, "hybrid"),
                                  ("c", {"v1": False, "v2_root": "memory pids"}, "v2")]:
        (tmp_path / sub).mkdir()
        root, mountinfo = make_tree(tmp_path / sub, **kwargs)
        assert detect_mode(root, mountinfo) == expected
        # without mountinfo naming them (a bind-mounted or fixture root), the tree alone tells the same
        assert detect_mode(root, tmp_path / "no-such-mountinfo") == expected


def test_detect_nothing_mounted(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "mi").write_text("20 1 8:1 / / rw - ext4 /dev/sda1 rw\n")
    with pytest.raises(FailedPrecondition, match="no cgroup"):
        detect_mode(tmp_path / "empty", tmp_path / "mi")


def test_hierarchies_from_mountinfo(v1):
    root, mountinfo = v1
    m = CgroupManager("/barque/c1", root, mountinfo=mountinfo)
    assert m.mode == "v1"
    assert m.paths["cpu"] == m.paths["cpuacct"] == root / "cpu,cpuacct" / "barque" / "c1"  # co-mounted: one dir
    assert m.paths["name=systemd"] == root / "systemd" / "barque" / "c1"
    assert set(m.paths) == {"cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "devices", "blkio",
                            "name=systemd"}


def test_tree_fallback_skips_symlinks(tmp_path):
    root, _ = make_tree(tmp_path)
    m = CgroupManager("/x", root, mountinfo=tmp_path / "absent")
    assert m.paths["cpu"] == root / "cpu,cpuacct" / "x"
    assert m.paths["name=systemd"] == root / "systemd" / "x"


def test_hybrid_paths_include_unified(hybrid):
    root, mountinfo = hybrid
    m = CgroupManager("/barque/c1", root, mountinfo=mountinfo)
    assert m.mode == "hybrid"
    assert m.paths["unified"] == root / "unified" / "barque" / "c1"


def test_mode_override(tmp_path):
    (tmp_path / "h").mkdir()
    (tmp_path / "1").mkdir()
    root, mountinfo = make_tree(tmp_path / "h", unified="")
    v1 = make_tree(tmp_path / "1")
    assert "unified" not in CgroupManager("/b/c", root, mode="v1", mountinfo=mountinfo).paths
    assert set(CgroupManager("/b/c", root, mode="v2", mountinfo=mountinfo).paths) == {"unified"}
    with pytest.raises(InvalidArgument, match="mode"):
        CgroupManager("/b/c", root, mode="v3", mountinfo=mountinfo)
    with pytest.raises(FailedPrecondition, match="v2"):
        CgroupManager("/b/c", v1[0], mode="v2", mountinfo=v1[1])


# ---- paths ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("slice_,expected", [
    ("system.slice", "/system.slice"),
    ("user-1000.slice", "/user.slice/user-1000.slice"),
    ("a-b-c.slice", "/a.slice/a-b.slice/a-b-c.slice"),
    ("-.slice", "/"),
])
def test_expand_slice(slice_, expected):
    assert expand_slice(slice_) == expected


@pytest.mark.parametrize("bad", ["system", "a--b.slice", "-a.slice", "a/b.slice", ".slice"])
def test_expand_slice_refuses(bad):
    with pytest.raises(InvalidArgument, match="slice"):
        expand_slice(bad)


@pytest.mark.parametrize("spec,expected", [
    ("system.slice:docker:abc", "/system.slice/docker-abc.scope"),
    ("user-1000.slice:libpod:abc", "/user.slice/user-1000.slice/libpod-abc.scope"),
    (":cri-containerd:abc", "/system.slice/cri-containerd-abc.scope"),
    ("machine.slice::abc", "/machine.slice/abc.scope"),
    ("kubepods.slice:cri:kubepods-burstable.slice", "/kubepods.slice/kubepods-burstable.slice"),
])
def test_systemd_to_cgroupfs(spec, expected):
    assert systemd_to_cgroupfs(spec) == expected


def test_systemd_form_in_manager(v1):
    root, mountinfo = v1
    m = CgroupManager("system.slice:docker:0123abc", root, mountinfo=mountinfo)
    assert m.paths["memory"] == root / "memory" / "system.slice" / "docker-0123abc.scope"


def test_relative_path_is_under_own_cgroup(tmp_path):
    root, mountinfo = make_tree(tmp_path, unified="")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("9:name=systemd:/user.slice/session-1.scope\n4:memory:/process_api/abc\n"
                    "3:cpuset:/\n1:cpu,cpuacct:/work\n0::/user.slice/session-1.scope\n")
    m = CgroupManager("barque/c1", root, mountinfo=mountinfo, proc_self_cgroup=proc)
    assert m.paths["memory"] == root / "memory" / "process_api" / "abc" / "barque" / "c1"
    assert m.paths["cpu"] == root / "cpu,cpuacct" / "work" / "barque" / "c1"
    assert m.paths["cpuset"] == root / "cpuset" / "barque" / "c1"
    assert m.paths["name=systemd"] == root / "systemd" / "user.slice" / "session-1.scope" / "barque" / "c1"
    assert m.paths["unified"] == root / "unified" / "user.slice" / "session-1.scope" / "barque" / "c1"


def test_relative_path_strips_the_mount_root(tmp_path):
    """Inside a container without a cgroup namespace the mount shows /docker/<id> at the mount point."""
    root = tmp_path / "cg"
    root.mkdir()
    for f in ("cgroup.controllers", "cgroup.procs", "cgroup.subtree_control"):
        (root / f).write_text("")
    mi = tmp_path / "mi"
    mi.write_text(mountinfo_line(30, root, "cgroup2", "rw", root="/docker/abc") + "\n")
    proc = tmp_path / "pc"
    proc.write_text("0::/docker/abc/init\n")
    m = CgroupManager("sub", root, mountinfo=mi, proc_self_cgroup=proc)
    assert m.paths["unified"] == root / "init" / "sub"


@pytest.mark.parametrize("bad", ["", "/", "/barque/../etc", "../x", "a/../../b"])
def test_bad_paths(v1, bad):
    with pytest.raises(InvalidArgument):
        CgroupManager(bad, v1[0], mountinfo=v1[1])


# ---- create ---------------------------------------------------------------------------------------------------------

def test_create_in_every_hierarchy_idempotent(hybrid):
    root, mountinfo = hybrid
    m = CgroupManager("/barque/c1", root, mountinfo=mountinfo)
    assert not m.exists()
    m.create()
    m.create()
    assert m.exists()
    assert all(d.is_dir() for d in m.paths.values())


def test_v1_cpuset_inherited_from_parent(v1):
    root, mountinfo = v1
    # the kernel makes new cpuset cgroups with empty cpus and mems: no task could join them
    for d in (root / "cpuset" / "barque", root / "cpuset" / "barque" / "c1"):
        d.mkdir()
        (d / "cpuset.cpus").write_text("\n")
        (d / "cpuset.mems").write_text("\n")
    (root / "cpuset" / "barque" / "c2").mkdir()
    (root / "cpuset" / "barque" / "c2" / "cpuset.cpus").write_text("1\n")  # set already: kept
    (root / "cpuset" / "barque" / "c2" / "cpuset.mems").write_text("\n")
    CgroupManager("/barque/c1", root, mountinfo=mountinfo).create()
    CgroupManager("/barque/c2", root, mountinfo=mountinfo).create()
    for d in ("barque", "barque/c1"):
        assert (root / "cpuset" / d / "cpuset.cpus").read_text() == "0-3"
        assert (root / "cpuset" / d / "cpuset.mems").read_text() == "0"
    assert (root / "cpuset" / "barque" / "c2" / "cpuset.cpus").read_text() == "1\n"
    assert (root / "cpuset" / "barque" / "c2" / "cpuset.mems").read_text() == "0"


def test_v2_enables_controllers_in_ancestors_not_the_leaf(v2):
    root, mountinfo = v2
    real_mkdir = Path.mkdir

    def kernel_mkdir(self, *a, **kw):  # the kernel shows a new cgroup's files at once
        real_mkdir(self, *a, **kw)
        if self.is_relative_to(root) and not (self / "cgroup.controllers").exists():
            enabled = (self.parent / "cgroup.subtree_control").read_text().replace("+", "")
            (self / "cgroup.controllers").write_text(enabled)
            (self / "cgroup.subtree_control").write_text("")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "mkdir", kernel_mkdir)
        CgroupManager("/barque/c1", root, mountinfo=mountinfo).create()
    assert set((root / "cgroup.subtree_control").read_text().split()) == {
        "+cpuset", "+cpu", "+io", "+memory", "+hugetlb", "+pids", "+rdma", "+misc"}
    assert set((root / "barque" / "cgroup.subtree_control").read_text().split()) == {
        "+cpuset", "+cpu", "+io", "+memory", "+hugetlb", "+pids", "+rdma", "+misc"}
    assert (root / "barque" / "c1" / "cgroup.subtree_control").read_text() == ""  # processes live in the leaf


def test_hybrid_enables_in_unified_only_what_v1_lacks(tmp_path):
    root, mountinfo = make_tree(tmp_path, unified="hugetlb memory")
    CgroupManager("/barque/c1", root, mountinfo=mountinfo).create()
    assert (root / "unified" / "cgroup.subtree_control").read_text() == "+hugetlb"


# ---- apply ----------------------------------------------------------------------------------------------------------

def test_apply_moves_into_every_hierarchy(hybrid):
    root, mountinfo = hybrid
    m = CgroupManager("/barque/c1", root, mountinfo=mountinfo)
    m.create()
    populate(m)
    m.apply(4242)
    assert {k: (d / "cgroup.procs").read_text() for k, d in m.paths.items()} == {k: "4242" for k in m.paths}


def test_apply_before_create(v1):
    with pytest.raises(FailedPrecondition, match="create"):
        CgroupManager("/barque/c1", v1[0], mountinfo=v1[1]).apply(1)


# ---- set ------------------------------------------------------------------------------------------------------------

FULL = {
    "memory": {"limit": 32 << 20, "reservation": 16 << 20, "swap": 64 << 20, "swappiness": 0},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
    "pids": {"limit": 10},
    "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3,
                                                     "access": "rwm"}],
}


def read(m: CgroupManager, key: str, name: str) -> str:
    return (m.paths[key] / name).read_text()


def test_set_v1(v1):
    m = CgroupManager("/barque/c1", v1[0], mountinfo=v1[1])
    m.create()
    populate(m)
    m.set(FULL)
    assert read(m, "memory", "memory.limit_in_bytes") == str(32 << 20)
    assert read(m, "memory", "memory.memsw.limit_in_bytes") == str(64 << 20)
    assert read(m, "memory", "memory.soft_limit_in_bytes") == str(16 << 20)
    assert read(m, "memory", "memory.swappiness") == "0"
    assert read(m, "cpu", "cpu.shares") == "512"
    assert read(m, "cpu", "cpu.cfs_quota_us") == "50000"
    assert read(m, "cpu", "cpu.cfs_period_us") == "100000"
    assert read(m, "cpuset", "cpuset.cpus") == "0-1"
    assert read(m, "pids", "pids.max") == "10"
    assert read(m, "devices", "devices.deny") == "a *:* rwm"
    assert read(m, "devices", "devices.allow") == "c 1:3 rwm"


def test_set_v2(v2):
    m = CgroupManager("/barque/c1", v2[0], mountinfo=v2[1])
    m.create()
    populate(m)
    m.set({**FULL, "hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 20}], "unified": {"memory.high": "30M"}})
    assert read(m, "unified", "memory.max") == str(32 << 20)
    assert read(m, "unified", "memory.low") == str(16 << 20)
    assert read(m, "unified", "memory.swap.max") == str(32 << 20)
    assert read(m, "unified", "cpu.weight") == "20"
    assert read(m, "unified", "cpu.max") == "50000 100000"
    assert read(m, "unified", "cpuset.cpus") == "0-1"
    assert read(m, "unified", "pids.max") == "10"
    assert read(m, "unified", "hugetlb.2MB.max") == str(2 << 20)
    assert read(m, "unified", "memory.high") == "30M"


def test_set_hybrid_routes_hugetlb_to_unified(hybrid):
    m = CgroupManager("/barque/c1", hybrid[0], mountinfo=hybrid[1])
    m.create()
    populate(m)
    m.set({"memory": {"limit": 1 << 20}, "hugepageLimits": [{"pageSize": "2MB", "limit": 0}]})
    assert read(m, "memory", "memory.limit_in_bytes") == str(1 << 20)
    assert read(m, "unified", "hugetlb.2MB.max") == "0"


def test_set_missing_controller_v2(v2):
    m = CgroupManager("/barque/c1", v2[0], mountinfo=v2[1])
    m.create()
    with pytest.raises(FailedPrecondition, match="pids controller is not enabled"):
        m.set({"pids": {"limit": 5}})


def test_set_controller_not_mounted_v1(tmp_path):
    root, mountinfo = make_tree(tmp_path, omit=("pids",))
    m = CgroupManager("/barque/c1", root, mountinfo=mountinfo)
    m.create()
    with pytest.raises(FailedPrecondition, match="pids controller is not mounted"):
        m.set({"pids": {"limit": 5}})


def test_set_before_create(v1):
    with pytest.raises(FailedPrecondition, match="create"):
        CgroupManager("/barque/c1", v1[0], mountinfo=v1[1]).set({"pids": {"limit": 5}})


def test_block_io_is_best_effort(v1, caplog):
    m = CgroupManager("/barque/c1", v1[0], mountinfo=v1[1])
    m.create()
    populate(m)
    with caplog.at_level(logging.WARNING):
        m.set({"blockIO": {"weight": 300, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 100}]}})
    assert "blkio.bfq.weight" in caplog.text  # neither weight file in the fixture: warned, not raised
    assert read(m, "blkio", "blkio.throttle.read_bps_device") == "8:0 100"


def test_memory_v1_raise_retries_in_the_other_order(v1, monkeypatch):
    """Raising the memory limit above the current memory+swap limit is refused until memsw is raised too."""
    from barque.cgroups import _fs

    m = CgroupManager("/barque/c1", v1[0], mountinfo=v1[1])
    m.create()
    populate(m, {"memory.memsw.limit_in_bytes": "100", "memory.limit_in_bytes": "100"})
    real_write = _fs.write

    def kernel_write(path: Path, value: str) -> None:
        if path.name == "memory.limit_in_bytes" and int(value) > int((path.parent /
                                                                     "memory.memsw.limit_in_bytes").read_text()):
            raise OSError(errno.EINVAL, "Invalid argument")
        real_write(path, value)

    monkeypatch.setattr(_fs, "write", kernel_write)
    m.set({"memory": {"limit": 200, "swap": 300}})
    assert read(m, "memory", "memory.limit_in_bytes") == "200"
    assert read(m, "memory", "memory.memsw.limit_in_bytes") == "300"
    with pytest.raises(InvalidArgument, match=r"memory.limit_in_bytes = '500'"):
        m.set({"memory": {"limit": 500}})


def test_refusal_categories(tmp_path):
    f = tmp_path / "cpuset.cpus"
    err = refusal(f, "99", OSError(errno.EINVAL, "Invalid argument"))
    assert isinstance(err, InvalidArgument) and "cpuset.cpus" in str(err) and "'99'" in str(err)
    assert isinstance(refusal(f, "1", OSError(errno.EBUSY, "busy")), InvalidArgument)
    assert isinstance(refusal(f, "1", OSError(errno.ENOENT, "x")), FailedPrecondition)
    assert isinstance(refusal(f, "1", OSError(errno.EPERM, "x")), FailedPrecondition)


def test_ensure_parent(v2):
    root, mountinfo = v2
    (root / "barque").mkdir()
    (root / "barque" / "memory.max").write_text("max")
    parent = ensure_parent(resources={"memory": {"limit": 1 << 30}}, root=root, mountinfo=mountinfo)
    assert parent.paths["unified"] == root / "barque"
    assert (root / "barque" / "memory.max").read_text() == str(1 << 30)
    assert ensure_parent("barque", root=root, mountinfo=mountinfo).exists()


# ---- stats ----------------------------------------------------------------------------------------------------------

def write_files(d: Path, files: dict[str, str]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)


def test_stats_v1(v1):
    root, mountinfo = v1
    m = CgroupManager("/c", root, mountinfo=mountinfo)
    m.create()
    write_files(m.paths["memory"], {
        "memory.usage_in_bytes": "1048576\n", "memory.max_usage_in_bytes": "2097152\n",
        "memory.limit_in_bytes": "9223372036854771712\n", "memory.failcnt": "3\n",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        "memory.stat": "cache 4096\nrss 8192\ntotal_rss 8192\n"})
    write_files(m.paths["cpuacct"], {
        "cpuacct.usage": "5000000000\n", "cpuacct.usage_user": "3000000000\n", "cpuacct.usage_sys": "2000000000\n",
        "cpuacct.usage_percpu": "2500000000 2500000000 \n",
        "cpu.stat": "nr_periods 10\nnr_throttled 4\nthrottled_time 123456\n"})
    write_files(m.paths["pids"], {"pids.current": "3\n", "pids.max": "max\n"})
    write_files(m.paths["blkio"], {"blkio.throttle.io_service_bytes_recursive":
                                   "8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\nTotal 12288\n",
                                   "blkio.throttle.io_serviced_recursive": "8:0 Read 1\n8:0 Write 2\n"})
    s = m.stats()
    assert s["memory"] == {"usage": 1048576, "max_usage": 2097152, "limit": None, "failcnt": 3, "oom_kills": 2,
                           "stats": {"cache": 4096, "rss": 8192, "total_rss": 8192}}
    assert s["cpu"] == {"usage_total": 5_000_000_000, "usage_user": 3_000_000_000, "usage_system": 2_000_000_000,
                        "percpu": [2_500_000_000, 2_500_000_000],
                        "throttling": {"periods": 10, "throttled_periods": 4, "throttled_time": 123456}}
    assert s["pids"] == {"current": 3, "limit": None}
    assert s["blkio"]["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "read", "value": 4096}, {"major": 8, "minor": 0, "op": "write", "value": 8192},
        {"major": 8, "minor": 0, "op": "total", "value": 12288}]
    assert len(s["blkio"]["io_serviced_recursive"]) == 2
    assert m.oom_kill_count() == 2


def test_stats_v1_cpuacct_stat_ticks(v1, monkeypatch):
    import os
    root, mountinfo = v1
    m = CgroupManager("/c", root, mountinfo=mountinfo)
    m.create()
    write_files(m.paths["cpuacct"], {"cpuacct.usage": "7\n", "cpuacct.stat": "user 30\nsystem 20\n"})
    monkeypatch.setattr(os, "sysconf", lambda name: 100)
    cpu = m.stats()["cpu"]
    assert (cpu["usage_user"], cpu["usage_system"]) == (300_000_000, 200_000_000)


def test_stats_v2(v2):
    root, mountinfo = v2
    m = CgroupManager("/c", root, mountinfo=mountinfo)
    m.create()
    write_files(m.paths["unified"], {
        "memory.current": "1048576\n", "memory.peak": "4194304\n", "memory.max": "33554432\n",
        "memory.events": "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n",
        "memory.stat": "anon 8192\nfile 4096\n",
        "cpu.stat": "usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\nnr_periods 10\nnr_throttled 4\n"
                    "throttled_usec 250\n",
        "pids.current": "2\n", "pids.max": "10\n",
        "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"})
    s = m.stats()
    assert s["memory"] == {"usage": 1048576, "max_usage": 4194304, "limit": 33554432, "failcnt": 7, "oom_kills": 1,
                           "stats": {"anon": 8192, "file": 4096}}
    assert s["cpu"] == {"usage_total": 5_000_000, "usage_user": 3_000_000, "usage_system": 2_000_000,
                        "throttling": {"periods": 10, "throttled_periods": 4, "throttled_time": 250_000}}
    assert s["pids"] == {"current": 2, "limit": 10}
    assert s["blkio"]["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "read", "value": 4096}, {"major": 8, "minor": 0, "op": "write", "value": 8192},
        {"major": 8, "minor": 0, "op": "discard", "value": 0}]
    assert m.oom_kill_count() == 1


def test_stats_of_missing_cgroup(v2):
    with pytest.raises(NotFound):
        CgroupManager("/nope", v2[0], mountinfo=v2[1]).stats()


# ---- freezer and processes ------------------------------------------------------------------------------------------

def test_freeze_v1(v1):
    m = CgroupManager("/c", v1[0], mountinfo=v1[1])
    m.create()
    populate(m, {"freezer.state": "THAWED"})
    m.freeze()
    assert m.frozen() and read(m, "freezer", "freezer.state") == "FROZEN"
    m.thaw()
    assert not m.frozen()


def test_freeze_v2_waits_for_the_event(v2):
    m = CgroupManager("/c", v2[0], mountinfo=v2[1])
    m.create()
    populate(m, {"cgroup.events": "populated 1\nfrozen 0\n"})
    with pytest.raises(Unavailable, match="did not freeze"):  # the fake kernel never reports frozen
        m.freeze(timeout=0.05)
    assert read(m, "unified", "cgroup.freeze") == "0"  # thawed again rather than left half-frozen
    (m.paths["unified"] / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    m.freeze(timeout=0.05)
    assert m.frozen() and read(m, "unified", "cgroup.freeze") == "1"


def test_no_freezer_on_v1_without_it(tmp_path):
    root, mountinfo = make_tree(tmp_path, omit=("freezer",))
    m = CgroupManager("/c", root, mountinfo=mountinfo)
    m.create()
    with pytest.raises(FailedPrecondition, match="freezer"):
        m.freeze()


def test_pids_include_sub_cgroups(v2):
    m = CgroupManager("/c", v2[0], mountinfo=v2[1])
    m.create()
    write_files(m.paths["unified"], {"cgroup.procs": "10\n11\n"})
    write_files(m.paths["unified"] / "inner", {"cgroup.procs": "12\n"})
    assert m.pids() == [10, 11, 12]


def test_kill_and_destroy_of_missing_cgroup_are_no_ops(v1):
    m = CgroupManager("/never-made", v1[0], mountinfo=v1[1])
    m.kill()
    m.destroy()
    m.destroy()
    assert not m.exists()


def test_kill_v1_freezes_signals_each_once_and_thaws(v1, monkeypatch):
    import os

    m = CgroupManager("/c", v1[0], mountinfo=v1[1])
    m.create()
    populate(m, {"freezer.state": "THAWED"})
    (m.paths["freezer"] / "cgroup.procs").write_text(f"10\n11\n{os.getpid()}\n")
    states = []
    sent = []

    def fake_kill(pid: int, sig: int) -> None:
        states.append(read(m, "freezer", "freezer.state"))
        sent.append((pid, sig))

    monkeypatch.setattr(os, "kill", fake_kill)
    m.kill(15)
    assert sent == [(10, 15), (11, 15)]  # never the caller itself
    assert states == ["FROZEN", "FROZEN"]  # no fork can slip between listing and signalling
    assert read(m, "freezer", "freezer.state") == "THAWED"


def test_kill_without_freezer_signals_new_processes_only(tmp_path, monkeypatch):
    import os

    root, mountinfo = make_tree(tmp_path, omit=("freezer",))
    m = CgroupManager("/c", root, mountinfo=mountinfo)
    m.create()
    def processes(text: str) -> None:  # the same tasks in every hierarchy, as after apply()
        for d in m.paths.values():
            (d / "cgroup.procs").write_text(text)

    processes("10\n")
    sent = []

    def fake_kill(pid: int, sig: int) -> None:
        sent.append(pid)
        if pid == 10:
            processes("10\n12\n")  # it forked meanwhile

    monkeypatch.setattr(os, "kill", fake_kill)
    m.kill(15)
    assert sent == [10, 12]
