"""Image references, parsed and normalised exactly as Docker does.

The grammar and the normalisation rules are those of github.com/distribution/reference (``reference.go``,
``regexp.go``, ``normalize.go``), which the docker CLI, dockerd and containerd all use::

    reference       := name [ ":" tag ] [ "@" digest ]
    name            := [domain "/"] remote-name
    domain          := host [":" port-number]
    host            := domain-name | "[" IPv6address "]"
    domain-name     := domain-component ["." domain-component]*
    domain-component:= /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    remote-name     := path-component ["/" path-component]*
    path-component  := /[a-z0-9]+/ [separator /[a-z0-9]+/]*
    separator       := /[_.]|__|[-]+/
    tag             := /[\\w][\\w.-]{0,127}/
    digest          := algorithm ":" /[0-9a-fA-F]{32,}/

Normalisation (``ParseNormalizedNamed``): the text before the first ``/`` is a registry domain when it is
``localhost``, contains ``.`` or ``:``, or has an uppercase letter (uppercase is never valid in a path, so Docker
takes it for a host); otherwise the domain is ``docker.io``. ``index.docker.io`` is the legacy name of
``docker.io``. A single-component name on Docker Hub lives under ``library/``.

Error texts are Docker's own, because users and scripts compare them with what ``docker`` prints.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from barque.errors import InvalidArgument
from barque.oci.digest import ALGORITHMS, Digest

__all__ = [
    "Reference",
    "parse_reference",
    "parse_docker_ref",
    "parse_name",
    "is_image_id_like",
    "image_id_prefix",
    "DEFAULT_DOMAIN",
    "LEGACY_DEFAULT_DOMAIN",
    "OFFICIAL_REPO_PREFIX",
    "DEFAULT_TAG",
    "NAME_TOTAL_LENGTH_MAX",
]

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255  # applies to the path (remote name), not the domain

# Docker's error texts (distribution/reference and opencontainers/go-digest).
ERR_REFERENCE_INVALID_FORMAT = "invalid reference format"
ERR_TAG_INVALID_FORMAT = "invalid tag format"
ERR_NAME_CONTAINS_UPPERCASE = "repository name must be lowercase"
ERR_NAME_TOO_LONG = f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
ERR_DIGEST_INVALID_FORMAT = "invalid checksum digest format"
ERR_DIGEST_INVALID_LENGTH = "invalid checksum digest length"
ERR_DIGEST_UNSUPPORTED = "unsupported digest algorithm"

# The grammar, built from the same pieces as regexp.go. Go's RE2 picks the match a backtracking engine would
# (leftmost-first), as Python's `re` does, so captures agree. re.ASCII: Go's \w is ASCII only.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = r"(?:" + _DOMAIN_NAME + r"|" + _IPV6 + r")(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
#: a repository path (no domain) and a tag, as the distribution spec's grammar has them (the registry server uses them)
REPOSITORY_PATTERN = _REMOTE_NAME
TAG_PATTERN = _TAG
_NAME = r"(?:" + _DOMAIN_AND_PORT + r"/)?" + _REMOTE_NAME


# Compiled on first use, like Go's lazyregexp: the CLI imports this module on every start.
@functools.cache
def _reference_re() -> re.Pattern[str]:
    return re.compile(r"(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?", re.ASCII)


@functools.cache
def _name_re() -> re.Pattern[str]:
    return re.compile(r"(?:(" + _DOMAIN_AND_PORT + r")/)?(" + _REMOTE_NAME + r")", re.ASCII)


@functools.cache
def _tag_re() -> re.Pattern[str]:
    return re.compile(_TAG, re.ASCII)


_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
_ID_PREFIX_RE = re.compile(r"(?:sha256:)?([a-f0-9]{1,64})")


@dataclass(frozen=True)
class Reference:
    """A normalised, named image reference: ``domain/path[:tag][@digest]``.

    Build one with `parse_reference`; the constructor does not validate.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: Digest | None = None

    @property
    def name(self) -> str:
        """The full repository name, e.g. ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def familiar_name(self) -> str:
        """The name as Docker shows it: ``busybox``, ``user/app``, ``localhost:5000/app``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        if self.path.startswith(OFFICIAL_REPO_PREFIX):
            rest = self.path[len(OFFICIAL_REPO_PREFIX):]
            if "/" not in rest:  # "library/foo/bar" stays as it is, as in Docker
                return rest
        return self.path

    def _suffix(self) -> str:
        s = f":{self.tag}" if self.tag is not None else ""
        if self.digest is not None:
            s += f"@{self.digest}"
        return s

    def __str__(self) -> str:
        return self.name + self._suffix()

    def familiar(self) -> str:
        """Docker's ``FamiliarString``: ``busybox:latest``, ``user/app@sha256:…``.

        No tag is invented: call ``tag_or_latest().familiar()`` for what ``docker images`` shows.
        """
        return self.familiar_name + self._suffix()

    def with_tag(self, tag: str) -> "Reference":
        """Same name with `tag`; a digest is kept, as Docker's ``WithTag`` keeps it."""
        if not isinstance(tag, str) or not _tag_re().fullmatch(tag):
            raise InvalidArgument(ERR_TAG_INVALID_FORMAT)
        return Reference(self.domain, self.path, tag, self.digest)

    def with_digest(self, digest: Digest | str) -> "Reference":
        """Same name with `digest`; a tag is kept."""
        d = digest if isinstance(digest, Digest) else Digest.parse(digest)
        return Reference(self.domain, self.path, self.tag, d)

    def repository(self) -> "Reference":
        """The name alone, without tag or digest (Docker's ``TrimNamed``)."""
        return Reference(self.domain, self.path)

    @property
    def is_name_only(self) -> bool:
        return self.tag is None and self.digest is None

    def tag_or_latest(self) -> "Reference":
        """Docker's ``TagNameOnly``: add the tag ``latest`` when there is neither a tag nor a digest."""
        return self.with_tag(DEFAULT_TAG) if self.is_name_only else self


