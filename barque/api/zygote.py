"""The zygote: where the API server's engine operations run.

barque's engine forks (a container's monitor, an exec, a build's RUN), switches mount namespaces and holds SQLite
connections — none of which is safe in a process with threads, and an asyncio server has them (the default
executor, aiohttp's resolver). So `barque serve` forks a zygote *first*, while it is still single-threaded; the
zygote imports the engine once and then, for each call, forks a child that runs one operation with an Engine of its
own, exactly as the CLI would, and exits. A fork of the preloaded zygote costs a few milliseconds; a crash or leak
in an operation dies with its child.

A call: the server makes a socket pair, sends `{"op", "args"}` and the child's end (plus any descriptors the
operation needs) over the control socket (SEQPACKET, so one message is one call); the child answers on its end with
one JSON line, `{"ok": RESULT}` or `{"error": {"kind", "message"}}`, and may then stream raw bytes both ways
(logs, attach, build output, archives) until it closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from typing import Any, Callable

from barque.api.errors import ApiError, kind_of, status_of

__all__ = ["Zygote", "Call", "Channel", "OPS", "op", "error_of"]

log = logging.getLogger(__name__)

MAX_MESSAGE = 4 << 20
MAX_FDS = 16

#: operation name → function(engine, args, channel) → result (JSON-able); filled by barque.api.ops
OPS: dict[str, Callable[..., Any]] = {}


def op(name: str):
    def register(fn):
        OPS[name] = fn
        return fn
    return register


class Channel:
    """The child's end of one call: reply once, then stream."""

    def __init__(self, sock: socket.socket, fds: list[int]) -> None:
        self.sock = sock
        self.fds = fds
        self.replied = False

    def reply(self, result: Any = None) -> None:
        if self.replied:
            return
        self.replied = True
        self.sock.sendall(json.dumps({"ok": result}).encode() + b"\n")

    def fail(self, exc: BaseException) -> None:
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        kind = kind_of(exc)
        status = exc.status if isinstance(exc, ApiError) else status_of(kind)
        body = {"error": {"kind": kind, "status": status, "message": message}}
        code = getattr(exc, "code", None)
        if isinstance(code, int):
            body["error"]["code"] = code
        self.sock.sendall(json.dumps(body).encode() + b"\n")
        self.replied = True

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def file(self, mode: str = "rb"):
        """The stream as a file object (for code that writes to or reads from files: archives, progress)."""
        return self.sock.makefile(mode, buffering=0 if "b" in mode else -1)


def error_of(err: dict) -> ApiError:
    """A child's `{"error": {…}}` (Channel.fail) as the ApiError it stands for."""
    e = ApiError(err.get("status") or status_of(err.get("kind", "internal")), err.get("message") or "error")
    e.kind = err.get("kind")
    e.code = err.get("code")
    return e


class Call:
    """The server's end of one call."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._result: Any = None
        self._got = False

    async def result(self) -> Any:
        """The operation's answer; raises ApiError (Docker's status for barque's category) when it failed."""
        if self._got:
            return self._result
        line = await self.reader.readline()
        self._got = True
        if not line:
            raise ApiError(500, "the operation ended without an answer (its process died)")
        msg = json.loads(line)
        if "error" in msg:
            raise error_of(msg["error"])
        self._result = msg.get("ok")
        return self._result

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 - already gone
            pass

    async def __aenter__(self) -> "Call":
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()


class Zygote:
    def __init__(self, settings, preload: Callable[[], None] | None = None) -> None:
        ctl, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the zygote
            code = 0
            try:
                ctl.close()
                _zygote(child, settings, preload)
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                os._exit(code)
        child.close()
        self.pid = pid
        self._ctl = ctl

    async def call(self, name: str, args: dict | None = None, fds: tuple[int, ...] = ()) -> Call:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            msg = json.dumps({"op": name, "args": args or {}}).encode()
            if len(msg) > MAX_MESSAGE:
                raise ApiError(413, "request body too large")
            socket.send_fds(self._ctl, [msg], [theirs.fileno(), *fds])
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        reader, writer = await asyncio.open_unix_connection(sock=ours, limit=1 << 20)
        return Call(reader, writer)

    async def run(self, name: str, args: dict | None = None) -> Any:
        """A call whose whole answer is its result."""
        call = await self.call(name, args)
        try:
            return await call.result()
        finally:
            call.close()

    def close(self) -> None:
        """Closing the control socket ends the zygote (its running children finish their calls)."""
        self._ctl.close()
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _zygote(ctl: socket.socket, settings, preload) -> None:  # pragma: no cover - runs in the zygote
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # its children are reaped by the kernel
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the server decides when to stop; EOF on ctl ends us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if preload is not None:
        preload()
    import gc

    gc.collect()
    gc.freeze()  # what is loaded now is never collected: children do not touch (and copy) its pages to scan it
    while True:
        try:
            # close-on-exec: a call's sockets must not reach what its operation executes (a build's RUN, a
            # container): the operation's own process (and a monitor it forks) keeps them, an exec'd program not
            msg, fds, _flags, _addr = socket.recv_fds(ctl, MAX_MESSAGE, MAX_FDS, socket.MSG_CMSG_CLOEXEC)
        except InterruptedError:
            continue
        if not msg:
            return
        try:
            pid = os.fork()
        except OSError as e:
            _refuse(fds, e)
            continue
        if pid == 0:
            code = 0
            try:
                ctl.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                _child(msg, fds, settings)
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)


def _refuse(fds: list[int], e: OSError) -> None:  # pragma: no cover - runs in the zygote
    if fds:
        s = socket.socket(fileno=fds[0])
        try:
            Channel(s, []).fail(e)
        except OSError:
            pass
        s.close()
    for fd in fds[1:]:
        os.close(fd)


def _child(msg: bytes, fds: list[int], settings) -> None:  # pragma: no cover - runs in a forked child
    from barque.engine import Engine

    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)  # an operation's stray prints must not reach the server's output
    os.close(devnull)
    sock = socket.socket(fileno=fds[0])
    chan = Channel(sock, fds[1:])
    req = json.loads(msg)
    engine = None
    try:
        fn = OPS.get(req["op"])
        if fn is None:
            raise ApiError(500, f"unknown operation {req['op']!r}")
        engine = Engine(settings)
        result = fn(engine, req.get("args") or {}, chan)
        chan.reply(result)
    except BaseException as e:  # noqa: BLE001 - everything goes back to the server
        if not isinstance(e, (ApiError,)) and kind_of(e) == "internal":
            log.exception("operation %s failed", req.get("op"))
        try:
            if not chan.replied:  # a streaming operation reports in-band itself; its stream just ends
                chan.fail(e)
        except OSError:
            pass
    finally:
        if engine is not None:
            try:
                engine.close()
            except Exception:  # noqa: BLE001
                pass
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

