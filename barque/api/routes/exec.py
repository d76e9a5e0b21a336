"""Exec: create, start (hijacked, or detached), inspect, resize — Docker's `/containers/{id}/exec` and `/exec/{id}/…`.

Exec instances live in the server's memory (`state.execs`), as dockerd keeps them: created here, started in a zygote
child that starts the process and waits for it (barque/api/ops/exec.py), joined to the client's hijacked connection
by sessions.relay. The child's last word on the call's socket is the exit code, so `exec inspect` knows it even when
nobody stayed attached.

As dockerd: a start that fails once the connection is hijacked says so in the stream (the message and "\\r\\n" as
stdout), and the exit code that `docker exec` reads from exec inspect afterwards is 126. A second start of
the same exec is refused before the upgrade (409; dockerd says that in the stream too, where a client reading the
answer's headers through a buffer can miss it).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time

from aiohttp import web

from barque.api.app import api_version, json_body, json_response, state_of
from barque.api.errors import ApiError, BadParameter
from barque.api.hijack import MULTIPLEXED, RAW, hijack, upgrading
from barque.api.sessions import OUT, frame

#: finished exec instances kept for inspect (dockerd keeps them until their container goes); the oldest go first
KEEP_FINISHED = 1000
#: how long a resize waits for its exec to start (dockerd's)
RESIZE_WAIT = 10.0

_TASKS: set = set()


class _Exec:
    """One exec instance: Docker's ExecInspect (`inspect`) and what the server needs to run it."""

    def __init__(self, exec_id: str, container_id: str, body: dict, cmd: list[str], detach_keys: str) -> None:
        self.id = exec_id
        self.body = body
        self.cmd = cmd
        self.created = time.monotonic()
        self.finished: float | None = None
        self.started = False
        self.ready = asyncio.Event()   # set once the process runs, or its start failed
        self.call = None               # the zygote call: resize requests go there
        process = {"tty": bool(body.get("Tty")), "entrypoint": cmd[0], "arguments": cmd[1:],
                   "privileged": bool(body.get("Privileged"))}
        if body.get("User"):
            process["user"] = body["User"]
        self.inspect = {
            "ID": exec_id, "Running": False, "ExitCode": None, "ProcessConfig": process,
            "OpenStdin": bool(body.get("AttachStdin")), "OpenStderr": bool(body.get("AttachStderr")),
            "OpenStdout": bool(body.get("AttachStdout")), "CanRemove": False, "ContainerID": container_id,
            "DetachKeys": detach_keys, "Pid": 0,
        }

    @property
    def tty(self) -> bool:
        return self.inspect["ProcessConfig"]["tty"]

    def exited(self, code) -> None:
        if self.inspect["ExitCode"] is None and code is not None:
            self.inspect["ExitCode"] = int(code)
        self.inspect["Running"] = False
        if self.finished is None:
            self.finished = time.monotonic()
        self.ready.set()


def _get(request: web.Request) -> _Exec:
    exec_id = request.match_info["id"]
    found = state_of(request).execs.get(exec_id)
    if found is None:
        raise ApiError(404, f"No such exec instance: {exec_id}")
    return found


def _json_kind(value) -> str:
    """What Go's JSON decoder calls a value it cannot take."""
    if isinstance(value, bool):
        return "bool"
    return {str: "string", int: "number", float: "number", list: "array", dict: "object"}.get(type(value), "value")


def _strings(body: dict, key: str) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadParameter(f"json: cannot unmarshal {_json_kind(value)} into Go struct field ExecConfig.{key} "
                           "of type []string")
    for v in value:
        if not isinstance(v, str):
            raise BadParameter(f"json: cannot unmarshal {_json_kind(v)} into Go struct field ExecConfig.{key} "
                               "of type string")
    return list(value)


def _console_size(value) -> list[int] | None:
    if value in (None, []):
        return None
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, int) and v >= 0 for v in value):
        raise BadParameter("json: ConsoleSize must be [height, width]")
    return value


#: the fields of dockerd's ExecConfig and ExecStartCheck, by their Go names
EXEC_FIELDS = ("User", "Privileged", "Tty", "ConsoleSize", "AttachStdin", "AttachStderr", "AttachStdout", "Detach",
               "DetachKeys", "Env", "WorkingDir", "Cmd")


