"""The cgroup v2 device program generator: instruction encoding, the emitted stream for sample rule sets, runc's
last-match-wins order, wildcards, type "a", and an interpreter of the emitted subset checking verdicts."""

from __future__ import annotations

import struct

import pytest

from barque.cgroups import devices_bpf as d
from barque.errors import InvalidArgument

PROLOGUE = [
    ("ldxw", 2, 1, 0, 0), ("and32", 2, 0, 0, 0xffff),
    ("ldxw", 3, 1, 0, 0), ("rsh32", 3, 0, 0, 16),
    ("ldxw", 4, 1, 4, 0), ("ldxw", 5, 1, 8, 0),
]
DENY = [("mov32", 0, 0, 0, 0), ("exit", 0, 0, 0, 0)]
ALLOW = [("mov32", 0, 0, 0, 1), ("exit", 0, 0, 0, 0)]


def test_insn_encoding() -> None:
    assert d.insn(d.LDX_MEM_W, dst=2, src=1, off=4) == bytes([0x61, 0x12, 4, 0, 0, 0, 0, 0])
    assert d.insn(d.MOV32_IMM, dst=0, imm=1) == bytes([0xb4, 0x00, 0, 0, 1, 0, 0, 0])
    assert d.insn(d.JNE_IMM, dst=5, off=2, imm=3) == bytes([0x55, 0x05, 2, 0, 3, 0, 0, 0])
    assert d.insn(d.JNE_REG, dst=1, src=3, off=-1) == bytes([0x5d, 0x31, 0xff, 0xff, 0, 0, 0, 0])
    assert d.insn(d.EXIT) == bytes([0x95, 0, 0, 0, 0, 0, 0, 0])


def test_no_rules_denies_everything() -> None:
    p = d.program([])
    assert len(p) == 8 * 8
    assert d.decode(p) == PROLOGUE + DENY


def test_golden_bytes_dev_null_only() -> None:
    p = d.program([{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}])
    assert d.decode(p) == PROLOGUE + [
        ("jne", 2, 0, 4, d.DEV_CHAR),   # not a char device: skip the 4 instructions to the default
        ("jne", 4, 0, 3, 1),
        ("jne", 5, 0, 2, 3),
    ] + ALLOW + DENY
    assert p.hex() == ("6112000000000000" "54020000ffff0000" "6113000000000000" "7403000010000000"
                       "6114040000000000" "6115080000000000"
                       "5502040002000000" "5504030001000000" "5505020003000000"
                       "b400000001000000" "9500000000000000" "b400000000000000" "9500000000000000")


def test_access_subset_check() -> None:
    p = d.program([{"allow": True, "type": "b", "major": 8, "minor": 0, "access": "rw"}])
    assert d.decode(p)[6:] == [
        ("jne", 2, 0, 7, d.DEV_BLOCK),
        ("mov32", 1, 3, 0, 0), ("and32", 1, 0, 0, d.ACC_READ | d.ACC_WRITE), ("jne", 1, 3, 4, 0),  # req ⊆ rw
        ("jne", 4, 0, 3, 8), ("jne", 5, 0, 2, 0),
    ] + ALLOW + DENY
    p = d.program([{"allow": False, "type": "b", "major": 8, "minor": 0, "access": "w"}])
    assert d.decode(p)[6:] == [
        ("jne", 2, 0, 7, d.DEV_BLOCK),
        ("mov32", 1, 3, 0, 0), ("and32", 1, 0, 0, d.ACC_WRITE), ("jeq", 1, 0, 4, 0),  # req ∩ w ≠ ∅
        ("jne", 4, 0, 3, 8), ("jne", 5, 0, 2, 0),
    ] + DENY + DENY


def test_rules_emitted_in_reverse() -> None:
    p = d.program([{"allow": True, "type": "c", "major": 1, "minor": None},
                   {"allow": False, "type": "c", "major": 1, "minor": 5}])
    assert d.decode(p)[6:] == [
        ("jne", 2, 0, 4, 2), ("jne", 4, 0, 3, 1), ("jne", 5, 0, 2, 5), *DENY,  # the later deny, checked first
        ("jne", 2, 0, 3, 2), ("jne", 4, 0, 2, 1), *ALLOW,                       # minor null: no minor check
    ] + DENY


@pytest.mark.parametrize("wild", [None, -1])
def test_wildcards(wild) -> None:
    p = d.program([{"allow": True, "type": "c", "major": wild, "minor": wild, "access": "rwm"}])
    assert d.decode(p)[6:] == [("jne", 2, 0, 2, 2)] + ALLOW + DENY
    p = d.program([{"allow": True, "type": "c", "major": wild, "minor": 7, "access": "rwm"}])
    assert d.decode(p)[6:] == [("jne", 2, 0, 3, 2), ("jne", 5, 0, 2, 7)] + ALLOW + DENY


