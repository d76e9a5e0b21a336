"""Image operations of the API: tag, remove, prune, commit, pull, push, save, load, import, and the registry checks
(`/auth`, `/distribution`).

Streams, as dockerd has them:
- pull and push answer with Docker's JSON messages (``{"status", "id", "progressDetail"}``, CRLF after each). The
  reply goes out with the first message, so a failure before any (an unknown image, a registry that refuses) is the
  HTTP status and message, as dockerd's "not flushed yet" rule makes it; after that, failures are in-band:
  ``{"errorDetail": {"message": M}, "error": M}``.
- load answers 200 at once and reports everything in-band (``{"stream": "Loaded image: …\\n"}``, or the error).
- save streams the archive after the reply; import and load read the request body from the server as it arrives,
  in frames (see `FramedBody`): a body that ends without the final frame was cut by its client, and nothing of it
  becomes an image.
- a client that goes away makes the next write fail: the operation stops there (`ClientGone`), and what it made is
  unwound as when the CLI is interrupted (images appear in one transaction at the end, or not at all).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re

from barque.api.errors import ApiError
from barque.api.zygote import op
from barque.errors import DataCorruption, InvalidArgument
from barque.oci.times import human_size

CRLF = b"\r\n"


class ClientGone(Exception):
    """The API client closed its connection: the operation stops (not an OSError, so no retry loop takes it for a
    registry's dropped connection)."""


class BodyCut(DataCorruption):
    def __init__(self) -> None:
        super().__init__("unexpected EOF")


# ---- the streams --------------------------------------------------------------------------------------------------

class JsonStream:
    """Docker's JSON messages on the channel; the call's reply goes out with the first one."""

    def __init__(self, chan) -> None:
        self.chan = chan

    @property
    def started(self) -> bool:
        return self.chan.replied

    def send(self, message: dict) -> None:
        try:
            self.chan.reply({"stream": True})
            self.chan.write(json.dumps(message, separators=(",", ":")).encode() + CRLF)
        except OSError as e:
            raise ClientGone(str(e)) from None

    def status(self, text: str, ident: str | None = None) -> None:
        msg: dict = {"status": text}
        if ident:
            msg["id"] = ident
        self.send(msg)

    def error(self, message: str) -> None:
        self.send({"errorDetail": {"message": message}, "error": message})


class FramedBody(io.RawIOBase):
    """The request body as the server forwards it: frames of a 4-byte big-endian length and that many bytes, ended
    by an empty frame. EOF before the empty frame means the client's upload was cut: `BodyCut`."""

    def __init__(self, sock) -> None:
        super().__init__()
        self._f = sock.makefile("rb")
        self._left = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self._f.read(n - len(data))
            if not chunk:
                raise BodyCut()
            data += chunk
        return data

    def readinto(self, buf) -> int:
        while self._left == 0:
            if self._done:
                return 0
            n = int.from_bytes(self._exact(4), "big")
            if n == 0:
                self._done = True
                return 0
            self._left = n
        view = memoryview(buf)[: min(len(buf), self._left)]
        got = self._f.readinto(view)
        if not got:
            raise BodyCut()
        self._left -= got
        return got

    def drain(self) -> None:
        """Read what is left of the body (an archive may end before the upload does)."""
        while self.readinto(bytearray(1 << 16)):
            pass


def body_of(chan) -> io.BufferedReader:
    return io.BufferedReader(FramedBody(chan.sock), buffer_size=1 << 20)


# ---- registry credentials (X-Registry-Auth, decoded by the route) -------------------------------------------------

def credentials_of(auth: dict):
    from barque.registry.client.credentials import Credentials

    username = str(auth.get("username") or auth.get("Username") or "")
    password = str(auth.get("password") or auth.get("Password") or "")
    token = str(auth.get("identitytoken") or auth.get("IdentityToken") or "")
    if not username and auth.get("auth"):
        try:
            user, _, pw = base64.b64decode(str(auth["auth"])).decode().partition(":")
            username, password = user, pw
        except (ValueError, UnicodeDecodeError):
            pass
    return Credentials(username, password, token)


class RequestCredentials:
    """The credentials of one request, for whatever registry it talks to (dockerd uses the header's auth config for
    the registry of the image, whatever `serveraddress` says)."""

    def __init__(self, auth: dict) -> None:
        self.creds = credentials_of(auth)

    def get(self, host: str):
        return self.creds


# ---- progress: barque's pull/push story as Docker's JSON messages ---------------------------------------------------

_PULLING = re.compile(r"^(\S+): (Pulling from .*)$")
_DIGEST = re.compile(r"^(\S+): digest: (\S+) size: (\d+)$")
_BYTES_ONLY = frozenset({"Downloading", "Extracting", "Pushing"})


def progress_bar(current: int, total: int) -> str:
    width = 50
    if total <= 0:
        return f"{human_size(current):>8}"
    filled = min(int(width * current / total), width)
    bar = "=" * max(filled - 1, 0) + (">" if filled else "") + " " * (width - filled)
    return f"[{bar}] {human_size(current):>8}/{human_size(total)}"


def make_json_progress(stream: JsonStream):
    from barque.registry.client.progress import Progress

    class JsonProgress(Progress):
        def message(self, text: str) -> None:
            if text.startswith("Using default tag:"):
                return  # the client says this itself
            m = _PULLING.match(text)
            if m:
                stream.status(m.group(2), m.group(1))
                return
            stream.status(text)
            m = _DIGEST.match(text)
            if m:
                stream.send({"progressDetail": {}, "aux": {"Tag": m.group(1), "Digest": m.group(2),
                                                           "Size": int(m.group(3))}})

        def layer(self, ident: str, status: str) -> None:
            if status in _BYTES_ONLY:
                return  # shown with its bytes (`bytes`), as dockerd shows them: never a bare status line
            stream.send({"status": status, "progressDetail": {}, "id": ident})

        def bytes(self, ident: str, action: str, done: int, total: int) -> None:
            stream.send({"status": action, "progressDetail": {"current": done, "total": total},
                         "progress": progress_bar(done, total), "id": ident})

        def result(self, text: str) -> None:
            pass  # the client prints the reference itself

        def warning(self, text: str) -> None:
            stream.status(f"WARNING: {text}")

    return JsonProgress()


def _interrupt(signum, frame) -> None:
    if _WATCH["armed"]:
        _WATCH["armed"] = False
        raise ClientGone("the client went away")


_WATCH = {"armed": False}


def watch_hangup(chan) -> None:
    """End this operation as soon as the server hangs up (its client went away), not at its next write: a pull that
    waits on a stalled registry would otherwise wait out the registry's timeouts. For calls whose server side sends
    nothing after the request (pull, push): a thread waits for the end of that side and interrupts the main thread
    (SIGUSR2, whose handler raises `ClientGone` there, so every `finally` on the way out runs)."""
    import os
    import select
    import signal
    import socket
    import threading

    signal.signal(signal.SIGUSR2, _interrupt)
    _WATCH["armed"] = True
    fd = chan.sock.fileno()

    def watch() -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLRDHUP)
        while _WATCH["armed"]:
            if not poller.poll(500):
                continue
            try:
                if chan.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                    return  # the server never sends here; if it does, stop watching rather than spin
            except BlockingIOError:
                continue
            except OSError:
                pass
            if _WATCH["armed"]:
                os.kill(os.getpid(), signal.SIGUSR2)
            return

    threading.Thread(target=watch, name="hangup", daemon=True).start()


