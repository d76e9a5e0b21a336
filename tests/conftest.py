"""Shared fixtures: every test gets its own barque roots; the session ends with a leak check."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.btrfs_fixture import btrfs_mount  # noqa: E402,F401  (a session fixture)
from tests.registry_support import registry_factory  # noqa: E402,F401  (barque registries on demand)
from tests.netlab import lab_barque, netlab  # noqa: E402,F401  (throwaway network namespaces)


MACHINE_NETNS_ENV = "BARQUE_TEST_MACHINE_NETNS"


def _leave_the_machines_network() -> None:
    """The whole suite runs in a network namespace of its own (made here, in the first pytest process, before any
    test or xdist worker starts; workers inherit it): every container a test runs gets a veth on barque0 and rules
    in barque's nftables tables, and those must never touch the machine's own interfaces or firewall. Networking
    tests make further namespaces of their own (tests/netlab.py). The machine's namespace stays reachable for the
    leak check and for the one command that needs the real network (debootstrap), at the path in
    $BARQUE_TEST_MACHINE_NETNS: a descriptor this process keeps open (PID 1's may not be readable)."""
    if os.environ.get(MACHINE_NETNS_ENV):
        return  # a worker: already in the suite's namespace
    from barque.linux import _libc

    fd = os.open("/proc/self/ns/net", os.O_RDONLY)  # kept open for the whole session
    _libc.unshare(_libc.CLONE_NEWNET)
    os.environ[MACHINE_NETNS_ENV] = f"/proc/{os.getpid()}/fd/{fd}"
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


if os.geteuid() == 0:
    _leave_the_machines_network()

REPO = Path(__file__).resolve().parent.parent
FIXTURES = (REPO.parent / "shared" / "fixtures" / "docker-made").resolve()
BARQUE = [sys.executable, "-m", "barque.cli.main"]
FIXTURE_ID = "sha256:49995ae9fa9958dfc960ab51afde4a49a9d2aad9cc9a61d20dd14ea3512214b1"  # fixture/layers:1 by Docker


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    stdout_bytes: bytes


class Barque:
    """Runs the real `barque` command line against one test's own roots."""

    def __init__(self, root: Path, run_root: Path, driver: str | None = None, env: dict | None = None) -> None:
        self.root = root
        self.run_root = run_root
        self.driver = driver
        self.env = dict(env or {})   # what every command of this root sees (a registry's config files, say)
        self.prefix: list[str] = []  # e.g. nsenter into a test's network namespace (tests/netlab.py)
        self._engines: list = []

    def args(self) -> list[str]:
        a = ["--root", str(self.root), "--run-root", str(self.run_root)]
        if self.driver:
            a += ["--storage-driver", self.driver]
        return a

    def __call__(self, *args: str, input: bytes | str | None = None, check: bool = True,
                 timeout: float = 600, env: dict | None = None) -> Result:
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run(
            self.prefix + BARQUE + self.args() + [str(a) for a in args],
            input=data, capture_output=True, timeout=timeout,
            env={**os.environ, **self.env, **(env or {})}, stdin=None if data is not None else subprocess.DEVNULL,
        )
        result = Result(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"),
                        proc.stdout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"barque {' '.join(map(str, args))} exited {proc.returncode}\nstdout: {result.stdout}\n"
                f"stderr: {result.stderr}"
            )
        return result

    def engine(self):
        from barque.config import Settings
        from barque.engine import Engine

        eng = Engine(Settings.from_env(str(self.root), str(self.run_root), self.driver))
        self._engines.append(eng)
        return eng

    def close(self) -> None:
        for eng in self._engines:
            eng.close()
        self._engines.clear()
        self.remove_containers()
        from barque.network.dns.client import stop

        stop(self.run_root)  # the embedded DNS server of this run root, if containers on user networks started one

    def remove_containers(self) -> None:
        """Whatever containers a test left (also after a failure): removed with their monitors, mounts, cgroups."""
        if not (self.root / "barque.db").exists():
            return
        ids = self("ps", "-aq", "--no-trunc", check=False, timeout=60).stdout.split()
        if ids:
            self("rm", "-f", "-v", *ids, check=False, timeout=120)
        self.remove_networks()

    def remove_networks(self) -> None:
        """User-defined networks a test left: removed with their bridges, which would otherwise stay in the suite's
        network namespace (and take the address pools later tests expect to be free)."""
        import sqlite3

        conn = sqlite3.connect(f"file:{self.root / 'barque.db'}?mode=ro", uri=True)
        try:
            left = conn.execute("SELECT count(*) FROM networks WHERE name NOT IN ('bridge', 'host', 'none')")
            count = left.fetchone()[0]
        except sqlite3.Error:
            count = 0
        finally:
            conn.close()
        if count:
            self("network", "prune", "-f", check=False, timeout=120)


def _cleanup_root(root: Path) -> None:
    """Unmount anything a failed test left under its root, then remove it."""
    from barque.linux.mountinfo import mounted_under

    for mp in sorted(mounted_under(root), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    subprocess.run(["rm", "-rf", "--one-file-system", str(root)], capture_output=True)


@pytest.fixture
def barque(tmp_path: Path):
    root = tmp_path / "root"
    b = Barque(root, tmp_path / "run")
    yield b
    b.close()
    _cleanup_root(root)


@pytest.fixture
def roots(tmp_path: Path):
    """More barque roots on demand, by name: `roots("puller", env)` (env: seen by every command of that root)."""
    made: list[Barque] = []

    def make(name: str, env: dict | None = None) -> Barque:
        b = Barque(tmp_path / name / "root", tmp_path / name / "run", env=env)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()
        _cleanup_root(b.root)


@pytest.fixture(params=["overlay", "vfs", "btrfs"])
def barque_driver(request, tmp_path: Path):
    """The same test on every storage driver; btrfs roots live on a loop-mounted btrfs shared by the session."""
    if request.param == "btrfs":
        root = request.getfixturevalue("btrfs_mount") / unique("root-")
    else:
        root = tmp_path / "root"
    b = Barque(root, tmp_path / "run", driver=request.param)
    yield b
    b.close()
    _cleanup_root(root)


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory) -> Path:
    """A busybox image made once per session by `bootstrap busybox`, saved as a docker archive."""
    base = tmp_path_factory.mktemp("busybox")
    b = Barque(base / "root", base / "run")
    b("bootstrap", "busybox", "--tag", "busybox:latest")
    out = base / "busybox.tar"
    b("save", "-o", str(out), "busybox:latest")
    _cleanup_root(base / "root")
    return out


@pytest.fixture
def no_leaked_mounts(tmp_path: Path, monkeypatch):
    """Temporary mount points go under this test's tmp_path, so whatever is still mounted there afterwards is this
    test's own leak (also under pytest -n): it is unmounted, so the rest of the run is unharmed, and the test fails."""
    import tempfile

    from barque.linux.mountinfo import mounted_under

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    yield
    leaked = mounted_under(tmp_path)
    for mp in sorted(leaked, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    assert not leaked, f"test left mounts behind: {leaked}"


@pytest.fixture
def bb(barque, busybox_tar):
    """A root holding the bootstrapped busybox image, for container tests."""
    barque("load", "-i", busybox_tar)
    return barque


@pytest.fixture
def loaded(barque, busybox_tar):
    """A root holding the bootstrapped busybox and the Docker-made fixture/layers:1."""
    barque("load", "-i", busybox_tar)
    barque("load", "-i", FIXTURES / "docker-save-layers.tar")
    return barque


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def wait_for(fn, timeout: float = 15.0, interval: float = 0.05):
    """Call `fn` until it returns something true, and return that; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
    return value


# ---- leak check ---------------------------------------------------------------------------------------------------

def machine_netns_prefix() -> list[str]:
    """A command prefix that runs in the machine's own network namespace (see _leave_the_machines_network)."""
    path = os.environ.get(MACHINE_NETNS_ENV)
    return ["nsenter", f"--net={path}", "--"] if path else []


def _snapshot_system() -> dict[str, set[str]]:
    def lines(cmd: list[str]) -> set[str]:
        try:
            return set(subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.splitlines())
        except (OSError, subprocess.TimeoutExpired):
            return set()

    mounts = {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}
    machine = machine_netns_prefix()  # the machine's own network namespace, not the suite's
    return {
        "mounts": mounts,
        "loop devices": {line.split(":")[0] for line in lines(["losetup", "-a"])},
        "network namespaces": {line.split()[0] for line in lines(["ip", "netns", "list"]) if line.strip()},
        "links": {line.split(":")[1].strip().split("@")[0] for line in lines([*machine, "ip", "-o", "link", "show"])
                  if ":" in line},
        "nft tables": {line for line in lines([*machine, "nft", "list", "tables"]) if line.strip()},
        "cgroups": {str(p) for p in Path("/sys/fs/cgroup").glob("*/barque*")}
        | {str(p) for p in Path("/sys/fs/cgroup").glob("*/*/barque*")},
        # processes started by tests carry their temporary roots on the command line
        "processes": {line for line in lines(["pgrep", "-f", "pytest-of-"])} - {str(os.getpid())},
    }


_BASELINE: dict[str, set[str]] = {}


def pytest_sessionstart(session):
    _BASELINE.update(_snapshot_system())


def _remove_empty_parent_cgroups() -> None:
    """The `barque` parent cgroup containers live under is the engine's to keep (as Docker keeps /docker); the
    suite removes it when it made it and it is empty again."""
    for p in [*Path("/sys/fs/cgroup").glob("*/barque"), Path("/sys/fs/cgroup/barque")]:
        if str(p) not in _BASELINE.get("cgroups", set()):
            try:
                p.rmdir()
            except OSError:
                pass


def pytest_sessionfinish(session, exitstatus):
    """After every fixture is torn down: anything new on the machine is a leak, and fails the run."""
    if not _BASELINE or hasattr(session.config, "workerinput"):
        return
    _remove_empty_parent_cgroups()
    after = _snapshot_system()
    if not after["links"] or not _BASELINE.get("links"):  # there is always `lo`: the check could not look
        session.exitstatus = 1
        print("LEAK CHECK FAILED: the machine's network namespace could not be read")
    leaks = {k: sorted(after[k] - _BASELINE[k]) for k in after if after[k] - _BASELINE[k]}
    if leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = f"LEAK CHECK FAILED: the suite left behind {leaks}"
        if reporter:
            reporter.write_line(message, red=True)
        else:
            print(message)
        session.exitstatus = 1
