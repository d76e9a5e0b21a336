"""The embedded DNS server: one process per run root, listening on 127.0.0.11 (UDP and TCP, at random ports that
a table of barque's own in the namespace sends 127.0.0.11:53 to: nat.py) inside the network namespace of every
container it serves, and on a control socket (`<run root>/dns.sock`) for `attach`/`detach`.

A socket stays in the namespace it was made in, so one process in the host's namespace serves every container
(made in a short thread that entered the container's namespace). Which container asks is known by the socket a
query arrives on. What is not a container's name goes to the host's resolvers, asked from the host's namespace, or
to the container's own (`--dns`, the config file's `dns`; remembered per container, and found again in the
container's record by a restarted server), asked from inside the container's namespace (hop.py), as Docker does.

The sockets hold their namespace alive, so they are closed on `detach`, and also — should a `detach` never come (a
killed CLI) — as soon as the namespace's file `<run root>/netns/<id>` is gone or names another namespace. With no
container left for a while, the server exits; it takes `dns.lock` first, the lock `attach` holds while it looks
for a server and talks to it, so no `attach` is ever left talking to a server on its way out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

from barque.network.dns.answer import Decision, decide
from barque.network.dns.nat import NatError, apply_here
from barque.network.dns.upstream import Forwarder, own_servers
from barque.network.dns.wire import SERVFAIL, response

__all__ = ["DnsServer", "ADDRESS", "PORT"]

ADDRESS = "127.0.0.11"
PORT = 53
MAX_FORWARDS = 256          # queries waiting on upstream servers at once; more are dropped (clients retry)
MAX_TCP_PER_CONTAINER = 16
TCP_IDLE = 10.0             # seconds a TCP client may take for its next message
CONTROL_TIMEOUT = 10.0
MAX_CONTROL_LINE = 64 * 1024
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
log = logging.getLogger(__name__)


def _ns_key(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _bind_here() -> tuple[socket.socket, socket.socket, int]:
    """In the container's namespace: its UDP and TCP sockets on 127.0.0.11 at random ports, 127.0.0.11:53 sent to
    them, and a descriptor of the namespace (to tell it and to ask the container's own resolvers from it)."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
    ns_fd = -1
    try:
        for s in (udp, tcp):
            # bindable even before `lo` is up (queries arrive once it is)
            s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_FREEBIND", 15), 1)
            s.bind((ADDRESS, 0))
        tcp.listen(64)
        ns_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        apply_here(udp.getsockname()[1], tcp.getsockname()[1])
        return udp, tcp, ns_fd
    except BaseException:
        udp.close()
        tcp.close()
        if ns_fd >= 0:
            os.close(ns_fd)
        raise


@dataclass
class Attached:
    container_id: str
    netns: str
    ns_key: tuple[int, int]
    ns_fd: int                          # the namespace, held while served (released through the Hopper)
    udp: asyncio.DatagramTransport
    tcp: asyncio.AbstractServer
    ports: tuple[int, int]              # where 127.0.0.11:53 goes (udp, tcp)
    upstreams: tuple[str, ...] | None = None    # the container's own resolvers; None: the host's
    forwarder: Forwarder | None = None          # the one asking them, from inside the namespace
    tcp_tasks: set = field(default_factory=set)

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()
        for task in list(self.tcp_tasks):
            task.cancel()

    def gone(self) -> bool:
        """Whether the namespace we listen in is no longer the container's (stopped, or restarted anew)."""
        try:
            return _ns_key(self.netns) != self.ns_key
        except OSError:
            return True


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: "DnsServer", container_id: str) -> None:
        self.server = server
        self.container_id = container_id
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.server.on_udp(self.container_id, self.transport, data, addr)

    def error_received(self, exc) -> None:
        log.debug("udp of %s: %s", self.container_id[:12], exc)