def _parse_digest(text: str) -> Digest:
    """go-digest's ``Parse`` on text that already matched the reference grammar's digest production."""
    algorithm, _, encoded = text.partition(":")
    if algorithm not in ALGORITHMS:  # sha384 is registered in Docker; barque's Digest does not support it
        raise InvalidArgument(ERR_DIGEST_UNSUPPORTED)
    if len(encoded) != ALGORITHMS[algorithm]:
        raise InvalidArgument(ERR_DIGEST_INVALID_LENGTH)
    if encoded != encoded.lower():
        raise InvalidArgument(ERR_DIGEST_INVALID_FORMAT)
    return Digest(algorithm, encoded)


def _split_docker_domain(text: str) -> tuple[str, str]:
    """normalize.go's ``splitDockerDomain``, on the whole input (tag and digest included)."""
    first, sep, rest = text.partition("/")
    if not sep:
        # A single component ("ubuntu", "ubuntu:22.04", even "localhost:5000") is an official image name.
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + text
    if first == "localhost":
        domain, remainder = first, rest
    elif first == LEGACY_DEFAULT_DOMAIN:
        domain, remainder = DEFAULT_DOMAIN, rest
    elif "." in first or ":" in first or first.lower() != first:
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_DOMAIN, text
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _parse(text: str) -> Reference:
    """reference.go's ``Parse`` for text that always carries a name."""
    m = _reference_re().fullmatch(text)
    if m is None:
        lowered = text.lower()
        if lowered != text and _reference_re().fullmatch(lowered):
            raise InvalidArgument(ERR_NAME_CONTAINS_UPPERCASE)
        raise InvalidArgument(ERR_REFERENCE_INVALID_FORMAT)
    name, tag, digest_text = m.group(1), m.group(2), m.group(3)
    nm = _name_re().fullmatch(name)
    assert nm is not None  # the reference grammar contains the name grammar
    domain, path = nm.group(1) or "", nm.group(2)
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidArgument(ERR_NAME_TOO_LONG)
    digest = _parse_digest(digest_text) if digest_text else None
    return Reference(domain, path, tag, digest)


def parse_reference(text: str) -> Reference:
    """Parse what a user types (``busybox``, ``user/app:1``, ``host:5000/a/b@sha256:…``) into a full reference.

    This is Docker's ``ParseNormalizedNamed``: no tag is added (see `Reference.tag_or_latest`).
    Raises InvalidArgument with Docker's reason.
    """
    if not isinstance(text, str):
        raise InvalidArgument(ERR_REFERENCE_INVALID_FORMAT)
    if _IDENTIFIER_RE.fullmatch(text):
        raise InvalidArgument(f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_docker_domain(text)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidArgument(f"invalid reference format: repository name ({remote}) must be lowercase")
    return _parse(f"{domain}/{remainder}")


def parse_docker_ref(text: str) -> Reference:
    """Docker's ``ParseDockerRef``: what ``docker pull`` resolves.

    ``name:tag@digest`` keeps only the digest (the digest pins the content; the tag would be a lie),
    a bare name gets ``latest``, anything else is returned as parsed.
    """
    ref = parse_reference(text)
    if ref.tag is not None and ref.digest is not None:
        return Reference(ref.domain, ref.path, None, ref.digest)
    return ref.tag_or_latest()


def parse_name(text: str) -> Reference:
    """Parse a repository name alone (for ``docker push NAME``-like places); a tag or digest is refused."""
    ref = parse_reference(text)
    if not ref.is_name_only:
        raise InvalidArgument(f"invalid repository name ({text}): a tag or digest is not allowed here")
    return ref


def is_image_id_like(text: str) -> bool:
    """True when `text` could name an image by ID: 64 hex digits, ``sha256:<hex>``, or a hex prefix of either.

    A short prefix such as ``abc`` is also a valid image name; Docker resolves a name first and falls back
    to an ID prefix, and so should callers. A full 64-hex string can only be an ID (`parse_reference` refuses it).
    """
    return isinstance(text, str) and _ID_PREFIX_RE.fullmatch(text) is not None


def image_id_prefix(text: str) -> str | None:
    """The hex part of an ID-like string (``sha256:`` stripped), or None when it does not look like an ID."""
    if not isinstance(text, str):
        return None
    m = _ID_PREFIX_RE.fullmatch(text)
    return m.group(1) if m else None
