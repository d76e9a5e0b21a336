"""barque.cgroups on the real kernel, as root: limits read back from the kernel's files, a fork bomb stopped by
pids.max, a memory hog OOM-killed (also by its parent's limit), freeze/thaw, kill, destroy.

This host is hybrid (v1 controllers + a cgroup2 mount at /sys/fs/cgroup/unified holding only hugetlb); the same
manager pointed at the unified mount as its root is a real cgroup v2 manager for what that mount supports
(creating, cgroup.procs, cgroup.freeze, cgroup.kill, cgroup.events, hugetlb). Every test works under a unique
`/barque-test-<uuid>` parent and removes it, with any process it started, in `finally`.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from barque.cgroups import CgroupManager, detect_mode, ensure_parent
from barque.errors import FailedPrecondition, InvalidArgument

ROOT = Path("/sys/fs/cgroup")
UNIFIED = ROOT / "unified"
MiB = 1 << 20


def _mode() -> str | None:
    try:
        return detect_mode(ROOT)
    except Exception:  # noqa: BLE001 — no cgroups at all: skip
        return None


MODE = _mode()

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="creates cgroups: needs root"),
    pytest.mark.skipif(MODE is None, reason="no cgroup filesystem mounted"),
]

needs_v1 = pytest.mark.skipif(MODE not in ("v1", "hybrid"), reason="needs v1 controllers (hybrid or v1 host)")
needs_unified = pytest.mark.skipif(not (UNIFIED / "cgroup.controllers").exists(),
                                   reason="needs a cgroup2 mount at /sys/fs/cgroup/unified")


class Lab:
    """Managers under one unique parent, and the processes put in them; `close` leaves nothing behind."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root
        self.parent_name = f"barque-test-{uuid.uuid4().hex[:10]}"
        self.managers: list[CgroupManager] = []
        self.procs: list[subprocess.Popen] = []

    def cgroup(self, name: str = "c", resources: dict | None = None) -> CgroupManager:
        m = CgroupManager(f"/{self.parent_name}/{name}", root=self.root)
        self.managers.append(m)
        m.create()
        if resources:
            m.set(resources)
        return m

    def parent(self, resources: dict | None = None) -> CgroupManager:
        m = ensure_parent(self.parent_name, resources, root=self.root)
        self.managers.append(m)
        return m

    def start(self, m: CgroupManager, code: str) -> subprocess.Popen:
        """A python child moved into `m` before it runs `code` (it waits for a line on stdin)."""
        p = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()\n" + code],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        m.apply(p.pid)
        p.stdin.write("go\n")
        p.stdin.flush()
        return p

    def close(self) -> None:
        """Kill and remove the cgroups first (destroy thaws a frozen one, so its processes can die), then reap."""
        errors: list[BaseException] = []
        for m in sorted(self.managers, key=lambda m: -m.spec_path.count("/")):  # children before the parent
            try:
                m.destroy()
            except Exception as e:  # noqa: BLE001 — keep cleaning, report at the end
                errors.append(e)
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired as e:
                errors.append(e)
            for f in (p.stdin, p.stdout, p.stderr):
                if f:
                    f.close()
        try:
            CgroupManager(f"/{self.parent_name}", root=self.root).destroy()
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        if errors:
            raise errors[0]


@pytest.fixture
def lab() -> Iterator[Lab]:
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()
    assert not list(ROOT.glob(f"*/{lab.parent_name}")), "cgroup directories left behind"


@pytest.fixture
def v2lab() -> Iterator[Lab]:
    lab = Lab(UNIFIED)
    try:
        yield lab
    finally:
        lab.close()
    assert not (UNIFIED / lab.parent_name).exists()


@pytest.fixture(scope="module", autouse=True)
def restore_unified_subtree_control() -> Iterator[None]:
    """create() enables controllers in the cgroup2 root (as runc does); put the root back as it was when no other
    barque cgroup is using them."""
    f = UNIFIED / "cgroup.subtree_control"
    before = set(f.read_text().split()) if f.exists() else set()
    yield
    if not f.exists() or any(UNIFIED.glob("barque*")):
        return
    for c in set(f.read_text().split()) - before:
        try:
            f.write_text(f"-{c}")
        except OSError:
            pass


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


SLEEP = "import time; print('ready', flush=True); time.sleep(120)"


