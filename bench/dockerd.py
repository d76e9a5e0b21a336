"""A private dockerd (with its own containerd) for interop tests and benchmarks.

Docker is barque's reference peer: `docker load` must take what `barque save` writes and the other way round, and the
benchmarks compare the two on the same machine. Neither may touch a Docker the machine itself runs, nor leave
anything behind, so everything here lives under one fresh directory (`/tmp/barque-dockerd-XXXX`, short because unix
socket paths are limited to 108 bytes):

- containerd is started by us, not by dockerd: left to itself, dockerd 20.10 attaches to a system containerd whenever
  `/run/containerd/containerd.sock` exists, and would then share its state and namespace;
- dockerd gets its own `--data-root`, `--exec-root`, `--pidfile`, unix socket, and `--config-file` (so neither
  `/etc/docker/daemon.json` is read nor `/etc/docker/key.json` written), and by default no bridge, no
  iptables/ip6tables/masquerade: it runs in the caller's network namespace, which may be the machine's own;
- with `netns=` (a namespace the caller made and will delete, e.g. bench/netns.py's) dockerd runs inside it
  (`nsenter --net`) with Docker's real networking — docker0 (`--bip` to choose its subnet, say when barque0 shares
  the namespace: both default to 172.17.0.0/16), iptables rules (Debian's iptables is iptables-nft: tables `ip nat`
  and `ip filter` of that namespace) and its userland proxy for published ports. Only the namespace sees any of it;
  the iptables lock file `/run/xtables.lock` that iptables creates is removed after if it was not there before;
- containers' cgroups go under `/<dirname>` (`--cgroup-parent`), which the test suite's leak check watches
  (it looks for `barque*` cgroups and for processes whose command line matches `barque[.-]`, as ours all do).

On exit: containers are removed, dockerd then containerd get SIGTERM (SIGKILL after a grace period), any process
still naming our directory (containerd shims), sitting in our cgroups or — with `netns=` — a docker-proxy in that
namespace is killed, every mount under the directory is unmounted (deepest first, lazily if busy), the cgroups and
the directory are removed, and so are the few fixed directories dockerd and the shims create (`/run/docker/plugins`,
`/run/containerd/s`) when they were not there before and are empty.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import sys
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

log = logging.getLogger(__name__)

__all__ = ["Dockerd", "DockerdError", "available", "docker_cli", "private_dockerd"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: Fixed paths dockerd 20.10 and containerd's shims create whatever their roots are (plugin discovery, shim sockets).
FIXED_DIRS = (Path("/run/docker/plugins"), Path("/run/docker"), Path("/run/containerd/s"), Path("/run/containerd"))
#: The lock file iptables (and so a bridged dockerd) creates in the machine's /run whatever the network namespace.
XTABLES_LOCK = Path("/run/xtables.lock")
#: The CLI that matches Debian's dockerd; a newer one earlier in PATH works too (API version negotiation).
PREFERRED_CLI = Path("/usr/bin/docker")


class DockerdError(RuntimeError):
    """dockerd or containerd could not be started; the message carries the end of their logs."""


def docker_cli() -> str | None:
    if PREFERRED_CLI.is_file() and os.access(PREFERRED_CLI, os.X_OK):
        return str(PREFERRED_CLI)
    return shutil.which("docker")


def available() -> str | None:
    """None when a private dockerd can be started here, else the reason why not (for pytest.skip)."""
    if os.geteuid() != 0:
        return "a private dockerd needs root"
    for tool in ("dockerd", "containerd", "runc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if docker_cli() is None:
        return "the docker CLI is not installed"
    return None


@dataclass
class Dockerd:
    """A running private dockerd: `docker(...)` runs the docker CLI against it and nothing else."""

    base: Path
    socket: Path
    storage_driver: str
    cli: str
    env: dict[str, str] = field(repr=False)

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def docker(self, *args: str | os.PathLike, input: bytes | str | None = None, check: bool = True,
               timeout: float = 600, text: bool = True) -> subprocess.CompletedProcess:
        data = input.encode() if isinstance(input, str) and not text else input
        proc = subprocess.run(
            [self.cli, "-H", self.host, *map(str, args)], input=data, capture_output=True, timeout=timeout,
            env=self.env, text=text, stdin=None if data is not None else subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(map(str, args))} exited {proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def inspect(self, kind: str, name: str) -> dict:
        """`docker <kind> inspect NAME` as a dict (kind: image, container, ...)."""
        return json.loads(self.docker(kind, "inspect", name).stdout)[0]

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.base / "dockerd.log", lines)


@contextmanager
def private_dockerd(tmp_dir: str | os.PathLike | None = None, storage_driver: str | None = None,
                    start_timeout: float = 90, extra_args: Sequence[str] = (),
                    netns: str | os.PathLike | None = None, bip: str | None = None) -> Iterator[Dockerd]:
    """Start a private dockerd; stop it and remove every trace of it on exit, failure included.

    storage_driver None tries overlay2 then vfs (overlay2 fails on some backing filesystems, overlay among them).
    tmp_dir is where its directory goes (default: the system's temporary directory); keep it short.
    extra_args are appended to dockerd's command line (e.g. `--add-runtime barque=/path/to/barque-runtime`).
    netns is the path of a network namespace (`/run/netns/NAME`) dockerd runs in with its default bridge, iptables
    and userland proxy; bip (e.g. "172.31.0.1/16") docker0's address and subnet, only with netns. Without netns
    dockerd has no bridge and touches no firewall.
    """
    reason = available()
    if reason:
        raise DockerdError(reason)
    if bip and not netns:
        raise DockerdError("bip needs netns: a bridged dockerd runs only in a network namespace of the caller's")
    if netns and not Path(netns).exists():
        raise DockerdError(f"network namespace {netns} does not exist")
    fixed_before = {d for d in FIXED_DIRS if d.exists()} | ({XTABLES_LOCK} if XTABLES_LOCK.exists() else set())
    network = _network_args(netns, bip)
    base = Path(tempfile.mkdtemp(prefix="barque-dockerd-", dir=tmp_dir)).resolve()
    if len(str(base)) > 60:
        shutil.rmtree(base, ignore_errors=True)
        raise DockerdError(f"{base}: too long a path for the unix sockets under it; pass a shorter tmp_dir")
    cgroup_parent = f"/{base.name}"
    procs: list[subprocess.Popen] = []
    try:
        containerd_sock = _start_containerd(base, procs, start_timeout)
        drivers = [storage_driver] if storage_driver else ["overlay2", "vfs"]
        daemon = None
        errors = []
        for driver in drivers:
            try:
                daemon = _start_dockerd(base, driver, containerd_sock, cgroup_parent, procs, start_timeout,
                                        [*network, *extra_args], netns)
                break
            except DockerdError as e:
                errors.append(f"with {driver}: {e}")
                log.warning("dockerd did not start with storage driver %s; %s", driver,
                            "trying the next" if driver != drivers[-1] else "giving up")
        if daemon is None:
            raise DockerdError("\n".join(errors))
        yield daemon
    finally:
        _teardown(base, procs, cgroup_parent, fixed_before, netns)


def _network_args(netns: str | os.PathLike | None, bip: str | None) -> list[str]:
    if not netns:
        return ["--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-masq=false"]
    return ["--iptables=true", "--ip-masq=true", "--ip6tables=false", *(["--bip", bip] if bip else [])]


# ---- start ---------------------------------------------------------------------------------------------------------

def _start_containerd(base: Path, procs: list[subprocess.Popen], timeout: float) -> Path:
    root = base / "containerd"
    sock = root / "containerd.sock"
    root.mkdir()
    config = root / "config.toml"
    config.write_text(f"""version = 2
root = "{root}/root"
state = "{root}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = ""
[debug]
  address = ""
  level = "warn"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"
""")
    with open(base / "containerd.log", "ab") as logf:
        proc = subprocess.Popen(["containerd", "--config", str(config)], stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT, start_new_session=True)
    procs.append(proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DockerdError(f"containerd exited {proc.returncode}:\n{_tail(base / 'containerd.log')}")
        if sock.is_socket() and subprocess.run(["ctr", "--address", str(sock), "version"], capture_output=True,
                                               timeout=30).returncode == 0:
            return sock
        time.sleep(0.1)
    raise DockerdError(f"containerd did not answer within {timeout}s:\n{_tail(base / 'containerd.log')}")


def _start_dockerd(base: Path, driver: str, containerd_sock: Path, cgroup_parent: str,
                   procs: list[subprocess.Popen], timeout: float, extra_args: Sequence[str] = (),
                   netns: str | os.PathLike | None = None) -> Dockerd:
    data, exec_root = base / "data", base / "exec"
    for d in (data, exec_root):  # a previous attempt with another driver may have left state behind
        _unmount_under(d)
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
    config = base / "daemon.json"
    config.write_text(json.dumps({"deprecated-key-path": str(base / "key.json")}))
    socket = base / "docker.sock"
    args = [
        *(["nsenter", f"--net={netns}", "--"] if netns else []),  # nsenter execs dockerd: the same pid
        "dockerd", "--config-file", str(config),
        "--data-root", str(data), "--exec-root", str(exec_root), "--pidfile", str(base / "dockerd.pid"),
        "-H", f"unix://{socket}", "--containerd", str(containerd_sock),
        "--storage-driver", driver, "--cgroup-parent", cgroup_parent, "--log-level", "warn", *extra_args,
    ]
    with open(base / "dockerd.log", "ab") as logf:
        logf.write(f"---- {' '.join(args)}\n".encode())
        logf.flush()
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
    procs.append(proc)
    cli = docker_cli()
    assert cli is not None
    env = {k: v for k, v in os.environ.items()
           if k not in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")}
    (base / "cli").mkdir(exist_ok=True)
    env.update(DOCKER_CONFIG=str(base / "cli"), DOCKER_BUILDKIT="0", DOCKER_CLI_HINTS="false")
    daemon = Dockerd(base=base, socket=socket, storage_driver=driver, cli=cli, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            procs.remove(proc)
            raise DockerdError(f"dockerd exited {proc.returncode}:\n{_tail(base / 'dockerd.log')}")
        if socket.is_socket():
            res = daemon.docker("version", "--format", "{{.Server.Version}}", check=False, timeout=30)
            if res.returncode == 0:
                got = daemon.docker("info", "--format", "{{.Driver}}", timeout=30).stdout.strip()
                if got != driver:
                    raise DockerdError(f"dockerd runs storage driver {got!r}, not {driver!r}")
                log.info("private dockerd %s up at %s (%s)", res.stdout.strip(), socket, driver)
                return daemon
        time.sleep(0.2)
    _stop(proc, 10)
    procs.remove(proc)
    raise DockerdError(f"dockerd did not answer within {timeout}s:\n{_tail(base / 'dockerd.log')}")


# ---- stop ----------------------------------------------------------------------------------------------------------

def _is_dockerd(proc: subprocess.Popen) -> bool:
    return "dockerd" in proc.args  # its argv may start with nsenter


def _teardown(base: Path, procs: list[subprocess.Popen], cgroup_parent: str, fixed_before: set[Path],
              netns: str | os.PathLike | None = None) -> None:
    dockerds = [p for p in procs if _is_dockerd(p)]
    if dockerds and dockerds[-1].poll() is None and (base / "docker.sock").is_socket():
        _remove_containers(base)
    for proc in reversed(procs):  # dockerd first, then containerd
        _stop(proc, 30)
    _kill_strays(base, cgroup_parent, netns)
    _unmount_under(base)
    _remove_cgroups(cgroup_parent)
    subprocess.run(["rm", "-rf", "--one-file-system", str(base)], capture_output=True, timeout=600)
    for d in FIXED_DIRS:  # children come first in FIXED_DIRS
        if d not in fixed_before:
            try:
                d.rmdir()
            except OSError:
                pass  # not empty (someone else's), or already gone
    if netns and XTABLES_LOCK not in fixed_before:
        XTABLES_LOCK.unlink(missing_ok=True)


def _remove_containers(base: Path) -> None:
    cli = docker_cli()
    host = ["-H", f"unix://{base / 'docker.sock'}"]
    env = {**os.environ, "DOCKER_CONFIG": str(base / "cli")}
    try:
        ids = subprocess.run([cli, *host, "ps", "-aq"], capture_output=True, text=True, timeout=60, env=env,
                             stdin=subprocess.DEVNULL).stdout.split()
        if ids:
            subprocess.run([cli, *host, "rm", "-f", *ids], capture_output=True, timeout=120, env=env,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("could not remove the private dockerd's containers: %s", e)


def _stop(proc: subprocess.Popen, grace: float) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        log.warning("%s ignored SIGTERM for %ss: killing it", "dockerd" if _is_dockerd(proc) else proc.args[0],
                    grace)
        proc.kill()
        proc.wait(30)


def _kill_strays(base: Path, cgroup_parent: str, netns: str | os.PathLike | None = None) -> None:
    """Kill what outlived dockerd and containerd: shims (their command line names our socket), container
    processes (they sit in our cgroups) and userland proxies in dockerd's namespace (no other dockerd runs there).
    Found by pid, never by a broad name alone."""
    me = os.getpid()
    sockets: set[Path] = set()
    for _ in range(3):
        pids = _pids_naming(str(base)) | _pids_in_cgroups(cgroup_parent) | _proxies_in(netns)
        pids.discard(me)
        if not pids:
            break
        for pid in pids:
            sockets |= _shim_socket(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
    else:
        log.warning("processes of the private dockerd survived SIGKILL: %s", sorted(pids))
    for sock in sockets:  # a killed shim cannot remove its socket; these paths are ours alone (hashed from our id)
        sock.unlink(missing_ok=True)


def _shim_socket(pid: int) -> set[Path]:
    """The socket a containerd-shim-runc-v2 listens on, /run/containerd/s/<sha256 of address/namespace/id>
    (containerd 1.6 runtime/v2/shim SocketAddress); empty for any other process."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return set()
    if not argv or not Path(argv[0]).name.startswith("containerd-shim"):
        return set()
    opts = dict(zip(argv[1::2], argv[2::2])) if len(argv) > 2 else {}
    ns, cid, address = opts.get("-namespace"), opts.get("-id"), opts.get("-address")
    if not (ns and cid and address):
        return set()
    digest = hashlib.sha256(f"{address}/{ns}/{cid}".encode()).hexdigest()
    return {Path("/run/containerd/s") / digest}


def _proxies_in(netns: str | os.PathLike | None) -> set[int]:
    """The docker-proxy processes whose network namespace is `netns`."""
    if not netns:
        return set()
    try:
        st = os.stat(netns)
    except OSError:
        return set()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ns = os.stat(entry / "ns" / "net")
            if (ns.st_dev, ns.st_ino) != (st.st_dev, st.st_ino):
                continue
            argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0]
        except OSError:
            continue
        if Path(argv0.decode(errors="replace")).name == "docker-proxy":
            found.add(int(entry.name))
    return found


