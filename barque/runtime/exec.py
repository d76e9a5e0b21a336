"""`exec`: one more process in a running container — stage 1 joins every namespace the container's PID 1 has that
differs from ours (through /proc/PID/ns/*, the user namespace first), in the container's cgroup (the parent moves it
there before it runs); stage 2, forked so it lands in the container's PID namespace, gets the container's seccomp
filter and the process spec's user, capabilities, rlimits, no_new_privs, cwd and env, then executes.

With --detach the caller (containerd's shim, a subreaper) collects the exit status; in the foreground we are the
subreaper and return the status as `run` does.
"""

from __future__ import annotations

import os
from pathlib import Path

from barque.errors import FailedPrecondition
from barque.runtime import spec as specmod
from barque.runtime.state import CREATED, RUNNING, StateStore

__all__ = ["exec_process", "process_from_args"]


def process_from_args(base: dict, args: list[str], *, env: list[str] | None = None, cwd: str | None = None,
                      user: str | None = None, tty: bool = False, caps: list[str] | None = None,
                      no_new_privs: bool = False) -> dict:
    """runc's `exec ID ARGS…` form: the container's own process spec with these changes."""
    import copy

    process = copy.deepcopy(base)
    process["args"] = list(args)
    process["terminal"] = tty
    process.pop("consoleSize", None)
    if env:
        merged = specmod_env(process.get("env") or [], env)
        process["env"] = merged
    if cwd:
        process["cwd"] = cwd
    if user:
        uid, _, gid = user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise FailedPrecondition(f"--user {user!r}: give numeric UID[:GID]")
        process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    if caps:
        for s in ("bounding", "effective", "permitted", "ambient"):
            current = list((process.get("capabilities") or {}).get(s) or [])
            process.setdefault("capabilities", {})[s] = current + [c for c in caps if c not in current]
    if no_new_privs:
        process["noNewPrivileges"] = True
    return process


def specmod_env(base: list[str], extra: list[str]) -> list[str]:
    out = {e.split("=", 1)[0]: e for e in base}
    for e in extra:
        out[e.split("=", 1)[0]] = e
    return list(out.values())


def _namespaces_to_join(pid: int, proc: Path = Path("/proc")) -> list[tuple[str, str]]:
    join = []
    for t, (_flag, name) in specmod.NAMESPACES.items():
        theirs = proc / str(pid) / "ns" / name
        try:
            if os.stat(theirs).st_ino != os.stat(proc / "self" / "ns" / name).st_ino:
                join.append((t, str(theirs)))
        except FileNotFoundError:
            continue
    return join


def exec_process(store: StateStore, cid: str, process: dict, *, detach: bool = False,
                 pid_file: Path | None = None, console_socket: str | None = None, preserve_fds: int = 0) -> int:
    from barque.runtime.create import prime_cgroup_migration

    specmod.validate_process(process)
    primer = prime_cgroup_migration()  # see create.py: the cgroup move below is then cheap
    try:
        return _exec(store, cid, process, detach, pid_file, console_socket, preserve_fds, primer)
    finally:
        primer.join()


def _exec(store, cid, process, detach, pid_file, console_socket, preserve_fds, primer) -> int:
    from barque.linux import _libc
    from barque.runtime.channel import pair
    from barque.runtime.create import _flush, _kill, _reap, cgroup_manager, join_before_fork, write_pid_file
    from barque.runtime.init import SETUP_TIMEOUT, InitConfig, stage1

    c = store.load(cid)
    status = c.status()
    if status not in (RUNNING, CREATED):
        raise FailedPrecondition(f"cannot exec in container {cid}: it is {status}")
    if process.get("terminal") and not console_socket and detach:
        raise FailedPrecondition("the process wants a terminal: pass --console-socket to receive it")
    config = c.config()
    if process.get("capabilities") is not None:
        from barque.runtime.caps import validate_capabilities

        validate_capabilities(process["capabilities"])
    seccomp_filter = None
    if (config.get("linux") or {}).get("seccomp"):
        from barque.runtime.bpf import prepare_filter

        seccomp_filter = prepare_filter(config["linux"]["seccomp"], store.bpf_cache)
    join = _namespaces_to_join(c.pid)
    cfg = InitConfig(process=process, join=join, console_socket=console_socket,
                     console_to_parent=not detach and not console_socket, seccomp=seccomp_filter,
                     preserve_fds=preserve_fds)
    if process.get("terminal") and console_socket:
        from barque.runtime.console import connect

        cfg.console_conn = connect(console_socket)
    mgr = cgroup_manager(c.cgroups_path)
    if not detach:
        _libc.set_child_subreaper(True)
    parent, child = pair()
    join_before_fork(primer)
    _flush()
    pid = os.fork()
    if pid == 0:
        parent.close()
        stage1(child, cfg)
    child.close()
    exec_pid = 0
    console_fd = None
    try:
        primer.join()
        mgr.apply(pid)
        parent.send("go")
        while True:
            msg, fds = parent.recv(SETUP_TIMEOUT)
            kind = msg["t"]
            if kind == "pid":
                exec_pid = msg["pid"]
                _reap(pid)
                if process.get("oomScoreAdj") is not None:
                    from barque.runtime.process import write_oom_score_adj

                    write_oom_score_adj(exec_pid, process["oomScoreAdj"])
                parent.send("go")
            elif kind == "console":
                console_fd = fds[0] if fds else None
            elif kind == "ready":
                break
            elif kind == "error":
                raise FailedPrecondition(msg.get("msg", "exec failed"))
            elif kind == "eof":
                raise FailedPrecondition("the exec'd process exited during setup")
            else:
                raise FailedPrecondition(f"unexpected message from the exec setup: {kind!r}")
    except BaseException:
        _kill(pid)
        _reap(pid)
        if exec_pid:
            _kill(exec_pid)
            _reap(exec_pid)
        raise
    finally:
        parent.close()
        if cfg.console_conn is not None:
            cfg.console_conn.close()
    if pid_file:
        write_pid_file(pid_file, exec_pid)
    if detach:
        return 0
    from barque.runtime.run import wait_foreground

    return wait_foreground(exec_pid, console_fd)
