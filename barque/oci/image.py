"""Typed, validated views of image manifests, indexes and image configs (OCI image spec and Docker schema 2).

Three rules shape this module:

* **The bytes are the identity.** A manifest's digest and an image's ID are hashes of the bytes exactly as
  received. Parsed objects keep those bytes (`Manifest.raw`, `ImageConfig.to_json`) and never re-serialise
  to compute a digest: JSON has no canonical form, and re-encoding changes key order, spacing and escapes.
* **Unknown fields survive.** Docker's configs carry ``container_config``, ``docker_version`` and the like that
  the OCI spec does not define. `ImageConfig` is a typed view over the full parsed object; `ImageConfig.evolve`
  rewrites only the keys it is asked to change.
* **Refuse early, say why.** Every error names the field (``manifest layer 2: invalid digest …``). Layer
  indexes in messages count from 0, as in the JSON (``layers[2]``).

No I/O; `json` and `base64` are imported on first use so that importing this module stays cheap.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

from barque.errors import DataCorruption, InvalidArgument
from barque.oci import mediatypes as mt
from barque.oci.digest import Digest, sha256_of
from barque.oci.platform import Platform, PlatformMatcher

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any, Callable

__all__ = [
    "Descriptor",
    "Manifest",
    "Index",
    "ImageConfig",
    "ContainerConfig",
    "HealthConfig",
    "History",
    "parse_manifest",
    "parse_config",
    "dump_json",
    "chain_ids",
    "MAX_MANIFEST_SIZE",
    "OCI_FOR_DOCKER",
]

# Docker (distribution/pull_v2.go) and containerd (remotes/docker) both refuse larger manifests.
MAX_MANIFEST_SIZE = 4 * 1024 * 1024

# Seen in the wild (BuildKit writes them) but not in mediatypes.py.
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar"

# Docker media type -> the OCI one, as containerd's ConvertDockerMediaTypeToOCI maps them.
OCI_FOR_DOCKER: Mapping[str, str] = MappingProxyType(
    {
        mt.DOCKER_MANIFEST_LIST: mt.OCI_INDEX,
        mt.DOCKER_MANIFEST: mt.OCI_MANIFEST,
        mt.DOCKER_CONFIG: mt.OCI_CONFIG,
        mt.DOCKER_LAYER_GZIP: mt.OCI_LAYER_GZIP,
        mt.DOCKER_LAYER: mt.OCI_LAYER,
        DOCKER_LAYER_ZSTD: mt.OCI_LAYER_ZSTD,
        mt.DOCKER_LAYER_FOREIGN_GZIP: mt.OCI_LAYER_NONDIST_GZIP,
        DOCKER_LAYER_FOREIGN: mt.OCI_LAYER_NONDIST,
    }
)

_SCHEMA1 = frozenset({mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED})
_SCHEMA1_MESSAGE = (
    "schema 1 manifests are not supported (Docker removed them too: "
    "the image must be pushed again as OCI or Docker schema 2)"
)
# Content-Type values that say nothing about which manifest this is.
_GENERIC_TYPES = frozenset({"", "application/json", "application/octet-stream", "text/plain"})
# RFC 6838, as the OCI image-spec schema checks media types.
_MEDIA_TYPE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
_RFC3339_RE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")
_INT64_MAX = 2**63 - 1
_EMPTY_MAP: Mapping[str, str] = MappingProxyType({})


# --------------------------------------------------------------------------------------------------- JSON


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def _load_json(data: bytes | bytearray | memoryview | str, what: str) -> Any:
    import json

    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as e:
        raise InvalidArgument(f"{what} is not valid UTF-8 JSON: {e}", cause=e) from None
    except (ValueError, RecursionError) as e:
        raise InvalidArgument(f"{what} is not valid JSON: {e}", cause=e) from None


# Go's encoding/json escapes these, so Docker's JSON has them as \u003c etc.; doing the same keeps barque's
# output looking like Docker's (and makes Docker-written JSON re-encode to identical bytes).
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def dump_json(obj: Any) -> bytes:
    """Serialise `obj` deterministically: compact, keys in insertion order (not sorted), UTF-8.

    OCI defines no canonical JSON, so this is barque's one fixed encoding for JSON it writes (manifests,
    configs, indexes): ``separators=(",", ":")``, non-ASCII kept as UTF-8, and ``<``, ``>``, ``&``, U+2028,
    U+2029 escaped as Go's encoding/json escapes them. The same object always gives the same bytes; once
    written, a document is identified by those bytes and never re-encoded.
    """
    import json

    try:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return _GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group()], text).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as e:
        raise InvalidArgument(f"cannot encode as JSON: {e}", cause=e) from None


# ---------------------------------------------------------------------------------------- field checks


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{where}: expected a JSON object")
    return value


def _opt_str(d: Mapping[str, Any], key: str, where: str) -> str | None:
    v = d.get(key)
    if v is not None and not isinstance(v, str):
        raise InvalidArgument(f"{where}: {key} must be a string")
    return v


def _media_type(value: object, where: str) -> str:
    if not isinstance(value, str) or not _MEDIA_TYPE_RE.fullmatch(value):
        raise InvalidArgument(f"{where}: invalid media type {value!r}")
    return value


def _digest(value: object, where: str) -> Digest:
    if not isinstance(value, str):
        raise InvalidArgument(f"{where}: digest is required and must be a string")
    try:
        return Digest.parse(value)
    except InvalidArgument as e:
        raise InvalidArgument(f"{where}: invalid digest ({e})", cause=e) from None


def _size(value: object, where: str) -> int:
    # bool is an int in Python, not in JSON; 1.0 is refused by Go's int64 decoding, and so here.
    if type(value) is not int or value < 0 or value > _INT64_MAX:
        raise InvalidArgument(f"{where}: size must be a non-negative integer, not {value!r}")
    return value


def _str_map(value: object, where: str, key: str) -> Mapping[str, str]:
    if value is None:
        return _EMPTY_MAP
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(f"{where}: {key} must be an object of strings")
    return MappingProxyType(dict(value))


def _str_list(value: object, where: str, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{where}: {key} must be a list of strings")
    return tuple(value)


# --------------------------------------------------------------------------------------------- Descriptor


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a blob is, its digest and size, and optional metadata.

    Equality and hashing use media type, digest and size only.
    """

    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = field(default=(), compare=False)
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY_MAP, compare=False)
    platform: Platform | None = field(default=None, compare=False)
    artifact_type: str | None = field(default=None, compare=False)
    data: bytes | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_dict(cls, value: object, where: str = "descriptor") -> "Descriptor":
        d = _object(value, where)
        media_type = _media_type(d.get("mediaType"), where)
        digest = _digest(d.get("digest"), where)
        size = _size(d.get("size"), where)
        urls = _str_list(d.get("urls"), where, "urls")
        annotations = _str_map(d.get("annotations"), where, "annotations")
        platform = Platform.from_dict(d["platform"], f"{where}: platform") if d.get("platform") is not None else None
        artifact_type = d.get("artifactType")
        if artifact_type is not None:
            artifact_type = _media_type(artifact_type, f"{where}: artifactType")
        data = None
        if d.get("data") is not None:
            data = _decode_data(d["data"], digest, size, where)
        return cls(media_type, digest, size, urls, annotations, platform, artifact_type, data)

    def to_dict(self) -> dict[str, Any]:
        """The OCI JSON object, keys in the image-spec's Go field order, empty fields omitted."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.data is not None:
            import base64

            out["data"] = base64.b64encode(self.data).decode("ascii")
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out


def _decode_data(value: object, digest: Digest, size: int, where: str) -> bytes:
    import base64
    import binascii

    if not isinstance(value, str):
        raise InvalidArgument(f"{where}: data must be a base64 string")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidArgument(f"{where}: data is not valid base64", cause=e) from None
    if len(data) != size:
        raise DataCorruption(f"{where}: embedded data is {len(data)} bytes, the descriptor says {size}")
    if Digest(digest.algorithm, hashlib.new(digest.algorithm, data).hexdigest()) != digest:
        raise DataCorruption(f"{where}: embedded data does not match digest {digest}")
    return data


# ------------------------------------------------------------------------------------ manifests and indexes


class _RawDocument:
    """Shared by Manifest and Index: identity is the raw bytes."""

    raw: bytes
    media_type: str

    @cached_property
    def digest(self) -> Digest:
        """sha256 of the bytes as received: the name registries and content stores use."""
        return sha256_of(self.raw)

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def is_docker(self) -> bool:
        return self.media_type in (mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST)

    def descriptor(self, platform: Platform | None = None, annotations: Mapping[str, str] | None = None) -> Descriptor:
        """A descriptor pointing at this document (for an index entry or an ``index.json``)."""
        return Descriptor(
            self.media_type,
            self.digest,
            self.size,
            annotations=MappingProxyType(dict(annotations or {})),
            platform=platform,
        )

    def to_dict(self) -> dict[str, Any]:
        """The document as JSON data, exactly as received (unknown fields included)."""
        return _load_json(self.raw, "manifest")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.raw == self.raw  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self.raw)


@dataclass(frozen=True, eq=False)
class Manifest(_RawDocument):
    """An image manifest: OCI (``application/vnd.oci.image.manifest.v1+json``) or Docker schema 2."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    raw: bytes = field(repr=False)
    subject: Descriptor | None = None
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY_MAP)
    artifact_type: str | None = None

    @property
    def is_image(self) -> bool:
        """True for a container image (its config is an image config), False for other OCI artifacts."""
        return self.config.media_type in mt.CONFIGS

    @classmethod
    def create(
        cls,
        config: Descriptor,
        layers: Iterable[Descriptor],
        *,
        annotations: Mapping[str, str] | None = None,
        subject: Descriptor | None = None,
        artifact_type: str | None = None,
        media_type: str = mt.OCI_MANIFEST,
    ) -> "Manifest":
        """Build a new manifest; its bytes are `dump_json` of the OCI field order."""
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
        if artifact_type:
            doc["artifactType"] = artifact_type
        doc["config"] = config.to_dict()
        doc["layers"] = [layer.to_dict() for layer in layers]
        if subject is not None:
            doc["subject"] = subject.to_dict()
        if annotations:
            doc["annotations"] = dict(annotations)
        m = parse_manifest(dump_json(doc), media_type)
        assert isinstance(m, Manifest)
        return m

    def to_oci(self) -> dict[str, Any]:
        """This manifest as an OCI image manifest (JSON data; `dump_json` it to store it).

        A Docker schema 2 manifest gets OCI media types (gzip layers → ``tar+gzip``, the config → OCI config,
        foreign layers → non-distributable, URLs kept). Config and layer blobs are untouched, so their digests
        stay valid; the manifest itself gets new bytes and so a new digest. An OCI manifest comes back as it is.
        """
        if not self.is_docker:
            return self.to_dict()
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST}
        doc["config"] = _convert_descriptor(self.config)
        doc["layers"] = [_convert_descriptor(layer) for layer in self.layers]
        if self.annotations:
            doc["annotations"] = dict(self.annotations)
        return doc


