"""Helpers for the runtime's integration and interop tests: a busybox bundle per test, the real `barque-runtime`
console script run with a root of the test's own, a harness that reaps container processes like a shim, and
checks that nothing was left behind.

The pytest process makes itself a child subreaper (as containerd's shim is) so a container's PID 1, orphaned when
`create` returns, becomes its child: the tests can then collect exit statuses, and no zombie is left to the host's
init (which, on this machine, does not reap).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNTIME = str(REPO / ".venv" / "bin" / "barque-runtime")
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: every test container's cgroup lives under this parent, removed at the end of the session
CGROUP_PARENT = f"barque-rt-{uuid.uuid4().hex[:8]}"


def become_subreaper() -> None:
    from barque.linux import _libc

    _libc.set_child_subreaper(True)


def wait_exit(pid: int, timeout: float = 30.0) -> int:
    """Reap our (adopted) child `pid`: its exit code as a shell reports it (128+N for signal N)."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} did not exit within {timeout}s")
        time.sleep(0.01)


def mount_points() -> set[str]:
    return {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}


def cgroup_dirs(rel: str) -> list[Path]:
    rel = rel.strip("/")
    return [d for d in (h / rel for h in CGROUP_ROOT.iterdir() if h.is_dir()) if d.exists()]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Runtime:
    """`barque-runtime --root <tmp> --log <tmp>/log.json --log-format json ...`"""

    root: Path
    log: Path
    made: list[str] = field(default_factory=list)

    def __call__(self, *args: str, check: bool = True, timeout: float = 60, stdin=subprocess.DEVNULL,
                 stdout=None, stderr=None, input: str | None = None) -> Result:
        cmd = [RUNTIME, "--root", str(self.root), "--log", str(self.log), "--log-format", "json", *map(str, args)]
        capture = stdout is None and stderr is None
        proc = subprocess.run(cmd, stdin=None if input is not None else stdin, input=input,
                              stdout=stdout if not capture else subprocess.PIPE,
                              stderr=stderr if not capture else subprocess.PIPE, timeout=timeout, text=True)
        result = Result(proc.returncode, proc.stdout or "", proc.stderr or "")
        if check and proc.returncode != 0:
            raise AssertionError(f"barque-runtime {' '.join(map(str, args))} exited {proc.returncode}\n"
                                 f"stdout: {result.stdout}\nstderr: {result.stderr}\nlog: {self.last_log()}")
        return result

    def state(self, cid: str) -> dict:
        return json.loads(self("state", cid).stdout)

    def last_log(self) -> str:
        try:
            return self.log.read_text().strip().splitlines()[-1]
        except (OSError, IndexError):
            return ""

    def cleanup(self) -> None:
        for cid in self.made:
            try:
                state = json.loads(self("state", cid, check=False).stdout or "{}")
            except ValueError:
                state = {}
            self("delete", "--force", cid, check=False)
            pid = state.get("pid")
            if pid:
                try:
                    wait_exit(pid, 10)
                except (ChildProcessError, AssertionError):
                    pass


@dataclass
class Bundle:
    path: Path
    spec: dict
    cid: str
    out: Path
    err: Path

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    def write(self) -> None:
        (self.path / "config.json").write_text(json.dumps(self.spec, indent=1))

    def set_args(self, *args: str) -> "Bundle":
        self.spec["process"]["args"] = list(args)
        self.write()
        return self

    def output(self) -> str:
        return self.out.read_text()

    def errors(self) -> str:
        return self.err.read_text()

    @property
    def cgroup(self) -> str:
        return self.spec["linux"]["cgroupsPath"]


def make_bundle(tmp_path: Path, tree: Path, args: list[str], cid: str | None = None) -> Bundle:
    from barque.runtime.defaults import base_spec

    cid = cid or f"t{uuid.uuid4().hex[:10]}"
    path = tmp_path / "bundle"
    path.mkdir()
    subprocess.run(["cp", "-a", str(tree), str(path / "rootfs")], check=True)
    spec = base_spec(args, "rootfs")
    spec["linux"]["cgroupsPath"] = f"/{CGROUP_PARENT}/{cid}"
    b = Bundle(path, spec, cid, tmp_path / "out.txt", tmp_path / "err.txt")
    b.write()
    return b


def assert_nothing_left(rt: Runtime, bundle: Bundle, mounts_before: set[str]) -> None:
    assert not (rt.root / bundle.cid).exists(), "the state directory is left"
    assert cgroup_dirs(bundle.cgroup) == [], f"cgroups left: {cgroup_dirs(bundle.cgroup)}"
    # a leaked container mount would sit under the bundle (its rootfs) or the state root, or name the container;
    # other mounts may come and go meanwhile (other tests' daemons), and are not ours to judge
    new = {m for m in mount_points() - mounts_before
           if m.startswith((str(bundle.path), str(rt.root))) or bundle.cid in m}
    assert new == set(), f"mounts left on the host: {new}"
    names = subprocess.run(["pgrep", "-f", str(bundle.path)], capture_output=True, text=True).stdout.split()
    assert names == [], f"processes left: {names}"


def remove_cgroup_parent() -> None:
    for d in cgroup_dirs(CGROUP_PARENT):
        for sub in sorted((p for p in d.iterdir() if p.is_dir()), reverse=True):
            try:
                sub.rmdir()
            except OSError:
                pass
        try:
            d.rmdir()
        except OSError:
            pass


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the runtime's integration tests need root")
    if not Path("/bin/busybox").is_file():
        pytest.skip("/bin/busybox (busybox-static) is not installed")


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def copy_tree(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, symlinks=True)


# ---- fixtures (import them into a test module by name) ------------------------------------------------------------

@pytest.fixture(scope="session")
def busybox_tree(tmp_path_factory) -> Path:
    """A busybox rootfs made once per session (barque.images.bootstrap.make_busybox_tree); tests copy it."""
    needs_root()
    from barque.images.bootstrap import make_busybox_tree

    tree = tmp_path_factory.mktemp("rt-busybox") / "rootfs"
    make_busybox_tree(tree)
    become_subreaper()
    yield tree
    remove_cgroup_parent()


@pytest.fixture
def rt(tmp_path: Path, busybox_tree) -> Runtime:
    runtime = Runtime(tmp_path / "rtroot", tmp_path / "log.json")
    yield runtime
    runtime.cleanup()


@pytest.fixture
def bundle(tmp_path: Path, busybox_tree, rt) -> Bundle:
    """A bundle running `true` with barque's defaults (base_spec), its cgroup under this session's parent."""
    b = make_bundle(tmp_path, busybox_tree, ["true"])
    rt.made.append(b.cid)
    return b
