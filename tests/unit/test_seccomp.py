"""build_filter: the spec's linux.seccomp → libseccomp, checked through libseccomp's own pseudo-filter-code export."""

from __future__ import annotations

import re
import tempfile

import pyseccomp
import pytest

from barque.errors import InvalidArgument
from barque.runtime.seccomp import ACTIONS, OPERATORS, build_filter, known_syscall


def pfc(f: pyseccomp.SyscallFilter) -> str:
    with tempfile.TemporaryFile() as t:
        f.export_pfc(t)
        t.seek(0)
        return t.read().decode()


def native_section(text: str) -> str:
    """The x86_64 part of the pseudo filter code (the first arch section)."""
    sections = re.split(r"^# filter for arch ", text, flags=re.M)
    return next(s for s in sections if s.startswith("x86_64"))


def spec(*syscalls: dict, **extra) -> dict:
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "syscalls": list(syscalls), **extra}


def test_allowlist_filter():
    f = build_filter(spec({"names": ["read", "write", "getpid"], "action": "SCMP_ACT_ALLOW"},
                          architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]))
    text = pfc(f)
    assert text.count("# filter for arch") == 3
    x86_64 = native_section(text)
    for name in ("read", "write", "getpid"):
        assert re.search(rf'syscall "{name}" \(\d+\).*\n.*\n\s+action ALLOW;', x86_64)
    assert "action ERRNO(1);" in x86_64  # the default


def test_every_action_builds():
    for action in ACTIONS:
        if action == "SCMP_ACT_ERRNO":
            continue  # the default action
        extra = {"listenerPath": "/run/x.sock"} if action == "SCMP_ACT_NOTIFY" else {}
        build_filter(spec({"names": ["getpid"], "action": action}, **extra))


def test_errno_and_trace_return_values():
    text = pfc(build_filter(spec(
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["getpid"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
        {"names": ["getppid"], "action": "SCMP_ACT_TRACE"},
        defaultAction="SCMP_ACT_KILL_PROCESS", defaultErrnoRet=None)))
    assert "action ERRNO(38);" in text and "action TRACE(7);" in text and "action TRACE(1);" in text
    assert "action KILL_PROCESS;" in text


def test_every_operator_builds():
    for i, op in enumerate(OPERATORS):
        build_filter(spec({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                           "args": [{"index": 0, "value": 8 + i, "valueTwo": 0, "op": op}]}))


def test_masked_eq_takes_the_mask_from_value():
    text = native_section(pfc(build_filter(spec(
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}))))
    assert "if ($a0.lo32 & 0x7e020000 == 0)" in text


def test_conditions_on_one_argument_are_alternatives():
    text = native_section(pfc(build_filter(spec(
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}))))
    assert "if ($a0.lo32 == 0)" in text and "if ($a0.lo32 == 8)" in text


def test_conditions_on_different_arguments_are_all_required():
    text = native_section(pfc(build_filter(spec(
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 1, "op": "SCMP_CMP_EQ"}]}))))
    a0 = text.index("if ($a0.lo32 == 2)")
    a1 = text.index("if ($a1.lo32 == 1)")
    assert a0 < a1  # nested: a1 is tested inside a0's branch


