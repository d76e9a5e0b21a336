"""Build operations of the API: `build.run` (POST /build) and `build.prune`.

`build.run` reads the context from its socket until the server's end-of-file (or clones/downloads the remote),
then builds exactly as `barque build` does, writing Docker's JSON lines to the socket: `{"stream": …}` per line of
the builder's output (what a RUN writes to its standard error: each piece as one message, coloured red as Docker's
classic builder sends it), `{"aux": {"ID": …}}`, `Successfully built …`/`Successfully tagged …`, and errors in-band
as `{"errorDetail": {"message", "code"?}, "error"}` (the code is a failing RUN's exit status; the docker CLI exits
with it). The answer is sent with the first line of output: an error before any (no Dockerfile, a parse error, an
unknown target) goes back as the call's error, an HTTP status, as dockerd answers. With `quiet` the output is held
back: on success only the image ID is sent, on failure what was held and the error.

While it builds, a hang-up of the socket (the server closed it: the client went away) is noticed at once, not at
the next line of output: SIGIO on the socket raises ClientGone (a KeyboardInterrupt) in the build, which unwinds as
`barque build` unwinds on Ctrl-C — the running RUN's process killed and deleted, its snapshot and mounts removed,
the received context removed, nothing registered or tagged.
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import re
import select
import signal
from contextlib import contextmanager

from barque.api.errors import ApiError, kind_of
from barque.api.zygote import op
from barque.errors import NotFound

log = logging.getLogger(__name__)

_LINE = re.compile(r"[^\n]*\n|[^\n]+")


class ClientGone(KeyboardInterrupt):
    """The server closed the call's socket: nobody is reading the build's output any more."""


class _Stream:
    """The build's output as Docker's JSON lines on the call's socket."""

    def __init__(self, chan, quiet: bool) -> None:
        self.chan = chan
        self.quiet = quiet
        self.held: list[str] = []
        self.started = False
        #: the server closed the socket: output goes nowhere, and never raises — a write can fail in a clean-up
        #: path (the parallel stages' scheduler prints held output before it stops its children), which must run
        #: on; the build itself is stopped by ClientGone, raised once by the SIGIO handler
        self.gone = False

    def _send(self, obj: dict) -> None:
        if self.gone:
            return
        try:
            self.chan.reply(None)
            self.chan.write(json.dumps(obj).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            self.gone = True

    def out(self, text: str) -> None:
        if self.gone:
            return
        for line in _LINE.findall(text):
            self.started = True
            if self.quiet:
                self.held.append(line)
            else:
                self._send({"stream": line})

    def err(self, text: str) -> None:
        """What a RUN wrote to its standard error, as Docker's classic builder sends it: each piece as it came, one
        message, between the escapes that colour it bright red (`\x1b[91m` … `\x1b[0m`), never split at lines."""
        if self.gone or not text:
            return
        self.started = True
        text = f"\x1b[91m{text}\x1b[0m"
        if self.quiet:
            self.held.append(text)
        else:
            self._send({"stream": text})

    def flush_held(self) -> None:
        held, self.held = self.held, []
        for line in held:
            self._send({"stream": line})

    def error(self, message: str, code: int | None = None) -> None:
        self.flush_held()
        detail: dict = {"message": message}
        if code:
            detail["code"] = code
        self._send({"errorDetail": detail, "error": message})


def _gone(fd: int) -> bool:
    p = select.poll()
    p.register(fd, select.POLLHUP | select.POLLERR)
    return any(ev & (select.POLLHUP | select.POLLERR) for _, ev in p.poll(0))


#: inside os.fork's at-fork hooks (see _hangup_raises)
_FORKING = [False]
_FORK_HOOKS = [False]


def _fork_began() -> None:
    _FORKING[0] = True


def _fork_ended() -> None:
    _FORKING[0] = False


@contextmanager
def _hangup_raises(sock, stream: _Stream):
    """ClientGone in this (main) thread as soon as the peer closes `sock`: O_ASYNC makes the kernel send SIGIO on
    the socket's events (its hang-up included), and the handler checks for the hang-up. Raised once: the
    clean-up it starts is not interrupted again.

    Not while the process forks (a RUN step's runner): an exception raised in os.fork's at-fork hooks — where a
    pending signal's handler may run — is printed as "Exception ignored" and lost, and the build would run on
    for nobody (a client that leaves right at a step's start). The handler then tries again 50 ms later (SIGALRM).
    The hooks are registered here, after every module's: `before` hooks run in reverse order of registration,
    the `after` ones in order, so the flag spans all the others."""
    fd = sock.fileno()
    armed = [True]
    if not _FORK_HOOKS[0]:
        _FORK_HOOKS[0] = True
        os.register_at_fork(before=_fork_began, after_in_parent=_fork_ended, after_in_child=_fork_ended)

    def handler(signum, frame):
        if armed[0] and _gone(fd):
            if _FORKING[0]:
                signal.setitimer(signal.ITIMER_REAL, 0.05)
                return
            armed[0] = False
            stream.gone = True
            raise ClientGone()

    previous_alarm = signal.signal(signal.SIGALRM, handler)
    signal.signal(signal.SIGIO, handler)
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_ASYNC)
    try:
        if _gone(fd):
            armed[0] = False
            stream.gone = True
            raise ClientGone()
        yield
    finally:
        armed[0] = False
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
        signal.signal(signal.SIGIO, signal.SIG_IGN)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_alarm)