def _streamed(chan, work, watch: bool = False) -> None:
    """Run `work(stream)`; a failure after the first message goes in-band, one before it is the call's error."""
    stream = JsonStream(chan)
    if watch:
        watch_hangup(chan)
    try:
        try:
            work(stream)
        finally:
            _WATCH["armed"] = False
    except ClientGone:
        chan.replied = True  # no one is left to answer
        return
    except Exception as e:  # noqa: BLE001 - reported to the client, in-band once the stream has started
        if not stream.started:
            raise
        message = getattr(e, "message", None) or str(e) or type(e).__name__
        try:
            stream.error(message)
        except ClientGone:
            pass


@contextlib.contextmanager
def registry_errors(login: bool = False):
    """dockerd's statuses for a registry's refusals: 401 only where credentials are checked (`/auth`: the docker
    CLI answers a 401 to a pull by asking for a login); elsewhere "pull access denied" is a 404 (dockerd's
    notFoundError) and a token server's refusal a 500 (its errdefs.Unknown)."""
    from barque.registry.client.auth import TokenError
    from barque.registry.client.transport import Unauthorized

    try:
        yield
    except (Unauthorized, TokenError) as e:
        status = 401 if login else 404 if isinstance(e, Unauthorized) else 500
        raise ApiError(status, e.message) from e


