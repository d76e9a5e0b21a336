"""1,000 run/rm cycles leave nothing behind: no mounts, cgroups, processes, snapshots, runtime state or files.

The cycles go through the engine in-process (create, start attached, wait for the exit, remove: what `run --rm`
does, without paying an interpreter start-up 1,000 times); every 100th goes through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(900)
CYCLES = 1000


def _cgroup_children() -> set[str]:
    out: set[str] = set()
    for parent in Path("/sys/fs/cgroup").glob("*/barque"):
        out |= {str(p) for p in parent.iterdir() if p.is_dir()}
    return out


def test_thousand_run_rm_cycles_leave_nothing(bb):
    from barque.container.attach import Attachment
    from barque.container.create import create
    from barque.container.remove import remove
    from barque.container.start import start
    from barque.linux.mountinfo import mounted_under

    engine = bb.engine()
    made: set[str] = set()
    snapshots_before = {i.name for i in engine.snapshotter.walk()}
    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {}}
    for i in range(CYCLES):
        if i % 100 == 99:
            r = bb("run", "--rm", "busybox", "sh", "-c", "echo cycle")
            assert r.stdout == "cycle\n"
            continue
        c = create(engine, body)
        made.add(c.id)
        sock = start(engine, c, attach={"stdout": True, "stderr": True})
        a = Attachment.__new__(Attachment)
        a.sock, a.buf, a.exit = sock, b"", None
        while a.exit is None:
            data = a.recv()
            assert data, f"cycle {i}: the monitor closed without an exit status"
            list(a.frames(data))
        a.close()
        assert a.exit["ExitCode"] == 0
        remove(engine, c)
    assert engine.containers.list() == []
    assert list((bb.root / "containers").iterdir()) == []
    run_containers = bb.run_root / "containers"
    assert not run_containers.exists() or list(run_containers.iterdir()) == []
    runtime = bb.run_root / "runtime"
    assert not runtime.exists() or [p for p in runtime.iterdir() if not p.name.startswith(".")] == []
    assert mounted_under(bb.root) == [] and mounted_under(bb.run_root) == []
    # other tests may run containers meanwhile: only ours are checked
    assert {p for p in _cgroup_children() if p.rsplit("/", 1)[-1] in made} == set()
    assert {i.name for i in engine.snapshotter.walk()} == snapshots_before
    monitors = subprocess.run(["pgrep", "-f", f"barque.container.monitor.*{bb.root}"], capture_output=True,
                              text=True).stdout.split()
    assert monitors == []
    assert os.listdir(bb.root / "volumes") == [] if (bb.root / "volumes").exists() else True
    assert json.loads(bb("ps", "-a", "--format", "json").stdout or "null") is None
