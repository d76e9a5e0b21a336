"""The embedded DNS server's codec: what a stub resolver sends is read, answers are what it expects, and no input
— however broken — gets past `Malformed`."""

from __future__ import annotations

import random
import struct

import pytest

from barque.network.dns import wire


def test_a_query_is_read_with_its_name_type_and_edns_size():
    q = wire.parse_query(wire.build_query("Web.Example.", wire.AAAA, qid=0x1234, edns=4096))
    assert (q.id, q.qtype, q.qclass) == (0x1234, wire.AAAA, wire.IN)
    assert q.labels == (b"Web", b"Example")
    assert q.name == "web.example"
    assert q.edns == 4096 and q.udp_limit == wire.UDP_EDNS_MAX
    plain = wire.parse_query(wire.build_query("web"))
    assert plain.edns is None and plain.udp_limit == 512


def test_the_answer_echoes_id_question_and_rd_and_points_at_the_question_name():
    q = wire.parse_query(wire.build_query("Web", qid=77))
    reply = wire.response(q, answers=[wire.a_record("172.18.0.2", 600)])
    qid, flags, qd, an, ns, ar = struct.unpack_from("!6H", reply)
    assert (qid, qd, an, ns, ar) == (77, 1, 1, 0, 0)
    assert flags & wire.QR and flags & wire.RD and flags & wire.RA and flags & wire.AA
    assert reply[12:12 + len(q.question)] == q.question
    assert reply[12 + len(q.question):][:2] == b"\xc0\x0c"  # compressed: the question's name
    assert wire.read_answers(reply) == (flags, wire.NOERROR, [("Web", wire.A, 600, "172.18.0.2")])
    assert wire.is_answer_to(reply, q)


def test_an_edns_query_gets_an_opt_record_back():
    q = wire.parse_query(wire.build_query("web", edns=1232))
    reply = wire.response(q)
    assert struct.unpack_from("!6H", reply)[5] == 1
    assert reply.endswith(b"\x00" + struct.pack("!HHIH", wire.OPT, wire.UDP_EDNS_MAX, 0, 0))


def test_too_many_answers_for_udp_are_cut_and_marked_truncated():
    q = wire.parse_query(wire.build_query("many"))
    answers = [wire.a_record(f"10.0.{i // 256}.{i % 256}", 600) for i in range(100)]
    reply = wire.response(q, answers=answers, limit=512)
    assert len(reply) <= 512 and wire.truncated(reply)
    _, _, got = wire.read_answers(reply)
    assert 0 < len(got) < 100
    full = wire.response(q, answers=answers, limit=wire.TCP_MAX)
    assert not wire.truncated(full) and len(wire.read_answers(full)[2]) == 100


def test_ptr_answers_carry_the_name():
    q = wire.parse_query(wire.build_query("2.0.18.172.in-addr.arpa", wire.PTR))
    reply = wire.response(q, answers=[wire.ptr_record("web.front", 600)])
    assert wire.read_answers(reply)[2] == [("2.0.18.172.in-addr.arpa", wire.PTR, 600, "web.front")]


@pytest.mark.parametrize("name, ip", [("4.3.2.1.in-addr.arpa", "1.2.3.4"), ("0.0.18.172.in-addr.arpa", "172.18.0.0"),
                                      ("1.2.3.in-addr.arpa", None), ("256.0.0.1.in-addr.arpa", None),
                                      ("01.0.0.1.in-addr.arpa", None), ("4.3.2.1.ip6.arpa", None), ("web", None)])
def test_reverse_names(name, ip):
    assert wire.reverse_ip(name) == ip


def test_odd_names_are_not_container_names():
    q = wire.parse_query(b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03a.b\x00\x00\x01\x00\x01")
    assert q.name is None  # a dot inside a label
    q = wire.parse_query(b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03w\xffb\x00\x00\x01\x00\x01")
    assert q.name is None


def _header(flags=0x0100, qd=1, an=0, ns=0, ar=0) -> bytes:
    return struct.pack("!6H", 9, flags, qd, an, ns, ar)


@pytest.mark.parametrize("data, rcode", [
    (b"", None),
    (b"\x00\x01\x02", None),
    (_header(flags=0x8100) + b"\x00\x00\x01\x00\x01", None),            # a response: dropped
    (_header(flags=0x2900) + b"\x00\x00\x01\x00\x01", wire.NOTIMP),     # an UPDATE
    (_header(qd=0), wire.FORMERR),
    (_header(qd=2) + b"\x00\x00\x01\x00\x01" * 2, wire.FORMERR),
    (_header() + b"\x03web", wire.FORMERR),                             # name runs off the end
    (_header() + b"\x03web\x00\x00", wire.FORMERR),                     # no class
    (_header() + b"\xc0\x0c\x00\x01\x00\x01", wire.FORMERR),            # a pointer in a question
    (_header() + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01", wire.FORMERR),  # extended label type
    (_header() + b"\x3fa" + (b"\x3f" + b"a" * 63) * 4 + b"\x00\x00\x01\x00\x01", wire.FORMERR),  # name > 255
])
def test_malformed_messages(data, rcode):
    with pytest.raises(wire.Malformed) as e:
        wire.parse_query(data)
    assert e.value.rcode == rcode
    reply = wire.error_response(data, rcode) if rcode is not None else None
    if reply is not None:
        assert struct.unpack_from("!6H", reply)[0] == 9 and wire.rcode_of(reply) == rcode


def test_a_broken_edns_part_leaves_a_plain_query():
    broken = bytearray(wire.build_query("web", edns=4096))
    del broken[-3:]  # the OPT record's rdlength cut short
    q = wire.parse_query(bytes(broken))
    assert q.name == "web" and q.edns is None


def test_random_bytes_never_escape_malformed():
    rng = random.Random(7)
    base = wire.build_query("web.front", edns=1232)
    for _ in range(5000):
        if rng.random() < 0.5:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 80)))
        else:
            data = bytearray(base)
            for _ in range(rng.randrange(1, 6)):
                data[rng.randrange(len(data))] = rng.getrandbits(8)
            data = bytes(data[:rng.randrange(len(data) + 1)])
        try:
            q = wire.parse_query(data)
        except wire.Malformed:
            continue
        _ = q.name
        wire.response(q, answers=[wire.a_record("10.0.0.1", 1)])


def test_an_upstream_answer_to_another_question_is_refused():
    q = wire.parse_query(wire.build_query("example.org", qid=5))
    other = wire.parse_query(wire.build_query("evil.org", qid=5))
    assert not wire.is_answer_to(wire.response(other), q)
    assert not wire.is_answer_to(wire.response(wire.parse_query(wire.build_query("example.org", qid=6))), q)
    mixed_case = wire.parse_query(wire.build_query("ExAmPle.ORG", qid=5))
    assert wire.is_answer_to(wire.response(mixed_case), q)
    assert not wire.is_answer_to(q.raw, q)  # a query is no answer


def test_names_are_encoded_as_labels():
    assert wire.encode_name("web.front.") == b"\x03web\x05front\x00"
    for bad in ("", "a..b", "x" * 64, ".".join(["abcdefg"] * 40)):
        with pytest.raises(ValueError):
            wire.encode_name(bad)
