"""Spec → cgroup file values, for v1 and v2: pure functions, no files."""

from __future__ import annotations

import logging

import pytest

from barque.cgroups._convert import (
    Write,
    blkio_weight_to_io_weight,
    cpu_v1,
    cpu_v2,
    device_rule,
    devices_v1,
    devices_v2,
    hugetlb_v1,
    hugetlb_v2,
    io_v2,
    memory_v1,
    memory_v2,
    pids_v1,
    pids_v2,
    plan,
    shares_to_weight,
    swap_to_v2,
    unified_v2,
)
from barque.errors import InvalidArgument

V1_ALL = frozenset({"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb"})
V2_ALL = frozenset({"cpuset", "cpu", "io", "memory", "hugetlb", "pids"})


def files(writes: list[Write]) -> dict[str, str]:
    return {w.file: w.value for w in writes}


@pytest.mark.parametrize("shares,weight", [(2, 1), (1024, 39), (512, 20), (262144, 10000), (0, 0)])
def test_shares_to_weight_as_runc(shares, weight):
    assert shares_to_weight(shares) == weight


@pytest.mark.parametrize("blkio,io", [(10, 1), (500, 4950), (1000, 10000)])
def test_blkio_weight_to_io_weight(blkio, io):
    assert blkio_weight_to_io_weight(blkio) == io


@pytest.mark.parametrize("cpu,expected", [
    ({"quota": 50000, "period": 100000}, "50000 100000"),
    ({"quota": -1, "period": 100000}, "max 100000"),
    ({"quota": 20000}, "20000"),  # the kernel keeps the current period
    ({"period": 250000}, "max 250000"),
])
def test_cpu_max_v2(cpu, expected):
    assert files(cpu_v2({"cpu": cpu}))["cpu.max"] == expected


def test_cpu_v2_weight_idle_burst():
    got = files(cpu_v2({"cpu": {"shares": 1024, "idle": 1, "burst": 1000}}))
    assert got == {"cpu.weight": "39", "cpu.idle": "1", "cpu.max.burst": "1000"}


def test_cpu_v1_files_and_groups():
    writes = cpu_v1({"cpu": {"shares": 512, "quota": 50000, "period": 100000, "realtimePeriod": 1000000,
                             "realtimeRuntime": 950000, "idle": 0}})
    assert files(writes) == {"cpu.shares": "512", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "50000",
                             "cpu.rt_period_us": "1000000", "cpu.rt_runtime_us": "950000", "cpu.idle": "0"}
    groups = {w.file: w.group for w in writes}
    assert groups["cpu.cfs_period_us"] == groups["cpu.cfs_quota_us"] == "cfs"
    assert cpu_v1({"cpu": {"quota": -1}})[0].value == "-1"


def test_cpu_zero_values_are_unset_like_runc():
    assert cpu_v1({"cpu": {"shares": 0, "quota": 0, "period": 0}}) == []
    assert cpu_v2({"cpu": {"shares": 0, "quota": 0, "period": 0}}) == []


def test_realtime_is_v1_only():
    with pytest.raises(InvalidArgument, match="realtime"):
        cpu_v2({"cpu": {"realtimeRuntime": 1000}})


@pytest.mark.parametrize("cpu", [{"shares": 1}, {"shares": 300000}, {"quota": -2}, {"period": -1},
                                 {"shares": "1024"}, {"quota": True}])
def test_bad_cpu_values(cpu):
    with pytest.raises(InvalidArgument, match="linux.resources.cpu"):
        cpu_v1({"cpu": cpu})


def test_cpuset_both_versions():
    spec = {"cpu": {"cpus": "0-1", "mems": "0"}}
    w1 = plan(spec, V1_ALL, None)
    w2 = plan(spec, None, V2_ALL)
    assert [(w.version, w.controller, w.file, w.value) for w in w1] == [
        (1, "cpuset", "cpuset.cpus", "0-1"), (1, "cpuset", "cpuset.mems", "0")]
    assert [(w.version, w.controller, w.file, w.value) for w in w2] == [
        (2, "cpuset", "cpuset.cpus", "0-1"), (2, "cpuset", "cpuset.mems", "0")]


