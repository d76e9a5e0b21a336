"""Manifests, indexes, image configs and platforms: Docker-made files parse, broken ones are refused."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from barque.errors import DataCorruption, InvalidArgument
from barque.oci import mediatypes as mt
from barque.oci.digest import Digest, sha256_of
from barque.oci.image import (
    MAX_MANIFEST_SIZE,
    ContainerConfig,
    Descriptor,
    History,
    ImageConfig,
    Index,
    Manifest,
    chain_ids,
    dump_json,
    parse_config,
    parse_manifest,
)
from barque.oci.platform import (
    Platform,
    format_platform,
    host_matcher,
    host_platform,
    normalize_arch,
    only,
    only_strict,
    parse_platform,
)

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "docker-made"
IMAGE_ID = "sha256:49995ae9fa9958dfc960ab51afde4a49a9d2aad9cc9a61d20dd14ea3512214b1"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64

needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason="Docker-made fixtures not present")


def blob(digest: Digest | str) -> bytes:
    d = Digest.parse(str(digest))
    return (FIXTURES / "oci-layout-layers" / "blobs" / d.algorithm / d.encoded).read_bytes()


@pytest.fixture(scope="module")
def docker_save() -> dict[str, bytes]:
    with tarfile.open(FIXTURES / "docker-save-layers.tar") as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def inspect() -> dict:
    return json.loads((FIXTURES / "docker-inspect-layers.json").read_text())[0]


def desc(digest: str = D1, size: int = 10, media_type: str = mt.OCI_LAYER_GZIP, **extra: object) -> dict:
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


def oci_manifest(**over: object) -> dict:
    doc: dict = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": desc(D1, 100, mt.OCI_CONFIG),
        "layers": [desc(D2, 200), desc(D3, 300)],
    }
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not None}


def refused(data: bytes | dict, media_type: str | None = None) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    with pytest.raises(InvalidArgument) as e:
        parse_manifest(raw, media_type)
    return str(e.value)


# ------------------------------------------------------------------------------------- Docker-made files


@needs_fixtures
def test_oci_layout_index_to_manifest_to_config(inspect: dict) -> None:
    index = parse_manifest((FIXTURES / "oci-layout-layers" / "index.json").read_bytes())
    assert isinstance(index, Index)
    assert index.media_type == mt.OCI_INDEX  # skopeo writes no mediaType; recognised by its manifests list
    (entry,) = index.manifests
    assert entry.annotations["org.opencontainers.image.ref.name"] == "1"

    raw = blob(entry.digest)
    manifest = parse_manifest(raw, entry.media_type)
    assert isinstance(manifest, Manifest)
    assert manifest.digest == entry.digest and manifest.size == entry.size
    assert manifest.is_image and not manifest.is_docker
    assert len(manifest.layers) == 5
    assert all(layer.media_type == mt.OCI_LAYER_GZIP for layer in manifest.layers)

    config_bytes = blob(manifest.config.digest)
    assert len(config_bytes) == manifest.config.size
    config = parse_config(config_bytes)
    assert config.digest == manifest.config.digest
    assert [str(d) for d in config.diff_ids] == inspect["RootFS"]["Layers"]
    for layer, diff_id in zip(manifest.layers, config.diff_ids):
        data = blob(layer.digest)
        assert sha256_of(data) == layer.digest and len(data) == layer.size
        assert sha256_of(gzip.decompress(data)) == diff_id


@needs_fixtures
def test_docker_save_config_is_the_image_id(docker_save: dict[str, bytes], inspect: dict) -> None:
    (entry,) = json.loads(docker_save["manifest.json"])
    config = parse_config(docker_save[entry["Config"]])
    assert str(config.digest) == IMAGE_ID == inspect["Id"]
    assert [str(d) for d in config.diff_ids] == inspect["RootFS"]["Layers"]
    # each layer.tar is the uncompressed layer, so its sha256 is the diff ID
    assert [sha256_of(docker_save[p]) for p in entry["Layers"]] == list(config.diff_ids)

    assert config.platform == Platform("linux", "amd64")
    assert config.config.env == ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hello")
    assert config.config.working_dir == "/data"
    assert dict(config.config.labels) == {"org.example.fixture": "layers"}
    assert config.config.cmd == ("cat", "/data/a.txt")
    assert config.config.entrypoint is None
    assert config.created == inspect["Created"]
    assert config.created_datetime is not None and config.created_datetime.year == 2026

    # history: one non-empty entry per layer, and the same steps docker history shows (newest first)
    assert sum(not h.empty_layer for h in config.history) == len(config.diff_ids)
    history_txt = (FIXTURES / "docker-history-layers.txt").read_text().splitlines()
    assert [h.created_by for h in reversed(config.history)] == history_txt

    # Docker's own fields survive, untouched
    assert config.raw["docker_version"] == inspect["DockerVersion"]
    assert config.raw["container_config"]["Hostname"] == inspect["ContainerConfig"]["Hostname"]
    assert config.to_json() == docker_save[entry["Config"]]


@needs_fixtures
def test_chain_ids_of_the_fixture(docker_save: dict[str, bytes]) -> None:
    (entry,) = json.loads(docker_save["manifest.json"])
    config = parse_config(docker_save[entry["Config"]])
    ids = config.chain_ids()
    assert len(ids) == 5
    assert ids[0] == config.diff_ids[0]
    for n in range(1, 5):
        expected = "sha256:" + hashlib.sha256(f"{ids[n - 1]} {config.diff_ids[n]}".encode()).hexdigest()
        assert str(ids[n]) == expected
    # the OCI-layout copy of the image has other config bytes but the same layers, so the same chain
    index = parse_manifest((FIXTURES / "oci-layout-layers" / "index.json").read_bytes())
    manifest = parse_manifest(blob(index.manifests[0].digest))
    assert isinstance(manifest, Manifest)
    oci_config = parse_config(blob(manifest.config.digest))
    assert oci_config.digest != config.digest
    assert oci_config.chain_ids() == ids


def test_chain_ids_small_cases() -> None:
    a, b = Digest.parse(D1), Digest.parse(D2)
    assert chain_ids([]) == []
    assert chain_ids([a]) == [a]
    assert chain_ids([a, b])[1] == Digest("sha256", hashlib.sha256(f"{D1} {D2}".encode()).hexdigest())


@needs_fixtures
def test_dump_json_writes_docker_written_json_back_byte_for_byte(docker_save: dict[str, bytes]) -> None:
    (entry,) = json.loads(docker_save["manifest.json"])
    original = docker_save[entry["Config"]]
    assert b"\\u0026\\u0026" in original  # Go escapes & < >
    assert dump_json(json.loads(original)) == original
    layout = FIXTURES / "oci-layout-layers"  # (its oci-layout file is hand-written, with a space)
    for path in [layout / "index.json", *(layout / "blobs" / "sha256").iterdir()]:
        if path.stat().st_size < 5000 and path.read_bytes()[:1] == b"{":
            assert dump_json(json.loads(path.read_bytes())) == path.read_bytes()


# ---------------------------------------------------------------------------------------- manifests


def test_digest_is_of_the_bytes_as_received() -> None:
    doc = oci_manifest()
    pretty = json.dumps(doc, indent=3).encode() + b"\n"
    m = parse_manifest(pretty)
    assert m.raw == pretty
    assert m.digest == sha256_of(pretty)
    assert m.digest != sha256_of(dump_json(doc))
    assert m.descriptor().to_dict() == {"mediaType": mt.OCI_MANIFEST, "digest": str(m.digest), "size": len(pretty)}


def test_media_type_sources() -> None:
    raw = json.dumps(oci_manifest(mediaType=None)).encode()
    assert parse_manifest(raw).media_type == mt.OCI_MANIFEST
    assert parse_manifest(raw, mt.OCI_MANIFEST).media_type == mt.OCI_MANIFEST
    assert parse_manifest(raw, "application/json").media_type == mt.OCI_MANIFEST
    with_field = json.dumps(oci_manifest()).encode()
    assert parse_manifest(with_field, mt.OCI_MANIFEST + "; charset=utf-8").media_type == mt.OCI_MANIFEST


def test_docker_manifest_and_list() -> None:
    docker = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": desc(D1, 7, mt.DOCKER_CONFIG),
        "layers": [desc(D2, 8, mt.DOCKER_LAYER_GZIP)],
    }
    m = parse_manifest(json.dumps(docker).encode(), mt.DOCKER_MANIFEST)
    assert isinstance(m, Manifest) and m.is_docker and m.is_image
    listing = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST_LIST,
        "manifests": [desc(D1, 7, mt.DOCKER_MANIFEST, platform={"architecture": "arm", "os": "linux", "variant": "v7"})],
    }
    i = parse_manifest(json.dumps(listing).encode())
    assert isinstance(i, Index) and i.is_docker
    assert i.manifests[0].platform == Platform("linux", "arm", "v7")


@pytest.mark.parametrize(
    "doc,media_type,message",
    [
        ({"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}, None, "schema 1 manifests are not supported"),
        ({"schemaVersion": 1, "fsLayers": []}, mt.DOCKER_SCHEMA1_SIGNED, "schema 1 manifests are not supported"),
        ({"mediaType": mt.DOCKER_SCHEMA1, "schemaVersion": 1}, None, "schema 1 manifests are not supported"),
        (oci_manifest(mediaType="application/vnd.example.thing+json"), None,
         "unsupported manifest media type application/vnd.example.thing+json"),
        (oci_manifest(mediaType=None), "application/vnd.example.thing+json",
         "unsupported manifest media type application/vnd.example.thing+json"),
        (oci_manifest(layers=[desc(D1), desc(D2), desc("sha256:abc")]), None, "manifest layer 2: invalid digest"),
        (oci_manifest(layers=[desc("md5:" + "0" * 32)]), None, "manifest layer 0: invalid digest"),
        (oci_manifest(layers=[{"mediaType": mt.OCI_LAYER, "size": 1}]), None,
         "manifest layer 0: digest is required"),
        (oci_manifest(config=None), None, "manifest has no config"),
        (oci_manifest(layers=None), None, "manifest has no layers list"),
        (oci_manifest(layers={"0": desc()}), None, "manifest has no layers list"),
        (oci_manifest(config=desc(size=-1)), None, "manifest config: size must be a non-negative integer"),
        (oci_manifest(config=desc(size="10")), None, "manifest config: size must be a non-negative integer"),
        (oci_manifest(layers=[desc(size=1.0)]), None, "manifest layer 0: size must be a non-negative integer"),
        (oci_manifest(layers=[desc(size=True)]), None, "manifest layer 0: size must be a non-negative integer"),
        (oci_manifest(layers=[desc(size=2**63)]), None, "manifest layer 0: size must be a non-negative integer"),
        (oci_manifest(layers=[desc(media_type="not a media type")]), None, "manifest layer 0: invalid media type"),
        (oci_manifest(layers=[desc(urls="http://x")]), None, "manifest layer 0: urls must be a list of strings"),
        (oci_manifest(layers=[desc(annotations={"a": 1})]), None, "manifest layer 0: annotations must be an object"),
        (oci_manifest(annotations=["x"]), None, "manifest: annotations must be an object of strings"),
        (oci_manifest(config=desc(platform={"os": "linux"})), None,
         "manifest config: platform: architecture is required"),
        (oci_manifest(schemaVersion=3), None, "unsupported manifest schemaVersion 3"),
        (oci_manifest(schemaVersion=True), None, "unsupported manifest schemaVersion True"),
        (oci_manifest(schemaVersion="2"), None, "unsupported manifest schemaVersion '2'"),
        (oci_manifest(schemaVersion=None), None, "unsupported manifest schemaVersion None"),
        (oci_manifest(), mt.OCI_INDEX, "manifest media type mismatch: expected " + mt.OCI_INDEX),
        (oci_manifest(mediaType=None, manifests=[]), None, "manifest is ambiguous"),
        (oci_manifest(manifests=[]), None, "has a manifests field"),
        ({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [], "layers": []}, None, "has config or layers"),
        ({"schemaVersion": 2, "mediaType": mt.OCI_INDEX}, None, "index has no manifests list"),
        ({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [desc(), desc(size=None)]}, None,
         "index manifest 1: size must be a non-negative integer"),
        ({"schemaVersion": 2}, None, "not a manifest"),
        ({**oci_manifest(mediaType=None), "config": desc(D1, 1, mt.DOCKER_CONFIG)}, mt.DOCKER_MANIFEST,
         "manifest mediaType field should be"),
        (oci_manifest(mediaType=7), None, "manifest: mediaType must be a string"),
        (oci_manifest(subject=desc(digest="nope")), None, "manifest subject: invalid digest"),
        (oci_manifest(artifactType="bad"), None, "manifest artifactType: invalid media type"),
    ],
)
def test_malformed_manifests_are_refused(doc: dict, media_type: str | None, message: str) -> None:
    assert message in refused(doc, media_type)


@pytest.mark.parametrize(
    "raw,message",
    [
        (b"", "manifest is not valid JSON"),
        (b"{", "manifest is not valid JSON"),
        (b"[]", "manifest: expected a JSON object"),
        (b'{"schemaVersion": NaN}', "manifest is not valid JSON"),
        (b'{"schemaVersion": 2, "x": "\xff"}', "manifest is not valid UTF-8 JSON"),
        (b"\xef\xbb\xbf{}", "manifest is not valid JSON"),
        (b"[" * 100000 + b"]" * 100000, "manifest is not valid JSON"),
        (b" " * (MAX_MANIFEST_SIZE + 1), "manifest is too large"),
    ],
)
def test_unreadable_manifests_are_refused(raw: bytes, message: str) -> None:
    assert message in refused(raw)


def test_embedded_data_is_checked() -> None:
    payload = b'{"hello":"world"}'
    good = desc(str(sha256_of(payload)), len(payload), mt.OCI_CONFIG, data=base64.b64encode(payload).decode())
    m = parse_manifest(json.dumps(oci_manifest(config=good)).encode())
    assert isinstance(m, Manifest) and m.config.data == payload
    assert m.config.to_dict()["data"] == good["data"]

    wrong_size = {**good, "size": len(payload) + 1}
    with pytest.raises(DataCorruption, match="embedded data is 17 bytes"):
        parse_manifest(json.dumps(oci_manifest(config=wrong_size)).encode())
    wrong_digest = {**good, "digest": D1}
    with pytest.raises(DataCorruption, match="does not match digest"):
        parse_manifest(json.dumps(oci_manifest(config=wrong_digest)).encode())
    assert "data is not valid base64" in refused(oci_manifest(config={**good, "data": "!!"}))


def test_docker_manifest_to_oci() -> None:
    docker = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": desc(D1, 7, mt.DOCKER_CONFIG),
        "layers": [
            desc(D2, 8, mt.DOCKER_LAYER_GZIP),
            desc(D3, 9, mt.DOCKER_LAYER_FOREIGN_GZIP, urls=["https://example.com/layer"]),
            desc(D1, 10, mt.DOCKER_LAYER),
        ],
    }
    m = parse_manifest(json.dumps(docker).encode())
    assert isinstance(m, Manifest)
    oci = m.to_oci()
    assert oci["mediaType"] == mt.OCI_MANIFEST
    assert oci["config"] == desc(D1, 7, mt.OCI_CONFIG)
    assert [layer["mediaType"] for layer in oci["layers"]] == [mt.OCI_LAYER_GZIP, mt.OCI_LAYER_NONDIST_GZIP, mt.OCI_LAYER]
    assert oci["layers"][1]["urls"] == ["https://example.com/layer"]
    assert [layer["digest"] for layer in oci["layers"]] == [D2, D3, D1]  # blobs untouched
    converted = parse_manifest(dump_json(oci))
    assert isinstance(converted, Manifest) and converted.media_type == mt.OCI_MANIFEST and converted.is_image
    assert converted.digest != m.digest

    already = parse_manifest(json.dumps(oci_manifest()).encode())
    assert isinstance(already, Manifest)
    assert already.to_oci() == oci_manifest()


def test_create_manifest_and_index() -> None:
    config = Descriptor(mt.OCI_CONFIG, Digest.parse(D1), 100)
    layers = [Descriptor(mt.OCI_LAYER_GZIP, Digest.parse(D2), 200)]
    m = Manifest.create(config, layers, annotations={"org.opencontainers.image.created": "now"})
    assert json.loads(m.raw) == {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": D1, "size": 100},
        "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": D2, "size": 200}],
        "annotations": {"org.opencontainers.image.created": "now"},
    }
    assert parse_manifest(m.raw) == m
    entry = m.descriptor(platform=Platform("linux", "arm64", "v8"))
    index = Index.create([entry], annotations={"a": "b"})
    assert index.manifests == (entry,)
    assert index.manifests[0].platform == Platform("linux", "arm64", "v8")
    assert json.loads(index.raw)["manifests"][0]["platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8"}


def multi_arch_index() -> Index:
    def entry(n: int, **platform: str) -> dict:
        return desc("sha256:" + str(n) * 64, 100 + n, mt.OCI_MANIFEST, platform=platform)

    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            entry(1, architecture="amd64", os="linux"),
            entry(2, architecture="arm", os="linux", variant="v6"),
            entry(3, architecture="arm", os="linux", variant="v7"),
            entry(4, architecture="arm64", os="linux", variant="v8"),
            entry(5, architecture="386", os="linux"),
            entry(6, architecture="amd64", os="windows", **{"os.version": "10.0.17763.1"}),
            entry(7, architecture="unknown", os="unknown"),  # BuildKit attestation
        ],
    }
    index = parse_manifest(json.dumps(doc).encode())
    assert isinstance(index, Index)
    return index


@pytest.mark.parametrize(
    "host,expected",
    [
        (Platform("linux", "amd64"), 1),
        (Platform("linux", "amd64", "v3"), 1),
        (Platform("linux", "arm64", "v8"), 4),
        (Platform("linux", "arm64"), 4),
        (Platform("linux", "arm", "v7"), 3),
        (Platform("linux", "arm", "v8"), 3),
        (Platform("linux", "arm", "v6"), 2),
        (Platform("linux", "386"), 5),
        (Platform("linux", "arm", "v5"), None),
        (Platform("linux", "s390x"), None),
    ],
)
def test_index_select_for_host(host: Platform, expected: int | None) -> None:
    chosen = multi_arch_index().select(host_matcher(host))
    assert (int(chosen.digest.encoded[0]) if chosen else None) == expected


def test_index_entries_without_platform_come_last() -> None:
    doc = {"schemaVersion": 2, "manifests": [desc(D1, 1, mt.OCI_MANIFEST),
                                             desc(D2, 2, mt.OCI_MANIFEST, platform={"architecture": "amd64", "os": "linux"})]}
    index = parse_manifest(json.dumps(doc).encode())
    assert isinstance(index, Index)
    assert index.select(host_matcher(Platform("linux", "amd64"))).digest == Digest.parse(D2)  # type: ignore[union-attr]
    assert index.select(host_matcher(Platform("linux", "arm64"))).digest == Digest.parse(D1)  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------- configs


def config_doc(**over: object) -> dict:
    doc: dict = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["A=1"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [D1, D2]},
    }
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not None}


def config_error(doc: dict) -> str:
    with pytest.raises(InvalidArgument) as e:
        parse_config(json.dumps(doc).encode())
    return str(e.value)


@pytest.mark.parametrize(
    "doc,message",
    [
        (config_doc(rootfs=None), "image config: rootfs is missing"),
        (config_doc(rootfs={"type": "layer", "diff_ids": []}), "image config: rootfs.type is 'layer', expected 'layers'"),
        (config_doc(rootfs={"diff_ids": []}), "rootfs.type is None, expected 'layers'"),
        (config_doc(rootfs={"type": "layers", "diff_ids": [D1, "sha256:xyz"]}),
         "image config: rootfs.diff_ids[1]: invalid digest"),
        (config_doc(rootfs={"type": "layers", "diff_ids": D1}), "rootfs.diff_ids must be a list"),
        (config_doc(config={"Env": "A=1"}), "image config: config: Env must be a list of strings"),
        (config_doc(config={"Labels": {"a": 1}}), "Labels must be an object of strings"),
        (config_doc(config={"ExposedPorts": ["80/tcp"]}), "ExposedPorts must be an object"),
        (config_doc(config={"User": 0}), "User must be a string"),
        (config_doc(config={"ArgsEscaped": "yes"}), "ArgsEscaped must be true or false"),
        (config_doc(config={"Healthcheck": {"Test": ["CMD", "true"], "Interval": "30s"}}),
         "Healthcheck.Interval must be an integer"),
        (config_doc(config=[]), "image config: config: expected a JSON object"),
        (config_doc(created="yesterday"), "created must be an RFC 3339 time"),
        (config_doc(history=[{"created_by": "x", "empty_layer": "no"}]), "history[0]: empty_layer must be true or false"),
        (config_doc(history={"created_by": "x"}), "history must be a list"),
        (config_doc(architecture=64), "architecture must be a string"),
    ],
)
def test_malformed_configs_are_refused(doc: dict, message: str) -> None:
    assert message in config_error(doc)


def test_config_field_forms() -> None:
    cfg = parse_config(json.dumps(config_doc(
        created="2024-01-02T03:04:05.123456789+02:00",
        variant="v8",
        config={
            "Entrypoint": "/bin/app",  # moby's strslice takes a single string
            "Cmd": [],
            "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
            "Volumes": {"/data": {}},
            "Labels": None,
            "StopSignal": "SIGINT",
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 30_000_000_000, "Retries": 3},
            "Shell": ["/bin/bash", "-c"],
            "OnBuild": None,
        },
        history=[{"created_by": "ADD x", "comment": "c"}, {"empty_layer": True}],
    )).encode())
    c = cfg.config
    assert c.entrypoint == ("/bin/app",)
    assert c.cmd == ()  # empty, not absent: "CMD []" differs from no CMD
    assert c.exposed_ports == ("80/tcp", "53/udp")
    assert c.volumes == ("/data",)
    assert dict(c.labels) == {}
    assert c.healthcheck is not None and c.healthcheck.interval == 30_000_000_000 and c.healthcheck.retries == 3
    assert c.shell == ("/bin/bash", "-c") and c.on_build == ()
    assert cfg.platform == Platform("linux", "amd64", "v8")
    assert cfg.history == (History(None, "ADD x", "", "c", False), History(empty_layer=True))
    assert cfg.created_datetime is not None and cfg.created_datetime.microsecond == 123456
    assert cfg.created_datetime.utcoffset().total_seconds() == 7200  # type: ignore[union-attr]


def test_evolve_rewrites_only_what_changed() -> None:
    original = json.dumps(config_doc(
        container_config={"Hostname": "abc", "Cmd": ["/bin/sh", "-c", "#(nop) CMD"]},
        docker_version="20.10.24",
        config={"Hostname": "", "Env": ["A=1"], "Cmd": ["sh"], "Volumes": None, "Entrypoint": None},
        rootfs={"type": "layers", "diff_ids": [D1], "x-extra": 1},
    )).encode()
    cfg = parse_config(original)
    assert cfg.evolve().to_json() == dump_json(json.loads(original))

    new = cfg.evolve(
        config=cfg.config.evolve(env=(*cfg.config.env, "B=2"), labels={"k": "v"}),
        diff_ids=[*cfg.diff_ids, Digest.parse(D2)],
        history=[History(created_by="RUN x")],
    )
    doc = json.loads(new.to_json())
    assert doc["docker_version"] == "20.10.24"
    assert doc["container_config"] == {"Hostname": "abc", "Cmd": ["/bin/sh", "-c", "#(nop) CMD"]}
    assert doc["config"] == {"Hostname": "", "Env": ["A=1", "B=2"], "Cmd": ["sh"], "Volumes": None,
                             "Entrypoint": None, "Labels": {"k": "v"}}
    assert doc["rootfs"] == {"type": "layers", "diff_ids": [D1, D2], "x-extra": 1}
    assert doc["history"] == [{"created_by": "RUN x"}]
    assert new.digest == sha256_of(new.to_json())
    assert parse_config(new.to_json()) == new
    assert cfg.to_json() == original  # the old one is untouched

    cleared = cfg.evolve(config=cfg.config.evolve(cmd=None, entrypoint=()))
    assert "Cmd" not in cleared.raw["config"] and cleared.raw["config"]["Entrypoint"] == []
    with pytest.raises(TypeError):
        cfg.evolve(nonsense=1)


def test_config_built_in_code() -> None:
    cfg = ImageConfig(
        architecture="arm64",
        os="linux",
        variant="v8",
        created="2024-01-01T00:00:00Z",
        config=ContainerConfig(env=("PATH=/bin",), cmd=("sh",)),
        diff_ids=(Digest.parse(D1),),
        history=(History(created="2024-01-01T00:00:00Z", created_by="import"),),
    )
    raw = cfg.to_json()
    assert list(json.loads(raw)) == ["created", "architecture", "os", "variant", "config", "rootfs", "history"]
    parsed = parse_config(raw)
    assert parsed.digest == cfg.digest == sha256_of(raw)
    assert parsed.config.cmd == ("sh",) and parsed.diff_ids == cfg.diff_ids


def test_dump_json_is_compact_ordered_and_go_escaped() -> None:
    assert dump_json({"b": 1, "a": [1, "x"]}) == b'{"b":1,"a":[1,"x"]}'
    assert dump_json({"s": "a<b>&c é \u2028"}) == '{"s":"a\\u003cb\\u003e\\u0026c é \\u2028"}'.encode()
    with pytest.raises(InvalidArgument):
        dump_json({"x": float("nan")})
    with pytest.raises(InvalidArgument):
        dump_json({"x": object()})


# ----------------------------------------------------------------------------------------- platforms


@pytest.mark.parametrize(
    "arch,variant,expected",
    [
        ("x86_64", "", ("amd64", "")),
        ("x86-64", "v1", ("amd64", "")),
        ("amd64", "v3", ("amd64", "v3")),
        ("i386", "", ("386", "")),
        ("aarch64", "", ("arm64", "")),
        ("arm64", "v8", ("arm64", "")),
        ("ARM64", "8", ("arm64", "")),
        ("arm64", "v9", ("arm64", "v9")),
        ("armhf", "", ("arm", "v7")),
        ("armel", "", ("arm", "v6")),
        ("arm", "", ("arm", "v7")),
        ("arm", "6", ("arm", "v6")),
        ("s390x", "", ("s390x", "")),
    ],
)
def test_normalize_arch(arch: str, variant: str, expected: tuple[str, str]) -> None:
    assert normalize_arch(arch, variant) == expected


AMD64_HOST = Platform("linux", "amd64")


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
        ("linux/arm64", Platform("linux", "arm64")),
        ("linux/aarch64", Platform("linux", "arm64")),
        ("linux/arm", Platform("linux", "arm")),
        ("linux/arm/v7", Platform("linux", "arm", "v7")),
        ("linux/armhf", Platform("linux", "arm")),
        ("linux/armel", Platform("linux", "arm", "v6")),
        ("linux/x86_64", Platform("linux", "amd64")),
        ("Linux/AMD64", Platform("linux", "amd64")),
        ("macos/arm64", Platform("darwin", "arm64")),
        ("linux", Platform("linux", "amd64")),
        ("arm64", Platform("linux", "arm64")),
        ("windows(10.0.17763)/amd64", Platform("windows", "amd64", os_version="10.0.17763")),
        ("windows(10.0.17763+win32k)/amd64", Platform("windows", "amd64", os_version="10.0.17763",
                                                        os_features=("win32k",))),
    ],
)
def test_parse_platform(spec: str, expected: Platform) -> None:
    assert parse_platform(spec, host=AMD64_HOST) == expected


@pytest.mark.parametrize("spec", ["", "linux/*", "linux/amd 64", "linux/amd64/v1/x", "nosuchthing", "linux//amd64", "/"])
def test_parse_platform_refuses(spec: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid platform"):
        parse_platform(spec, host=AMD64_HOST)


def test_format_platform() -> None:
    assert format_platform(Platform("linux", "arm64", "v8")) == "linux/arm64/v8"
    assert str(Platform("linux", "amd64")) == "linux/amd64"
    assert format_platform(Platform("", "amd64")) == "unknown"
    assert Platform.from_dict({"architecture": "arm", "os": "linux", "variant": "v7"}).to_dict() == {
        "architecture": "arm", "os": "linux", "variant": "v7"}


X86_CPUINFO = "processor\t: 0\nflags\t\t: fpu cx16 lahf_lm popcnt pni sse4_1 sse4_2 ssse3 avx avx2 bmi1 bmi2 f16c fma abm movbe xsave\n"


@pytest.mark.parametrize(
    "machine,cpuinfo,expected",
    [
        ("x86_64", None, Platform("linux", "amd64")),
        ("x86_64", X86_CPUINFO, Platform("linux", "amd64", "v3")),
        ("x86_64", "flags : fpu sse2\n", Platform("linux", "amd64", "v1")),
        ("aarch64", None, Platform("linux", "arm64", "v8")),
        ("aarch64", "Processor\t: AArch64\nCPU architecture: 8\n", Platform("linux", "arm64", "v8")),
        ("armv7l", None, Platform("linux", "arm", "v7")),
        ("armv7l", "model name\t: ARMv6-compatible processor rev 7 (v6l)\nCPU architecture: 7\n",
         Platform("linux", "arm", "v6")),
        ("armv6l", None, Platform("linux", "arm", "v6")),
        ("s390x", None, Platform("linux", "s390x")),
        ("i686", None, Platform("linux", "386")),
    ],
)
def test_host_platform(machine: str, cpuinfo: str | None, expected: Platform) -> None:
    assert host_platform(machine, cpuinfo) == expected


def test_host_platform_of_this_machine() -> None:
    p = host_platform()
    assert p.os == "linux" and p.architecture


def test_matchers() -> None:
    arm64 = only_strict(Platform("linux", "arm64"))
    assert arm64.matches(Platform("linux", "arm64", "v8")) and arm64.matches(Platform("linux", "aarch64"))
    assert not arm64.matches(Platform("linux", "arm", "v7"))

    strict_host = host_matcher(Platform("linux", "amd64"))
    assert not strict_host.matches(Platform("linux", "386"))
    assert not strict_host.matches(Platform("windows", "amd64"))
    containerd = only(Platform("linux", "amd64"))
    assert containerd.rank(Platform("linux", "amd64")) == 0
    assert containerd.rank(Platform("linux", "386")) == 1

    v3 = host_matcher(Platform("linux", "amd64", "v3"))
    assert [v3.rank(Platform("linux", "amd64", v)) for v in ("v3", "v2", "v1", "", "v4")] == [0, 1, 2, 2, None]

    arm7 = host_matcher(Platform("linux", "arm", "v7"))
    assert [arm7.rank(Platform("linux", "arm", v)) for v in ("v7", "", "v6", "v5", "v8")] == [0, 0, 1, 2, None]

    arm64_v82 = host_matcher(Platform("linux", "arm64", "v8.2"))
    assert [arm64_v82.rank(Platform("linux", "arm64", v)) for v in ("v8.2", "v8.1", "v8", "", "v8.3")] == [0, 1, 2, 2, None]
    assert only(Platform("linux", "arm64")).matches(Platform("linux", "arm", "v7"))
    assert not host_matcher(Platform("linux", "arm64")).matches(Platform("linux", "arm", "v7"))

    # OS features of the image must be a subset of the host's
    win = only_strict(Platform("windows", "amd64", os_features=("win32k",)))
    assert win.matches(Platform("windows", "amd64")) and win.matches(Platform("windows", "amd64", os_features=("win32k",)))
    assert not only_strict(Platform("windows", "amd64")).matches(Platform("windows", "amd64", os_features=("win32k",)))


def test_best_prefers_rank_then_order() -> None:
    m = host_matcher(Platform("linux", "arm", "v7"))
    candidates = [Platform("linux", "arm", "v6"), None, Platform("linux", "arm", "v7"), Platform("linux", "arm", "v7")]
    assert m.best(candidates) == 2
    assert m.best([Platform("linux", "amd64"), None]) == 1
    assert m.best([Platform("linux", "amd64")]) is None


def test_public_names_exist() -> None:
    from barque.oci import image, platform, reference

    for module in (image, platform, reference):
        assert module.__all__ and all(hasattr(module, name) for name in module.__all__)