class DnsServer:
    def __init__(self, root: Path, run_root: Path, directory, forwarder, search: tuple[str, ...] = (),
                 idle: float = 30.0, sweep: float = 1.0, config_dns: tuple[str, ...] = ()) -> None:
        self.root = Path(root)
        self.run_root = Path(run_root)
        self.directory = directory
        self.forwarder = forwarder      # the host's resolvers
        self.search = search
        self.config_dns = config_dns    # the config file's `dns`: for containers recovered without --dns
        self._hopper = None
        self.idle = idle
        self.sweep = sweep
        self.attached: dict[str, Attached] = {}
        self.forwards = 0
        self._tasks: set[asyncio.Task] = set()
        self._stopping: asyncio.Event | None = None
        self._control: asyncio.AbstractServer | None = None
        self._attaching = asyncio.Lock()
        self.reload = None  # set by the daemon: re-reads the upstream servers on SIGHUP

    # ---- containers ---------------------------------------------------------------------------------------------

    @property
    def hopper(self):
        if self._hopper is None:
            from barque.network.dns.hop import Hopper

            self._hopper = Hopper()
        return self._hopper

    async def attach(self, container_id: str, netns: str, upstreams: tuple[str, ...] | None = None) -> None:
        """Serve `container_id` in the namespace at `netns` (again, should it be another namespace than before),
        forwarding to `upstreams` (None: the host's resolvers)."""
        async with self._attaching:
            old = self.attached.get(container_id)
            if old is not None:
                try:
                    same = _ns_key(netns) == old.ns_key
                except OSError:
                    same = False
                if same:
                    old.netns = netns
                    self._use_upstreams(old, upstreams)
                    return
                self.detach(container_id)
                await asyncio.sleep(0)  # the old UDP socket closes on the loop's next turn
            await self._bind(container_id, netns, upstreams)

    def _use_upstreams(self, entry: Attached, upstreams: tuple[str, ...] | None) -> None:
        import functools

        entry.upstreams = upstreams
        entry.forwarder = None if upstreams is None else Forwarder(
            upstreams, sockets=functools.partial(self.hopper.socket, entry.ns_fd))

    async def _bind(self, container_id: str, netns: str, upstreams: tuple[str, ...] | None) -> None:
        from barque.network import netns as nsmod

        # in a thread: nft takes some milliseconds, which other containers' queries need not wait for
        udp_sock, tcp_sock, ns_fd = await asyncio.to_thread(nsmod.run_in, netns, _bind_here)
        ports = (udp_sock.getsockname()[1], tcp_sock.getsockname()[1])
        loop = asyncio.get_running_loop()
        try:
            st = os.fstat(ns_fd)
            udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self, container_id), sock=udp_sock)
        except BaseException:
            udp_sock.close()
            tcp_sock.close()
            os.close(ns_fd)
            raise
        entry = None

        async def on_tcp(reader, writer) -> None:
            await self._serve_tcp(entry, reader, writer)

        try:
            tcp = await asyncio.start_server(on_tcp, sock=tcp_sock)
        except BaseException:
            udp.close()
            tcp_sock.close()
            os.close(ns_fd)
            raise
        entry = Attached(container_id, netns, (st.st_dev, st.st_ino), ns_fd, udp, tcp, ports)
        self._use_upstreams(entry, upstreams)
        self.attached[container_id] = entry
        log.info("serving container %s (namespace %s, 127.0.0.11:53 → udp %d, tcp %d; upstream servers %s)",
                 container_id[:12], netns, ports[0], ports[1],
                 "the host's" if upstreams is None else list(upstreams) or "none")

    def detach(self, container_id: str) -> bool:
        entry = self.attached.pop(container_id, None)
        if entry is None:
            return False
        entry.close()
        if self._hopper is not None:
            self._hopper.release(entry.ns_fd)
        else:
            os.close(entry.ns_fd)
        log.info("no longer serving container %s", container_id[:12])
        return True

    async def recover(self) -> None:
        """Serve again every running container on a DNS-enabled network (after a crash, or the server's exit)."""
        try:
            ids = self.directory.dns_containers()
        except Exception as e:  # noqa: BLE001 - a server that cannot recover still serves new containers
            log.warning("cannot list the containers to serve: %s", e)
            return
        from barque.network.dns.client import pick_upstreams

        for cid in ids:
            try:
                upstreams = pick_upstreams(self.directory.container_dns(cid), self.config_dns)
                await self.attach(cid, str(self.run_root / "netns" / cid),
                                  None if upstreams is None else own_servers(upstreams))
            except Exception as e:  # noqa: BLE001 - one broken namespace must not keep the others unserved
                log.warning("cannot serve container %s again: %s", cid[:12], e)

    # ---- queries ------------------------------------------------------------------------------------------------

    def _decide(self, container_id: str, data: bytes, tcp: bool) -> Decision:
        try:
            return decide(self.directory, container_id, data, tcp=tcp, search=self.search)
        except Exception:  # noqa: BLE001 - no input may take the server down
            log.exception("answering a query of %s", container_id[:12])
            return Decision()

    def _forwarder(self, entry: Attached | None) -> Forwarder:
        """The container's own resolvers when it has them, else the host's."""
        return entry.forwarder if entry is not None and entry.forwarder is not None else self.forwarder

    def on_udp(self, container_id: str, transport, data: bytes, addr) -> None:
        d = self._decide(container_id, data, False)
        if d.reply is not None:
            transport.sendto(d.reply, addr)
        elif d.forward is not None and self._take_slot():
            forwarder = self._forwarder(self.attached.get(container_id))
            self._spawn(self._forward_udp(transport, forwarder, d.forward, addr))

    def _take_slot(self) -> bool:
        """A place among the queries waiting on upstream servers; none left: the query is dropped and the
        client's resolver asks again, as it would of a busy server."""
        if self.forwards >= MAX_FORWARDS:
            return False
        self.forwards += 1
        return True

    async def _forward(self, forwarder: Forwarder, q, tcp: bool) -> bytes:
        """The upstream answer to `q` (SERVFAIL when none came), in a slot taken by the caller."""
        try:
            answer = await forwarder.forward(q, tcp=tcp)
        except Exception:  # noqa: BLE001 - a bug here must not stop the server
            log.exception("forwarding")
            answer = None
        finally:
            self.forwards -= 1
        return answer if answer is not None else response(q, SERVFAIL, authoritative=False)

    async def _forward_udp(self, transport, forwarder: Forwarder, q, addr) -> None:
        answer = await self._forward(forwarder, q, False)
        if not transport.is_closing():
            transport.sendto(answer, addr)

    async def _serve_tcp(self, entry: Attached | None, reader, writer) -> None:
        if entry is None or len(entry.tcp_tasks) >= MAX_TCP_PER_CONTAINER:
            writer.close()
            return
        task = asyncio.current_task()
        entry.tcp_tasks.add(task)
        try:
            for _ in range(10000):
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE)
                (n,) = struct.unpack("!H", head)
                data = await asyncio.wait_for(reader.readexactly(n), TCP_IDLE)
                d = self._decide(entry.container_id, data, True)
                reply = d.reply
                if reply is None and d.forward is not None and self._take_slot():
                    reply = await self._forward(self._forwarder(entry), d.forward, True)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await asyncio.wait_for(writer.drain(), TCP_IDLE)
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, OSError):
            pass
        finally:
            entry.tcp_tasks.discard(task)
            writer.close()

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- control ------------------------------------------------------------------------------------------------

    async def _control_client(self, reader, writer) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), CONTROL_TIMEOUT)
            reply = await self.command(json.loads(line))
        except (ValueError, asyncio.TimeoutError, ConnectionError) as e:
            reply = {"ok": False, "error": f"bad request: {e}"}
        except Exception as e:  # noqa: BLE001 - the client is told, the server goes on
            log.exception("control request")
            reply = {"ok": False, "error": str(e) or type(e).__name__}
        try:
            writer.write(json.dumps(reply).encode() + b"\n")
            await asyncio.wait_for(writer.drain(), CONTROL_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()

    async def command(self, req) -> dict:
        if not isinstance(req, dict):
            return {"ok": False, "error": "bad request"}
        op = req.get("op")
        if op == "status":
            return {"ok": True, "pid": os.getpid(), "root": str(self.root), "containers": sorted(self.attached),
                    "upstreams": {cid: None if e.upstreams is None else list(e.upstreams)
                                  for cid, e in self.attached.items()}}
        cid = req.get("id")
        if not isinstance(cid, str) or not _ID.fullmatch(cid):
            return {"ok": False, "error": f"invalid container id {cid!r}"}
        if op == "detach":
            return {"ok": True, "detached": self.detach(cid)}
        if op == "attach":
            netns = req.get("netns")
            if req.get("root") not in (None, str(self.root)):
                return {"ok": False, "error": f"the DNS server of run root {self.run_root} serves root "
                                              f"{self.root}, not {req.get('root')}"}
            if not isinstance(netns, str) or not os.path.isabs(netns):
                return {"ok": False, "error": f"invalid network namespace path {netns!r}"}
            try:
                upstreams = None if req.get("upstreams") is None else own_servers(req["upstreams"])
            except ValueError as e:
                return {"ok": False, "error": str(e)}
            try:
                await self.attach(cid, netns, upstreams)
            except OSError as e:
                return {"ok": False, "error": f"cannot listen on {ADDRESS}:{PORT} in the network namespace "
                                              f"{netns}: {e.strerror or e}"}
            except NatError as e:
                return {"ok": False, "error": f"cannot send {ADDRESS}:{PORT} to the DNS server in the network "
                                              f"namespace {netns}: {e}"}
            return {"ok": True}
        return {"ok": False, "error": f"unknown operation {op!r}"}

    # ---- life ---------------------------------------------------------------------------------------------------

    async def run(self, control_path: Path, ready, idle_exit) -> None:
        """Serve until SIGTERM, or until idle and `idle_exit()` says the server may go (it takes the lock that
        keeps clients away and removes the server's files); `ready()` once the control socket listens."""
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: self.reload and self.reload())
        await self.recover()
        try:
            os.unlink(control_path)  # a dead server's; we hold the pid file's lock, so no live server has it
        except FileNotFoundError:
            pass
        from barque.network.dns.client import unix_address

        old = os.umask(0o077)
        try:
            with unix_address(control_path) as address:
                self._control = await asyncio.start_unix_server(self._control_client, path=address,
                                                                limit=MAX_CONTROL_LINE)
        finally:
            os.umask(old)
        ready()
        idle_since = loop.time()
        try:
            while not self._stopping.is_set():
                try:
                    await asyncio.wait_for(self._stopping.wait(), self.sweep)
                except asyncio.TimeoutError:
                    pass
                for cid in [c for c, e in self.attached.items() if e.gone()]:
                    self.detach(cid)
                if self.attached:
                    idle_since = loop.time()
                elif loop.time() - idle_since >= self.idle and idle_exit():
                    log.info("no container to serve for %.0f s: exiting", self.idle)
                    break
        finally:
            self._control.close()
            for cid in list(self.attached):
                self.detach(cid)
            for task in list(self._tasks):
                task.cancel()
            if self._hopper is not None:
                self._hopper.close()
                self._hopper = None
