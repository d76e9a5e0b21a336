"""Platforms (os/architecture/variant) of images and of this host, and choosing among an index's entries.

The rules are containerd's (github.com/containerd/platforms), which Docker uses: the same normalisation
(``x86_64`` → ``amd64``, ``aarch64`` → ``arm64``, ``arm64/v8`` ≡ ``arm64``, ``armhf`` → ``arm/v7``…), the same
specifier syntax (``linux``, ``arm64``, ``linux/arm/v7``, ``windows(10.0.17763)/amd64``) and the same preference
order within an architecture (an ``arm/v7`` host also runs ``v6`` and ``v5``; an ``amd64/v3`` host also runs
``v2`` and ``v1``).

One deliberate difference from containerd's ``Default()``: `host_matcher` does not fall back to *another*
architecture (``386`` on an ``amd64`` host, 32-bit ``arm`` on an ``arm64`` host). Whether those run depends on
kernel options and the CPU, and pulling a foreign-architecture image silently is worse than a clear "no
matching manifest". `only` gives containerd's full behaviour for callers that want it.

Matching is for Linux: ``os.version`` is kept and printed but not compared (containerd compares it only
for Windows hosts, which barque does not run on).

Pure data apart from `host_platform`, which asks the kernel for the machine name (``uname``) and otherwise
takes the text of ``/proc/cpuinfo`` from its caller.
"""

from __future__ import annotations

import os as _os
import re
from dataclasses import dataclass, field
from collections.abc import Iterable, Mapping, Sequence

from barque.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings here
    from typing import Any

__all__ = [
    "Platform",
    "PlatformMatcher",
    "normalize_arch",
    "normalize_os",
    "parse_platform",
    "format_platform",
    "host_platform",
    "host_architecture",
    "host_matcher",
    "only",
    "only_strict",
]

_KNOWN_OS = frozenset(
    "aix android darwin dragonfly freebsd hurd illumos ios js linux nacl netbsd openbsd plan9 solaris windows zos".split()
)
_KNOWN_ARCH = frozenset(
    (
        "386 amd64 amd64p32 arm armbe arm64 arm64be ppc64 ppc64le loong64 mips mipsle mips64 mips64le "
        "mips64p32 mips64p32le ppc riscv riscv64 s390 s390x sparc sparc64 wasm"
    ).split()
)
_SPECIFIER_RE = re.compile(r"[A-Za-z0-9_.-]+")
_OS_RE = re.compile(r"([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?")

# uname machine -> GOARCH
_MACHINE_TO_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "386",
    "i486": "386",
    "i586": "386",
    "i686": "386",
    "aarch64": "arm64",
    "arm64": "arm64",
    "aarch64_be": "arm64be",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "loongarch64": "loong64",
    "mips64": "mips64le",  # Debian's mips64el kernels report "mips64"
    "mips": "mipsle",
}


def normalize_os(os_name: str) -> str:
    os_name = os_name.lower()
    return "darwin" if os_name == "macos" else os_name


def normalize_arch(arch: str, variant: str = "") -> tuple[str, str]:
    """containerd's ``normalizeArch``: canonical architecture and variant, for comparing platforms."""
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        return "arm64", "" if variant in ("8", "v8") else variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", "v" + variant
    return arch, variant


@dataclass(frozen=True)
class Platform:
    """The OCI ``platform`` object. Fields hold what was given; `normalized` gives the canonical form."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = field(default=())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "platform") -> "Platform":
        """From the OCI JSON object (``architecture``, ``os``, ``os.version``, ``os.features``, ``variant``)."""
        if not isinstance(d, Mapping):
            raise InvalidArgument(f"{where}: expected an object")
        for key in ("architecture", "os"):  # required by the OCI schema; empty is odd but not refused
            if not isinstance(d.get(key), str):
                raise InvalidArgument(f"{where}: {key} is required and must be a string")
        for key in ("variant", "os.version"):
            if d.get(key) is not None and not isinstance(d[key], str):
                raise InvalidArgument(f"{where}: {key} must be a string")
        features = d.get("os.features")
        if features is None:
            features = []
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise InvalidArgument(f"{where}: os.features must be a list of strings")
        return cls(d["os"], d["architecture"], d.get("variant") or "", d.get("os.version") or "", tuple(features))

    def to_dict(self) -> dict[str, Any]:
        """The OCI JSON object, keys in the image-spec's Go field order, empty fields omitted."""
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        return out

    def normalized(self) -> "Platform":
        arch, variant = normalize_arch(self.architecture, self.variant)
        return Platform(normalize_os(self.os), arch, variant, self.os_version, tuple(sorted(set(self.os_features))))

    def __str__(self) -> str:
        return format_platform(self)


def format_platform(p: Platform) -> str:
    """``os/arch[/variant]``, as containerd's ``Format`` and ``docker --platform`` write it."""
    if not p.os:
        return "unknown"
    return "/".join(x for x in (p.os, p.architecture, p.variant) if x)


