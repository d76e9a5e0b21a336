"""`create`: everything up to a container whose process waits on its exec fifo.

The parent's side, in order:
1. validate config.json, capabilities and build the seccomp filter — before touching the system, so a bad bundle
   leaves nothing behind;
2. claim `<root>/<id>` (refused if taken), make the exec fifo, create the cgroup and set linux.resources;
3. fork stage 1 (init.py), put it in the cgroup *before* it may run anything, write its uid/gid maps when it made a
   user namespace (and hand it an idmapped rootfs when asked), learn the pid of the container's PID 1, run the
   prestart/createRuntime hooks when the rootfs is mounted, set oom_score_adj, and wait for "ready";
4. write state.json and the pid file.
Any failure kills what was forked and removes the cgroup and the state directory: no mount survives either, since
all of them live in the container's own mount namespace.
"""

from __future__ import annotations

import logging
import os
import signal
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from barque.errors import FailedPrecondition
from barque.runtime import spec as specmod
from barque.runtime.state import Container, StateStore, now_rfc3339, process_start_time

__all__ = ["CreateOptions", "Created", "create", "cgroup_manager", "load_and_validate", "write_pid_file"]

log = logging.getLogger(__name__)


@dataclass
class CreateOptions:
    bundle: Path
    pid_file: Path | None = None
    console_socket: str | None = None
    #: `run` in the foreground with a terminal and no console socket: the master comes back to us
    console_to_parent: bool = False
    preserve_fds: int = 0


@dataclass
class Created:
    container: Container
    #: the terminal's master, when it came back to us (run in the foreground without a console socket)
    console_fd: int | None = None


def cgroup_manager(path: str):
    from barque.cgroups import CgroupManager

    return CgroupManager(path)


def write_pid_file(path: Path, pid: int) -> None:
    path = Path(os.path.abspath(path))
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(str(pid))
    os.replace(tmp, path)


def _cgroup_binds(mgr) -> list:
    """{hierarchy name under /sys/fs/cgroup: the container's directory in it} for the container's cgroup mount."""
    from barque.linux.mountinfo import mounts
    from barque.runtime.rootfs import CgroupBind

    points = sorted({m.mount_point for m in mounts() if m.fs_type in ("cgroup", "cgroup2")}, key=len, reverse=True)
    out, seen = [], set()
    for d in sorted({str(p) for p in mgr.paths.values()}):
        for mp in points:
            if d == mp or d.startswith(mp.rstrip("/") + "/"):
                name = os.path.basename(mp)
                if name not in seen:
                    seen.add(name)
                    out.append(CgroupBind(name, d))
                break
    return out


def _prepare_config(spec: dict, rootfs: Path, bundle: Path, opts: CreateOptions, fifo: Path, seccomp_filter):
    from barque.runtime.init import InitConfig
    from barque.runtime.rootfs import RootfsContext

    linux = spec.get("linux") or {}
    new = specmod.new_namespaces(spec)
    in_userns = specmod.namespace(spec, "user") is not None
    ctx = RootfsContext.from_spec(
        spec, str(rootfs), str(bundle), in_userns=in_userns,
        new_netns="network" in new, new_cgroupns="cgroup" in new,
    )  # the cgroup binds come with stage 1's "go", once the cgroup exists
    from barque.runtime.hooks import has_hooks

    return InitConfig(
        process=spec["process"], join=specmod.joined_namespaces(spec), new=new,
        uid_maps=list(linux.get("uidMappings") or []), spec=spec, rootfs_ctx=ctx, fifo=str(fifo),
        hook_sync=has_hooks(spec, "prestart", "createRuntime", "createContainer"),
        hostname=spec.get("hostname"), domainname=spec.get("domainname"),
        sysctl=dict(linux.get("sysctl") or {}), console_socket=opts.console_socket,
        console_to_parent=opts.console_to_parent, seccomp=seccomp_filter, preserve_fds=opts.preserve_fds,
    )


