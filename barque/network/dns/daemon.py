"""The DNS server's process: `python -m barque.network.dns --root ROOT --run-root RUNROOT [--ready-fd N]`.

`attach` starts it with `python -S` in a session of its own; it forks once more (so it is nobody's child and can
never take a terminal), moves to `/`, points its stdio at /dev/null and logs to `<run root>/dns.log`. The pid file
`<run root>/dns.pid` stays locked for the server's whole life: that lock, not the file's presence, says a server
runs, so a crashed server never blocks a new one and two never run at once. On `--ready-fd` it writes `ok` once its
control socket listens, `running` when another server holds the pid file, or `error: …`.
"""

from __future__ import annotations

import os
import sys
import time

__all__ = ["main"]

IDLE_ENV = "BARQUE_DNS_IDLE"
DEFAULT_IDLE = 30.0
LOG_MAX = 1 << 20


def _parse(argv: list[str]):
    import argparse

    p = argparse.ArgumentParser(prog="python -m barque.network.dns", description="barque's embedded DNS server")
    p.add_argument("--root", required=True)
    p.add_argument("--run-root", required=True)
    p.add_argument("--ready-fd", type=int, default=-1)
    p.add_argument("--foreground", action="store_true", help="do not fork into the background")
    return p.parse_args(argv)


class _Ready:
    """The pipe `attach` waits on: one message, then closed (never written twice, never a reused descriptor)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def say(self, message: str) -> None:
        if self.fd < 0:
            return
        try:
            os.write(self.fd, message.encode(errors="replace")[:4000])
        except OSError:
            pass
        try:
            os.close(self.fd)
        except OSError:
            pass
        self.fd = -1


def _daemonise(foreground: bool) -> None:
    if not foreground:
        try:
            os.setsid()  # already done when `attach` started us (start_new_session)
        except OSError:
            pass
        if os.fork() != 0:
            os._exit(0)
    os.chdir("/")
    devnull = os.open("/dev/null", os.O_RDWR)
    for i in (0, 1, 2):
        os.dup2(devnull, i)
    os.close(devnull)


def _lock_pid_file(path: str, wait: float = 2.0) -> int | None:
    """The pid file, open and locked, with our pid in it; None when a live server holds it. A server on its way
    out unlinks its file while it still holds the lock: we then lock a new file, not its old one."""
    import fcntl

    deadline = time.monotonic() + wait
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
            continue
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            if time.monotonic() >= deadline:
                return None
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd


def _log_to(path: str) -> None:
    import logging
    import logging.handlers

    handler = logging.handlers.RotatingFileHandler(path, maxBytes=LOG_MAX, backupCount=1)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if os.environ.get("BARQUE_DNS_DEBUG") else logging.INFO)


def _idle_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get(IDLE_ENV, DEFAULT_IDLE)))
    except ValueError:
        return DEFAULT_IDLE


class _Files:
    """The server's pid file and control socket, removed on the way out only while they are still its own."""

    def __init__(self, run_root: str, pid_fd: int) -> None:
        self.pid_path = os.path.join(run_root, "dns.pid")
        self.sock_path = os.path.join(run_root, "dns.sock")
        self.lock_path = os.path.join(run_root, "dns.lock")
        self.pid_fd = pid_fd
        self.sock_ino: int | None = None

    def mark_socket(self) -> None:
        self.sock_ino = os.stat(self.sock_path).st_ino

    def try_leave(self) -> bool:
        """Idle exit: only when no `attach` holds dns.lock — then nobody can be about to talk to us."""
        import fcntl

        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:  # the run root is gone: nobody can be on the way to us
            self.remove()
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        try:
            self.remove()
        finally:
            os.close(fd)
        return True

    def remove(self) -> None:
        # the pid file first: a new server can only start once the socket is gone, and then writes its own
        try:
            if os.fstat(self.pid_fd).st_ino == os.stat(self.pid_path).st_ino:
                os.unlink(self.pid_path)
        except OSError:
            pass
        try:
            if self.sock_ino is not None and os.stat(self.sock_path).st_ino == self.sock_ino:
                os.unlink(self.sock_path)
        except OSError:
            pass
        self.sock_ino = None


def _config_dns(log) -> tuple[str, ...]:
    """The config file's `dns` (the server inherits `$BARQUE_CONFIG` from the `attach` that started it): the
    resolvers of the containers it finds again at start-up that have no --dns of their own."""
    from barque.network.config import load

    try:
        return load().dns
    except Exception as e:  # noqa: BLE001 - a broken file counts as none, as for the containers' resolv.conf
        log.warning("config file: %s", e)
        return ()


def serve(root: str, run_root: str, ready: _Ready, pid_fd: int) -> None:
    import asyncio
    import logging
    from pathlib import Path

    from barque.network.dns.names import Directory
    from barque.network.dns.server import DnsServer
    from barque.network.dns.upstream import Forwarder, read_resolv_conf, resolv_conf_path

    log = logging.getLogger("barque.network.dns")
    conf = read_resolv_conf(resolv_conf_path())
    log.info("started for root %s; upstream servers %s, search %s", root, list(conf.nameservers) or "none",
             list(conf.search))
    directory = Directory(Path(root) / "barque.db", Path(run_root))
    server = DnsServer(Path(root), Path(run_root), directory, Forwarder(conf.nameservers), conf.search,
                       idle=_idle_seconds(), config_dns=_config_dns(log))

    def reload() -> None:
        new = read_resolv_conf(resolv_conf_path())
        server.forwarder = Forwarder(new.nameservers)
        server.search = new.search
        server.config_dns = _config_dns(log)
        log.info("upstream servers now %s, search %s", list(new.nameservers) or "none", list(new.search))

    def on_ready() -> None:
        files.mark_socket()
        ready.say("ok")

    server.reload = reload
    files = _Files(run_root, pid_fd)
    try:
        asyncio.run(server.run(Path(files.sock_path), on_ready, files.try_leave))
    finally:
        files.remove()
        directory.close()
        log.info("stopped")


def main(argv: list[str] | None = None) -> None:
    args = _parse(sys.argv[1:] if argv is None else argv)
    ready = _Ready(args.ready_fd)
    code = 0
    try:
        if 0 <= ready.fd <= 2:  # a caller with closed stdio: keep the pipe out of the way of /dev/null
            import fcntl

            low = ready.fd
            ready.fd = fcntl.fcntl(low, fcntl.F_DUPFD_CLOEXEC, 3)
            os.close(low)
        _daemonise(args.foreground)
        run_root = os.path.abspath(args.run_root)
        os.makedirs(run_root, mode=0o711, exist_ok=True)
        pid_fd = _lock_pid_file(os.path.join(run_root, "dns.pid"))
        if pid_fd is None:
            ready.say("running")
        else:
            _log_to(os.path.join(run_root, "dns.log"))
            try:
                serve(os.path.realpath(args.root), run_root, ready, pid_fd)
            except BaseException:
                import logging

                logging.getLogger("barque.network.dns").exception("the DNS server failed")
                raise
    except BaseException as e:  # noqa: BLE001 - said to whoever waits on the ready fd
        ready.say(f"error: {e}")
        code = 1
    if not args.foreground:
        os._exit(code)
    if code:
        sys.exit(code)
