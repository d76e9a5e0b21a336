"""`--security-opt seccomp=PROFILE`: a profile in Docker's format (the one Docker's own default.json uses) turned
into the runtime spec's `linux.seccomp`.

Docker's format adds to the spec's: `archMap` (main architecture → sub-architectures; only this host's entry is
used), and per rule `includes`/`excludes` conditions on capabilities, architectures and a minimum kernel, which are
decided here for the container's capabilities. A profile already in the spec's form passes through. As Docker's
CLI does, `run` sends the profile's content rather than its path.
"""

from __future__ import annotations

import json
import os
import re

from barque.errors import InvalidArgument

__all__ = ["read_profile_file", "load_profile", "to_oci"]

_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64", "armv7l": "SCMP_ARCH_ARM",
         "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X", "riscv64": "SCMP_ARCH_RISCV64"}
_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
            "riscv64": "riscv64"}


def read_profile_file(path: str) -> str:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise InvalidArgument(f"opening seccomp profile ({path}) failed: {e.strerror}") from None
    try:
        json.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"decoding seccomp profile failed: {e}") from None
    return text


def _kernel() -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _applies(cond: dict | None, caps: set[str], arch: str, kernel: tuple[int, int], include: bool) -> bool:
    if not cond:
        return True
    checks = []
    if cond.get("caps"):
        wanted = {c if c.startswith("CAP_") else "CAP_" + c for c in cond["caps"]}
        checks.append(bool(wanted & caps) if not include else wanted <= caps)
    if cond.get("arches"):
        checks.append(_GO_ARCH.get(os.uname().machine, "") in cond["arches"] or arch in cond["arches"])
    if include and cond.get("minKernel"):
        m = re.match(r"(\d+)\.(\d+)", cond["minKernel"])
        checks.append(bool(m) and kernel >= (int(m.group(1)), int(m.group(2))))
    if include:
        return all(checks)
    return not any(checks)


def to_oci(profile: dict, capabilities: list[str]) -> dict:
    caps = set(capabilities)
    machine = os.uname().machine
    arch = _ARCH.get(machine, "")
    kernel = _kernel()
    out: dict = {"defaultAction": profile.get("defaultAction") or "SCMP_ACT_ERRNO"}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == arch:
            arches = [arch, *(entry.get("subArchitectures") or [])]
    if arches:
        out["architectures"] = arches
    if profile.get("flags"):
        out["flags"] = list(profile["flags"])
    for key in ("listenerPath", "listenerMetadata"):
        if profile.get(key):
            out[key] = profile[key]
    rules = []
    for rule in profile.get("syscalls") or []:
        if not _applies(rule.get("includes"), caps, arch, kernel, True):
            continue
        if not _applies(rule.get("excludes"), caps, arch, kernel, False):
            continue
        names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        if not names:
            continue
        r = {"names": names, "action": rule.get("action") or "SCMP_ACT_ALLOW"}
        if rule.get("errnoRet") is not None:
            r["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            r["args"] = rule["args"]
        rules.append(r)
    out["syscalls"] = rules
    return out


def load_profile(choice: str, capabilities: list[str]) -> dict:
    """`choice`: the profile's JSON text (what `run` sends) or a path to it."""
    text = choice if choice.lstrip().startswith("{") else read_profile_file(choice)
    try:
        profile = json.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"decoding seccomp profile failed: {e}") from None
    if not isinstance(profile, dict):
        raise InvalidArgument("decoding seccomp profile failed: not a JSON object")
    return to_oci(profile, capabilities)
