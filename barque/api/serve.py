"""Running the API server: the zygote first (while single-threaded), then the listeners — unix sockets (root-owned,
mode 0660, a configurable group), TCP (TLS, with client certificates under --tlsverify) and systemd's sockets
(`fd://`) — then serve until SIGTERM/SIGINT.

Once every listener is up, one line goes to standard output: ``barque API listening on ADDR[, ADDR…]`` (tests and
scripts wait for it).
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass

from barque.errors import InvalidArgument

__all__ = ["serve", "ServeOptions", "LISTENING", "DEFAULT_SOCKET", "parse_host"]

log = logging.getLogger(__name__)

LISTENING = "barque API listening on"
DEFAULT_SOCKET = "/run/barque/barque.sock"
SD_LISTEN_FDS_START = 3


@dataclass
class ServeOptions:
    hosts: list[str]
    group: str | None = "barque"
    tls: bool = False
    tlsverify: bool = False
    tlscacert: str | None = None
    tlscert: str | None = None
    tlskey: str | None = None


def parse_host(text: str) -> tuple[str, str]:
    """`unix:///path`, `tcp://HOST:PORT` (HOST may be empty: all addresses), `fd://` or `fd://N`, or a bare path."""
    if text.startswith("unix://"):
        path = text[len("unix://"):]
        if not path.startswith("/"):
            raise InvalidArgument(f"invalid unix socket address {text!r}: the path must be absolute")
        return "unix", path
    if text.startswith("tcp://"):
        rest = text[len("tcp://"):].rstrip("/")
        host, sep, port = rest.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidArgument(f"invalid tcp address {text!r}: expected tcp://HOST:PORT")
        return "tcp", f"{host.strip('[]') or '0.0.0.0'}:{port}"
    if text.startswith("fd://"):
        return "fd", text[len("fd://"):]
    if text.startswith("/"):
        return "unix", text
    raise InvalidArgument(f"invalid host {text!r}: expected unix:///PATH, tcp://HOST:PORT or fd://")


def _unix_listener(path: str, group: str | None) -> socket.socket:
    os.makedirs(os.path.dirname(path) or "/", mode=0o755, exist_ok=True)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        pass  # nothing serves it: a stale socket of a server that died is replaced
    except OSError:
        pass
    else:
        raise InvalidArgument(f"{path} is in use by another server")
    finally:
        probe.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    gid = 0
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid if not group.isdigit() else int(group)
        except KeyError:
            log.warning("group %r not found: %s stays root-only", group, path)
            gid = 0
    os.chown(path, 0, gid)
    os.chmod(path, 0o660)
    sock.listen(512)
    sock.setblocking(False)
    return sock


def _tcp_listener(addr: str) -> socket.socket:
    host, _, port = addr.rpartition(":")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(512)
    sock.setblocking(False)
    return sock


def _systemd_listeners(which: str) -> list[socket.socket]:
    """The sockets systemd passed (LISTEN_PID/LISTEN_FDS); `fd://N` picks one of them."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        raise InvalidArgument("fd:// needs sockets from systemd socket activation (LISTEN_FDS), and none were passed")
    count = int(os.environ.get("LISTEN_FDS", "0"))
    fds = list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count))
    if which:
        if not which.isdigit() or int(which) not in fds:
            raise InvalidArgument(f"fd://{which} was not passed by systemd (it passed {fds})")
        fds = [int(which)]
    out = []
    for fd in fds:
        os.set_inheritable(fd, False)
        s = socket.socket(fileno=fd)
        s.setblocking(False)
        out.append(s)
    return out


def _ssl_context(opts: ServeOptions):
    if not (opts.tls or opts.tlsverify):
        return None
    import ssl

    if not opts.tlscert or not opts.tlskey:
        raise InvalidArgument("--tls and --tlsverify need --tlscert and --tlskey")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(opts.tlscert, opts.tlskey)
        if opts.tlsverify:
            if not opts.tlscacert:
                raise InvalidArgument("--tlsverify needs --tlscacert to check clients' certificates against")
            ctx.load_verify_locations(opts.tlscacert)
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (ssl.SSLError, OSError) as e:
        raise InvalidArgument(f"cannot use the TLS files: {e}") from None
    return ctx


