"""The sync channel between the runtime (parent) and the container's setup processes: one SOCK_SEQPACKET socketpair,
one JSON object per message, file descriptors riding along as SCM_RIGHTS (the console master, an idmapped mount).

Messages, in order: parent→child `go` (it is in its cgroup), child→parent `userns` / parent→child `ack` (id maps
written), child→parent `pid` (the container's first process), parent→child `go`, child→parent `hooks` / parent→child
`ack` (createRuntime hooks ran), child→parent `ready`; `error` from a child at any point.
"""

from __future__ import annotations

import array
import json
import socket

from barque.errors import FailedPrecondition, Unavailable

__all__ = ["Channel", "pair"]

MAX_MSG = 65536


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, kind: str, fds: list[int] | None = None, **data) -> None:
        payload = json.dumps({"t": kind, **data}).encode()
        if fds:
            self.sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        else:
            self.sock.send(payload)

    def recv(self, timeout: float | None = None) -> tuple[dict, list[int]]:
        """The next message and the fds that came with it; {"t": "eof"} when the other end is gone."""
        self.sock.settimeout(timeout)
        try:
            msg, ancdata, _flags, _addr = self.sock.recvmsg(MAX_MSG, socket.CMSG_SPACE(4 * 8))
        except socket.timeout:
            raise Unavailable(f"the container's setup did not answer within {timeout}s") from None
        finally:
            self.sock.settimeout(None)
        fds: list[int] = []
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                arr = array.array("i")
                arr.frombytes(data[: len(data) - len(data) % arr.itemsize])
                fds.extend(arr)
        if not msg:
            return {"t": "eof"}, fds
        return json.loads(msg), fds

    def expect(self, kind: str, timeout: float | None = None) -> tuple[dict, list[int]]:
        msg, fds = self.recv(timeout)
        if msg["t"] == "error":
            raise FailedPrecondition(msg.get("msg", "container setup failed"))
        if msg["t"] != kind:
            raise FailedPrecondition(f"container setup: expected {kind!r}, got {msg['t']!r}")
        return msg, fds

    def close(self) -> None:
        self.sock.close()


def pair() -> tuple[Channel, Channel]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return Channel(a), Channel(b)