def _docker_config(work, auths: dict) -> None:
    """The credentials the client sent (X-Registry-Config) as the only ones the build's pulls see: a
    config.json of its own in the build's private directory (removed with it), as DOCKER_CONFIG."""
    entries = {}
    for key, auth in auths.items():
        key = key or auth.get("serveraddress") or ""
        if not key:
            continue
        entry: dict = {}
        user, password = auth.get("username") or "", auth.get("password") or ""
        if auth.get("identitytoken"):
            entry["identitytoken"] = auth["identitytoken"]
            entry["auth"] = base64.b64encode(f"{user}:".encode()).decode()
        elif user or password:
            entry["auth"] = base64.b64encode(f"{user}:{password}".encode()).decode()
        elif auth.get("auth"):
            entry["auth"] = auth["auth"]
        else:
            continue
        entries[key] = entry
    path = work / "docker-config"
    path.mkdir(mode=0o700)
    fd = os.open(path / "config.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"auths": entries}, f)
    os.environ["DOCKER_CONFIG"] = str(path)


def _options(args: dict):
    from barque.build.builder import BuildOptions
    from barque.oci.reference import parse_reference

    return BuildOptions(tags=[parse_reference(t) for t in args.get("tags") or []],
                        build_args=dict(args.get("build_args") or {}), target=args.get("target") or None,
                        no_cache=bool(args.get("no_cache")), labels=dict(args.get("labels") or {}),
                        network=args.get("network") or "default", host=dict(args.get("host") or {}),
                        extra_hosts=list(args.get("extra_hosts") or []),
                        pull="always" if args.get("pull") else "missing",
                        cache_from=list(args["cache_from"]) if args.get("cache_from") else None,
                        force_rm=bool(args.get("force_rm")))


def _before_output(e: BaseException) -> BaseException:
    """An error the build hit before it printed anything, as dockerd answers it: 400 for what the request asked
    (a target the Dockerfile lacks is NotFound to the builder, a bad parameter here)."""
    if isinstance(e, NotFound):
        return ApiError(400, e.message)
    return e


@op("build.run")
def build(engine, args, chan):
    from barque.build.builder import BuildFailed, build as run_build
    from barque.build.received import context_from_remote, context_from_stream, sweep

    # descriptors passed over the zygote's socket arrive inheritable: the call's socket must not reach the RUN
    # steps' processes (one could write into the API stream, or hold the response open after the build)
    os.set_inheritable(chan.sock.fileno(), False)
    sweep(engine)
    stream = _Stream(chan, bool(args.get("quiet")))
    opts = _options(args)
    try:
        if args.get("remote"):
            ctx = context_from_remote(engine, args["remote"], args.get("dockerfile"))
        else:
            ctx = context_from_stream(engine, chan.file("rb"), args.get("dockerfile"))
        with ctx:
            _docker_config(ctx._temp[0], args.get("auths") or {})
            with _hangup_raises(chan.sock, stream):
                result = run_build(engine, ctx, opts, stream.out, stream.err)
    except ClientGone:
        chan.replied = True  # nobody is left to answer: the build unwound, and that is all
        return None
    except BaseException as e:  # noqa: BLE001 - after output, errors are the stream's
        if not stream.started:
            raise _before_output(e) from None
        if stream.gone:
            chan.replied = True
            return None
        if kind_of(e) == "internal":
            log.exception("build failed")
        message = getattr(e, "message", None) or str(e) or type(e).__name__
        stream.error(message, e.code if isinstance(e, BuildFailed) else None)
        return None
    _finish(stream, result, bool(args.get("aux")))  # (a client gone by now: built and tagged all the same)
    return None


def _finish(stream: _Stream, result, aux: bool) -> None:
    """Docker's lines after a build: the ID (aux), the unused build-args warning, `Successfully …`."""
    if stream.quiet:
        stream.held = []
        stream._send({"stream": result.image_id + "\n"})
        return
    if aux:
        stream._send({"aux": {"ID": result.image_id}})
    if result.unused_args:
        stream.out(f"[Warning] One or more build-args [{' '.join(result.unused_args)}] were not consumed\n")
    stream.out(f"Successfully built {result.image_id.split(':', 1)[1][:12]}\n")
    for ref in result.tags:
        stream.out(f"Successfully tagged {ref.tag_or_latest().familiar()}\n")


@op("build.prune")
def prune(engine, args, chan):
    from barque.build.prune import prune_cache

    keys, freed = prune_cache(engine)
    return {"CachesDeleted": keys or None, "SpaceReclaimed": freed}
