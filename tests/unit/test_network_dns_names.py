"""Which names a container resolves through the embedded DNS server, and what it is answered — from a real
metadata database (migrations run by `Database`), rows written as barque writes them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from barque.metadata import Database
from barque.network.dns import wire
from barque.network.dns.answer import Decision, decide
from barque.network.dns.names import Directory, NetworkView, Peer, candidates, lookup

WEB = "a1" * 32
DB = "b2" * 32
API = "c3" * 32
OLD = "d4" * 32     # on front, stopped
LONE = "e5" * 32    # only on the default bridge
OTHER = "f6" * 32   # on back only


class World:
    """A root with networks front and back (user-defined), the default bridge and host, and containers on them."""

    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "root"
        self.run_root = tmp / "run"
        self.db = Database(self.root / "barque.db")
        (self.run_root / "netns").mkdir(parents=True)
        self._n = 0
        for nid, name, driver in (("n-front", "front", "bridge"), ("n-back", "back", "bridge"),
                                  ("n-bridge", "bridge", "bridge"), ("n-host", "host", "host")):
            self.sql("INSERT INTO networks (id, name, driver, created, record) VALUES (?, ?, ?, ?, ?)",
                     (nid, name, driver, "2024-01-01T00:00:00Z", "{}"))

    def sql(self, statement: str, params: tuple = ()) -> None:
        with self.db.transaction() as conn:
            conn.execute(statement, params)

    def container(self, cid: str, name: str, running: bool = True) -> None:
        self.sql("INSERT INTO containers (id, name, image_id, created, record) VALUES (?, ?, ?, ?, ?)",
                 (cid, name, "sha256:x", 0.0, "{}"))
        if running:
            (self.run_root / "netns" / cid).touch()

    def endpoint(self, network: str, cid: str, ip: str, aliases=(), links=None) -> None:
        self._n += 1
        self.sql("INSERT INTO endpoints (id, network_id, container_id, ip, mac, record) VALUES (?, ?, ?, ?, ?, ?)",
                 (f"ep{self._n}", network, cid, ip, "02:42:00:00:00:00",
                  json.dumps({"Aliases": list(aliases), "Links": links, "IPAMConfig": None})))

    def directory(self) -> Directory:
        return Directory(self.root / "barque.db", self.run_root)


@pytest.fixture
def world(tmp_path: Path):
    w = World(tmp_path)
    w.container(WEB, "web")
    w.container(DB, "db")
    w.container(API, "api")
    w.container(OLD, "old", running=False)
    w.container(LONE, "lone")
    w.container(OTHER, "other")
    w.endpoint("n-front", WEB, "172.18.0.2", aliases=["www", "Shared"])
    w.endpoint("n-front", DB, "172.18.0.3", aliases=["shared"], links=["api:backend"])
    w.endpoint("n-front", OLD, "172.18.0.4", aliases=["shared"])
    w.endpoint("n-back", DB, "172.19.0.2", aliases=["database"])
    w.endpoint("n-back", API, "172.19.0.3")
    w.endpoint("n-back", OTHER, "172.19.0.4")
    w.endpoint("n-front", API, "172.18.0.5")
    w.endpoint("n-bridge", LONE, "172.17.0.2")
    w.endpoint("n-bridge", WEB, "172.17.0.3")
    yield w
    w.db.close()


def ask(world: World, asker: str, name: str, qtype: int = wire.A, *, search=(), tcp=False, directory=None):
    """(rcode, [values]) of the answer `asker` gets; "forward" when the server would ask the host's resolvers."""
    d = decide(directory or world.directory(), asker, wire.build_query(name, qtype, qid=3), tcp=tcp, search=search)
    if d.forward is not None:
        return "forward"
    assert d.reply is not None
    _, rcode, answers = wire.read_answers(d.reply)
    return rcode, sorted(v for _, _, _, v in answers)


