"""Container names: the generated `adjective_surname` ones, the rule a given `--name` must follow, and the names of
legacy links (`/parent/alias`, which dockerd registers for the linked container: `rm parent/alias` removes the linked
container, `rm --link parent/alias` the link alone).

Docker names an unnamed container from two word lists and retries with a digit appended when the pick is taken;
barque does the same with its own lists (notable scientists and engineers), so `ps` looks familiar.
"""

from __future__ import annotations

import random
import re
from typing import Callable

from barque.errors import BarqueError, InvalidArgument, NotFound

__all__ = ["ADJECTIVES", "SURNAMES", "generate_name", "validate_name", "rename", "link_target", "remove_link"]

ADJECTIVES = (
    "agile", "amber", "ardent", "astute", "bold", "brave", "bright", "brisk", "calm", "candid",
    "cheerful", "clever", "cosmic", "crisp", "curious", "daring", "deft", "eager", "earnest", "fearless",
    "fervent", "fluent", "gallant", "gentle", "glowing", "graceful", "hardy", "humble", "jolly", "jovial",
    "keen", "kind", "lively", "loyal", "lucid", "mellow", "merry", "mindful", "nimble", "noble",
    "patient", "placid", "plucky", "polite", "quiet", "radiant", "rapid", "resolute", "serene", "sincere",
    "snappy", "spry", "steady", "stoic", "sunny", "swift", "tender", "tidy", "upbeat", "valiant",
    "vivid", "witty", "zealous", "zesty",
)

SURNAMES = (
    "agnesi", "aiken", "alhazen", "ampere", "archimedes", "avogadro", "babbage", "backus", "bardeen", "bernoulli",
    "bohr", "boltzmann", "boole", "born", "brahe", "cantor", "carnot", "cauchy", "cerf", "chandrasekhar",
    "clausius", "codd", "conway", "copernicus", "coulomb", "cray", "dalton", "dijkstra", "dirac", "doppler",
    "eckert", "edison", "euclid", "euler", "faraday", "fermat", "fermi", "feynman", "fibonacci", "fourier",
    "franklin", "galois", "gauss", "germain", "gibbs", "godel", "hamming", "hawking", "heisenberg", "hertz",
    "hilbert", "hoare", "hooke", "hopper", "huygens", "jacobi", "johnson", "joule", "kelvin", "kepler",
    "kernighan", "knuth", "kolmogorov", "lagrange", "lamarr", "lamport", "laplace", "leibniz", "liskov", "lovelace",
    "maxwell", "mccarthy", "meitner", "mendel", "mendeleev", "minsky", "mirzakhani", "napier", "neumann", "newton",
    "noether", "ohm", "pascal", "pasteur", "pauli", "planck", "poincare", "raman", "ramanujan", "riemann",
    "ritchie", "rutherford", "schrodinger", "shannon", "somerville", "stroustrup", "tesla", "thompson", "torvalds",
    "turing", "volta", "watt", "wiles", "wirth", "wozniak", "yalow", "yukawa", "zuse",
)

_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_ALLOWED = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
_PLAIN_TRIES = 6   # Docker tries six names (the last five with a digit) before giving up on the pattern


def generate_name(taken: Callable[[str], bool], rng=random) -> str:
    """A free `adjective_surname` name; when one is taken, further picks get a random number appended.

    `taken(name)` says whether a container already uses `name`. Unlike Docker, which falls back to the container
    ID after six tries, this keeps trying with ever larger numbers, so it always returns a name. `rng` is anything
    with `choice` and `randrange` (the `random` module, or a seeded `random.Random` in tests).
    """
    attempt = 0
    while True:
        name = f"{rng.choice(ADJECTIVES)}_{rng.choice(SURNAMES)}"
        if attempt:
            # one digit as Docker appends, then wider numbers once the digits are used up
            name += str(rng.randrange(10 ** (1 + max(0, attempt - _PLAIN_TRIES))))
        if not taken(name):
            return name
        attempt += 1


def validate_name(name: str) -> str:
    """A `--name` as stored: Docker's pattern, at least two characters, a leading "/" dropped."""
    bare = name[1:] if name.startswith("/") else name
    if not _NAME.fullmatch(bare):
        raise InvalidArgument(f"Invalid container name ({name}), only {_ALLOWED} are allowed")
    return bare


def rename(engine, c, new_name: str) -> None:
    """Docker's rename: the new name checked, refused when it is the current one or taken, recorded, announced."""
    from barque.container.events import container_event

    new = validate_name(new_name)
    if new == c.name:
        raise InvalidArgument("Renaming a container with the same name as its current name")
    old = c.name
    engine.containers.rename(c, new)
    container_event(engine.settings.root, c.record, "rename", oldName="/" + old)


def link_target(engine, ref: str):
    """(parent container, its Links entry, the linked container's ID) for a link name `parent/alias` (a leading "/"
    or not), or None when `ref` names no link."""
    parent_name, _, alias = ("/" + ref.lstrip("/")).rpartition("/")
    if not parent_name or not alias:
        return None
    try:
        parent = engine.containers.get(parent_name.lstrip("/"))
    except NotFound:
        return None
    for spec, target in (parent.private.get("links") or {}).items():
        name, _, given = spec.partition(":")
        if (given or name).rstrip("/").rsplit("/", 1)[-1] == alias:
            return parent, spec, target
    return None


def remove_link(engine, ref: str) -> None:
    """dockerd's `ContainerRm` with `link`: the legacy link `parent/alias` is dropped from the parent (its
    HostConfig.Links, its /etc/hosts and the rules letting it reach the linked container); both containers stay."""
    import json
    from pathlib import Path

    from barque.network.manage import _refresh_etc
    from barque.network.rules import apply_rules, network_lock

    found = link_target(engine, ref)
    if found is None:
        engine.containers.get(ref)  # dockerd resolves the name first: "No such container" (404)
        raise BarqueError("Conflict, cannot remove the default link name of the container")  # dockerd's 500
    parent, spec, _target = found
    with engine.db.transaction() as conn:
        row = conn.execute("SELECT record FROM containers WHERE id = ?", (parent.id,)).fetchone()
        if row is None:
            raise NotFound(f"No such container: {ref}")
        record = json.loads(row[0])
        record.setdefault("_barque", {}).setdefault("links", {}).pop(spec, None)
        host = record.setdefault("HostConfig", {})
        host["Links"] = [x for x in host.get("Links") or [] if x != spec] or None
        conn.execute("UPDATE containers SET record = ? WHERE id = ?", (json.dumps(record), parent.id))
    parent.record = record
    if parent.refresh().get("Running"):
        with network_lock(Path(engine.settings.run_root)):
            apply_rules(engine)
        _refresh_etc(engine, parent)