def _pids_naming(text: str) -> set[int]:
    found = set()
    needle = text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def _cgroup_dirs(cgroup_parent: str) -> list[Path]:
    rel = cgroup_parent.strip("/")
    dirs = []
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.is_dir() else []:
        for d in (hierarchy / rel, CGROUP_ROOT / rel):
            if d.is_dir() and d not in dirs:
                dirs.append(d)
    return dirs


def _pids_in_cgroups(cgroup_parent: str) -> set[int]:
    pids = set()
    for top in _cgroup_dirs(cgroup_parent):
        for procs in top.rglob("cgroup.procs"):
            try:
                pids.update(int(p) for p in procs.read_text().split())
            except OSError:
                continue
    return pids


def _remove_cgroups(cgroup_parent: str) -> None:
    for top in _cgroup_dirs(cgroup_parent):
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            _rmdir_quiet(d)
        _rmdir_quiet(top)


def _rmdir_quiet(d: Path) -> None:
    try:
        d.rmdir()
    except OSError as e:
        log.warning("could not remove cgroup %s: %s", d, e)


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root).rstrip("/") + "/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = _unescape(line.split()[4])
        if mp == str(root) or mp.startswith(prefix):
            found.append(mp)
    return found


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    return (field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\"))


def _unmount_under(root: Path) -> None:
    for _ in range(5):
        mounts = _mounts_under(root)
        if not mounts:
            return
        for mp in sorted(mounts, key=len, reverse=True):
            if subprocess.run(["umount", mp], capture_output=True, timeout=60).returncode != 0:
                subprocess.run(["umount", "-l", mp], capture_output=True, timeout=60)
    log.warning("mounts left under %s: %s", root, _mounts_under(root))


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} unreadable)"


def run_cli(args: Sequence[str]) -> int:
    """`python -m bench.dockerd [docker args...]`: start a private dockerd, run one docker command, tear down.
    With no arguments it only checks that a private dockerd starts and stops cleanly."""
    logging.basicConfig(level=logging.INFO)
    with private_dockerd() as d:
        res = d.docker(*(args or ["info"]), check=False, text=True)
        print(res.stdout, end="")
        print(res.stderr, end="", file=sys.stderr)
        return res.returncode


if __name__ == "__main__":

    sys.exit(run_cli(sys.argv[1:]))
