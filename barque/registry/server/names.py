"""Repository names, tags and references as the distribution spec's grammar has them.

Names are validated after the URL path is decoded, so ``..``, ``%2e%2e``, empty components, leading or trailing
slashes and upper case all fail the grammar (NAME_INVALID) before a name reaches storage. The storage never builds a
path from a name anyway: names are keys in SQLite.
"""

from __future__ import annotations

import re

from barque.errors import InvalidArgument
from barque.oci.digest import Digest
from barque.oci.reference import NAME_TOTAL_LENGTH_MAX, REPOSITORY_PATTERN, TAG_PATTERN
from barque.registry.server.errors import RegistryError

__all__ = ["check_name", "check_tag", "parse_ref", "NAME_MAX", "TAG_RE", "NAME_RE"]

# The spec's grammar is Docker's reference grammar for the path part: one definition, in barque.oci.reference.
NAME_RE = re.compile(REPOSITORY_PATTERN, re.ASCII)
TAG_RE = re.compile(TAG_PATTERN, re.ASCII)
NAME_MAX = NAME_TOTAL_LENGTH_MAX   # distribution's limit on a repository name


def check_name(name: str) -> str:
    """`name` if it is a valid repository name, else NAME_INVALID."""
    if len(name) > NAME_MAX:
        raise RegistryError("NAME_INVALID", f"repository name is longer than {NAME_MAX} characters")
    if not NAME_RE.fullmatch(name):
        raise RegistryError("NAME_INVALID", f"invalid repository name {name!r}")
    return name


def check_tag(tag: str, code: str = "TAG_INVALID") -> str:
    """`tag` if it is valid. A push to an invalid tag is TAG_INVALID (400); a read or delete of one is
    MANIFEST_UNKNOWN (404): no manifest can have that name, and distribution answers 404 as well (its route does
    not match), which is what the conformance suite's ``.INVALID_MANIFEST_NAME`` probes expect."""
    if not TAG_RE.fullmatch(tag):
        if code == "MANIFEST_UNKNOWN":
            raise RegistryError(code, f"invalid tag {tag!r}")
        raise RegistryError(code, f"invalid tag {tag!r}", message="invalid tag")
    return tag


def parse_digest(text: str, code: str = "DIGEST_INVALID") -> Digest:
    """A sha256/sha512 digest, or the given error code (DIGEST_INVALID for blobs)."""
    try:
        return Digest.parse(text)
    except InvalidArgument as e:
        raise RegistryError(code, str(e), message="invalid digest" if code != "DIGEST_INVALID" else None) from None


def parse_ref(reference: str, for_push: bool = False) -> tuple[str | None, Digest | None]:
    """A manifest reference from the URL: (tag, None) or (None, digest). A malformed digest is DIGEST_INVALID;
    a malformed tag is TAG_INVALID on a push and an unknown manifest otherwise (`check_tag`)."""
    if ":" in reference:
        return None, parse_digest(reference)
    return check_tag(reference, "TAG_INVALID" if for_push else "MANIFEST_UNKNOWN"), None