def test_containers_resolve_each_other_by_name_short_id_and_alias(world):
    assert ask(world, WEB, "db") == (0, ["172.18.0.3"])
    assert ask(world, WEB, "DB.") == (0, ["172.18.0.3"])       # case and the trailing dot aside
    assert ask(world, WEB, DB[:12]) == (0, ["172.18.0.3"])
    assert ask(world, DB, "www") == (0, ["172.18.0.2"])
    assert ask(world, WEB, "web") == (0, ["172.18.0.2"])       # itself too
    assert ask(world, API, "database") == (0, ["172.19.0.2"])


def test_the_answer_lives_600_seconds(world):
    d = decide(world.directory(), WEB, wire.build_query("db"), tcp=False)
    assert [ttl for _, _, ttl, _ in wire.read_answers(d.reply)[2]] == [600]


def test_a_shared_alias_answers_every_running_container(world):
    assert ask(world, API, "shared") == (0, ["172.18.0.2", "172.18.0.3"])   # old (stopped) is not among them


def test_several_addresses_come_in_a_changing_order(world):
    seen = set()
    for _ in range(60):
        d = decide(world.directory(), API, wire.build_query("shared"), tcp=False)
        seen.add(tuple(v for _, _, _, v in wire.read_answers(d.reply)[2]))
    assert seen == {("172.18.0.2", "172.18.0.3"), ("172.18.0.3", "172.18.0.2")}


def test_only_shared_user_defined_networks_count(world):
    assert ask(world, OTHER, "web") == "forward"     # web is not on back
    assert ask(world, WEB, "other") == "forward"
    assert ask(world, WEB, "old") == "forward"       # stopped
    assert ask(world, LONE, "web") == "forward"      # the default bridge has no embedded DNS
    assert ask(world, WEB, "lone") == "forward"
    assert ask(world, "9" * 64, "web") == "forward"  # unknown asker


def test_the_first_network_the_asker_joined_answers(world):
    # db is on front (joined first) and back: api (back first, then front) gets db's back address
    assert ask(world, API, "db") == (0, ["172.19.0.2"])
    assert ask(world, WEB, "db") == (0, ["172.18.0.3"])


def test_name_dot_network(world):
    assert ask(world, API, "db.front") == (0, ["172.18.0.3"])
    assert ask(world, API, "db.back") == (0, ["172.19.0.2"])
    assert ask(world, API, "DB.Front.") == (0, ["172.18.0.3"])
    assert ask(world, WEB, "db.back") == "forward"   # web is not on back
    assert ask(world, WEB, "web.nowhere") == "forward"


def test_search_domains_of_the_host_are_tolerated(world):
    assert ask(world, WEB, "db.corp.example", search=("corp.example",)) == (0, ["172.18.0.3"])
    assert ask(world, WEB, "db.front.corp.example", search=("corp.example",)) == (0, ["172.18.0.3"])
    assert ask(world, WEB, "db.corp.example") == "forward"


def test_link_aliases_on_a_user_defined_network(world):
    assert ask(world, DB, "backend") == (0, ["172.18.0.5"])    # db's --link api:backend
    assert ask(world, WEB, "backend") == "forward"             # only for db


def test_other_types_of_a_container_name_get_no_records(world):
    assert ask(world, WEB, "db", wire.AAAA) == (0, [])
    assert ask(world, WEB, "db", 16) == (0, [])                # TXT
    assert ask(world, WEB, "db", wire.ANY) == (0, ["172.18.0.3"])


def test_reverse_lookups_of_containers_addresses(world):
    assert ask(world, WEB, "3.0.18.172.in-addr.arpa", wire.PTR) == (0, ["db.front"])
    assert ask(world, API, "2.0.19.172.in-addr.arpa", wire.PTR) == (0, ["db.back"])
    assert ask(world, WEB, "2.0.19.172.in-addr.arpa", wire.PTR) == "forward"   # not a network web is on
    assert ask(world, WEB, "8.8.8.8.in-addr.arpa", wire.PTR) == "forward"


def test_everything_else_is_forwarded(world):
    assert ask(world, WEB, "example.org") == "forward"
    assert ask(world, WEB, "example.org", wire.AAAA) == "forward"