def _decode_os_option(v: str, spec: str) -> str:
    if "%" not in v:
        return v
    from urllib.parse import unquote  # rare path; keep urllib out of start-up

    if re.search(r"%(?![0-9A-Fa-f]{2})", v):
        raise InvalidArgument(f"invalid platform {spec!r}: bad escape in {v!r}")
    return unquote(v)


def parse_platform(spec: str, host: Platform | None = None) -> Platform:
    """Parse a ``--platform`` specifier: ``<os>[(<version>[+<feature>]*)]|<arch>|<os>/<arch>[/<variant>]``.

    What the specifier leaves out (the architecture of ``linux``, the OS of ``arm64``) comes from `host`
    (default: this machine). The result is normalised the way containerd's ``Parse`` normalises it:
    ``linux/aarch64`` → ``linux/arm64``, ``linux/arm64/v8`` keeps ``v8``, ``linux/arm`` → ``linux/arm``.
    """
    if not isinstance(spec, str) or not spec:
        raise InvalidArgument("invalid platform '': expected os[/arch[/variant]]")
    if "*" in spec:
        raise InvalidArgument(f"invalid platform {spec!r}: wildcards are not supported")
    parts = spec.split("/", 3)
    m = _OS_RE.fullmatch(parts[0])
    if m is None:
        raise InvalidArgument(f"invalid platform {spec!r}: {parts[0]!r} is not a valid OS component")
    for part in parts[1:]:
        if not _SPECIFIER_RE.fullmatch(part):
            raise InvalidArgument(f"invalid platform {spec!r}: {part!r} is not a valid component")
    os_name = normalize_os(m.group(1))
    os_version = _decode_os_option(m.group(2) or "", spec)
    features = tuple(_decode_os_option(f, spec) for f in m.group(3)[1:].split("+")) if m.group(3) else ()

    if len(parts) == 1:
        h = host or host_platform()
        if os_name in _KNOWN_OS:
            variant = h.variant if h.architecture == "arm" and h.variant != "v7" else ""
            return Platform(os_name, h.architecture, variant, os_version, features)
        arch, variant = normalize_arch(parts[0], "")
        if arch == "arm" and variant == "v7":
            variant = ""
        if arch in _KNOWN_ARCH:
            return Platform(h.os, arch, variant)
        raise InvalidArgument(f"invalid platform {spec!r}: unknown operating system or architecture")
    if len(parts) == 2:
        arch, variant = normalize_arch(parts[1], "")
        if arch == "arm" and variant == "v7":
            variant = ""
        return Platform(os_name, arch, variant, os_version, features)
    if len(parts) == 3:
        arch, variant = normalize_arch(parts[1], parts[2])
        if arch == "arm64" and variant == "":
            variant = "v8"
        return Platform(os_name, arch, variant, os_version, features)
    raise InvalidArgument(f"invalid platform {spec!r}: expected os[/arch[/variant]]")


def _cpuinfo_field(cpuinfo: str, name: str) -> str | None:
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == name.lower():
            return value.strip()
    return None


def _arm_variant(machine: str, cpuinfo: str | None) -> str:
    raw = _cpuinfo_field(cpuinfo, "Cpu architecture") if cpuinfo else None
    if raw is None:  # emulated ARM has no such line: fall back to the machine name, as containerd does
        m = machine.lower()
        if m == "aarch64":
            raw = "8"
        elif m.startswith("armv") and len(m) >= 5:
            raw = m[4]
        else:
            return ""
    if raw == "7" and cpuinfo and (_cpuinfo_field(cpuinfo, "model name") or "").lower().startswith("armv6-compatible"):
        raw = "6"  # Raspberry Pi 1 kernels report 7
    raw = raw.lower()
    if raw in ("8", "aarch64"):
        return "v8"
    if raw in ("7", "7m") or raw.startswith("?("):
        return "v7"
    if raw in ("6", "6tej"):
        return "v6"
    if raw in ("5", "5t", "5te", "5tej"):
        return "v5"
    if raw in ("4", "4t"):
        return "v4"
    if raw == "3":
        return "v3"
    return "unknown"


