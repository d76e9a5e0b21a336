"""`features`: what this runtime supports, in the JSON shape runc 1.1+ prints (containerd ≥ 1.7 asks for it)."""

from __future__ import annotations

from barque.runtime.spec import NAMESPACES, _IGNORED, _MS, _PROPAGATION

__all__ = ["features"]


def features() -> dict:
    from barque.runtime.caps import ALL_CAPABILITIES

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.1.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": sorted(set(_MS) | set(_PROPAGATION) | {"tmpcopyup"} - (_IGNORED - {"tmpcopyup"})),
        "linux": {
            "namespaces": sorted(NAMESPACES),
            "capabilities": list(ALL_CAPABILITIES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": True},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {"org.barque.idmap-rootfs": "true: the rootfs is an idmapped mount (user namespaces)"},
    }
