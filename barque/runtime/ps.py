"""`ps`: the processes in a container's cgroup — pids as JSON (containerd's shim reads them), or a table."""

from __future__ import annotations

from pathlib import Path

from barque.runtime.state import StateStore

__all__ = ["pids", "render_table"]


def pids(store: StateStore, cid: str) -> list[int]:
    from barque.runtime.create import cgroup_manager

    c = store.load(cid)
    return cgroup_manager(c.cgroups_path).pids()


def render_table(pid_list: list[int], proc: Path = Path("/proc")) -> str:
    lines = ["PID   CMD"]
    for pid in pid_list:
        try:
            cmd = (proc / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        lines.append(f"{pid:<5} {cmd}")
    return "\n".join(lines) + "\n"
