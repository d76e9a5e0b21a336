"""The OCI `linux.resources.devices` allowlist as an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE (cgroup v2).

The kernel runs the program on each device access with a `struct bpf_cgroup_dev_ctx` in r1:
    u32 access_type   low 16 bits the device type (BPF_DEVCG_DEV_BLOCK 1, CHAR 2),
                      high 16 bits the access (BPF_DEVCG_ACC_MKNOD 1, READ 2, WRITE 4)
    u32 major, u32 minor
and allows it if the program returns 1. Semantics are runc's: the rules are read in order and the last one that
matches decides, so they are emitted in reverse and the program returns at the first match; nothing matching is
denied. A rule matches when its type is "a" or the device's, its major and minor are wildcards (-1/null) or equal,
and for an allow the requested access is a subset of the rule's, for a deny it shares any access with the rule's
(as the v1 controller's deny exceptions: "deny c 1:3 w" refuses an O_RDWR open too, which a subset test would let
fall through to an earlier "allow a"; runc gets the same effect by normalising the rules before generating).
"""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path

from barque.linux import _libc

from ._convert import device_rule

# ---- a tiny eBPF assembler ------------------------------------------------------------------------------------------

# opcodes (class | op | source), from include/uapi/linux/bpf.h and bpf_common.h
LDX_MEM_W = 0x61    # BPF_LDX | BPF_MEM | BPF_W      dst = *(u32 *)(src + off)
MOV32_IMM = 0xb4    # BPF_ALU | BPF_MOV | BPF_K      dst = imm (32-bit)
MOV32_REG = 0xbc    # BPF_ALU | BPF_MOV | BPF_X      dst = src (32-bit)
AND32_IMM = 0x54    # BPF_ALU | BPF_AND | BPF_K
RSH32_IMM = 0x74    # BPF_ALU | BPF_RSH | BPF_K
JEQ_IMM = 0x15      # BPF_JMP | BPF_JEQ | BPF_K      if dst == imm: pc += off
JNE_IMM = 0x55      # BPF_JMP | BPF_JNE | BPF_K      if dst != imm: pc += off
JNE_REG = 0x5d      # BPF_JMP | BPF_JNE | BPF_X      if dst != src: pc += off
EXIT = 0x95         # BPF_JMP | BPF_EXIT

DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}
_ACCESS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
ACC_ALL = ACC_MKNOD | ACC_READ | ACC_WRITE

NAMES = {LDX_MEM_W: "ldxw", MOV32_IMM: "mov32", MOV32_REG: "mov32", AND32_IMM: "and32", RSH32_IMM: "rsh32",
         JEQ_IMM: "jeq", JNE_IMM: "jne", JNE_REG: "jne", EXIT: "exit"}


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """struct bpf_insn: u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm (little-endian)."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def decode(program: bytes) -> list[tuple]:
    """The program as (name, dst, src, off, imm) tuples, for tests and debugging."""
    out = []
    for i in range(0, len(program), 8):
        code, regs, off, imm = struct.unpack_from("<BBhi", program, i)
        out.append((NAMES.get(code, hex(code)), regs & 0xf, regs >> 4, off, imm))
    return out


# ---- the program ----------------------------------------------------------------------------------------------------

# registers: r1 the context (then scratch), r2 device type, r3 access, r4 major, r5 minor, r0 the verdict
_PROLOGUE = b"".join((
    insn(LDX_MEM_W, dst=2, src=1, off=0),
    insn(AND32_IMM, dst=2, imm=0xffff),
    insn(LDX_MEM_W, dst=3, src=1, off=0),
    insn(RSH32_IMM, dst=3, imm=16),
    insn(LDX_MEM_W, dst=4, src=1, off=4),
    insn(LDX_MEM_W, dst=5, src=1, off=8),
))


def _wild(v) -> bool:
    return v is None or v == -1


def _rule_block(rule: dict) -> bytes:
    """Instructions that return the rule's verdict if it matches, and fall through past themselves otherwise."""
    checks: list[list[bytes]] = []  # each check ends in a jump to the end of the block, patched below
    kind = rule.get("type") or "a"
    if kind != "a":
        checks.append([insn(JNE_IMM, dst=2, imm=_TYPES[kind])])
    access = 0
    for ch in rule.get("access") or "rwm":
        access |= _ACCESS[ch]
    if access != ACC_ALL:
        if rule["allow"]:  # an allow matches when the requested access is within it: (req & rule's) == req
            last = insn(JNE_REG, dst=1, src=3)
        else:  # a deny matches when the requested access touches it: (req & rule's) != 0
            last = insn(JEQ_IMM, dst=1, imm=0)
        checks.append([insn(MOV32_REG, dst=1, src=3), insn(AND32_IMM, dst=1, imm=access), last])
    if kind != "a":
        if not _wild(rule.get("major")):
            checks.append([insn(JNE_IMM, dst=4, imm=rule["major"])])
        if not _wild(rule.get("minor")):
            checks.append([insn(JNE_IMM, dst=5, imm=rule["minor"])])
    verdict = [insn(MOV32_IMM, dst=0, imm=1 if rule["allow"] else 0), insn(EXIT)]
    out: list[bytes] = []
    remaining = sum(len(c) for c in checks) + len(verdict)
    for check in checks:
        remaining -= len(check)
        jump = check[-1]
        code, regs, _, imm = struct.unpack("<BBhi", jump)
        out += check[:-1] + [struct.pack("<BBhi", code, regs, remaining, imm)]  # off counts from the next insn
    return b"".join(out + verdict)


def program(rules: list[dict]) -> bytes:
    """The device program for OCI rules ({allow, type, major, minor, access}); they are validated first."""
    for i, r in enumerate(rules):
        device_rule(r, i)  # raises InvalidArgument on a malformed rule
    blocks = []
    for r in reversed(rules):
        blocks.append(_rule_block(r))
        if _matches_all(r):
            # nothing after it is reachable, and the verifier refuses unreachable instructions
            return _PROLOGUE + b"".join(blocks)
    return _PROLOGUE + b"".join(blocks) + insn(MOV32_IMM, dst=0, imm=0) + insn(EXIT)


def _matches_all(rule: dict) -> bool:
    return (rule.get("type") or "a") == "a" and set(rule.get("access") or "rwm") == set("rwm")


def attach(cgroup_dir: str | os.PathLike, rules: list[dict]) -> None:
    """Load the program for `rules` and attach it to the cgroup2 directory, then detach the device programs that
    were attached there before (as runc: the new one first, so there is no moment without a filter). The program
    stays attached after its fd is closed, until detached or the cgroup is removed."""
    prog = program(rules)
    prog_fd = _libc.bpf_prog_load_cgroup_device(prog)
    try:
        cg_fd = os.open(Path(cgroup_dir), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            old = _libc.bpf_prog_query(cg_fd)
            _libc.bpf_prog_attach(prog_fd, cg_fd)
            for prog_id in old:
                try:
                    old_fd = _libc.bpf_prog_get_fd_by_id(prog_id)
                except OSError as e:
                    if e.errno == errno.ENOENT:
                        continue
                    raise
                try:
                    _libc.bpf_prog_detach(old_fd, cg_fd)
                finally:
                    os.close(old_fd)
        finally:
            os.close(cg_fd)
    finally:
        os.close(prog_fd)
