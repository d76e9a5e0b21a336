"""The engine's security defaults: the seccomp profile's structure, mounts, devices, base_spec, privileged."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pyseccomp
import pytest

from barque.errors import InvalidArgument
from barque.runtime import defaults
from barque.runtime.caps import ALL_CAPABILITIES, available_capabilities
from barque.runtime.defaults import (DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS, base_spec,
                                     default_device_rules, default_devices, default_mounts,
                                     default_seccomp_profile, privileged)
from barque.runtime.profiles import seccomp_default as data
from barque.runtime.seccomp import ARCHITECTURES, build_filter, known_syscall

MODERN = (6, 1)

# What a default container must not be able to call at all (Docker's default blocks these too).
BLOCKED = {
    "mount", "umount", "umount2", "mount_setattr", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
    "fspick", "pivot_root", "unshare", "setns", "clone3", "kexec_load", "kexec_file_load", "init_module",
    "finit_module", "delete_module", "reboot", "keyctl", "add_key", "request_key", "clock_settime",
    "clock_settime64", "settimeofday", "stime", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "open_by_handle_at", "swapon", "swapoff", "acct", "quotactl",
    "quotactl_fd", "lookup_dcookie", "sethostname", "setdomainname", "syslog", "iopl", "ioperm", "vhangup",
    "mbind", "set_mempolicy", "get_mempolicy", "move_pages", "migrate_pages", "uselib", "ustat", "sysfs",
    "_sysctl", "nfsservctl", "create_module", "query_module", "get_kernel_syms", "vm86", "vm86old", "bdflush",
    "fanotify_init", "lsm_set_self_attr", "lsm_get_self_attr", "lsm_list_modules",
}


def allow_entries(profile: dict) -> list[dict]:
    return [e for e in profile["syscalls"] if e["action"] == "SCMP_ACT_ALLOW"]


def unconditional(profile: dict) -> set[str]:
    return {n for e in allow_entries(profile) if not e.get("args") for n in e["names"]}


def conditional(profile: dict) -> set[str]:
    return {n for e in profile["syscalls"] if e.get("args") or e["action"] != "SCMP_ACT_ALLOW" for n in e["names"]}


def x86_64_arches() -> list[int]:
    return [getattr(pyseccomp.Arch, ARCHITECTURES[a]) for a in data.ARCH_FAMILIES["x86_64"]]


# -- capabilities and paths -----------------------------------------------------------------------------------

def test_default_capabilities_are_dockers_fourteen():
    assert len(DEFAULT_CAPABILITIES) == len(set(DEFAULT_CAPABILITIES)) == 14
    assert set(DEFAULT_CAPABILITIES) <= set(ALL_CAPABILITIES)
    assert "CAP_SYS_ADMIN" not in DEFAULT_CAPABILITIES and "CAP_NET_ADMIN" not in DEFAULT_CAPABILITIES


def test_masked_and_readonly_paths():
    for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/sys/firmware"):
        assert p in MASKED_PATHS
    assert "/proc/sysrq-trigger" in READONLY_PATHS and "/proc/sys" in READONLY_PATHS
    assert not set(MASKED_PATHS) & set(READONLY_PATHS)


def test_masked_paths_add_each_cpus_thermal_throttle(tmp_path: Path):
    cpus = tmp_path / "devices/system/cpu"
    for name in ("cpu0", "cpu1", "cpu10", "cpu2"):
        (cpus / name).mkdir(parents=True)
    for name in ("cpu0", "cpu10", "cpu2"):
        (cpus / name / "thermal_throttle").mkdir()
    (cpus / "cpufreq").mkdir()
    assert defaults.masked_paths(tmp_path) == [
        *MASKED_PATHS, "/sys/devices/system/cpu/cpu0/thermal_throttle",
        "/sys/devices/system/cpu/cpu2/thermal_throttle", "/sys/devices/system/cpu/cpu10/thermal_throttle",
    ]
    assert defaults.masked_paths(tmp_path / "nothing") == list(MASKED_PATHS)


# -- the seccomp profile --------------------------------------------------------------------------------------

def test_profile_shape():
    p = default_seccomp_profile()
    assert p["defaultAction"] == "SCMP_ACT_ERRNO" and p["defaultErrnoRet"] == 1
    assert p["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    first = p["syscalls"][0]
    assert first["action"] == "SCMP_ACT_ALLOW" and first["names"] == sorted(first["names"])
    assert {"read", "write", "execve", "clone", "socket", "personality", "chroot", "arch_prctl"} <= \
        unconditional(p) | conditional(p)


@pytest.mark.parametrize("caps", [DEFAULT_CAPABILITIES, (), ALL_CAPABILITIES])
def test_profile_has_no_duplicates(caps):
    p = default_seccomp_profile(caps, kernel=MODERN)
    names = [n for e in allow_entries(p) if not e.get("args") for n in e["names"]]
    assert len(names) == len(set(names))
    assert not unconditional(p) & conditional(p), "a name both unconditional and conditional"


@pytest.mark.parametrize("caps", [DEFAULT_CAPABILITIES, ALL_CAPABILITIES])
def test_every_name_is_known_to_libseccomp_for_x86_64(caps):
    arches = x86_64_arches()
    p = default_seccomp_profile(caps, arch="x86_64")
    for entry in p["syscalls"]:
        for name in entry["names"]:
            assert known_syscall(name, arches), name


def test_blocked_syscalls_are_not_allowed():
    p = default_seccomp_profile(DEFAULT_CAPABILITIES, kernel=MODERN)
    allowed = {n for e in allow_entries(p) for n in e["names"]}
    assert not (BLOCKED - {"clone3"}) & allowed
    clone3 = [e for e in p["syscalls"] if "clone3" in e["names"]]
    assert clone3 == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]


def test_no_capabilities_means_no_chroot():
    p = default_seccomp_profile((), kernel=MODERN)
    assert "chroot" not in unconditional(p) and "chroot" in unconditional(default_seccomp_profile(kernel=MODERN))


def test_capability_gated_syscalls_appear_only_with_the_capability():
    base = unconditional(default_seccomp_profile(DEFAULT_CAPABILITIES, kernel=MODERN))
    since_kernel = {n for _, names in data.SINCE_KERNEL for n in names}
    for cap, names in data.BY_CAPABILITY.items():
        gated = set(names) - since_kernel
        if cap in DEFAULT_CAPABILITIES:
            assert gated <= base, cap
            continue
        assert not gated & base, f"{cap}: {gated & base} allowed without it"
        with_cap = unconditional(default_seccomp_profile((*DEFAULT_CAPABILITIES, cap), kernel=MODERN))
        known = {n for n in gated if known_syscall(n, x86_64_arches())}
        assert known <= with_cap, f"{cap}: {known - with_cap} missing with it"


def test_examples_of_capability_gates():
    def allowed(*caps: str) -> set[str]:
        return unconditional(default_seccomp_profile((*DEFAULT_CAPABILITIES, *caps), kernel=MODERN))

    assert {"mount", "umount2", "unshare", "setns", "clone", "clone3"} <= allowed("CAP_SYS_ADMIN")
    assert {"clock_settime", "settimeofday"} <= allowed("CAP_SYS_TIME")
    assert {"init_module", "finit_module", "delete_module"} <= allowed("CAP_SYS_MODULE")
    assert "reboot" in allowed("CAP_SYS_BOOT") and "reboot" not in allowed()
    assert "syslog" in allowed("CAP_SYSLOG") and "bpf" in allowed("CAP_BPF")
    assert "perf_event_open" in allowed("CAP_PERFMON") and "open_by_handle_at" in allowed("CAP_DAC_READ_SEARCH")
    assert {"iopl", "ioperm"} <= allowed("CAP_SYS_RAWIO") and "vhangup" in allowed("CAP_SYS_TTY_CONFIG")
    assert "mbind" in allowed("CAP_SYS_NICE") and "acct" in allowed("CAP_SYS_PACCT")


def test_with_sys_admin_clone_is_unrestricted():
    p = default_seccomp_profile((*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"), kernel=MODERN)
    assert "clone" in unconditional(p) and "clone3" in unconditional(p)
    assert not [e for e in p["syscalls"] if e.get("args") and "clone" in e["names"]]


def test_ptrace_follows_the_kernel_version():
    old = unconditional(default_seccomp_profile(kernel=(4, 4)))
    new = unconditional(default_seccomp_profile(kernel=(4, 8)))
    assert "ptrace" not in old and "process_vm_readv" not in old
    assert {"ptrace", "process_vm_readv", "kcmp"} <= new
    assert "ptrace" in unconditional(default_seccomp_profile((*DEFAULT_CAPABILITIES, "CAP_SYS_PTRACE"),
                                                             kernel=(4, 4)))


def _matches(arg: dict, value: int) -> bool:
    op, a, b = arg["op"], arg["value"], arg.get("valueTwo", 0)
    return {"SCMP_CMP_EQ": value == a, "SCMP_CMP_NE": value != a, "SCMP_CMP_LT": value < a,
            "SCMP_CMP_LE": value <= a, "SCMP_CMP_GT": value > a, "SCMP_CMP_GE": value >= a,
            "SCMP_CMP_MASKED_EQ": value & a == b}[op]


def allowed_with_arg0(profile: dict, name: str, value: int) -> bool:
    for e in allow_entries(profile):
        if name in e["names"] and all(_matches(a, value) for a in e.get("args", []) if a["index"] == 0):
            return True
    return False


def test_socket_families():
    p = default_seccomp_profile()
    for family in range(0, 64):
        assert allowed_with_arg0(p, "socket", family) == (family not in (data.AF_ALG, data.AF_VSOCK)), family


def test_personality_only_safe_values():
    p = default_seccomp_profile()
    for persona in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert allowed_with_arg0(p, "personality", persona)
    for persona in (0x0006, 0x0400000, 0x0040000, 0x0200000):  # PER_BSD, READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE…
        assert not allowed_with_arg0(p, "personality", persona), hex(persona)


def test_clone_flags_without_sys_admin():
    p = default_seccomp_profile()
    sigchld = 17
    assert allowed_with_arg0(p, "clone", sigchld | 0x00100000 | 0x01000000)  # fork-like flags
    for ns in (data.CLONE_NEWUSER, data.CLONE_NEWNS, data.CLONE_NEWPID, data.CLONE_NEWNET, data.CLONE_NEWUTS,
               data.CLONE_NEWIPC, data.CLONE_NEWCGROUP):
        assert not allowed_with_arg0(p, "clone", sigchld | ns), hex(ns)


def test_s390x_clone_rule_checks_the_second_argument():
    p = default_seccomp_profile(arch="s390x")
    (rule,) = [e for e in p["syscalls"] if e["names"] == ["clone"]]
    assert rule["args"][0]["index"] == 1


def test_architecture_names():
    assert default_seccomp_profile(arch="amd64") == default_seccomp_profile(arch="x86_64")
    assert default_seccomp_profile(arch="arm64")["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arch_prctl" not in unconditional(default_seccomp_profile(arch="aarch64"))
    assert "set_tls" in unconditional(default_seccomp_profile(arch="aarch64"))
    with pytest.raises(InvalidArgument, match='no default seccomp profile for architecture "vax"'):
        default_seccomp_profile(arch="vax")


def test_unknown_capability_refused():
    with pytest.raises(InvalidArgument, match='unknown capability "CAP_SYS_GOD"'):
        default_seccomp_profile(("CAP_SYS_GOD",))


@pytest.mark.parametrize("family", sorted(set(data.ARCH_FAMILIES) - {"s390x", "mips64"}))
def test_every_little_endian_family_builds_a_filter_here(family):
    build_filter(default_seccomp_profile(arch=family))
    build_filter(default_seccomp_profile(ALL_CAPABILITIES, arch=family))


@pytest.mark.parametrize("family, arch", [("s390x", "SCMP_ARCH_S390X"), ("mips64", "SCMP_ARCH_MIPS64")])
def test_big_endian_profiles_are_refused_on_this_little_endian_host(family, arch):
    with pytest.raises(InvalidArgument) as e:
        build_filter(default_seccomp_profile(arch=family))
    assert str(e.value).startswith(f'seccomp architecture "{arch}" cannot be used on this host (libseccomp: ')


# -- mounts, devices, the whole spec --------------------------------------------------------------------------

def test_default_mounts():
    mounts = {m["destination"]: m for m in default_mounts()}
    assert list(mounts) == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"]
    assert mounts["/proc"]["options"] == ["nosuid", "noexec", "nodev"]
    assert "ro" in mounts["/sys"]["options"] and "ro" in mounts["/sys/fs/cgroup"]["options"]
    assert {"newinstance", "ptmxmode=0666", "mode=0620", "gid=5"} <= set(mounts["/dev/pts"]["options"])
    assert {"mode=1777", "size=65536k", "noexec"} <= set(mounts["/dev/shm"]["options"])
    assert {"mode=755", "size=65536k", "strictatime"} <= set(mounts["/dev"]["options"])
    first = default_mounts()
    first[0]["options"].append("rw")
    assert "rw" not in default_mounts()[0]["options"]  # fresh copies each call


def test_default_devices():
    devices = {d["path"]: (d["type"], d["major"], d["minor"], d["fileMode"]) for d in default_devices()}
    assert devices == {"/dev/null": ("c", 1, 3, 0o666), "/dev/zero": ("c", 1, 5, 0o666),
                       "/dev/full": ("c", 1, 7, 0o666), "/dev/random": ("c", 1, 8, 0o666),
                       "/dev/urandom": ("c", 1, 9, 0o666), "/dev/tty": ("c", 5, 0, 0o666)}


def test_device_rules_deny_first_then_allow():
    rules = default_device_rules()
    assert rules[0] == {"allow": False, "access": "rwm"}
    allowed = {(r["type"], r.get("major"), r.get("minor"), r["access"]) for r in rules[1:] if r["allow"]}
    assert {("c", None, None, "m"), ("b", None, None, "m"), ("c", 1, 3, "rwm"), ("c", 5, 2, "rwm"),
            ("c", 5, 1, "rwm"), ("c", 136, None, "rwm")} <= allowed
    assert not any(r.get("type") == "b" and "r" in r["access"] for r in rules)


# A subset of the OCI runtime-spec config schema (schema/config-schema.json, config-linux.json, defs.json):
# the parts base_spec fills in, with the spec's required fields, patterns and enums.
_UINT32 = {"type": "integer", "minimum": 0, "maximum": 4294967295}
_UINT64 = {"type": "integer", "minimum": 0, "maximum": 18446744073709551615}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_CAPS = {"type": "array", "items": {"type": "string", "pattern": "^CAP_[A-Z_]+$"}}
OCI_SUBSET_SCHEMA = {
    "type": "object",
    "required": ["ociVersion"],
    "properties": {
        "ociVersion": {"type": "string", "pattern": r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$"},
        "hostname": {"type": "string"},
        "root": {"type": "object", "required": ["path"],
                 "properties": {"path": {"type": "string"}, "readonly": {"type": "boolean"}}},
        "mounts": {"type": "array", "items": {
            "type": "object", "required": ["destination"],
            "properties": {"destination": {"type": "string", "pattern": "^/"}, "source": {"type": "string"},
                           "type": {"type": "string"}, "options": _STRINGS}}},
        "process": {
            "type": "object", "required": ["cwd"],
            "properties": {
                "args": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                "env": {"type": "array", "items": {"type": "string", "pattern": "^[^=]+="}},
                "cwd": {"type": "string", "pattern": "^/"},
                "terminal": {"type": "boolean"},
                "noNewPrivileges": {"type": "boolean"},
                "user": {"type": "object", "required": ["uid", "gid"],
                         "properties": {"uid": _UINT32, "gid": _UINT32}},
                "capabilities": {"type": "object", "additionalProperties": False, "properties": {
                    s: _CAPS for s in ("bounding", "effective", "inheritable", "permitted", "ambient")}},
                "rlimits": {"type": "array", "items": {
                    "type": "object", "required": ["type", "soft", "hard"],
                    "properties": {"type": {"type": "string", "pattern": "^RLIMIT_[A-Z]+$"},
                                   "soft": _UINT64, "hard": _UINT64}}},
            }},
        "linux": {"type": "object", "properties": {
            "namespaces": {"type": "array", "items": {
                "type": "object", "required": ["type"],
                "properties": {"type": {"enum": ["mount", "pid", "network", "uts", "ipc", "user", "cgroup",
                                                 "time"]}, "path": {"type": "string"}}}},
            "devices": {"type": "array", "items": {
                "type": "object", "required": ["type", "path"],
                "properties": {"type": {"enum": ["c", "b", "u", "p"]}, "path": {"type": "string"},
                               "major": {"type": "integer"}, "minor": {"type": "integer"},
                               "fileMode": _UINT32, "uid": _UINT32, "gid": _UINT32}}},
            "resources": {"type": "object", "properties": {"devices": {"type": "array", "items": {
                "type": "object", "required": ["allow"],
                "properties": {"allow": {"type": "boolean"}, "type": {"enum": ["a", "b", "c"]},
                               "major": {"type": "integer"}, "minor": {"type": "integer"},
                               "access": {"type": "string", "pattern": "^[rwm]{1,3}$"}}}}}},
            "maskedPaths": _STRINGS,
            "readonlyPaths": _STRINGS,
            "seccomp": {
                "type": "object", "required": ["defaultAction"],
                "properties": {
                    "defaultAction": {"enum": ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                                               "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE",
                                               "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"]},
                    "defaultErrnoRet": _UINT32,
                    "architectures": {"type": "array", "items": {"type": "string", "pattern": "^SCMP_ARCH_"}},
                    "syscalls": {"type": "array", "items": {
                        "type": "object", "required": ["names", "action"], "additionalProperties": False,
                        "properties": {
                            "names": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                            "action": {"type": "string", "pattern": "^SCMP_ACT_"},
                            "errnoRet": _UINT32,
                            "args": {"type": "array", "items": {
                                "type": "object", "required": ["index", "value", "op"],
                                "additionalProperties": False,
                                "properties": {"index": {"type": "integer", "minimum": 0, "maximum": 5},
                                               "value": _UINT64, "valueTwo": _UINT64,
                                               "op": {"enum": ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE",
                                                               "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
                                                               "SCMP_CMP_MASKED_EQ"]}}}}}}},
                }},
        }},
    },
}


def test_base_spec_validates_against_the_oci_schema_subset():
    jsonschema.validate(base_spec(), OCI_SUBSET_SCHEMA)
    jsonschema.validate(privileged(base_spec(["/bin/echo", "hi"], "/tmp/rootfs", terminal=True)), OCI_SUBSET_SCHEMA)


def test_base_spec_contents():
    spec = base_spec(["/bin/echo", "hello"], rootfs="/b/rootfs", terminal=True)
    process, linux = spec["process"], spec["linux"]
    assert process["args"] == ["/bin/echo", "hello"] and process["terminal"] is True
    assert "TERM=xterm" in process["env"] and process["env"][0].startswith("PATH=")
    assert process["noNewPrivileges"] is True
    assert process["user"] == {"uid": 0, "gid": 0} and process["cwd"] == "/"
    caps = process["capabilities"]
    assert set(caps) == {"bounding", "effective", "permitted"}  # no inheritable (CVE-2022-24769), no ambient
    assert all(caps[s] == list(DEFAULT_CAPABILITIES) for s in caps)
    assert process["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    assert spec["root"] == {"path": "/b/rootfs", "readonly": False}
    assert [n["type"] for n in linux["namespaces"]] == ["pid", "network", "ipc", "uts", "mount", "cgroup"]
    assert set(MASKED_PATHS) <= set(linux["maskedPaths"]) and linux["readonlyPaths"] == list(READONLY_PATHS)
    assert linux["seccomp"] == default_seccomp_profile(DEFAULT_CAPABILITIES)
    assert linux["resources"]["devices"] == default_device_rules()
    assert linux["devices"] == default_devices()
    assert "TERM=xterm" not in base_spec()["process"]["env"]
    build_filter(linux["seccomp"])


def test_base_spec_refuses_empty_args():
    with pytest.raises(InvalidArgument):
        base_spec([])
    with pytest.raises(InvalidArgument):
        base_spec("sh")


def test_privileged_lifts_the_restrictions():
    spec = base_spec()
    before = copy.deepcopy(spec)
    p = privileged(spec)
    assert spec == before  # the input is left alone
    caps = p["process"]["capabilities"]
    assert all(caps[s] == list(available_capabilities()) for s in ("bounding", "effective", "permitted"))
    assert set(DEFAULT_CAPABILITIES) < set(caps["bounding"])
    assert "seccomp" not in p["linux"]
    assert p["linux"]["maskedPaths"] == [] and p["linux"]["readonlyPaths"] == []
    assert p["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    mounts = {m["destination"]: m for m in p["mounts"]}
    assert "ro" not in mounts["/sys"]["options"] and "rw" in mounts["/sys"]["options"]
    assert "ro" not in mounts["/sys/fs/cgroup"]["options"]
    assert p["process"]["noNewPrivileges"] is False
    assert p["linux"]["namespaces"] == spec["linux"]["namespaces"]


def test_public_surface():
    from barque.runtime import caps, seccomp

    for module in (caps, seccomp, defaults, data):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
    assert {"ALL_CAPABILITIES", "validate_capabilities", "keep_caps_across_setuid", "apply_capabilities"} \
        <= set(caps.__all__)
    assert {"build_filter", "load_filter"} <= set(seccomp.__all__)
    assert {"DEFAULT_CAPABILITIES", "MASKED_PATHS", "READONLY_PATHS", "default_seccomp_profile", "default_mounts",
            "default_devices", "base_spec", "privileged"} <= set(defaults.__all__)