_AMD64_LEVELS = (
    ("v2", ("cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3")),
    ("v3", ("avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave")),
    ("v4", ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")),
)


def _amd64_level(cpuinfo: str) -> str:
    flags = set((_cpuinfo_field(cpuinfo, "flags") or "").split())
    level = "v1"
    for name, needed in _AMD64_LEVELS:
        if not flags.issuperset(needed):
            break
        level = name
    return level


def host_platform(machine: str | None = None, cpuinfo: str | None = None) -> Platform:
    """This machine's platform, as containerd's ``DefaultSpec`` reports it.

    `machine` defaults to ``os.uname().machine``. `cpuinfo` is the text of ``/proc/cpuinfo`` (the caller reads
    it, so this module does no file I/O): with it, ARM hosts get their exact variant and amd64 hosts their
    micro-architecture level (``v1``…``v4``); without it, arm64 is ``v8``, arm is taken from the machine name
    (``armv7l`` → ``v7``) and amd64 has no variant.
    """
    machine = machine if machine is not None else _os.uname().machine
    m = machine.lower()
    if m.startswith("armv") or m == "arm":
        return Platform("linux", "arm", _arm_variant(m, cpuinfo))
    arch = _MACHINE_TO_ARCH.get(m, m)
    if arch == "arm64":
        return Platform("linux", "arm64", _arm_variant(m, cpuinfo) or "v8")
    if arch == "amd64" and cpuinfo:
        return Platform("linux", "amd64", _amd64_level(cpuinfo))
    return Platform("linux", arch)


def host_architecture() -> str:
    """GOARCH of this machine (amd64, arm64…), as image configs name it."""
    return host_platform().architecture


def _variant_number(variant: str) -> int | None:
    v = variant[1:] if variant.startswith("v") else variant
    return int(v) if v.isdigit() else None


def _same_arch_fallbacks(p: Platform) -> list[Platform]:
    """containerd's ``platformVector`` without the jumps to another architecture; `p` is normalised."""
    out = [p]

    def with_variant(v: str) -> Platform:
        return Platform(p.os, p.architecture, v, p.os_version, p.os_features)

    if p.architecture == "amd64":
        n = _variant_number(p.variant)
        if n is not None and n > 1:
            out += [with_variant(f"v{k}") for k in range(n - 1, 0, -1)]
    elif p.architecture == "arm":
        n = _variant_number(p.variant)
        if n is not None and n > 5:
            out += [with_variant(f"v{k}") for k in range(n - 1, 4, -1)]
    elif p.architecture == "arm64":
        variant = p.variant or "v8"
        major_text, has_minor, minor_text = variant.partition(".")
        major = _variant_number(major_text)
        if major is not None and major >= 8:
            minor = int(minor_text) if has_minor and len(variant) == 4 and minor_text.isdigit() else 0
            if major == 9:
                out += [with_variant(f"v9.{k}" if k else "v9") for k in range(minor - 1, -1, -1)]
                # v9.x implements v8.(x+5)
                major, minor = 8, minor + 5
                out.append(with_variant(f"v8.{minor}"))
            out += [with_variant(f"v{major}.{k}" if k else f"v{major}") for k in range(minor - 1, -1, -1)]
    return out


def _containerd_vector(p: Platform) -> list[Platform]:
    """containerd's full ``platformVector``, with the fallbacks to 386 and to 32-bit arm."""
    out = _same_arch_fallbacks(p)
    if p.architecture == "amd64":
        out.append(Platform(p.os, "386", "", p.os_version, p.os_features))
    elif p.architecture == "arm64":
        variant = p.variant or "v8"
        if variant.startswith(("v8.", "v9.")):
            variant = "v8"
        out += _containerd_vector(Platform(p.os, "arm", variant, p.os_version, p.os_features))
    return out


def _matches(want: Platform, have: Platform) -> bool:
    """containerd's ``matcher.Match``: both normalised; `have`'s OS features must be a subset of `want`'s."""
    return (
        want.os == have.os
        and want.architecture == have.architecture
        and want.variant == have.variant
        and set(have.os_features) <= set(want.os_features)
    )


class PlatformMatcher:
    """Accepts platforms from an ordered list of acceptable ones; earlier is preferred."""

    def __init__(self, acceptable: Iterable[Platform]) -> None:
        self.acceptable: tuple[Platform, ...] = tuple(p.normalized() for p in acceptable)
        if not self.acceptable:
            raise ValueError("PlatformMatcher needs at least one platform")

    def rank(self, platform: Platform) -> int | None:
        """0 for the most preferred platform, higher for less; None when `platform` is not acceptable."""
        have = platform.normalized()
        for i, want in enumerate(self.acceptable):
            if _matches(want, have):
                return i
        return None

    def matches(self, platform: Platform) -> bool:
        return self.rank(platform) is not None

    def best(self, platforms: Sequence[Platform | None]) -> int | None:
        """Index of the most preferred acceptable platform in `platforms` (first wins a tie), or None.

        A ``None`` entry (an index entry that declares no platform) is accepted after every explicit match,
        as containerd accepts platform-less entries.
        """
        best_i, best_rank = None, None
        fallback = None
        for i, p in enumerate(platforms):
            if p is None:
                if fallback is None:
                    fallback = i
                continue
            r = self.rank(p)
            if r is not None and (best_rank is None or r < best_rank):
                best_i, best_rank = i, r
        return best_i if best_i is not None else fallback

    def __repr__(self) -> str:
        return f"PlatformMatcher({', '.join(format_platform(p) for p in self.acceptable)})"


def only_strict(platform: Platform) -> PlatformMatcher:
    """Exactly this platform (after normalisation: ``arm64`` ≡ ``arm64/v8``, ``amd64`` ≡ ``amd64/v1``)."""
    return PlatformMatcher([platform])


def only(platform: Platform) -> PlatformMatcher:
    """containerd's ``platforms.Only``: this platform, then older variants, then 386 / 32-bit arm."""
    return PlatformMatcher(_containerd_vector(platform.normalized()))


def host_matcher(host: Platform | None = None) -> PlatformMatcher:
    """What barque runs on this host: its platform, then older variants of the same architecture."""
    return PlatformMatcher(_same_arch_fallbacks((host or host_platform()).normalized()))
