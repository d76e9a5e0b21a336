"""Compiled seccomp filters, cached: the first container with a given `linux.seccomp` has it validated and built by
`seccomp.build_filter` (libseccomp through pyseccomp), exported as the classic-BPF program the kernel runs, and kept
under `<root>/.bpf/<sha256>`; every later container loads that program with one seccomp(2) call.

Why: building Docker's default profile costs some 370 libseccomp calls through ctypes in the runtime, and libseccomp
compiles the filter again inside the container at load time — together a large part of a `run` of `true`. The key
is the exact JSON of the profile plus the machine and kernel (libseccomp consults the kernel's seccomp API level),
so only a profile that passed validation is ever cached, and a bad one still fails with its message. Filters with
SCMP_ACT_NOTIFY or a listenerPath need libseccomp's notify fd, so they are never cached.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CompiledFilter", "prepare_filter", "load"]

# SECCOMP_FILTER_FLAG_* (linux/seccomp.h)
FLAG_BITS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}
FORMAT = "1"


@dataclass(frozen=True)
class CompiledFilter:
    program: bytes
    flags: int = 0


def _cacheable(spec_seccomp: dict) -> bool:
    if spec_seccomp.get("listenerPath"):
        return False
    return all(e.get("action") != "SCMP_ACT_NOTIFY" for e in spec_seccomp.get("syscalls") or []
               if isinstance(e, dict))


def _key(spec_seccomp: dict) -> str:
    try:
        from _sha256 import sha256  # CPython's built-in: hashlib would load OpenSSL, a few ms at every start
    except ImportError:
        from hashlib import sha256
    u = os.uname()
    text = json.dumps(spec_seccomp, sort_keys=True, separators=(",", ":"))
    return sha256(f"{FORMAT}\0{u.machine}\0{u.release}\0{text}".encode()).hexdigest()


def prepare_filter(spec_seccomp: dict, cache_dir: Path | None):
    """A CompiledFilter (from the cache, or built and cached now), or a libseccomp filter when it cannot be cached.
    Raises InvalidArgument for a bad profile, as build_filter does."""
    if cache_dir is None or not isinstance(spec_seccomp, dict) or not _cacheable(spec_seccomp):
        from barque.runtime.seccomp import build_filter

        return build_filter(spec_seccomp)
    flags = 0
    for name in spec_seccomp.get("flags") or []:
        flags |= FLAG_BITS.get(name, 0)
    path = cache_dir / _key(spec_seccomp)
    try:
        return CompiledFilter(path.read_bytes(), flags)
    except FileNotFoundError:
        pass
    from barque.runtime.seccomp import build_filter

    f = build_filter(spec_seccomp)
    program = _export(f)
    try:
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_bytes(program)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache only
    return CompiledFilter(program, flags)


def _export(f) -> bytes:
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    try:
        with os.fdopen(os.dup(fd), "wb") as w:
            f.export_bpf(w)
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def load(f) -> None:
    """Load into the calling process: a cached program with seccomp(2), otherwise through libseccomp."""
    if isinstance(f, CompiledFilter):
        from barque.errors import FailedPrecondition
        from barque.linux import _libc

        try:
            _libc.seccomp_set_filter(f.program, f.flags)
        except OSError as e:
            raise FailedPrecondition(f"cannot load the seccomp filter: {e.strerror or e}") from e
        return
    from barque.runtime.seccomp import load_filter

    load_filter(f)