# ---- memory ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("swap,limit,expected", [
    (300, 100, 200), (100, 100, 0), (-1, 100, -1), (-1, None, -1), (0, -1, -1), (0, 100, None)])
def test_swap_to_v2(swap, limit, expected):
    assert swap_to_v2(swap, limit) == expected


@pytest.mark.parametrize("swap,limit", [(50, 100), (100, None), (100, -1)])
def test_swap_to_v2_refuses(swap, limit):
    with pytest.raises(InvalidArgument, match="swap"):
        swap_to_v2(swap, limit)


def test_memory_v2():
    got = files(memory_v2({"memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20}}))
    assert got == {"memory.max": str(64 << 20), "memory.swap.max": str(32 << 20), "memory.low": str(32 << 20)}
    unlimited = memory_v2({"memory": {"limit": -1}})
    assert files(unlimited) == {"memory.max": "max", "memory.swap.max": "max"}
    assert [w for w in unlimited if w.file == "memory.swap.max"][0].optional  # no swap accounting: fine


def test_memory_v1():
    writes = memory_v1({"memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20, "swappiness": 10,
                                   "disableOOMKiller": True, "kernel": 1 << 20}})
    assert files(writes) == {
        "memory.limit_in_bytes": str(64 << 20),
        "memory.memsw.limit_in_bytes": str(96 << 20),  # v1 takes memory+swap as the spec does
        "memory.soft_limit_in_bytes": str(32 << 20),
        "memory.swappiness": "10",
        "memory.oom_control": "1",
    }
    assert {w.group for w in writes if "limit_in_bytes" in w.file and "soft" not in w.file} == {"memory"}
    assert files(memory_v1({"memory": {"limit": -1}})) == {"memory.limit_in_bytes": "-1",
                                                           "memory.memsw.limit_in_bytes": "-1"}
    assert files(memory_v1({"memory": {"swappiness": -1}})) == {}


def test_memory_v2_warns_about_what_it_cannot_do(caplog):
    with caplog.at_level(logging.WARNING):
        assert memory_v2({"memory": {"swappiness": 10, "disableOOMKiller": True}}) == []
    assert "swappiness" in caplog.text and "disableOOMKiller" in caplog.text


@pytest.mark.parametrize("memory", [{"limit": -2}, {"limit": "32M"}, {"limit": 1.5}, {"swappiness": 101},
                                    {"limit": 100, "swap": 50}, {"reservation": -7}])
def test_bad_memory_values(memory):
    with pytest.raises(InvalidArgument, match="linux.resources.memory"):
        memory_v1({"memory": memory})
        memory_v2({"memory": memory})


# ---- pids -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("limit,expected", [(10, "10"), (-1, "max"), (0, "max")])
def test_pids_max(limit, expected):
    assert files(pids_v1({"pids": {"limit": limit}})) == {"pids.max": expected}
    assert files(pids_v2({"pids": {"limit": limit}})) == {"pids.max": expected}


def test_pids_negative():
    with pytest.raises(InvalidArgument, match="pids.limit"):
        pids_v2({"pids": {"limit": -3}})


# ---- devices --------------------------------------------------------------------------------------------------------

DOCKER_DEFAULT_DEVICES = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "minor": -1, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "major": 8, "access": "m"},
]


def test_devices_v1_in_order():
    assert [(w.file, w.value) for w in devices_v1({"devices": DOCKER_DEFAULT_DEVICES})] == [
        ("devices.deny", "a *:* rwm"),
        ("devices.allow", "c 1:3 rwm"),
        ("devices.allow", "c 136:* rwm"),
        ("devices.allow", "c *:* m"),
        ("devices.allow", "b 8:* m"),
    ]