# ---- limits on the real files ---------------------------------------------------------------------------------------

@needs_v1
def test_limits_read_back_from_the_kernel(lab):
    m = lab.cgroup("c", {"memory": {"limit": 32 * MiB, "swap": 32 * MiB}, "pids": {"limit": 10},
                         "cpu": {"quota": 50000, "period": 100000, "shares": 512, "cpus": "0", "mems": "0"}})
    p = lab.start(m, SLEEP)
    assert p.stdout.readline().strip() == "ready"
    paths = m.paths
    assert int((paths["memory"] / "memory.limit_in_bytes").read_text()) == 32 * MiB
    assert (paths["pids"] / "pids.max").read_text().strip() == "10"
    assert (paths["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "50000"
    assert (paths["cpu"] / "cpu.cfs_period_us").read_text().strip() == "100000"
    assert (paths["cpu"] / "cpu.shares").read_text().strip() == "512"
    assert (paths["cpuset"] / "cpuset.cpus").read_text().strip() == "0"
    # the process is in this cgroup in every hierarchy, the name=systemd and unified ones included
    lines = Path(f"/proc/{p.pid}/cgroup").read_text().splitlines()
    rel = f"/{lab.parent_name}/c"
    assert all(line.endswith(":" + rel) for line in lines), lines
    assert m.pids() == [p.pid]
    s = m.stats()
    assert s["memory"]["limit"] == 32 * MiB
    assert s["pids"] == {"current": 1, "limit": 10}
    assert s["cpu"]["usage_total"] >= 0 and "throttling" in s["cpu"]


@needs_v1
def test_v1_cpuset_of_a_new_cgroup_is_filled(lab):
    m = lab.cgroup("c")
    parent_cpus = (ROOT / "cpuset" / "cpuset.cpus").read_text().strip()
    assert (m.paths["cpuset"] / "cpuset.cpus").read_text().strip() == parent_cpus
    assert (m.paths["cpuset"] / "cpuset.mems").read_text().strip() != ""
    p = lab.start(m, SLEEP)  # joining a cpuset cgroup with empty cpus would fail with ENOSPC
    assert p.stdout.readline().strip() == "ready"


@needs_v1
def test_kernel_refusals_name_the_file(lab):
    m = lab.cgroup("c")
    with pytest.raises(InvalidArgument, match=r"cpuset\.cpus = '0-4095'"):
        m.set({"cpu": {"cpus": "0-4095"}})
    with pytest.raises(InvalidArgument, match=r"linux.resources.memory.limit"):
        m.set({"memory": {"limit": "32M"}})


@needs_v1
def test_memory_limit_and_swap_can_be_raised_together(lab):
    """v1 refuses memory.limit_in_bytes above memory.memsw.limit_in_bytes: set() writes them in the order that works."""
    m = lab.cgroup("c", {"memory": {"limit": 32 * MiB, "swap": 32 * MiB}})
    if not (m.paths["memory"] / "memory.memsw.limit_in_bytes").exists():
        pytest.skip("no swap accounting on this kernel")
    m.set({"memory": {"limit": 64 * MiB, "swap": 64 * MiB}})
    assert int((m.paths["memory"] / "memory.limit_in_bytes").read_text()) == 64 * MiB
    m.set({"memory": {"limit": 16 * MiB, "swap": 16 * MiB}})
    assert int((m.paths["memory"] / "memory.memsw.limit_in_bytes").read_text()) == 16 * MiB


# ---- pids -----------------------------------------------------------------------------------------------------------

FORKER = """
import os, time
made, refused = [], 0
deadline = time.monotonic() + 20
for _ in range(30):
    if time.monotonic() > deadline:
        break
    try:
        pid = os.fork()
    except BlockingIOError:
        refused += 1
        continue
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    made.append(pid)
print(len(made), refused, flush=True)
for pid in made:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
"""


@needs_v1
def test_fork_beyond_the_pids_limit_fails_with_eagain(lab):
    m = lab.cgroup("c", {"pids": {"limit": 10}})
    p = lab.start(m, FORKER)
    out, err = p.communicate(timeout=60)
    made, refused = map(int, out.split())
    assert made == 9, (out, err)  # the forker itself is the tenth
    assert refused == 30 - 9
    assert p.returncode == 0, err


# ---- memory ---------------------------------------------------------------------------------------------------------

HOG = """
chunks = []
for i in range(512):
    chunks.append(bytearray(b"x") * (1 << 20))
    print(i + 1, flush=True)
"""


def run_hog(lab: Lab, m: CgroupManager) -> tuple[int, int]:
    """(return code, MiB the hog had allocated when it died)."""
    p = lab.start(m, HOG)
    out, _ = p.communicate(timeout=120)
    lines = out.split()
    return p.returncode, int(lines[-1]) if lines else 0


@needs_v1
def test_memory_hog_is_oom_killed(lab):
    m = lab.cgroup("c", {"memory": {"limit": 32 * MiB, "swap": 32 * MiB}})
    assert m.oom_kill_count() == 0
    rc, allocated = run_hog(lab, m)
    assert rc == -signal.SIGKILL
    assert allocated < 32
    assert m.oom_kill_count() >= 1
    assert m.stats()["memory"]["max_usage"] <= 32 * MiB


@needs_v1
def test_parent_limit_binds_a_child_set_higher(lab):
    parent = lab.parent({"memory": {"limit": 64 * MiB, "swap": 64 * MiB}})
    child = lab.cgroup("c", {"memory": {"limit": 1 << 30}})
    assert int((parent.paths["memory"] / "memory.limit_in_bytes").read_text()) == 64 * MiB
    # v1 lets the child's own limit be set above its parent's and reads it back so…
    assert int((child.paths["memory"] / "memory.limit_in_bytes").read_text()) == 1 << 30
    rc, allocated = run_hog(lab, child)
    # …but the parent's limit still applies to everything below it
    assert rc == -signal.SIGKILL
    assert allocated < 64
    assert child.oom_kill_count() >= 1  # counted where the victim lives (v2 also counts it in the parent)
    assert int((child.paths["memory"] / "memory.max_usage_in_bytes").read_text()) <= 64 * MiB


# ---- freezer, kill, destroy -----------------------------------------------------------------------------------------

COUNTER = """
import sys, time
i = 0
while i < 100_000_000:
    i += 1
    if i % 1000 == 0:
        with open(sys.argv[0] if False else OUT, "w") as f:
            f.write(str(i))
"""


def counter_code(out: Path) -> str:
    return f"OUT = {str(out)!r}\n" + COUNTER


def read_counter(f: Path) -> int:
    try:
        return int(f.read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def check_freeze_thaw(lab: Lab, m: CgroupManager, tmp_path: Path) -> None:
    out = tmp_path / "counter"
    p = lab.start(m, counter_code(out))
    assert wait_for(lambda: read_counter(out) > 0)
    m.freeze()
    assert m.frozen()
    frozen_at = read_counter(out)
    time.sleep(0.3)
    assert read_counter(out) == frozen_at
    assert p.poll() is None
    m.thaw()
    assert not m.frozen()
    assert wait_for(lambda: read_counter(out) > frozen_at)


@needs_v1
def test_freeze_and_thaw_v1(lab, tmp_path):
    m = lab.cgroup("c")
    check_freeze_thaw(lab, m, tmp_path)
    assert (m.paths["freezer"] / "freezer.state").read_text().strip() == "THAWED"


@needs_unified
def test_freeze_and_thaw_v2(v2lab, tmp_path):
    m = v2lab.cgroup("c")
    assert m.mode == "v2"
    check_freeze_thaw(v2lab, m, tmp_path)
    assert "frozen 0" in (m.paths["unified"] / "cgroup.events").read_text()


SPAWNER = """
import subprocess, time
kids = [subprocess.Popen(["sleep", "120"]) for _ in range(3)]
print("ready", flush=True)
time.sleep(120)
"""


def check_kill(lab: Lab, m: CgroupManager, sig: int) -> None:
    p = lab.start(m, SPAWNER)
    assert p.stdout.readline().strip() == "ready"
    assert len(m.pids()) == 4
    m.kill(sig)
    assert wait_for(lambda: m.pids() == [])
    p.wait(timeout=10)
    assert p.returncode == -sig


@needs_v1
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_kill_kills_every_process(lab, sig):
    m = lab.cgroup("c")
    check_kill(lab, m, sig)
    assert not m.frozen()


@needs_unified
def test_kill_v2_uses_cgroup_kill(v2lab):
    m = v2lab.cgroup("c")
    check_kill(v2lab, m, signal.SIGKILL)


@needs_v1
def test_kill_a_frozen_cgroup(lab):
    m = lab.cgroup("c")
    p = lab.start(m, SLEEP)
    assert p.stdout.readline().strip() == "ready"
    m.freeze()
    m.kill()
    assert p.wait(timeout=10) == -signal.SIGKILL


def test_destroy_removes_every_directory(lab):
    m = lab.cgroup("c")
    inner = m.paths[next(iter(m.paths))] / "inner"  # a sub-cgroup the container made itself
    inner.mkdir()
    p = lab.start(m, SLEEP)
    assert p.stdout.readline().strip() == "ready"
    dirs = list(m.paths.values())
    m.destroy()
    assert p.wait(timeout=10) == -signal.SIGKILL
    assert not any(d.exists() for d in dirs)
    assert not m.exists()
    assert all(d.parent.exists() for d in dirs)  # never the parent
    m.destroy()  # idempotent


# ---- real cgroup v2 semantics on the unified mount ------------------------------------------------------------------

@needs_unified
def test_v2_create_apply_destroy(v2lab):
    m = v2lab.cgroup("c")
    d = m.paths["unified"]
    p = v2lab.start(m, SLEEP)
    assert p.stdout.readline().strip() == "ready"
    assert f"0::/{v2lab.parent_name}/c" in Path(f"/proc/{p.pid}/cgroup").read_text()
    assert "populated 1" in (d / "cgroup.events").read_text()
    assert m.pids() == [p.pid]
    assert "cpu" in m.stats()  # cpu.stat's usage is core cgroup2, there without the cpu controller
    m.destroy()
    assert p.wait(timeout=10) == -signal.SIGKILL
    assert not d.exists()


@needs_unified
def test_v2_controller_not_offered(v2lab):
    m = v2lab.cgroup("c")
    if "pids" in m._v2_controllers():  # noqa: SLF001 — only meaningful where the mount lacks pids
        pytest.skip("this cgroup2 mount offers pids")
    with pytest.raises(FailedPrecondition, match="pids"):
        m.set({"pids": {"limit": 10}})


def hugetlb_sizes(d: Path) -> list[str]:
    return sorted(f.name.split(".")[1] for f in d.glob("hugetlb.*.max") if f.name.count(".") == 2)


@needs_unified
def test_v2_hugetlb_limit(v2lab):
    if "hugetlb" not in (UNIFIED / "cgroup.controllers").read_text().split():
        pytest.skip("no hugetlb in the cgroup2 mount")
    m = v2lab.cgroup("c")
    sizes = hugetlb_sizes(m.paths["unified"])
    assert "2MB" in sizes  # create() enabled hugetlb in the ancestors' subtree_control
    m.set({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}]})
    assert (m.paths["unified"] / "hugetlb.2MB.max").read_text().strip() == str(4 * MiB)


@pytest.mark.skipif(MODE != "hybrid", reason="hybrid host only")
def test_hybrid_sets_hugetlb_through_unified(lab):
    if "hugetlb" not in (UNIFIED / "cgroup.controllers").read_text().split():
        pytest.skip("no hugetlb in the cgroup2 mount")
    m = lab.cgroup("c", {"memory": {"limit": 64 * MiB}, "hugepageLimits": [{"pageSize": "2MB", "limit": 2 * MiB}]})
    assert (m.paths["unified"] / "hugetlb.2MB.max").read_text().strip() == str(2 * MiB)
    assert int((m.paths["memory"] / "memory.limit_in_bytes").read_text()) == 64 * MiB


# ---- devices (v1) ---------------------------------------------------------------------------------------------------

OPENER = """
import os
for dev in ("/dev/null", "/dev/zero"):
    try:
        os.close(os.open(dev, os.O_RDONLY))
        print(dev, "ok")
    except OSError as e:
        print(dev, e.errno)
"""


@needs_v1
def test_v1_device_allowlist(lab):
    m = lab.cgroup("c", {"devices": [{"allow": False, "access": "rwm"},
                                     {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]})
    assert (m.paths["devices"] / "devices.list").read_text().split() == ["c", "1:3", "rwm"]
    p = lab.start(m, OPENER)
    out, _ = p.communicate(timeout=30)
    assert out.splitlines() == ["/dev/null ok", f"/dev/zero {errno.EPERM}"]