def test_type_a_ignores_numbers_and_ends_the_program() -> None:
    # type "a" with every access matches everything: what comes before it in the spec is unreachable, and so is the
    # default — the verifier refuses unreachable instructions, so neither is emitted
    p = d.program([{"allow": True, "type": "c", "major": 1, "minor": 3},
                   {"allow": False, "type": "a", "major": 9, "minor": 9}])
    assert d.decode(p) == PROLOGUE + DENY
    p = d.program([{"allow": False, "type": "a"}, {"allow": True, "type": "c", "major": 1, "minor": 3}])
    assert d.decode(p) == PROLOGUE + [("jne", 2, 0, 4, 2), ("jne", 4, 0, 3, 1), ("jne", 5, 0, 2, 3)] + ALLOW + DENY
    p = d.program([{"allow": True, "type": "a", "access": "m"}])
    assert d.decode(p)[6:] == [("mov32", 1, 3, 0, 0), ("and32", 1, 0, 0, d.ACC_MKNOD), ("jne", 1, 3, 2, 0)] \
        + ALLOW + DENY


@pytest.mark.parametrize("rule", [
    {"allow": "yes", "type": "c"},
    {"allow": True, "type": "q"},
    {"allow": True, "type": "c", "access": "rx"},
    {"allow": True, "type": "c", "major": "one"},
])
def test_malformed_rules_refused(rule) -> None:
    with pytest.raises(InvalidArgument):
        d.program([rule])


# ---- an interpreter of the emitted subset: verdicts for whole rule sets ---------------------------------------------

def run(program: bytes, dev_type: int, access: int, major: int, minor: int) -> bool:
    """Execute the program on a bpf_cgroup_dev_ctx; r1 points at the context (standing for it: the marker "ctx")."""
    ctx = struct.pack("<III", (access << 16) | dev_type, major, minor)
    regs: list = [0] * 11
    regs[1] = "ctx"
    pc = 0
    for _ in range(len(program) // 8 + 1):  # no backward jumps: every instruction runs at most once
        code, r, off, imm = struct.unpack_from("<BBhi", program, pc * 8)
        dst, src = r & 0xf, r >> 4
        pc += 1
        if code == d.LDX_MEM_W:
            assert regs[src] == "ctx" and off in (0, 4, 8)
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == d.MOV32_IMM:
            regs[dst] = imm & 0xffffffff
        elif code == d.MOV32_REG:
            regs[dst] = regs[src]
        elif code == d.AND32_IMM:
            regs[dst] &= imm & 0xffffffff
        elif code == d.RSH32_IMM:
            regs[dst] >>= imm
        elif code in (d.JNE_IMM, d.JEQ_IMM, d.JNE_REG):
            assert off > 0
            other = regs[src] if code == d.JNE_REG else imm & 0xffffffff
            if (regs[dst] != other) == (code != d.JEQ_IMM):
                pc += off
        elif code == d.EXIT:
            return regs[0] == 1
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("ran off the end")


C, B = d.DEV_CHAR, d.DEV_BLOCK
R, W, M = d.ACC_READ, d.ACC_WRITE, d.ACC_MKNOD
DOCKERISH = [
    {"allow": False, "type": "a"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "minor": None, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rw"},
    {"allow": True, "type": "b", "major": -1, "minor": -1, "access": "m"},
]


@pytest.mark.parametrize("dev, access, allowed", [
    ((C, 1, 3), R | W, True),
    ((C, 1, 3), M, True),
    ((C, 1, 5), R, False),
    ((B, 1, 3), R, False),       # same numbers, other type
    ((C, 136, 7), R | W, True),  # minor wildcard
    ((C, 137, 7), R, False),
    ((C, 5, 1), R | W, True),
    ((C, 5, 1), M, False),       # access not in the rule's
    ((C, 5, 1), R | M, False),
    ((B, 8, 0), M, True),        # block mknod of anything
    ((B, 8, 0), R, False),
])
def test_verdicts(dev, access, allowed) -> None:
    kind, major, minor = dev
    assert run(d.program(DOCKERISH), kind, access, major, minor) is allowed


def test_last_match_wins() -> None:
    allow_then_deny = [{"allow": True, "type": "c", "major": 1, "minor": None},
                       {"allow": False, "type": "c", "major": 1, "minor": 5}]
    p = d.program(allow_then_deny)
    assert run(p, C, R, 1, 3) and not run(p, C, R, 1, 5)
    p = d.program(list(reversed(allow_then_deny)))  # the allow now comes last and covers 1:5 too
    assert run(p, C, R, 1, 3) and run(p, C, R, 1, 5)


def test_allow_all_then_deny_one() -> None:
    p = d.program([{"allow": True, "type": "a"}, {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}])
    assert run(p, C, R, 1, 3) and not run(p, C, W, 1, 3) and not run(p, C, R | W, 1, 3) and run(p, B, W, 8, 0)


def test_default_deny() -> None:
    assert not run(d.program([]), C, R, 1, 3)
    assert not run(d.program([{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"}]), C, W, 1, 3)
