"""What to do with one message from a container: answer it from the containers it can see, answer an error, drop
it, or hand it to the host's resolvers.

Docker's choices: A for a container's name (every address when several containers share an alias, in a random
order, as a round robin), no records (NOERROR) for any other type of such a name, PTR for a container's address
(`name.network`), and everything else forwarded. Answers live 600 s.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from barque.network.dns import wire
from barque.network.dns.names import DirectoryUnavailable, lookup, reverse

__all__ = ["Decision", "decide", "TTL"]

TTL = 600
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    reply: bytes | None = None        # send this back now
    forward: wire.Query | None = None  # or ask the host's resolvers this


def decide(directory, asker: str, data: bytes, *, tcp: bool, search: tuple[str, ...] = ()) -> Decision:
    """The decision for `data` from container `asker` (nothing to do: drop it)."""
    try:
        q = wire.parse_query(data)
    except wire.Malformed as e:
        log.debug("from %s: %s", asker[:12], e)
        return Decision(reply=wire.error_response(data, e.rcode) if e.rcode is not None else None)
    limit = wire.TCP_MAX if tcp else q.udp_limit
    name = q.name
    if q.qclass != wire.IN or not name:
        return Decision(forward=q)
    try:
        networks = directory.networks_of(asker)
    except DirectoryUnavailable as e:
        log.warning("%s", e)
        return Decision(reply=wire.response(q, wire.SERVFAIL, limit=limit, authoritative=False))
    if not networks:
        return Decision(forward=q)
    if q.qtype == wire.PTR:
        ip = wire.reverse_ip(name)
        target = reverse(ip, networks) if ip else None
        if target is None:
            return Decision(forward=q)
        try:
            return Decision(reply=wire.response(q, answers=[wire.ptr_record(target, TTL)], limit=limit))
        except ValueError:  # a name that cannot be written as labels
            return Decision(forward=q)
    peers = lookup(name, networks, search)
    if peers is None:
        return Decision(forward=q)
    if q.qtype not in (wire.A, wire.ANY):
        return Decision(reply=wire.response(q, limit=limit))
    ips = list(dict.fromkeys(p.ip for p in peers))
    random.shuffle(ips)
    return Decision(reply=wire.response(q, answers=[wire.a_record(ip, TTL) for ip in ips], limit=limit))
