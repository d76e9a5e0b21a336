"""`--change` instructions for import and commit: the Dockerfile instructions that only touch the image config.

Docker allows CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME and WORKDIR here.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from barque.errors import InvalidArgument

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")


def _json_or_shell(rest: str, shell: list[str]) -> list[str]:
    stripped = rest.strip()
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return shell + [stripped]


def _pairs(instruction: str, rest: str) -> list[tuple[str, str]]:
    """`K=V K2="v 2"` or the legacy `K V with spaces` form."""
    words = shlex.split(rest, posix=True)
    if not words:
        raise InvalidArgument(f"{instruction} requires at least one argument")
    if "=" not in words[0]:
        key, _, value = rest.strip().partition(" ")
        if not value.strip() and instruction == "ENV":
            raise InvalidArgument(f"ENV names can not be blank and need a value: {rest.strip()!r}")
        return [(key, value.strip())]
    out = []
    for w in words:
        if "=" not in w:
            raise InvalidArgument(f"{instruction}: invalid key=value pair {w!r}")
        k, _, v = w.partition("=")
        if not k:
            raise InvalidArgument(f"{instruction} names can not be blank")
        out.append((k, v))
    return out


def apply_changes(config: dict[str, Any], changes: list[str], shell: list[str] | None = None) -> dict[str, Any]:
    """Return a copy of the container config (`config.config` of an image) with each change applied in order."""
    cfg = json.loads(json.dumps(config or {}))
    sh = shell or cfg.get("Shell") or ["/bin/sh", "-c"]
    cmd_set = False
    for change in changes:
        text = change.strip()
        if not text:
            continue
        m = re.match(r"^(\S+)\s*(.*)$", text, re.S)
        instruction, rest = m.group(1).upper(), m.group(2)
        if instruction not in ALLOWED:
            raise InvalidArgument(f"{m.group(1)} is not a valid change command")
        if instruction in ("CMD", "ENTRYPOINT"):
            cfg["Cmd" if instruction == "CMD" else "Entrypoint"] = _json_or_shell(rest, sh)
            if instruction == "CMD":
                cmd_set = True
            elif not cmd_set:
                cfg["Cmd"] = None  # as in a Dockerfile: ENTRYPOINT drops an inherited CMD
        elif instruction == "ENV":
            env = list(cfg.get("Env") or [])
            for k, v in _pairs("ENV", rest):
                env = [e for e in env if e.partition("=")[0] != k] + [f"{k}={v}"]
            cfg["Env"] = env
        elif instruction == "LABEL":
            labels = dict(cfg.get("Labels") or {})
            labels.update(_pairs("LABEL", rest))
            cfg["Labels"] = labels
        elif instruction == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})
            for p in rest.split():
                num, _, proto = p.partition("/")
                if not num.replace("-", "").isdigit():
                    raise InvalidArgument(f"invalid containerPort: {num}")
                ports[f"{num}/{(proto or 'tcp').lower()}"] = {}
            cfg["ExposedPorts"] = ports
        elif instruction == "VOLUME":
            vols = dict(cfg.get("Volumes") or {})
            for v in _json_or_shell(rest, []) if rest.strip().startswith("[") else rest.split():
                if not v:
                    raise InvalidArgument("VOLUME specified can not be an empty string")
                vols[v] = {}
            cfg["Volumes"] = vols
        elif instruction == "WORKDIR":
            path = rest.strip()
            if not path.startswith("/"):
                path = (cfg.get("WorkingDir") or "/").rstrip("/") + "/" + path
            cfg["WorkingDir"] = path
        elif instruction == "USER":
            if not rest.strip():
                raise InvalidArgument("USER requires exactly one argument")
            cfg["User"] = rest.strip()
        elif instruction == "STOPSIGNAL":
            cfg["StopSignal"] = rest.strip()
        elif instruction == "ONBUILD":
            if not rest.strip():
                raise InvalidArgument("ONBUILD requires at least one argument")
            cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [rest.strip()]
    return cfg