def _convert_descriptor(d: Descriptor) -> dict[str, Any]:
    out = d.to_dict()
    out["mediaType"] = OCI_FOR_DOCKER.get(d.media_type, d.media_type)
    return out


@dataclass(frozen=True, eq=False)
class Index(_RawDocument):
    """An image index: OCI (``application/vnd.oci.image.index.v1+json``) or a Docker manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    raw: bytes = field(repr=False)
    subject: Descriptor | None = None
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY_MAP)
    artifact_type: str | None = None

    @classmethod
    def create(
        cls,
        manifests: Iterable[Descriptor],
        *,
        annotations: Mapping[str, str] | None = None,
        subject: Descriptor | None = None,
        artifact_type: str | None = None,
        media_type: str = mt.OCI_INDEX,
    ) -> "Index":
        """Build a new index (also the shape of an OCI layout's ``index.json``)."""
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
        if artifact_type:
            doc["artifactType"] = artifact_type
        doc["manifests"] = [m.to_dict() for m in manifests]
        if subject is not None:
            doc["subject"] = subject.to_dict()
        if annotations:
            doc["annotations"] = dict(annotations)
        i = parse_manifest(dump_json(doc), media_type)
        assert isinstance(i, Index)
        return i

    def select(self, matcher: PlatformMatcher) -> Descriptor | None:
        """The entry to use on a platform: the best match for `matcher` (a `PlatformMatcher`).

        Entries without a platform come after every explicit match, as in containerd. Returns None when
        nothing fits; attestation entries (platform ``unknown/unknown``) never match a real platform.
        """
        i = matcher.best([m.platform for m in self.manifests])
        return None if i is None else self.manifests[i]


def _normalize_content_type(media_type: str | None) -> str | None:
    if media_type is None:
        return None
    base = media_type.split(";", 1)[0].strip()
    return None if base.lower() in _GENERIC_TYPES else base


def _detect(doc: dict[str, Any], declared: str | None) -> str:
    field_type = doc.get("mediaType")
    if field_type is not None and not isinstance(field_type, str):
        raise InvalidArgument("manifest: mediaType must be a string")
    schema_version = doc.get("schemaVersion")
    if declared in _SCHEMA1 or field_type in _SCHEMA1 or (type(schema_version) is int and schema_version == 1):
        raise InvalidArgument(_SCHEMA1_MESSAGE)
    if declared and field_type and declared != field_type:
        raise InvalidArgument(f"manifest media type mismatch: expected {declared}, the manifest says {field_type}")
    kind = field_type or declared
    if kind is None:
        # OCI made mediaType optional at first, so older OCI manifests and layouts' index.json lack it.
        is_index = "manifests" in doc
        is_manifest = "config" in doc or "layers" in doc
        if is_index and is_manifest:
            raise InvalidArgument("manifest is ambiguous: it has both manifests and config/layers, and no mediaType")
        if is_index:
            kind = mt.OCI_INDEX
        elif is_manifest:
            kind = mt.OCI_MANIFEST
        else:
            raise InvalidArgument("not a manifest: no mediaType, config, layers or manifests")
    if kind not in mt.MANIFESTS and kind not in mt.INDEXES:
        raise InvalidArgument(f"unsupported manifest media type {kind}")
    if kind in (mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST) and field_type != kind:
        raise InvalidArgument(f"manifest mediaType field should be {kind!r}, not {field_type!r}")
    # containerd's validateMediaType: the content must agree with the type.
    if kind in mt.MANIFESTS and "manifests" in doc:
        raise InvalidArgument(f"manifest of type {kind} has a manifests field, as an index would")
    if kind in mt.INDEXES and ("config" in doc or "layers" in doc):
        raise InvalidArgument(f"index of type {kind} has config or layers, as a manifest would")
    if type(schema_version) is not int or schema_version != 2:
        raise InvalidArgument(f"unsupported manifest schemaVersion {schema_version!r}: expected 2")
    return kind


def parse_manifest(data: bytes, media_type: str | None = None) -> Manifest | Index:
    """Parse and validate a manifest or an index, keeping `data` as its identity.

    `media_type` is what the source declared (a descriptor's mediaType, a registry's Content-Type); without
    it, or when it is generic (``application/json``), the type comes from the ``mediaType`` field or, failing
    that, from the shape of the content. Raises InvalidArgument naming the problem.
    """
    raw = bytes(data)
    if len(raw) > MAX_MANIFEST_SIZE:
        raise InvalidArgument(f"manifest is too large: {len(raw)} bytes, the limit is {MAX_MANIFEST_SIZE}")
    doc = _load_json(raw, "manifest")
    if not isinstance(doc, dict):
        raise InvalidArgument("manifest: expected a JSON object")
    kind = _detect(doc, _normalize_content_type(media_type))
    what = "index" if kind in mt.INDEXES else "manifest"
    subject = Descriptor.from_dict(doc["subject"], f"{what} subject") if doc.get("subject") is not None else None
    annotations = _str_map(doc.get("annotations"), what, "annotations")
    artifact_type = doc.get("artifactType")
    if artifact_type is not None:
        artifact_type = _media_type(artifact_type, f"{what} artifactType")

    if kind in mt.INDEXES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise InvalidArgument("index has no manifests list")
        manifests = tuple(Descriptor.from_dict(e, f"index manifest {i}") for i, e in enumerate(entries))
        return Index(kind, manifests, raw, subject, annotations, artifact_type)

    if doc.get("config") is None:
        raise InvalidArgument("manifest has no config")
    config = Descriptor.from_dict(doc["config"], "manifest config")
    layer_list = doc.get("layers")
    if not isinstance(layer_list, list):
        raise InvalidArgument("manifest has no layers list")
    layers = tuple(Descriptor.from_dict(e, f"manifest layer {i}") for i, e in enumerate(layer_list))
    return Manifest(kind, config, layers, raw, subject, annotations, artifact_type)


# ---------------------------------------------------------------------------------------------- configs


class _Codec:
    """How one JSON key maps to one typed attribute.

    ``parse(value, where)`` validates the JSON value (None when the key is absent) into the attribute;
    ``render(attribute)`` gives the JSON value back, None meaning "omit the key" (OCI's omitempty).
    """

    def __init__(self, parse: Callable[[Any, str], Any], render: Callable[[Any], Any]) -> None:
        self.parse = parse
        self.render = render


def _check_str(key: str) -> _Codec:
    def parse(v: Any, where: str) -> str:
        if v is None:
            return ""
        if not isinstance(v, str):
            raise InvalidArgument(f"{where}: {key} must be a string")
        return v

    return _Codec(parse, lambda v: v or None)


def _check_bool(key: str) -> _Codec:
    def parse(v: Any, where: str) -> bool:
        if v is None:
            return False
        if not isinstance(v, bool):
            raise InvalidArgument(f"{where}: {key} must be true or false")
        return v

    return _Codec(parse, lambda v: True if v else None)


def _check_str_list(key: str) -> _Codec:
    return _Codec(lambda v, where: _str_list(v, where, key), lambda v: list(v) if v else None)


def _check_strslice(key: str) -> _Codec:
    """Entrypoint/Cmd/Shell: null and [] differ (``ENTRYPOINT []`` clears the base image's); a lone string is
    one argument, as moby's strslice accepts it."""

    def parse(v: Any, where: str) -> tuple[str, ...] | None:
        if v is None:
            return None
        if isinstance(v, str):
            return (v,)
        return _str_list(v, where, key)

    return _Codec(parse, lambda v: None if v is None else list(v))


def _check_set(key: str) -> _Codec:
    """ExposedPorts/Volumes: JSON objects whose keys matter and whose values are empty objects."""

    def parse(v: Any, where: str) -> tuple[str, ...]:
        if v is None:
            return ()
        if not isinstance(v, dict):
            raise InvalidArgument(f"{where}: {key} must be an object")
        return tuple(v)

    return _Codec(parse, lambda v: {k: {} for k in v} if v else None)


def _check_str_map(key: str) -> _Codec:
    return _Codec(lambda v, where: _str_map(v, where, key), lambda v: dict(v) if v else None)


def _check_opt_int(key: str) -> _Codec:
    def parse(v: Any, where: str) -> int | None:
        if v is not None and type(v) is not int:
            raise InvalidArgument(f"{where}: {key} must be an integer")
        return v

    return _Codec(parse, lambda v: v)


class _View:
    """A typed, immutable view over a JSON object that keeps every key it does not know.

    Subclasses are dataclasses listing their known keys in ``_FIELDS``; ``raw`` is the object as parsed
    (empty for one built in code). `_render` writes back only the attributes that differ from ``raw``, so a
    parsed-and-unchanged view renders to exactly what it was parsed from.
    """

    _FIELDS: tuple[tuple[str, str, _Codec], ...] = ()
    _WHERE = ""
    raw: Mapping[str, Any]

    @classmethod
    def _values(cls, d: Mapping[str, Any], where: str) -> dict[str, Any]:
        return {attr: codec.parse(d.get(key), where) for attr, key, codec in cls._FIELDS}

    def _render(self) -> dict[str, Any]:
        out = dict(self.raw)
        for attr, key, codec in self._FIELDS:
            value = getattr(self, attr)
            try:
                unchanged = value == codec.parse(self.raw.get(key), self._WHERE)
            except InvalidArgument:  # e.g. no rootfs yet in a config built in code
                unchanged = False
            if unchanged:
                continue
            rendered = codec.render(value)
            if rendered is None:
                out.pop(key, None)
            elif isinstance(rendered, dict) and isinstance(self.raw.get(key), dict) and key == "rootfs":
                out[key] = {**self.raw[key], **rendered}  # keep unknown rootfs keys
            else:
                out[key] = rendered
        return out

    def _check_changes(self, changes: Mapping[str, Any]) -> None:
        known = {attr for attr, _, _ in self._FIELDS}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {', '.join(sorted(unknown))}")

    def to_dict(self) -> dict[str, Any]:
        """The full JSON data: `raw` with changed attributes written over it (a deep copy)."""
        import copy

        return copy.deepcopy(self._render())


@dataclass(frozen=True)
class HealthConfig:
    """``config.Healthcheck``; durations in nanoseconds, as Go's time.Duration encodes them."""

    test: tuple[str, ...] = ()
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    _KEYS = (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start_period", "StartPeriod"),
        ("start_interval", "StartInterval"),
        ("retries", "Retries"),
    )

    @classmethod
    def from_dict(cls, v: Any, where: str) -> "HealthConfig | None":
        if v is None:
            return None
        d = _object(v, f"{where}: Healthcheck")
        ints = {}
        for attr, key in cls._KEYS:
            x = d.get(key)
            if x is None:
                x = 0
            if type(x) is not int:
                raise InvalidArgument(f"{where}: Healthcheck.{key} must be an integer")
            ints[attr] = x
        return cls(_str_list(d.get("Test"), where, "Healthcheck.Test"), **ints)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.test:
            out["Test"] = list(self.test)
        for attr, key in self._KEYS:
            if getattr(self, attr):
                out[key] = getattr(self, attr)
        return out


@dataclass(frozen=True)
class ContainerConfig(_View):
    """The image config's ``config`` object: how to run a container of the image.

    `raw` holds the whole object as parsed, including Docker's extra keys (Hostname, Image, AttachStdin…).
    """

    user: str = ""
    exposed_ports: tuple[str, ...] = ()  # "80/tcp", "53/udp"
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    volumes: tuple[str, ...] = ()
    working_dir: str = ""
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY_MAP)
    stop_signal: str = ""
    args_escaped: bool = False
    healthcheck: HealthConfig | None = None
    on_build: tuple[str, ...] = ()
    shell: tuple[str, ...] | None = None
    stop_timeout: int | None = None
    raw: Mapping[str, Any] = field(default_factory=lambda: _EMPTY_MAP, repr=False)

    _WHERE = "image config: config"

    @classmethod
    def from_dict(cls, value: Any, where: str = "image config: config") -> "ContainerConfig":
        if value is None:
            return cls()
        d = _object(value, where)
        return cls(**cls._values(d, where), raw=MappingProxyType(d))

    def evolve(self, **changes: Any) -> "ContainerConfig":
        """A copy with `changes` (attribute names) applied; other keys of `raw` are kept as they were."""
        self._check_changes(changes)
        if "labels" in changes:
            changes["labels"] = MappingProxyType(dict(changes["labels"] or {}))
        return ContainerConfig.from_dict(dataclasses.replace(self, **changes)._render())


