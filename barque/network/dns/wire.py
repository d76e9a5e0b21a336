"""DNS messages on the wire (RFC 1035), just what the embedded server needs: read a query's header and question
(and its EDNS payload size), write answers of type A and PTR and error replies, and check an upstream's reply.

Every input is untrusted — it comes from inside a container — so parsing is strict, bounded by the message's
length, and fails with `Malformed` (carrying the rcode to answer with, or None to drop the packet silently).
Names in a question must not use compression pointers (RFC 1035 allows them only after a name was written);
answers point back at the question's name (offset 12), which is all the compression they need.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["Query", "Malformed", "parse_query", "build_query", "read_answers", "response", "error_response",
           "a_record", "ptr_record", "encode_name", "is_answer_to", "truncated", "rcode_of", "reverse_ip",
           "A", "PTR", "AAAA", "ANY", "IN", "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"]

# header flags
QR = 0x8000
OPCODE = 0x7800
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080
# rcodes
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
# types and classes
A, NS, CNAME, SOA, PTR, AAAA, OPT, ANY = 1, 2, 5, 6, 12, 28, 41, 255
IN = 1

HEADER = struct.Struct("!6H")
UDP_PLAIN = 512          # a UDP answer's limit without EDNS (RFC 1035 4.2.1)
UDP_EDNS_MAX = 1232      # what we accept of a client's EDNS size: the DNS flag day 2020 value, no fragmentation
TCP_MAX = 65535
MAX_NAME = 255


class Malformed(Exception):
    """A message that is not a query we can take: answer with `rcode`, or drop it when `rcode` is None."""

    def __init__(self, why: str, rcode: int | None = FORMERR) -> None:
        super().__init__(why)
        self.rcode = rcode


@dataclass(frozen=True)
class Query:
    id: int
    flags: int
    labels: tuple[bytes, ...]   # the question's name as sent (case kept: answers echo it)
    qtype: int
    qclass: int
    question: bytes             # the question section's bytes, echoed in answers
    edns: int | None            # the client's EDNS UDP payload size (version 0 only), None without EDNS
    raw: bytes                  # the whole message, forwarded upstream unchanged

    @property
    def name(self) -> str | None:
        """The name in lower case without the trailing dot, or None when it cannot be a container's name
        (bytes outside printable ASCII, or a dot inside a label)."""
        out = []
        for label in self.labels:
            if b"." in label or any(b < 0x21 or b > 0x7E for b in label):
                return None
            out.append(label.decode("ascii").lower())
        return ".".join(out)

    @property
    def udp_limit(self) -> int:
        """The largest UDP reply this client takes."""
        if self.edns is None:
            return UDP_PLAIN
        return max(UDP_PLAIN, min(self.edns, UDP_EDNS_MAX))


def _read_labels(data: bytes, pos: int) -> tuple[tuple[bytes, ...], int]:
    """The uncompressed name at `pos` and the offset after it."""
    labels = []
    total = 1
    while True:
        if pos >= len(data):
            raise Malformed("name runs past the end of the message")
        n = data[pos]
        pos += 1
        if n == 0:
            return tuple(labels), pos
        if n & 0xC0:
            raise Malformed("compression pointer or extended label in a question")
        total += n + 1
        if total > MAX_NAME:
            raise Malformed("name longer than 255 octets")
        if pos + n > len(data):
            raise Malformed("label runs past the end of the message")
        labels.append(bytes(data[pos:pos + n]))
        pos += n


def _skip_name(data: bytes, pos: int) -> int:
    """The offset after a possibly compressed name (pointers are not followed, only stepped over)."""
    for _ in range(128):
        if pos >= len(data):
            raise Malformed("name runs past the end of the message")
        n = data[pos]
        if n == 0:
            return pos + 1
        if n & 0xC0 == 0xC0:
            if pos + 2 > len(data):
                raise Malformed("truncated compression pointer")
            return pos + 2
        if n & 0xC0:
            raise Malformed("extended label type")
        pos += 1 + n
    raise Malformed("too many labels")


def _edns_size(data: bytes, pos: int, skip: int, additional: int) -> int | None:
    """The payload size of a version 0 OPT record among the additional records; None when absent or unreadable
    (a query whose EDNS part we cannot read is still answered, as a plain one)."""
    try:
        for i in range(skip + additional):
            pos = _skip_name(data, pos)
            if pos + 10 > len(data):
                return None
            rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", data, pos)
            pos += 10 + rdlen
            if pos > len(data):
                return None
            if i >= skip and rtype == OPT:
                return rclass if (ttl >> 16) & 0xFF == 0 else None
    except Malformed:
        return None
    return None


def parse_query(data: bytes) -> Query:
    """The query in `data`, or `Malformed`."""
    if len(data) < HEADER.size:
        raise Malformed("shorter than a header", None)
    qid, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    if flags & QR:
        raise Malformed("a response, not a query", None)  # never answer answers: no loops between servers
    if flags & OPCODE:
        raise Malformed("not a standard query", NOTIMP)
    if qdcount != 1:
        raise Malformed(f"{qdcount} questions")
    labels, pos = _read_labels(data, HEADER.size)
    if pos + 4 > len(data):
        raise Malformed("question runs past the end of the message")
    qtype, qclass = struct.unpack_from("!HH", data, pos)
    pos += 4
    edns = _edns_size(data, pos, ancount + nscount, arcount)
    return Query(qid, flags, labels, qtype, qclass, bytes(data[HEADER.size:pos]), edns, bytes(data))


def encode_name(name: str) -> bytes:
    """`name` ("a.b.c" or "a.b.c.") as labels; ValueError for an empty or too long label or name."""
    out = bytearray()
    for label in name.rstrip(".").split("."):
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad label in {name!r}")
        out += bytes([len(raw)]) + raw
    out += b"\x00"
    if len(out) > MAX_NAME:
        raise ValueError(f"name too long: {name!r}")
    return bytes(out)


def _record(rtype: int, ttl: int, rdata: bytes) -> bytes:
    """A resource record whose owner is the question's name (a pointer to offset 12)."""
    return struct.pack("!HHHIH", 0xC00C, rtype, IN, ttl, len(rdata)) + rdata


