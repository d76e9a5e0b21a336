"""Every way `create` can fail exits non-zero with a message naming the problem (on stderr and in the JSON log the
shim reads) and leaves nothing behind: no state directory, cgroup, mount or process."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.integration.runtime_support import (  # noqa: F401 - fixtures
    assert_nothing_left, bundle, busybox_tree, mount_points, rt,
)

pytestmark = pytest.mark.root


def _bad_json(b):
    (b.path / "config.json").write_text("{not json")


def _missing_rootfs(b):
    shutil.rmtree(b.rootfs)


def _no_args(b):
    b.spec["process"]["args"] = []


def _bad_mappings(b):
    b.spec["linux"]["namespaces"].append({"type": "user"})
    b.spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536},
                                      {"containerID": 1000, "hostID": 300000, "size": 10}]
    b.spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def _unknown_syscall(b):
    b.spec["linux"]["seccomp"]["syscalls"].append({"names": ["no_such_syscall_at_all"], "action": "SCMP_ACT_ERRNO"})


def _unsupported_namespace(b):
    b.spec["linux"]["namespaces"].append({"type": "sandwich"})


def _unknown_capability(b):
    b.spec["process"]["capabilities"]["bounding"].append("CAP_MAKE_COFFEE")


def _missing_executable(b):
    b.spec["process"]["args"] = ["/no/such/program"]


def _bad_namespace_path(b):
    b.spec["linux"]["namespaces"] = [ns for ns in b.spec["linux"]["namespaces"] if ns["type"] != "network"]
    b.spec["linux"]["namespaces"].append({"type": "network", "path": "/proc/999999999/ns/net"})


def _bad_mount(b):
    b.spec["mounts"].append({"destination": "/data", "type": "bind", "source": "/no/such/dir", "options": ["rbind"]})


def _bad_resource(b):
    b.spec["linux"]["resources"]["cpu"] = {"cpus": "999-1000"}


CASES = [
    (_bad_json, "not valid JSON"),
    (_missing_rootfs, "rootfs"),
    (_no_args, "process.args"),
    (_bad_mappings, "overlap"),
    (_unknown_syscall, "no_such_syscall_at_all"),
    (_unsupported_namespace, "sandwich"),
    (_unknown_capability, "CAP_MAKE_COFFEE"),
    (_missing_executable, "/no/such/program"),
    (_bad_namespace_path, "/proc/999999999/ns/net"),
    (_bad_mount, "/no/such/dir"),
    (_bad_resource, "cpuset.cpus"),
]


@pytest.mark.parametrize("break_it,expected", CASES, ids=[c[0].__name__.strip("_") for c in CASES])
def test_create_failure_names_the_problem_and_leaves_nothing(rt, bundle, break_it, expected):
    mounts_before = mount_points()
    break_it(bundle)
    if break_it is not _bad_json:
        bundle.write()
    res = rt("create", "--bundle", bundle.path, bundle.cid, check=False)
    assert res.returncode != 0
    assert expected in res.stderr, res.stderr
    last = json.loads(rt.last_log())
    assert last["level"] == "error" and expected in last["msg"] and last["time"]
    assert_nothing_left(rt, bundle, mounts_before)
    assert not (rt.root / bundle.cid).exists()


def test_run_failure_leaves_nothing(rt, bundle):
    mounts_before = mount_points()
    bundle.set_args("no-such-program")
    res = rt("run", "--bundle", bundle.path, bundle.cid, check=False)
    assert res.returncode != 0 and 'exec: "no-such-program": executable file not found in $PATH' in res.stderr
    assert_nothing_left(rt, bundle, mounts_before)
