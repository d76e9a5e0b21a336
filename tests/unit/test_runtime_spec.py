"""config.json validation (every refusal names its field, before anything touches the system), mount options,
id mappings, the cgroups path default, container ids."""

from __future__ import annotations

import copy
import re
import json

import pytest

from barque.errors import InvalidArgument, NotFound
from barque.runtime import spec as s
from barque.runtime.defaults import base_spec


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def good(bundle) -> dict:
    return base_spec(["sh"], "rootfs")


def test_a_default_spec_validates_to_the_absolute_rootfs(bundle):
    assert s.validate(good(bundle), bundle) == bundle / "rootfs"


def test_load_bundle_errors(bundle):
    with pytest.raises(NotFound, match="no config.json"):
        s.load_bundle(bundle)
    (bundle / "config.json").write_text("{oops")
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        s.load_bundle(bundle)
    (bundle / "config.json").write_text("[]")
    with pytest.raises(InvalidArgument, match="JSON object"):
        s.load_bundle(bundle)
    (bundle / "config.json").write_text(json.dumps(good(bundle)))
    assert s.load_bundle(bundle)["process"]["args"] == ["sh"]


def _set(path: str, value):
    def change(spec):
        *parents, last = path.split(".")
        node = spec
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        if value is _DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return change


_DELETE = object()

BAD = [
    ("no ociVersion", _set("ociVersion", _DELETE), "ociVersion"),
    ("ociVersion 2", _set("ociVersion", "2.0.0"), "unsupported ociVersion"),
    ("no root", _set("root.path", ""), "root.path"),
    ("missing rootfs", _set("root.path", "nowhere"), "does not exist"),
    ("no process", _set("process", _DELETE), "process is missing"),
    ("empty args", _set("process.args", []), "process.args"),
    ("args not strings", _set("process.args", ["sh", 1]), "process.args"),
    ("relative cwd", _set("process.cwd", "tmp"), "process.cwd"),
    ("bad env", _set("process.env", ["NOEQUALS"]), "process.env"),
    ("negative uid", _set("process.user.uid", -1), "process.user.uid"),
    ("bad rlimit", _set("process.rlimits", [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]), "RLIMIT_BOGUS"),
    ("soft above hard", _set("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 9, "hard": 1}]), "exceeds"),
    ("oom range", _set("process.oomScoreAdj", 5000), "oomScoreAdj"),
    ("relative mount", _set("mounts.0.destination", "proc"), "mounts[0].destination"),
    ("unknown namespace", _set("linux.namespaces.0", {"type": "sandwich"}), "unsupported namespace type"),
    ("namespace twice", _set("linux.namespaces.1", {"type": "pid"}), "listed twice"),
    ("missing ns path", _set("linux.namespaces.1", {"type": "network", "path": "/proc/0/ns/net"}), "does not exist"),
    ("no mount ns", _set("linux.namespaces", [{"type": "pid"}, {"type": "uts"}]), "mount namespace"),
    ("hostname without uts", _set("linux.namespaces", [{"type": "mount"}]), "UTS"),
    ("maps without userns", _set("linux.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}]),
     "no user namespace"),
    ("bad propagation", _set("linux.rootfsPropagation", "sideways"), "rootfsPropagation"),
    ("bad sysctl", _set("linux.sysctl", {"../x": "1"}), "linux.sysctl"),
    ("bad device", _set("linux.devices", [{"path": "/etc/x", "type": "c", "major": 1, "minor": 1}]),
     "linux.devices[0].path"),
    ("bad cgroups path", _set("linux.cgroupsPath", "/a/../b"), "cgroupsPath"),
    ("relative hook", _set("hooks", {"prestart": [{"path": "hook"}]}), "hooks.prestart[0].path"),
]


@pytest.mark.parametrize("name,change,message", BAD, ids=[b[0] for b in BAD])
def test_refusals_name_the_problem(bundle, name, change, message):
    spec = copy.deepcopy(good(bundle))
    change(spec)
    with pytest.raises((InvalidArgument, NotFound), match=re.escape(message)):
        s.validate(spec, bundle)


def _userns(spec, uid_maps, gid_maps=None):
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = uid_maps
    spec["linux"]["gidMappings"] = gid_maps if gid_maps is not None else uid_maps
    return spec


@pytest.mark.parametrize("maps,message", [
    ([], "needs both"),
    ([{"containerID": 0, "hostID": 100000, "size": 0}], "size must be at least 1"),
    ([{"containerID": 0, "hostID": 100000, "size": 10}, {"containerID": 5, "hostID": 200000, "size": 10}],
     "container ids 5-14 overlap"),
    ([{"containerID": 0, "hostID": 100000, "size": 10}, {"containerID": 50, "hostID": 100005, "size": 10}],
     "host ids 100005-100014 overlap"),
    ([{"containerID": 0, "hostID": 4294967290, "size": 10}], "32-bit"),
    ([{"containerID": 0, "hostID": "x", "size": 10}], "hostID"),
    ([{"containerID": 1, "hostID": 100000, "size": 10}], "uid 0 is not mapped"),
])
def test_mapping_refusals(bundle, maps, message):
    with pytest.raises(InvalidArgument, match=message):
        s.validate(_userns(good(bundle), maps), bundle)


def test_mappings_accepted_and_mapped(bundle):
    maps = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    s.validate(_userns(good(bundle), maps), bundle)
    assert s.map_id(maps, 0) == 100000 and s.map_id(maps, 65535) == 165535 and s.map_id(maps, 65536) is None


def test_mount_options():
    o = s.parse_mount_options(["rbind", "ro", "nosuid", "rprivate", "mode=755", "size=65536k", "tmpcopyup"])
    assert o.bind and o.recursive and o.flags & 0x1 and o.flags & 0x2
    assert o.propagation == [(1 << 18) | 0x4000]
    assert o.data == "mode=755,size=65536k"
    assert s.parse_mount_options(["ro", "rw"]).flags & 0x1 == 0, "the last word wins"


def test_cgroups_path_default_is_under_the_barque_parent():
    assert s.cgroups_path({}, "abc") == "/barque/abc"
    assert s.cgroups_path({"linux": {"cgroupsPath": "/docker/abc"}}, "abc") == "/docker/abc"
    assert s.cgroups_path({"linux": {"cgroupsPath": "system.slice:docker:abc"}}, "abc") == "system.slice:docker:abc"


@pytest.mark.parametrize("cid", ["", "a/b", "..", "a b", "x\0"])
def test_bad_container_ids(cid):
    with pytest.raises(InvalidArgument, match="invalid container id"):
        s.check_id(cid)


def test_good_container_ids():
    for cid in ("abc", "a-b_c.d+e", "0" * 64):
        s.check_id(cid)


def test_namespace_helpers():
    spec = {"linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/proc/1/ns/net"}]}}
    assert s.new_namespaces(spec) == ["pid"]
    assert s.joined_namespaces(spec) == [("network", "/proc/1/ns/net")]
    assert s.namespace(spec, "network")["path"] == "/proc/1/ns/net" and s.namespace(spec, "uts") is None