@pytest.mark.parametrize("rule", [{"allow": "yes"}, {"allow": True, "type": "x"}, {"allow": True, "access": "rwx"},
                                  {"allow": True, "type": "c", "major": "1"}])
def test_bad_device_rules(rule):
    with pytest.raises(InvalidArgument, match=r"devices\[0\]"):
        device_rule(rule, 0)


def test_devices_v2_is_a_logged_no_op(caplog):
    with caplog.at_level(logging.WARNING):
        assert devices_v2({"devices": DOCKER_DEFAULT_DEVICES}) == []
    assert "eBPF" in caplog.text
    with pytest.raises(InvalidArgument):
        devices_v2({"devices": [{"allow": True, "type": "q"}]})


# ---- hugetlb, block I/O, unified ------------------------------------------------------------------------------------

def test_hugetlb():
    spec = {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}, {"pageSize": "1GB", "limit": 0}]}
    assert files(hugetlb_v1(spec)) == {"hugetlb.2MB.limit_in_bytes": str(4 << 20), "hugetlb.1GB.limit_in_bytes": "0"}
    assert files(hugetlb_v2(spec)) == {"hugetlb.2MB.max": str(4 << 20), "hugetlb.1GB.max": "0"}


@pytest.mark.parametrize("size", ["../../memory.max", "2mb", "", None, "2MB/x"])
def test_hugetlb_bad_page_size(size):
    with pytest.raises(InvalidArgument, match="pageSize"):
        hugetlb_v2({"hugepageLimits": [{"pageSize": size, "limit": 1}]})


def test_io_v2_best_effort_with_fallback():
    writes = io_v2({"blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 0}]}})
    assert all(w.best_effort for w in writes)
    assert writes[0].file == "io.bfq.weight" and writes[0].value == "500"
    assert writes[0].fallback.file == "io.weight" and writes[0].fallback.value == "4950"
    assert [w.value for w in writes[1:]] == ["8:0 rbps=1048576", "8:0 wiops=max"]


def test_unified_verbatim_and_checked():
    assert files(unified_v2({"unified": {"memory.high": "50M", "io.max": "8:0 rbps=10"}})) == {
        "memory.high": "50M", "io.max": "8:0 rbps=10"}
    for bad in ({"../cgroup.procs": "1"}, {"memory.high": 5}, {"": "x"}):
        with pytest.raises(InvalidArgument, match="unified"):
            unified_v2({"unified": bad})


# ---- the plan: which version for which controller -------------------------------------------------------------------

def test_plan_hybrid_routes_each_controller_to_its_hierarchy():
    spec = {"memory": {"limit": 1 << 30}, "pids": {"limit": 5},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 0}], "unified": {"hugetlb.2MB.rsvd.max": "0"}}
    got = {(w.version, w.file) for w in plan(spec, V1_ALL - {"hugetlb"}, frozenset({"hugetlb"}))}
    assert got == {(1, "memory.limit_in_bytes"), (1, "pids.max"), (2, "hugetlb.2MB.max"),
                   (2, "hugetlb.2MB.rsvd.max")}


def test_plan_v1_refuses_unified():
    with pytest.raises(InvalidArgument, match="cgroup v2"):
        plan({"unified": {"memory.high": "1"}}, V1_ALL, None)


def test_plan_v2_only_host():
    got = [(w.version, w.file, w.value) for w in plan({"memory": {"limit": 100}, "cpu": {"shares": 2}}, None, V2_ALL)]
    assert got == [(2, "memory.max", "100"), (2, "cpu.weight", "1")]


def test_plan_refuses_non_objects():
    with pytest.raises(InvalidArgument):
        plan({"memory": [1]}, V1_ALL, None)
    with pytest.raises(InvalidArgument):
        plan("memory", V1_ALL, None)  # type: ignore[arg-type]
    assert plan({}, V1_ALL, None) == [] and plan(None, None, V2_ALL) == []  # type: ignore[arg-type]
