"""Docker-shaped views of a container: `inspect` JSON (Docker's field order) and its command line as `ps` shows it."""

from __future__ import annotations

__all__ = ["inspect", "command_text", "public_state"]

_ORDER = ["Id", "Created", "Path", "Args", "State", "Image", "ResolvConfPath", "HostnamePath", "HostsPath",
          "LogPath", "Name", "RestartCount", "Driver", "Platform", "MountLabel", "ProcessLabel", "AppArmorProfile",
          "ExecIDs", "HostConfig", "GraphDriver", "SizeRw", "SizeRootFs", "Mounts", "Config", "NetworkSettings"]


def public_state(state: dict) -> dict:
    out = {k: v for k, v in state.items() if not k.startswith("_") and k != "RestartCount"}
    for k, v in (("Status", "created"), ("Running", False), ("Paused", False), ("Restarting", False),
                 ("OOMKilled", False), ("Dead", False), ("Pid", 0), ("ExitCode", 0), ("Error", ""),
                 ("StartedAt", "0001-01-01T00:00:00Z"), ("FinishedAt", "0001-01-01T00:00:00Z")):
        out.setdefault(k, v)
    return out


def _network_settings(engine, c, running: bool) -> dict:
    from barque.network.manage import network_settings

    return network_settings(engine, c, running)


def inspect(engine, c, size: bool = False) -> dict:
    rec = dict(c.record)
    state = public_state(c.state)
    rec["State"] = state
    rec["RestartCount"] = c.state.get("RestartCount", 0)
    from barque.container.mounts import inspect_mounts

    rec["Mounts"] = inspect_mounts(rec.get("Mounts") or [])
    key = c.private.get("snapshot")
    data = None
    describe = getattr(engine.snapshotter, "describe", None)
    if describe is not None and key:
        try:
            data = describe(key)
        except Exception:  # noqa: BLE001 - best effort
            data = None
    rec["GraphDriver"] = {"Data": data, "Name": engine.driver_name}
    rec["NetworkSettings"] = _network_settings(engine, c, state.get("Running", False))
    if size:
        try:
            rec["SizeRw"] = engine.snapshotter.usage(key).size
        except Exception:  # noqa: BLE001
            rec["SizeRw"] = 0
    out = {k: rec[k] for k in _ORDER if k in rec}
    return out


def command_text(c) -> str:
    import shlex

    argv = [c.record["Path"], *c.record.get("Args", [])]
    return " ".join(a if a and all(ch.isalnum() or ch in "-_./:=@%+," for ch in a) else shlex.quote(a)
                    for a in argv)