def load_and_validate(bundle: Path, bpf_cache: Path | None = None) -> tuple[dict, Path, object]:
    """config.json checked as far as it can be without side effects; the seccomp filter built (or found compiled
    in `bpf_cache`)."""
    spec = specmod.load_bundle(bundle)
    rootfs = specmod.validate(spec, bundle)
    process = spec["process"]
    if process.get("capabilities") is not None:
        from barque.runtime.caps import validate_capabilities

        validate_capabilities(process["capabilities"])
    if process.get("apparmorProfile"):
        log.debug("apparmorProfile %r ignored: AppArmor is not used on this host", process["apparmorProfile"])
    if process.get("selinuxLabel"):
        log.debug("selinuxLabel %r ignored: SELinux is not used on this host", process["selinuxLabel"])
    seccomp_filter = None
    if (spec.get("linux") or {}).get("seccomp"):
        from barque.runtime.bpf import prepare_filter

        seccomp_filter = prepare_filter(spec["linux"]["seccomp"], bpf_cache)
    return spec, rootfs, seccomp_filter


def prime_cgroup_migration(proc_self_cgroup: Path = Path("/proc/self/cgroup"),
                           root: Path = Path("/sys/fs/cgroup")):
    """Start a no-op migration (our own pid into our own cgroup) on a helper thread; returns the thread to join
    before forking.

    Why: the first write to a cgroup.procs file takes the kernel's global cgroup threadgroup lock for writing,
    which waits for an RCU grace period (10-20 ms here); for about a grace period afterwards further migrations are
    cheap. Paying that wait while the parent reads the bundle and imports, instead of after the fork, takes
    10-20 ms off every create. Best effort: any failure only loses the head start.
    """
    import threading

    own = str(os.getpid()).encode()

    def prime() -> None:  # os-level calls only: no lock of the interpreter's is ever held by this thread
        try:
            fd = os.open(proc_self_cgroup, os.O_RDONLY | os.O_CLOEXEC)
            try:
                text = os.read(fd, 65536).decode()
            finally:
                os.close(fd)
            for line in text.splitlines():
                _, controllers, path = line.split(":", 2)
                sub = "unified" if not controllers else controllers.split(",")[0].replace("name=", "")
                for procs in (f"{root}/{sub}{path.rstrip('/')}/cgroup.procs", f"{root}{path.rstrip('/')}/cgroup.procs"):
                    try:
                        fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
                    except OSError:
                        continue
                    try:
                        os.write(fd, own)
                    finally:
                        os.close(fd)
                    return
        except (OSError, ValueError):
            return

    t = threading.Thread(target=prime, name="cgroup-prime", daemon=True)
    t.start()
    return t


def join_before_fork(primer) -> None:
    """Python 3.12 and later warn (on the container's stderr, here) when forking beside another thread: there,
    give up the overlap and wait for the primer first."""
    import sys

    if primer is not None and sys.version_info >= (3, 12):
        primer.join()


class EarlyInit:
    """Stage 1 forked before anything else (see init.stage1_early), so its imports overlap the parent's
    validation and cgroup work. Until its configuration is handed over, failing means killing and reaping it."""

    def __init__(self) -> None:
        from barque.runtime.channel import pair
        from barque.runtime.init import stage1_early

        self.channel, child = pair()
        _flush()
        self.pid = os.fork()
        if self.pid == 0:
            self.channel.close()
            stage1_early(child)  # never returns
        child.close()
        self.handed_over = False

    def hand_over(self, cfg) -> None:
        from barque.runtime.init import send_config

        send_config(self.channel, cfg)
        self.handed_over = True

    def discard(self) -> None:
        if not self.handed_over:
            _kill(self.pid)
            _reap(self.pid)
            self.channel.close()


def create(store: StateStore, cid: str, opts: CreateOptions) -> Created:
    early = EarlyInit()
    # the primer thread starts after the fork: this process never forks beside another thread
    primer = prime_cgroup_migration()
    try:
        return _create_checked(store, cid, opts, primer, early)
    finally:
        early.discard()
        primer.join()