# ---- names ------------------------------------------------------------------------------------------------------

@op("image.tag")
def tag(engine, args, chan):
    from barque.images.tag import tag_image

    tag_image(engine, args["name"], args["ref"])
    return None


@op("image.remove")
def remove(engine, args, chan):
    from barque.images.remove import remove_image

    report = remove_image(engine, args["name"], force=bool(args.get("force")),
                          prune_layers=not args.get("noprune"))
    return [{"Untagged": n} for n in report.untagged] + [{"Deleted": d} for d in report.deleted]


@op("image.prune")
def prune(engine, args, chan):
    from barque.images.remove import prune_images

    report, _ = prune_images(engine, all_images=not args.get("dangling", True), label_filters=args.get("label") or (),
                             until=args.get("until"), label_not=args.get("label!") or ())
    deleted = [{"Untagged": n} for n in report.untagged] + [{"Deleted": d} for d in report.deleted]
    return {"ImagesDeleted": deleted or None, "SpaceReclaimed": report.reclaimed}


# ---- commit -----------------------------------------------------------------------------------------------------

@op("image.commit")
def commit(engine, args, chan):
    from barque.container.commit import commit as do_commit

    c = engine.containers.get(args["container"])
    result = do_commit(engine, c, _ref(args.get("ref")), author=args.get("author") or "",
                       message=args.get("comment") or "", changes=args.get("changes") or (),
                       pause=bool(args.get("pause", True)), config=args.get("config"))
    return {"Id": str(result.image.id)}


def _ref(text: str | None):
    from barque.oci.reference import parse_reference

    if not text:
        return None
    ref = parse_reference(text)
    if ref.digest is not None:
        raise InvalidArgument("refusing to create a tag with a digest reference")
    return ref


# ---- import and load: the request body streamed in ----------------------------------------------------------------

@op("image.import")
def import_(engine, args, chan):
    """The body (a root filesystem tar, possibly compressed) becomes a one-layer image; `{"status": ID}`."""
    from barque.images.changes import apply_changes
    from barque.images.importer import import_tar

    ref = _ref(args.get("ref"))
    changes = list(args.get("changes") or ())
    apply_changes({}, changes)  # a bad change is refused before the upload is read
    body = body_of(chan)
    try:
        result = import_tar(engine, body, "-", ref, changes, args.get("message") or "")
    except EOFError as e:
        raise DataCorruption(f"unexpected EOF ({e})") from e
    body.raw.drain()
    return {"status": str(result.image.id)}


@op("image.load")
def load(engine, args, chan):
    """Docker's load: 200 at once, then `{"stream": "Loaded image: …\\n"}` lines, or the error, in-band."""
    from barque.images.load import load as load_images

    stream = JsonStream(chan)
    stream.chan.reply({"stream": True})
    body = body_of(chan)

    def work(stream: JsonStream) -> None:
        try:
            result = load_images(engine, body)
        except EOFError as e:
            raise DataCorruption(f"unexpected EOF ({e})") from e
        body.raw.drain()
        for line in result.messages():
            stream.send({"stream": line + "\n"})

    _streamed(chan, work)
    return None