def a_record(ip: str, ttl: int) -> bytes:
    import socket

    return _record(A, ttl, socket.inet_aton(ip))


def ptr_record(target: str, ttl: int) -> bytes:
    return _record(PTR, ttl, encode_name(target))


def _opt() -> bytes:
    return b"\x00" + struct.pack("!HHIH", OPT, UDP_EDNS_MAX, 0, 0)


def response(q: Query, rcode: int = NOERROR, answers: list[bytes] | tuple = (), *, limit: int = UDP_PLAIN,
             authoritative: bool = True) -> bytes:
    """The reply to `q` with as many of `answers` as fit in `limit` bytes (TC set when some did not)."""
    opt = _opt() if q.edns is not None else b""
    room = limit - HEADER.size - len(q.question) - len(opt)
    kept = []
    for rr in answers:
        if len(rr) > room:
            break
        kept.append(rr)
        room -= len(rr)
    flags = QR | (q.flags & (OPCODE | RD)) | RA | rcode
    if authoritative:
        flags |= AA
    if len(kept) < len(answers):
        flags |= TC
    header = HEADER.pack(q.id, flags, 1, len(kept), 0, 1 if opt else 0)
    return header + q.question + b"".join(kept) + opt


def error_response(data: bytes, rcode: int) -> bytes | None:
    """A bare reply with `rcode` to a message we could not read past its header (None without a header)."""
    if len(data) < HEADER.size:
        return None
    qid, flags = struct.unpack_from("!HH", data)
    return HEADER.pack(qid, QR | (flags & (OPCODE | RD)) | RA | rcode, 0, 0, 0, 0)


