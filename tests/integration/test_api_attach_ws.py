"""`GET /containers/{id}/attach/ws`: the attach over a WebSocket, as dockerd's wsContainersAttach — the container's
output as the payloads alone (no multiplexing headers, TTY or not), binary messages from API 1.28 on (text before),
the client's messages as the container's stdin, a close from the server when the container exits, a 404 before any
upgrade. Spoken here with aiohttp's client over the server's unix socket (and raw handshakes for clients that just
vanish)."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from tests.api_support import call, http, raw_request, read_until
from tests.api_support import api, docker  # noqa: F401 - fixtures
from tests.conftest import unique

pytestmark = pytest.mark.root


def _create(api, cmd: list[str], **config) -> str:
    name = unique("ws")
    status, body = call(api, "POST", f"/containers/create?name={name}", {"Image": "busybox", "Cmd": cmd, **config})
    assert status == 201, body
    return name


async def _collect(ws, timeout: float = 30) -> tuple[list[aiohttp.WSMessage], aiohttp.WSMessage]:
    """Every data message until the server closes: (data messages, the closing message)."""
    got = []
    while True:
        msg = await asyncio.wait_for(ws.receive(), timeout)
        if msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
            got.append(msg)
            continue
        return got, msg


def _payload(msgs) -> bytes:
    return b"".join(m.data if isinstance(m.data, bytes) else m.data.encode() for m in msgs)


def _session(api) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(api.sock)))


def test_non_tty_output_arrives_raw_in_binary_messages_and_the_socket_closes_at_the_exit(api, docker):
    # as docker-py's test_run_container_reading_socket_ws: attached before the start, logs and stream
    name = _create(api, ["sh", "-c", "printf out; sleep 0.3; printf err >&2"])

    async def run() -> tuple[list, aiohttp.WSMessage]:
        async with _session(api) as s:
            async with s.ws_connect(f"http://d/v1.43/containers/{name}/attach/ws?stdout=1&stderr=1&stream=1&logs=1"
                                    ) as ws:
                assert call(api, "POST", f"/containers/{name}/start")[0] == 204
                return await _collect(ws)

    msgs, end = asyncio.run(run())
    assert _payload(msgs) == b"outerr"  # no 8-byte headers: the WebSocket's messages are the streams
    assert {m.type for m in msgs} == {aiohttp.WSMsgType.BINARY}
    assert end.type == aiohttp.WSMsgType.CLOSE and end.data == 1000  # the container exited: the server closed
    assert docker("wait", name).stdout == "0\n"
    docker("rm", name)
    assert api.errors() == ""


def test_before_api_1_28_the_messages_are_text_and_all_streams_are_attached(api, docker):
    name = _create(api, ["sh", "-c", "echo one; echo two >&2"])

    async def run():
        async with _session(api) as s:  # no stdout/stderr parameters: before 1.42 dockerd attaches all three
            async with s.ws_connect(f"http://d/v1.27/containers/{name}/attach/ws?stream=1") as ws:
                assert call(api, "POST", f"/containers/{name}/start")[0] == 204
                return await _collect(ws)

    msgs, end = asyncio.run(run())
    assert {m.type for m in msgs} == {aiohttp.WSMsgType.TEXT}
    assert sorted(_payload(msgs).splitlines()) == [b"one", b"two"]
    assert end.type == aiohttp.WSMsgType.CLOSE
    docker("rm", name)


def test_a_running_tty_containers_output_arrives(api, docker):
    name = unique("wstty")
    docker("run", "-d", "-t", "--name", name, "busybox", "sh", "-c", "while true; do echo tick; sleep 0.1; done")

    async def run() -> bytes:
        async with _session(api) as s:
            async with s.ws_connect(f"http://d/containers/{name}/attach/ws?stdout=1&stream=1") as ws:
                data = b""
                while data.count(b"tick\r\n") < 2:  # the TTY's line discipline: CRLF
                    msg = await asyncio.wait_for(ws.receive(), 30)
                    assert msg.type == aiohttp.WSMsgType.BINARY, msg
                    data += msg.data
                return data

    data = asyncio.run(run())
    assert data.startswith(b"tick") and b"\x01\x00\x00\x00" not in data
    # the client went; the container never noticed
    assert docker("inspect", "-f", "{{.State.Running}}", name).stdout == "true\n"
    docker("rm", "-f", name)
    assert api.errors() == ""


def test_client_messages_reach_cats_stdin(api, docker):
    for tty in (False, True):
        name = unique("wscat")
        docker("run", "-d", "-i", *(["-t"] if tty else []), "--name", name, "busybox", "cat")

        async def run() -> bytes:
            async with _session(api) as s:
                async with s.ws_connect(f"http://d/containers/{name}/attach/ws?stdin=1&stdout=1&stream=1") as ws:
                    await ws.send_bytes(b"hello binary\n")
                    await ws.send_str("hello text\n")  # a text message is stdin too
                    data = b""
                    while b"hello text" not in data or (tty and data.count(b"hello text") < 2):
                        msg = await asyncio.wait_for(ws.receive(), 30)
                        assert msg.type == aiohttp.WSMsgType.BINARY, msg
                        data += msg.data
                    return data

        data = asyncio.run(run())
        if tty:  # the TTY echoes the input, then cat prints it
            assert data.replace(b"\r\n", b"\n").count(b"hello binary\n") == 2
        else:
            assert data == b"hello binary\nhello text\n"
        docker("rm", "-f", name)
    assert api.errors() == ""


def test_a_running_container_that_exits_closes_the_socket(api, docker):
    name = unique("wsexit")
    docker("run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 1; echo bye; exit 3")

    async def run():
        async with _session(api) as s:
            async with s.ws_connect(f"http://d/containers/{name}/attach/ws?stdout=1&stream=1") as ws:
                return await _collect(ws)

    msgs, end = asyncio.run(run())
    assert _payload(msgs) == b"bye\n"
    assert end.type == aiohttp.WSMsgType.CLOSE and end.data == 1000
    assert docker("wait", name).stdout == "3\n"
    docker("rm", name)


def test_a_missing_container_is_404_before_any_upgrade_and_a_plain_request_400(api):
    async def run() -> int:
        async with _session(api) as s:
            try:
                async with s.ws_connect("http://d/containers/nosuch/attach/ws?stream=1&stdout=1"):
                    return 101
            except aiohttp.WSServerHandshakeError as e:
                return e.status

    assert asyncio.run(run()) == 404
    status, _, body = http(api.sock, "GET", "/containers/nosuch/attach/ws?stream=1", headers=_UPGRADE)
    assert (status, json.loads(body)) == (404, {"message": "No such container: nosuch"})
    name = _create(api, ["true"])
    status, _, body = http(api.sock, "GET", f"/containers/{name}/attach/ws?stream=1")  # no WebSocket handshake
    assert status == 400
    status, _, body = http(api.sock, "GET", f"/containers/{name}/attach/ws?stream=1&detachKeys=ctrl-",
                           headers=_UPGRADE)
    assert status == 400
    assert call(api, "DELETE", f"/containers/{name}")[0] == 204


_UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13"}


def _open_fds(pid: int) -> int:
    import os

    return len(os.listdir(f"/proc/{pid}/fd"))


def test_clients_that_go_away_leave_nothing_behind(api, docker):
    """Clients that vanish mid-stream (their connection simply dropped) or close politely, attached to a running
    container or held before a start: the server keeps none of their descriptors (a client's socket, a monitor
    connection, a task holding either)."""
    from tests.netlab import eventually

    ticking = unique("wstick")
    docker("run", "-d", "--name", ticking, "busybox", "sh", "-c", "while true; do echo tick; sleep 0.1; done")
    created = _create(api, ["echo", "never started"])

    def vanish(path: str, wait_output: bool) -> None:
        s = raw_request(api, f"GET {path} HTTP/1.1\r\nHost: d" + "".join(f"\r\n{k}: {v}" for k, v in _UPGRADE.items()))
        got = s.recv(4096)
        assert got.startswith(b"HTTP/1.1 101"), got
        if wait_output and b"tick" not in got:
            assert b"tick" in s.recv(4096)
        s.close()  # … and the client is gone, no close frame

    async def politely(path: str) -> None:
        async with _session(api) as session:
            async with session.ws_connect(f"http://d{path}") as ws:
                if "wstick" in path:
                    assert (await asyncio.wait_for(ws.receive(), 30)).type == aiohttp.WSMsgType.BINARY

    def leave(rounds: int) -> None:
        for _ in range(rounds):
            vanish(f"/containers/{ticking}/attach/ws?stream=1&stdout=1", True)
            vanish(f"/containers/{created}/attach/ws?stream=1&stdout=1", False)
            asyncio.run(politely(f"/containers/{ticking}/attach/ws?stream=1&stdout=1&stdin=1"))
            asyncio.run(politely(f"/containers/{created}/attach/ws?stream=1&stdout=1"))

    leave(2)  # what the server keeps for its life comes up first (reader threads and their databases)
    assert eventually(lambda: http(api.sock, "GET", "/_ping")[0] == 200)
    time.sleep(2)
    baseline = _open_fds(api.proc.pid)
    leave(10)  # 40 more clients gone: a leak of one descriptor each would show
    assert eventually(lambda: _open_fds(api.proc.pid) <= baseline + 2, timeout=20), (baseline,
                                                                                     _open_fds(api.proc.pid))
    # the attaches held for the start have gone with their clients: the start serves nobody and succeeds
    assert call(api, "POST", f"/containers/{created}/start")[0] == 204
    assert docker("wait", created).stdout == "0\n"
    assert docker("inspect", "-f", "{{.State.Running}}", ticking).stdout == "true\n"  # it never noticed
    docker("rm", "-f", ticking, created)
    assert api.errors() == ""


def test_a_start_right_after_the_attach_is_answered_finds_it_held(api, docker):
    """The attach is held (or joined to the monitor) before its client is answered: a client that starts the
    container the moment its attach is answered — docker-py's tests, `docker run` — never misses the output nor
    waits for a start that has been. Over the WebSocket and over the hijacked connection, which share the core."""
    async def over_ws(name: str) -> bytes:
        async with _session(api) as s:
            async with s.ws_connect(f"http://d/containers/{name}/attach/ws?stdout=1&stream=1&logs=1") as ws:
                assert call(api, "POST", f"/containers/{name}/start")[0] == 204
                msgs, end = await _collect(ws, timeout=15)
                assert end.type == aiohttp.WSMsgType.CLOSE
                return _payload(msgs)

    def over_hijack(name: str) -> bytes:
        s = raw_request(api, f"POST /containers/{name}/attach?stdout=1&stream=1&logs=1 HTTP/1.1\r\nHost: d\r\n"
                             "Connection: Upgrade\r\nUpgrade: tcp", timeout=15)
        data = read_until(s, b"\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 101"), data
        assert call(api, "POST", f"/containers/{name}/start")[0] == 204
        data = data.partition(b"\r\n\r\n")[2]
        while chunk := s.recv(4096):
            data += chunk
        s.close()
        return data

    for i in range(8):
        name = _create(api, ["printf", "hi"])
        assert asyncio.run(over_ws(name)) == b"hi"
        name2 = _create(api, ["printf", "hi"])
        assert over_hijack(name2) == b"\x01\x00\x00\x00\x00\x00\x00\x02hi"
        docker("rm", name, name2)
    assert api.errors() == ""


def test_detach_keys_in_a_ttys_input_end_the_session_and_the_container_runs_on(api, docker):
    name = unique("wsdetach")
    docker("run", "-d", "-i", "-t", "--name", name, "busybox", "cat")

    async def run(query: str, keys: bytes):
        async with _session(api) as s:
            async with s.ws_connect(f"http://d/containers/{name}/attach/ws?stdin=1&stdout=1&stream=1{query}") as ws:
                await ws.send_bytes(b"abc\n")
                data = b""
                while data.count(b"abc") < 2:  # the TTY's echo and cat's
                    data += (await asyncio.wait_for(ws.receive(), 15)).data
                await ws.send_bytes(keys)
                return await _collect(ws, timeout=15)

    _, end = asyncio.run(run("", b"\x10\x11"))  # ctrl-p ctrl-q, Docker's default
    assert end.type == aiohttp.WSMsgType.CLOSE and end.data == 1000
    _, end = asyncio.run(run("&detachKeys=ctrl-x", b"\x18"))
    assert end.type == aiohttp.WSMsgType.CLOSE
    assert docker("inspect", "-f", "{{.State.Running}}", name).stdout == "true\n"
    docker("rm", "-f", name)
    assert api.errors() == ""