def _create_checked(store: StateStore, cid: str, opts: CreateOptions, primer, early: EarlyInit) -> Created:
    specmod.check_id(cid)
    bundle = Path(os.path.abspath(opts.bundle))
    spec, rootfs, seccomp_filter = load_and_validate(bundle, store.bpf_cache)
    process = spec["process"]
    if process.get("terminal") and not opts.console_socket and not opts.console_to_parent:
        raise FailedPrecondition("the process wants a terminal: pass --console-socket to receive it")
    if opts.console_socket and not stat.S_ISSOCK(_stat_mode(opts.console_socket)):
        raise FailedPrecondition(f"--console-socket {opts.console_socket} is not a unix socket")

    state_dir = store.reserve(cid)
    undo: list = [lambda: store.remove(cid)]
    try:
        return _create(store, cid, bundle, spec, rootfs, seccomp_filter, opts, state_dir, undo, primer, early)
    except BaseException:
        for step in reversed(undo):
            try:
                step()
            except Exception as e:  # noqa: BLE001 - clean up as much as possible, report the first error
                log.warning("cleaning up after a failed create of %s: %s", cid, e)
        raise


def _stat_mode(path: str) -> int:
    try:
        return os.stat(path).st_mode
    except OSError:
        return 0


def _create(store, cid, bundle, spec, rootfs, seccomp_filter, opts, state_dir, undo, primer,
            early: EarlyInit) -> Created:
    from barque.runtime.init import SETUP_TIMEOUT

    fifo = state_dir / "exec.fifo"
    os.mkfifo(fifo, 0o622)
    os.chmod(fifo, 0o622)  # past the umask: a remapped root writes it as "other"
    user_ns = specmod.namespace(spec, "user")
    if user_ns is not None and not user_ns.get("path"):
        _check_reachable(rootfs, linux_maps(spec))
    cfg = _prepare_config(spec, rootfs, bundle, opts, fifo, seccomp_filter)
    cfg.fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
    undo.append(lambda: os.close(cfg.fifo_fd))
    if process_terminal(spec) and opts.console_socket:
        from barque.runtime.console import connect

        cfg.console_conn = connect(opts.console_socket)
        undo.append(cfg.console_conn.close)

    # stage 1 has been importing meanwhile; from now on it is ours to kill on failure (kill_all below)
    parent, pid = early.channel, early.pid
    early.hand_over(cfg)
    init_pid = 0
    stage1_done = False

    def kill_all() -> None:
        if init_pid:
            _kill(init_pid)
        if not stage1_done:
            _kill(pid)
            _reap(pid)

    undo.append(kill_all)
    # a second no-op migration now keeps the lock's cheap window open (or opens it) until our apply below
    primer2 = prime_cgroup_migration()
    cg_path = specmod.cgroups_path(spec, cid)
    if cg_path == f"/barque/{cid}":
        from barque.cgroups import ensure_parent

        ensure_parent("barque")
    mgr = cgroup_manager(cg_path)
    mgr.create()
    undo.insert(1, mgr.destroy)  # after the processes are killed (undo runs backwards)
    resources = _with_default_devices((spec.get("linux") or {}).get("resources"))
    if resources:
        mgr.set(resources)
    for t in (primer, primer2):
        if t is not None:
            t.join()
    mgr.apply(pid)
    parent.send("go", cgroups=[[b.name, b.host_dir] for b in _cgroup_binds(mgr)], v2only=mgr.mode == "v2")
    linux = spec.get("linux") or {}
    console_fd = None
    while True:
        msg, fds = parent.recv(SETUP_TIMEOUT)
        kind = msg["t"]
        if kind == "userns":
            from barque.runtime import userns

            userns.write_mappings(pid, linux.get("uidMappings") or [], linux.get("gidMappings") or [])
            mount_fds = [userns.idmapped_tree(str(rootfs), pid)] if userns.wants_idmap(spec) else []
            try:
                parent.send("ack", fds=mount_fds)
            finally:
                for fd in mount_fds:
                    os.close(fd)
        elif kind == "pid":
            init_pid = msg["pid"]
            os.waitpid(pid, 0)  # stage 1 exits right after sending this
            stage1_done = True
            if process_oom(spec) is not None:
                from barque.runtime.process import write_oom_score_adj

                write_oom_score_adj(init_pid, process_oom(spec))
            parent.send("go")
        elif kind == "hooks":
            from barque.runtime.hooks import run_hooks

            state = _container(cid, bundle, rootfs, spec, init_pid, cg_path).oci_state("creating")
            run_hooks(spec, "prestart", state)
            run_hooks(spec, "createRuntime", state)
            parent.send("ack", state=state)
        elif kind == "console":
            console_fd = fds[0] if fds else None
        elif kind == "ready":
            break
        elif kind == "error":
            for fd in fds:
                os.close(fd)
            raise FailedPrecondition(msg.get("msg", "container setup failed"))
        elif kind == "eof":
            raise FailedPrecondition("the container's init process exited during setup")
        else:
            raise FailedPrecondition(f"unexpected message from the container's setup: {kind!r}")
    parent.close()
    os.close(cfg.fifo_fd)
    if cfg.console_conn is not None:
        cfg.console_conn.close()
    c = _container(cid, bundle, rootfs, spec, init_pid, cg_path)
    c.start_time = process_start_time(init_pid) or 0
    if not c.start_time:
        raise FailedPrecondition("the container's init process exited right after setup")
    store.save(c, config=spec)
    if opts.pid_file:
        write_pid_file(opts.pid_file, init_pid)
    log.debug("created %s: pid %d, cgroup %s", cid, init_pid, cg_path)
    return Created(c, console_fd)