# ---- save: the archive streamed out ---------------------------------------------------------------------------------

@op("image.save")
def save(engine, args, chan):
    from barque.images.save import save as save_images, select

    selected = select(engine, args.get("names") or [])
    chan.reply({"stream": True})
    out = chan.file("wb")
    try:
        save_images(engine, selected, out, "docker-archive")
    except OSError:
        return None  # the client went away: the archive ends unfinished, which the client knows
    return None


# ---- pull and push ----------------------------------------------------------------------------------------------

@op("image.pull")
def pull(engine, args, chan):
    from barque.registry.client.pull import pull as do_pull

    creds = RequestCredentials(args.get("auth") or {})

    def work(stream: JsonStream) -> None:
        with registry_errors():
            do_pull(engine, args["ref"], make_json_progress(stream), platform=args.get("platform") or None,
                    all_tags=bool(args.get("all_tags")), credentials=creds)

    _streamed(chan, work, watch=True)
    return None


@op("image.push")
def push(engine, args, chan):
    from barque.registry.client.push import push as do_push

    creds = RequestCredentials(args.get("auth") or {})

    def work(stream: JsonStream) -> None:
        with registry_errors():
            do_push(engine, args["ref"], make_json_progress(stream), all_tags=bool(args.get("all_tags")),
                    credentials=creds)

    _streamed(chan, work, watch=True)
    return None


# ---- registries ---------------------------------------------------------------------------------------------------

@op("image.auth")
def auth(engine, args, chan):
    """`POST /auth`: the credentials checked as `docker login` expects, nothing stored."""
    from barque.registry.client.login import verify

    creds = credentials_of(args.get("auth") or {})
    with registry_errors(login=True):
        kept = verify(args.get("server") or None, creds)
    return {"Status": "Login Succeeded", "IdentityToken": kept.identity_token or ""}


@op("image.distribution")
def distribution(engine, args, chan):
    """`GET /distribution/{name}/json`: the descriptor the registry has for a reference, and its platforms."""
    import asyncio

    from barque.oci.reference import parse_reference

    ref = parse_reference(args["name"])
    if ref.tag is None and ref.digest is None:
        ref = ref.tag_or_latest()
    with registry_errors():
        return asyncio.run(_distribution(ref, RequestCredentials(args.get("auth") or {})))


async def _distribution(ref, creds) -> dict:
    """From the registry's mirrors first, then the registry, as a pull would (Docker's pull endpoints)."""
    from barque.registry.client.pull import from_sources
    from barque.registry.client.transport import Client

    async with Client(credentials=creds) as client:
        _, found = await from_sources(client, ref, lambda remote: _describe(remote, ref))
        return found


async def _describe(remote, ref) -> dict:
    from barque.oci.image import Manifest
    from barque.registry.client.resolve import fetch_manifest
    from barque.registry.client.transport import read_body

    reference = str(ref.digest) if ref.digest is not None else ref.tag
    doc = await fetch_manifest(remote, reference, ref.familiar())
    descriptor = {"mediaType": doc.media_type, "digest": str(doc.digest), "size": doc.size}
    platforms = []
    if isinstance(doc, Manifest):
        resp = await remote.request("GET", f"blobs/{doc.config.digest}")
        try:
            if resp.status != 200:
                raise await remote.fail(resp, f"fetching the config of {ref.familiar()}")
            config = json.loads(await read_body(resp, 8 << 20))
        finally:
            resp.release()
        platform = {"architecture": config.get("architecture", ""), "os": config.get("os", "")}
        for key, name in (("os.version", "os.version"), ("os.features", "os.features"), ("variant", "variant")):
            if config.get(key):
                platform[name] = config[key]
        platforms.append(platform)
    else:
        for m in doc.manifests:
            if m.platform is not None:
                platforms.append(m.platform.to_dict())
    return {"Descriptor": descriptor, "Platforms": platforms}