ContainerConfig._FIELDS = (
    ("user", "User", _check_str("User")),
    ("exposed_ports", "ExposedPorts", _check_set("ExposedPorts")),
    ("env", "Env", _check_str_list("Env")),
    ("entrypoint", "Entrypoint", _check_strslice("Entrypoint")),
    ("cmd", "Cmd", _check_strslice("Cmd")),
    ("volumes", "Volumes", _check_set("Volumes")),
    ("working_dir", "WorkingDir", _check_str("WorkingDir")),
    ("labels", "Labels", _check_str_map("Labels")),
    ("stop_signal", "StopSignal", _check_str("StopSignal")),
    ("args_escaped", "ArgsEscaped", _check_bool("ArgsEscaped")),
    ("healthcheck", "Healthcheck", _Codec(HealthConfig.from_dict, lambda v: None if v is None else v.to_dict())),
    ("on_build", "OnBuild", _check_str_list("OnBuild")),
    ("shell", "Shell", _check_strslice("Shell")),
    ("stop_timeout", "StopTimeout", _check_opt_int("StopTimeout")),
)


@dataclass(frozen=True)
class History:
    """One ``history`` entry: how a layer (or, with `empty_layer`, a metadata-only step) was made."""

    created: str | None = None
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False

    @classmethod
    def from_dict(cls, value: Any, where: str) -> "History":
        d = _object(value, where)
        created = _created(d.get("created"), where)
        created_by, author, comment = (_opt_str(d, k, where) or "" for k in ("created_by", "author", "comment"))
        empty = d.get("empty_layer")
        if empty is not None and not isinstance(empty, bool):
            raise InvalidArgument(f"{where}: empty_layer must be true or false")
        return cls(created, created_by, author, comment, bool(empty))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.created:
            out["created"] = self.created
        for key in ("created_by", "author", "comment"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.empty_layer:
            out["empty_layer"] = True
        return out


def _created(value: Any, where: str) -> str | None:
    # Go's time.Time refuses anything but RFC 3339, and with it the whole image.
    if value is None:
        return None
    if not isinstance(value, str) or not _RFC3339_RE.fullmatch(value):
        raise InvalidArgument(f"{where}: created must be an RFC 3339 time, not {value!r}")
    return value


def _parse_history(v: Any, where: str) -> tuple[History, ...]:
    if v is None:
        return ()
    if not isinstance(v, list):
        raise InvalidArgument(f"{where}: history must be a list")
    return tuple(History.from_dict(h, f"{where}: history[{i}]") for i, h in enumerate(v))


def _parse_diff_ids(v: Any, where: str) -> tuple[Digest, ...]:
    # Docker's image.NewFromJSON refuses a config without rootfs ("invalid image JSON, no RootFS key").
    if v is None:
        raise InvalidArgument(f"{where}: rootfs is missing")
    d = _object(v, f"{where}: rootfs")
    if d.get("type") != "layers":
        raise InvalidArgument(f"{where}: rootfs.type is {d.get('type')!r}, expected 'layers'")
    ids = d.get("diff_ids")
    if ids is None:
        ids = []
    if not isinstance(ids, list):
        raise InvalidArgument(f"{where}: rootfs.diff_ids must be a list")
    return tuple(_digest(x, f"{where}: rootfs.diff_ids[{i}]") for i, x in enumerate(ids))


def _render_container_config(v: ContainerConfig | None) -> dict[str, Any] | None:
    return None if v is None else (v._render() or None)


@dataclass(frozen=True)
class ImageConfig(_View):
    """An image config (OCI ``application/vnd.oci.image.config.v1+json`` or Docker's equivalent).

    Parsed ones keep their bytes: `to_json` returns them and `digest` (the image ID) hashes them. One built
    in code, or made by `evolve`, is encoded with `dump_json` in the image-spec's key order.
    """

    architecture: str = ""
    os: str = ""
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()
    created: str | None = None
    author: str = ""
    config: ContainerConfig = field(default_factory=ContainerConfig)
    diff_ids: tuple[Digest, ...] = ()
    history: tuple[History, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=lambda: _EMPTY_MAP, repr=False)
    raw_bytes: bytes | None = field(default=None, repr=False, compare=False)

    _WHERE = "image config"

    @property
    def rootfs_type(self) -> str:
        return "layers"  # the only type there is; parse_config refuses others

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant, self.os_version, self.os_features)

    @property
    def created_datetime(self) -> "datetime | None":
        """`created` as an aware datetime (nanoseconds truncated to microseconds)."""
        if not self.created:
            return None
        from datetime import datetime

        m = re.fullmatch(r"(.{19})(?:\.(\d+))?(.*)", self.created.upper())
        assert m is not None  # validated as RFC 3339
        frac = (m.group(2) or "")[:6].ljust(6, "0")
        zone = "+00:00" if m.group(3) == "Z" else m.group(3)
        return datetime.fromisoformat(f"{m.group(1)}.{frac}{zone}")

    def to_json(self) -> bytes:
        """The bytes of this config: as parsed, else `dump_json` of `to_dict`."""
        return self.raw_bytes if self.raw_bytes is not None else dump_json(self._render())

    @cached_property
    def digest(self) -> Digest:
        """The image ID: sha256 of `to_json`."""
        return sha256_of(self.to_json())

    def chain_ids(self) -> list[Digest]:
        return chain_ids(self.diff_ids)

    def evolve(self, **changes: Any) -> "ImageConfig":
        """A copy with `changes` applied (``config=``, ``diff_ids=``, ``history=``, ``created=``…).

        Only the changed keys are rewritten; everything else, known or not, stays as it was. The result has
        no bytes yet: `to_json` encodes it with `dump_json`.
        """
        self._check_changes(changes)
        changes = {k: tuple(v) if k in ("diff_ids", "history", "os_features") else v for k, v in changes.items()}
        evolved = dataclasses.replace(self, **changes, raw_bytes=None)
        return _config_from_obj(evolved._render(), None)