def _with_default_devices(resources: dict | None) -> dict | None:
    """As runc does, the device rules for the nodes every container gets (null, zero, full, random, urandom, tty,
    console, ptmx, the pts) and mknod of any device are appended to a device allowlist: engines (Docker) send only
    their own rules and count on the runtime for these."""
    if not resources or "devices" not in resources:
        return resources
    from barque.runtime.defaults import default_device_rules

    return {**resources, "devices": list(resources["devices"] or []) + default_device_rules()[1:]}


def process_terminal(spec: dict) -> bool:
    return bool((spec.get("process") or {}).get("terminal"))


def linux_maps(spec: dict) -> tuple[int, int]:
    """The host uid and gid of the container's root (0 inside), or -1 when unmapped."""
    from barque.runtime.spec import map_id

    linux = spec.get("linux") or {}
    uid = map_id(linux.get("uidMappings") or [], 0)
    gid = map_id(linux.get("gidMappings") or [], 0)
    return (uid if uid is not None else -1, gid if gid is not None else -1)


def _check_reachable(rootfs: Path, ids: tuple[int, int]) -> None:
    """In a new user namespace the container's root is an ordinary user of the host: every directory above the
    rootfs must let it through, or the mounts fail with a bare EACCES. Say so clearly, before anything is made."""
    uid, gid = ids
    for d in [rootfs, *rootfs.parents]:
        st = os.stat(d)
        ok = st.st_mode & 0o001 or (st.st_uid == uid and st.st_mode & 0o100) or (st.st_gid == gid and st.st_mode & 0o010)
        if not ok:
            raise FailedPrecondition(
                f"the container's root (uid {uid} on the host) cannot reach its rootfs: {d} is not searchable by it "
                f"(mode {stat.S_IMODE(st.st_mode):04o}, owner {st.st_uid}:{st.st_gid}); make the directories above "
                f"the rootfs searchable (0711) or owned by the mapped root, as Docker's userns-remap does")


def process_oom(spec: dict) -> int | None:
    return (spec.get("process") or {}).get("oomScoreAdj")


def _container(cid, bundle, rootfs, spec, pid, cg_path) -> Container:
    return Container(
        id=cid, bundle=str(bundle), rootfs=str(rootfs), pid=pid, start_time=0, created=now_rfc3339(),
        oci_version=spec.get("ociVersion", ""), cgroups_path=cg_path,
        annotations=dict(spec.get("annotations") or {}),
    )


def _flush() -> None:
    import sys

    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (OSError, ValueError):
            pass


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap(pid: int, timeout: float = 10.0) -> int | None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if done:
            return status
        if time.monotonic() > deadline:
            return None
        time.sleep(0.001)