def test_tcp_answers_are_not_cut(world):
    for i in range(60):
        cid = f"{i:064x}"
        world.container(cid, f"many{i}")
        world.endpoint("n-front", cid, f"172.18.1.{i + 10}", aliases=["many"])
    rcode, ips = ask(world, WEB, "many", tcp=True)
    assert rcode == 0 and len(ips) == 60
    d = decide(world.directory(), WEB, wire.build_query("many"), tcp=False)
    assert wire.truncated(d.reply) and len(d.reply) <= 512


def test_malformed_queries_get_formerr_or_nothing(world):
    d = decide(world.directory(), WEB, b"\x00\x07\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00", tcp=False)
    assert d.forward is None and wire.rcode_of(d.reply) == wire.FORMERR
    assert decide(world.directory(), WEB, b"\x00", tcp=False) == Decision()  # dropped


def test_an_unreadable_database_answers_servfail(tmp_path):
    directory = Directory(tmp_path / "missing" / "barque.db", tmp_path / "run")
    d = decide(directory, WEB, wire.build_query("db"), tcp=False)
    assert wire.rcode_of(d.reply) == wire.SERVFAIL


def test_the_directory_sees_changes_at_once_and_lists_whom_to_serve(world):
    directory = world.directory()
    assert sorted(directory.dns_containers()) == sorted([WEB, DB, API, OTHER])
    assert ask(world, WEB, "late", directory=directory) == "forward"
    cid = "7" * 64
    world.container(cid, "late")
    world.endpoint("n-front", cid, "172.18.0.9", aliases=["newcomer"])
    assert ask(world, WEB, "late", directory=directory) == (0, ["172.18.0.9"])
    assert ask(world, WEB, "newcomer", directory=directory) == (0, ["172.18.0.9"])
    (world.run_root / "netns" / cid).unlink()
    assert ask(world, WEB, "late", directory=directory) == "forward"
    directory.close()


def test_the_directory_never_writes(world):
    directory = world.directory()
    directory.networks_of(WEB)
    with pytest.raises(sqlite3.OperationalError):
        directory._conn.execute("DELETE FROM containers")
    directory.close()


def test_candidates_in_dockers_order():
    assert candidates("a.b.c") == [("a.b.c", None), ("a.b", "c"), ("a", "b.c")]
    assert candidates("web.corp", ("corp",)) == [("web.corp", None), ("web", "corp"), ("web", None)]


def test_lookup_without_a_database():
    nets = [NetworkView("front", [Peer(WEB, "web", "10.0.0.2", ("w",))]),
            NetworkView("back", [Peer(DB, "db", "10.1.0.2")], links={"data": "db"})]
    assert [p.ip for p in lookup("w", nets)] == ["10.0.0.2"]
    assert [p.ip for p in lookup("data", nets)] == ["10.1.0.2"]
    assert lookup("db.front", nets) is None
    assert lookup("nothing", nets) is None


def test_a_containers_own_resolvers_from_its_record(world):
    """How a restarted server knows a container's --dns: HostConfig.Dns in its record."""
    world.sql("UPDATE containers SET record = ? WHERE id = ?",
              (json.dumps({"HostConfig": {"Dns": ["192.0.2.53", "2001:db8::53"]}}), WEB))
    world.sql("UPDATE containers SET record = ? WHERE id = ?", (json.dumps({"HostConfig": {"Dns": []}}), DB))
    world.sql("UPDATE containers SET record = ? WHERE id = ?", (json.dumps({"HostConfig": {"Dns": None}}), API))
    directory = world.directory()
    try:
        assert directory.container_dns(WEB) == ["192.0.2.53", "2001:db8::53"]
        assert directory.container_dns(DB) == []
        assert directory.container_dns(API) is None
        assert directory.container_dns(LONE) is None       # a record without HostConfig
        assert directory.container_dns("f0" * 32) is None  # no such container
    finally:
        directory.close()