ImageConfig._FIELDS = (
    ("created", "created", _Codec(_created, lambda v: v)),
    ("author", "author", _check_str("author")),
    ("architecture", "architecture", _check_str("architecture")),
    ("os", "os", _check_str("os")),
    ("os_version", "os.version", _check_str("os.version")),
    ("os_features", "os.features", _check_str_list("os.features")),
    ("variant", "variant", _check_str("variant")),
    (
        "config",
        "config",
        _Codec(lambda v, where: ContainerConfig.from_dict(v, f"{where}: config"), _render_container_config),
    ),
    ("diff_ids", "rootfs", _Codec(_parse_diff_ids, lambda v: {"type": "layers", "diff_ids": [str(d) for d in v]})),
    ("history", "history", _Codec(_parse_history, lambda v: [h.to_dict() for h in v] if v else None)),
)


def _config_from_obj(doc: Any, raw_bytes: bytes | None) -> ImageConfig:
    where = "image config"
    d = _object(doc, where)
    return ImageConfig(**ImageConfig._values(d, where), raw=MappingProxyType(d), raw_bytes=raw_bytes)


def parse_config(data: bytes) -> ImageConfig:
    """Parse and validate an image config, keeping its bytes (the image ID) and every field.

    Checks ``rootfs.type == "layers"``, that each diff ID is a digest, and the types of the known fields.
    Like Docker, it does not insist on ``architecture``/``os``.
    """
    raw = bytes(data)
    return _config_from_obj(_load_json(raw, "image config"), raw)


def chain_ids(diff_ids: Iterable[Digest]) -> list[Digest]:
    """ChainIDs of a layer stack, per the OCI image spec:

    ``ChainID(L0) = DiffID(L0)``; ``ChainID(L0|…|Ln) = sha256(ChainID(L0|…|Ln-1) + " " + DiffID(Ln))``.
    """
    out: list[Digest] = []
    for d in diff_ids:
        out.append(d if not out else sha256_of(f"{out[-1]} {d}".encode("ascii")))
    return out