def rcode_of(data: bytes) -> int:
    return struct.unpack_from("!H", data, 2)[0] & 0xF


def truncated(data: bytes) -> bool:
    return bool(struct.unpack_from("!H", data, 2)[0] & TC)


def is_answer_to(data: bytes, q: Query) -> bool:
    """Whether an upstream's message answers `q`: its ID, the QR bit, and (when it repeats one) the same question
    — case aside, as resolvers that randomise the case of names (0x20 bits) may write it."""
    if len(data) < HEADER.size:
        return False
    qid, flags, qdcount = struct.unpack_from("!HHH", data)
    if qid != q.id or not flags & QR:
        return False
    if qdcount == 0:
        return True
    got = data[HEADER.size:HEADER.size + len(q.question)]
    return got.lower() == q.question.lower()


def reverse_ip(name: str) -> str | None:
    """The IPv4 address of an in-addr.arpa name ("4.3.2.1.in-addr.arpa" → "1.2.3.4"), None for anything else."""
    parts = name.split(".")
    if len(parts) != 6 or parts[4:] != ["in-addr", "arpa"]:
        return None
    octets = parts[3::-1]
    if not all(p.isdigit() and len(p) <= 3 and int(p) < 256 and (p == "0" or not p.startswith("0"))
               for p in octets):
        return None
    return ".".join(octets)


def build_query(name: str, qtype: int = A, *, qid: int = 0, rd: bool = True, edns: int | None = None) -> bytes:
    """A standard query (what a stub resolver sends): for tests, and for anyone checking a server."""
    opt = b"\x00" + struct.pack("!HHIH", OPT, edns, 0, 0) if edns is not None else b""
    header = HEADER.pack(qid, RD if rd else 0, 1, 0, 0, 1 if opt else 0)
    return header + encode_name(name) + struct.pack("!HH", qtype, IN) + opt


def _read_name(data: bytes, pos: int) -> tuple[str, int]:
    """A possibly compressed name at `pos` (pointers followed, a bounded number of times) and the offset after it."""
    labels: list[str] = []
    end = None
    for _ in range(128):
        if pos >= len(data):
            raise Malformed("name runs past the end of the message")
        n = data[pos]
        if n == 0:
            return ".".join(labels), (end if end is not None else pos + 1)
        if n & 0xC0 == 0xC0:
            if pos + 2 > len(data):
                raise Malformed("truncated compression pointer")
            if end is None:
                end = pos + 2
            pos = struct.unpack_from("!H", data, pos)[0] & 0x3FFF
            continue
        if n & 0xC0:
            raise Malformed("extended label type")
        labels.append(data[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    raise Malformed("name loops")


def read_answers(data: bytes) -> tuple[int, int, list[tuple[str, int, int, object]]]:
    """(flags, rcode, [(owner, type, ttl, value)]) of a reply: value is the address of an A record, the name of a
    PTR record, else the raw rdata. For tests and diagnostics; Malformed when the reply cannot be read."""
    import socket

    if len(data) < HEADER.size:
        raise Malformed("shorter than a header")
    _, flags, qdcount, ancount, _, _ = HEADER.unpack_from(data)
    pos = HEADER.size
    for _ in range(qdcount):
        pos = _skip_name(data, pos) + 4
    out = []
    for _ in range(ancount):
        owner, pos = _read_name(data, pos)
        if pos + 10 > len(data):
            raise Malformed("record runs past the end of the message")
        rtype, _, ttl, rdlen = struct.unpack_from("!HHIH", data, pos)
        pos += 10
        rdata = data[pos:pos + rdlen]
        if len(rdata) != rdlen:
            raise Malformed("record data runs past the end of the message")
        if rtype == A and rdlen == 4:
            value: object = socket.inet_ntoa(rdata)
        elif rtype == PTR:
            value = _read_name(data, pos)[0]
        else:
            value = bytes(rdata)
        out.append((owner, rtype, ttl, value))
        pos += rdlen
    return flags, flags & 0xF, out