def go_fields(body: dict, fields=EXEC_FIELDS) -> dict:
    """The body's keys as Go's JSON decoder matches them to a struct's fields: the exact name, else any case of it
    (docker-py sends `detachKeys`); a later key for the same field wins. Other keys stay as they are."""
    lower = {f.lower(): f for f in fields}
    out: dict = {}
    for key, value in body.items():
        out[key if key in fields else lower.get(key.lower(), key)] = value
    return out


def _forget_old(execs: dict) -> None:
    finished = [e for e in execs.values() if e.finished is not None]
    if len(finished) <= KEEP_FINISHED:
        return
    finished.sort(key=lambda e: e.finished)
    for e in finished[:len(finished) - KEEP_FINISHED]:
        execs.pop(e.id, None)


async def create(request: web.Request) -> web.StreamResponse:
    from barque.api.routes.attach import detach_keys

    body = await json_body(request, required=True)
    if not isinstance(body, dict):
        raise BadParameter("invalid JSON: the body must be an object (Docker's exec config)")
    body = go_fields(body)
    cmd = _strings(body, "Cmd")
    if not cmd:
        raise BadParameter("No exec command specified")
    _strings(body, "Env")
    for key in ("User", "WorkingDir", "DetachKeys"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise BadParameter(f"json: cannot unmarshal {_json_kind(body[key])} into Go struct field "
                               f"ExecConfig.{key} of type string")
    _console_size(body.get("ConsoleSize"))
    keys = body.get("DetachKeys") or ""
    if keys:
        detach_keys(keys)  # refused now, as dockerd refuses it
    state = state_of(request)
    exec_id = secrets.token_hex(32)
    result = await state.op("exec.create", {"container": request.match_info["id"], "cmd": cmd, "exec_id": exec_id})
    _forget_old(state.execs)
    state.execs[exec_id] = _Exec(exec_id, result["Id"], body, cmd, keys)
    return json_response({"Id": exec_id}, status=201)


def _start_args(e: _Exec, start_body: dict) -> dict:
    b = e.body
    size = _console_size(start_body.get("ConsoleSize")) or _console_size(b.get("ConsoleSize"))
    return {"container": e.inspect["ContainerID"], "exec_id": e.id, "cmd": e.cmd, "env": _strings(b, "Env"),
            "user": b.get("User") or "", "workdir": b.get("WorkingDir") or "", "tty": e.tty,
            "privileged": bool(b.get("Privileged")), "stdin": bool(b.get("AttachStdin")),
            "stdout": bool(b.get("AttachStdout")), "stderr": bool(b.get("AttachStderr")), "console_size": size}


def _refusal(e: _Exec) -> str | None:
    """dockerd's: an exec starts once."""
    if e.inspect["ExitCode"] is not None or e.finished is not None:
        return f"Error: Exec command {e.id} has already run"
    if e.started:
        return f"Error: Exec command {e.id} is already running"
    return None


def _parse_start_body(raw: bytes) -> dict:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as err:
        raise BadParameter(f"invalid JSON: {err}") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BadParameter("invalid JSON: the body must be an object (Docker's exec start config)")
    return go_fields(body)


async def start(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    e = _get(request)
    tty = e.tty
    ctype = RAW if tty or api_version(request) < (1, 42) else MULTIPLEXED
    refusal = _refusal(e)
    if refusal:  # dockerd says it in the hijacked stream; before the upgrade no client can miss it
        raise ApiError(409, refusal)
    if upgrading(request):
        # the body comes after the upgrade (aiohttp leaves it in the stream): clients that upgrade do not detach
        resp, conn, raw = await hijack(request, ctype)
        try:
            body = _parse_start_body(raw)
        except ApiError as err:
            await _say(conn, err.message, tty)
            conn.close()
            return resp
        if body.get("Detach"):
            conn.close()
            await _start_detached(state, e, body, in_stream=True)
            return resp
    else:
        body = _parse_start_body(await request.read())
        if body.get("Detach"):
            await _start_detached(state, e, body, in_stream=False)
            return web.Response(status=200)
        resp, conn, _ = await hijack(request, ctype)
    framed = not bool(body.get("Tty", tty))  # dockerd frames by the start's Tty
    if _refusal(e):  # another start got there while this one read its body
        await _say(conn, _refusal(e), not framed)
        conn.close()
        return resp
    e.started = True
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        call = await state.call("exec.start", _start_args(e, body), fds=(theirs.fileno(),))
    except BaseException:
        ours.close()
        e.exited(126)
        conn.close()
        raise
    finally:
        theirs.close()
    try:
        info = await call.result()
    except ApiError as err:
        call.close()
        ours.close()
        e.exited(getattr(err, "code", None) or 126)
        await _say(conn, err.message, not framed)
        conn.close()
        return resp
    _running(e, call, info)
    ours.setblocking(False)
    await _relay(conn, ours, e, framed)
    return resp


async def _relay(conn, sock: socket.socket, e: _Exec, framed: bool) -> None:
    """sessions.relay, but framing as the start asked (dockerd frames by the start's Tty, not the exec's)."""
    from barque.api.routes.attach import DEFAULT_DETACH_KEYS, detach_keys
    from barque.api.sessions import relay

    keys = detach_keys(e.inspect["DetachKeys"]) if e.inspect["DetachKeys"] else DEFAULT_DETACH_KEYS
    await relay(conn, sock, tty=not framed, stdin=e.inspect["OpenStdin"], detach_keys=keys if e.tty else b"",
                on_exit=lambda info: e.exited(info.get("ExitCode")))


async def _say(conn, message: str, raw: bool) -> None:
    """A start's failure, told in the hijacked stream as dockerd tells it."""
    data = (message + "\r\n").encode()
    if not raw:
        data = frame(OUT, data)
    try:
        await conn.write(data)
    except ConnectionError:
        pass


async def _start_detached(state, e: _Exec, body: dict, *, in_stream: bool) -> None:
    refusal = _refusal(e)
    if refusal:
        if in_stream:
            return
        raise ApiError(409, refusal)
    e.started = True
    call = await state.call("exec.start", _start_args(e, body))
    try:
        info = await call.result()
    except ApiError as err:
        call.close()
        e.exited(getattr(err, "code", None) or 126)
        if in_stream:
            return
        raise
    _running(e, call, info)


def _running(e: _Exec, call, info: dict) -> None:
    """The process runs: its pid, and a watcher for the exit code the call's last line brings."""
    e.inspect["Running"] = True
    e.inspect["Pid"] = int((info or {}).get("Pid") or 0)
    e.call = call
    e.ready.set()

    async def watch() -> None:
        code = None
        try:
            line = await call.reader.readline()
            if line:
                code = json.loads(line).get("ExitCode")
        except (ValueError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            e.call = None
            call.close()
            e.exited(code if code is not None else (e.inspect["ExitCode"] if e.inspect["ExitCode"] is not None
                                                    else 137))

    task = asyncio.ensure_future(watch())
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


async def inspect(request: web.Request) -> web.StreamResponse:
    return json_response(_get(request).inspect)


async def resize(request: web.Request) -> web.StreamResponse:
    e = _get(request)
    size = []
    for name in ("h", "w"):
        text = request.query.get(name, "")
        try:
            size.append(int(text))
        except ValueError:
            raise BadParameter(f'strconv.Atoi: parsing "{text}": invalid syntax') from None
    if not e.ready.is_set():
        try:
            await asyncio.wait_for(e.ready.wait(), RESIZE_WAIT)
        except asyncio.TimeoutError:
            raise ApiError(500, "timeout waiting for exec session ready") from None
    call = e.call
    if call is None or not e.inspect["Running"]:
        raise ApiError(404, "no such exec")  # dockerd passes on containerd's answer for a process that is gone
    if e.tty:
        try:
            call.writer.write(json.dumps({"resize": size}).encode() + b"\n")
            await call.writer.drain()
        except ConnectionError:
            raise ApiError(404, "no such exec") from None
    return web.Response(status=200)


ROUTES = [
    ("POST", "/containers/{id}/exec", create),
    ("POST", "/exec/{id}/start", start),
    ("GET", "/exec/{id}/json", inspect),
    ("POST", "/exec/{id}/resize", resize),
]