def preload() -> None:
    """What the zygote imports once, so its children start warm: the operations and every engine module below the
    edges (a child that imports on first use pays for it on every request — 40 ms for a create, measured)."""
    import importlib
    import pkgutil

    import barque
    import barque.api.ops  # noqa: F401 - registers the operations

    skip = ("barque.cli", "barque.api", "barque.registry.server", "barque.container.cmonitor")
    for info in pkgutil.walk_packages(barque.__path__, "barque."):
        if info.name.startswith(skip) or info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception as e:  # noqa: BLE001 - a module that cannot load here is loaded (and fails) when used
            log.debug("preloading %s failed: %s", info.name, e)
    # standard modules barque imports inside functions (a start's runtime hand-over, a build's tar, hashing)
    for name in ("pickle", "copy", "_sha256", "hashlib", "tarfile", "shlex", "secrets", "uuid", "ipaddress",
                 "subprocess", "tempfile", "shutil", "datetime", "base64", "gzip", "select", "termios", "tty",
                 "fnmatch", "urllib.parse", "concurrent.futures", "traceback"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    from barque.oci.reference import parse_reference

    parse_reference("busybox:latest")  # compiles the reference grammar's regular expressions once


def serve(settings, opts: ServeOptions, announce=None) -> None:
    from barque.api.zygote import Zygote

    kinds = [parse_host(h) for h in opts.hosts]
    ssl_ctx = _ssl_context(opts)
    for kind, addr in kinds:
        if kind == "tcp" and ssl_ctx is None and not addr.startswith(("127.", "localhost", "[::1]", "::1")):
            log.warning("serving the API on %s without TLS: anyone who can reach it is root on this machine", addr)
    preload()
    zygote = Zygote(settings)  # before anything starts a thread
    _more_open_files()  # the server's own (the zygote, and so every container, keeps the limit it was given)
    try:
        asyncio.run(_serve(settings, opts, kinds, ssl_ctx, zygote, announce or _print))
    finally:
        zygote.close()


def _more_open_files() -> None:
    """Raise the soft limit of open files to the hard one, as Go does for dockerd: a server holds a descriptor
    per client and, for its listings, one per running container (container/view.py)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as e:
            log.debug("open files stay at %d: %s", soft, e)


def _print(line: str) -> None:
    print(line, flush=True)


async def _serve(settings, opts: ServeOptions, kinds, ssl_ctx, zygote, announce) -> None:
    from aiohttp import web

    from barque.api.app import ApiState, make_app

    state = ApiState(settings=settings, zygote=zygote)
    app = make_app(state)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2,
                           handler_cancellation=True)  # a gone client's wait, logs or events stop with it
    await runner.setup()
    made_paths = []
    try:
        shown = []
        for kind, addr in kinds:
            if kind == "unix":
                sock = _unix_listener(addr, opts.group)
                made_paths.append(addr)
                socks, ctx = [sock], None
                shown.append(f"unix://{addr}")
            elif kind == "tcp":
                socks, ctx = [_tcp_listener(addr)], ssl_ctx
                bound = socks[0].getsockname()
                shown.append(f"tcp://{bound[0]}:{bound[1]}")
            else:
                socks, ctx = _systemd_listeners(addr), None
                shown.append(f"fd://{addr}")
            for sock in socks:
                site = web.SockSite(runner, sock, ssl_context=ctx if kind == "tcp" else None)
                await site.start()
        announce(f"{LISTENING} {', '.join(shown)}")
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
        state.close()
        for path in made_paths:
            try:
                os.unlink(path)
            except OSError:
                pass
        sys.stdout.flush()