def test_rule_with_the_default_action_is_skipped():
    text = pfc(build_filter(spec({"names": ["mount"], "action": "SCMP_ACT_ERRNO"},
                                 {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"})))
    assert '"mount"' not in text and '"getpid"' in text


def test_name_known_only_on_a_secondary_architecture():
    with pytest.raises(InvalidArgument, match='unknown syscall "socketcall"'):
        build_filter(spec({"names": ["socketcall"], "action": "SCMP_ACT_ALLOW"}))
    text = pfc(build_filter(spec({"names": ["socketcall"], "action": "SCMP_ACT_ALLOW"},
                                 architectures=["SCMP_ARCH_X86"])))
    assert 'syscall "socketcall" (102)' in text


def test_known_syscall_counts_multiplexed_calls():
    x86 = [pyseccomp.Arch.X86]
    assert known_syscall("socket", x86) and known_syscall("semop", x86)  # through socketcall/ipc there
    assert not known_syscall("epoll_ctl_old", x86)
    assert not known_syscall("frobnicate", [pyseccomp.Arch.X86_64, pyseccomp.Arch.X86])


def test_flags_and_no_new_privs_attribute():
    f = build_filter(spec({"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                          flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                 "SECCOMP_FILTER_FLAG_TSYNC"]))
    assert f.get_attr(pyseccomp.Attr.CTL_LOG) == 1
    assert f.get_attr(pyseccomp.Attr.CTL_SSB) == 1
    assert f.get_attr(pyseccomp.Attr.CTL_TSYNC) == 1
    assert f.get_attr(pyseccomp.Attr.CTL_NNP) == 0  # no_new_privs follows the spec, not libseccomp


def test_native_architecture_listed_again_is_fine():
    build_filter(spec({"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}, architectures=["SCMP_ARCH_X86_64"]))


@pytest.mark.parametrize("bad, message", [
    (spec({"names": ["frobnicate"], "action": "SCMP_ACT_ALLOW"}),
     'unknown syscall "frobnicate" in linux.seccomp.syscalls[0]'),
    (spec({"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}, {"names": ["read", "wirte"], "action": "SCMP_ACT_ALLOW"}),
     'unknown syscall "wirte" in linux.seccomp.syscalls[1]'),
    (spec({"names": ["getpid"], "action": "SCMP_ACT_PERMIT"}),
     'unknown seccomp action "SCMP_ACT_PERMIT" in linux.seccomp.syscalls[0]'),
    ({"defaultAction": "SCMP_ACT_DENY"}, 'unknown seccomp action "SCMP_ACT_DENY" in linux.seccomp.defaultAction'),
    (spec({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
           "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XOR"}]}),
     'unknown seccomp operator "SCMP_CMP_XOR" (linux.seccomp.syscalls[0])'),
    (spec({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
           "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}),
     "seccomp argument index must be 0 to 5, not 6 (linux.seccomp.syscalls[0])"),
    (spec({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
           "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}),
     "seccomp argument values must be 64-bit unsigned integers, not -1 (linux.seccomp.syscalls[0])"),
    (spec(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_PDP11"]), 'unknown seccomp architecture "SCMP_ARCH_PDP11"'),
    (spec(flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]),
     'unsupported seccomp flag "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"'),
    (spec({"names": ["getpid"], "action": "SCMP_ACT_NOTIFY"}),
     "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath (linux.seccomp.syscalls[0])"),
    (spec({"names": ["write"], "action": "SCMP_ACT_NOTIFY"}, listenerPath="/run/l.sock"),
     "SCMP_ACT_NOTIFY cannot be used for the write syscall (linux.seccomp.syscalls[0])"),
    ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/l.sock"},
     "SCMP_ACT_NOTIFY cannot be the seccomp default action"),
    (spec({"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "errnoRet": 5}),
     "errnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not SCMP_ACT_ALLOW (linux.seccomp.syscalls[0])"),
    (spec({"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}),
     "errnoRet must be an integer from 0 to 65535, not 70000 (linux.seccomp.syscalls[0])"),
    (spec({"names": [], "action": "SCMP_ACT_ALLOW"}),
     "linux.seccomp.syscalls[0].names must be a non-empty list of syscall names"),
    (spec({"names": "getpid", "action": "SCMP_ACT_ALLOW"}),
     "linux.seccomp.syscalls[0].names must be a non-empty list of syscall names"),
    ({"syscalls": []}, "linux.seccomp.defaultAction is required"),
    ("SCMP_ACT_ALLOW", "linux.seccomp must be an object"),
])
def test_bad_specs_are_refused_with_a_clear_message(bad, message):
    with pytest.raises(InvalidArgument) as e:
        build_filter(bad)
    assert str(e.value) == message
