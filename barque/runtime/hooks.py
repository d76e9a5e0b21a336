"""The spec's hooks: prestart (deprecated) and createRuntime run by the runtime after the container's namespaces
exist and before pivot_root; createContainer in the container's namespaces before pivot_root; startContainer in the
container just before its process executes; poststart by `start`; poststop by `delete`.

Each hook gets the container's state JSON on stdin, its own args (argv[0] included, as execv) and env (nothing else:
the runtime's environment does not leak into hooks), and is killed at its timeout. A failing prestart, createRuntime,
createContainer or startContainer hook fails the operation; a failing poststart or poststop hook is only logged,
as the spec asks.
"""

from __future__ import annotations

import json
import logging
import os
import signal

from barque.errors import FailedPrecondition

__all__ = ["PHASES", "run_hooks", "has_hooks"]

log = logging.getLogger(__name__)

PHASES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
WARN_ONLY = {"poststart", "poststop"}
DEFAULT_TIMEOUT = 120.0


def has_hooks(spec: dict, *phases: str) -> bool:
    hooks = spec.get("hooks") or {}
    return any(hooks.get(p) for p in phases)


def run_hooks(spec: dict, phase: str, state: dict) -> None:
    for i, hook in enumerate((spec.get("hooks") or {}).get(phase) or []):
        try:
            run_hook(hook, state)
        except FailedPrecondition as e:
            if phase in WARN_ONLY:
                log.warning("%s hook #%d: %s", phase, i, e)
            else:
                raise FailedPrecondition(f"{phase} hook #{i}: {e}") from e


def run_hook(hook: dict, state: dict) -> None:
    import subprocess

    path = hook["path"]
    args = hook.get("args") or [path]
    env = dict(e.split("=", 1) for e in hook.get("env") or [])
    timeout = hook.get("timeout") or DEFAULT_TIMEOUT
    try:
        proc = subprocess.Popen(args, executable=path, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, close_fds=True, start_new_session=True)
    except OSError as e:
        raise FailedPrecondition(f"cannot run {path}: {e.strerror or e}") from e
    try:
        out, err = proc.communicate(json.dumps(state).encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        raise FailedPrecondition(f"{path} did not finish within its timeout of {timeout}s") from None
    except BrokenPipeError:
        out, err = b"", b""
        proc.wait()
    if proc.returncode != 0:
        detail = (err or out).decode(errors="replace").strip()
        how = f"exited {proc.returncode}" if proc.returncode > 0 else f"was killed by signal {-proc.returncode}"
        raise FailedPrecondition(f"{path} {how}" + (f": {detail}" if detail else ""))


