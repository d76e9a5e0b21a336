"""Image references parse, normalise and print as Docker's (distribution/reference test tables)."""

from __future__ import annotations

import pytest

from barque.errors import InvalidArgument
from barque.oci.digest import Digest
from barque.oci.reference import (
    Reference,
    image_id_prefix,
    is_image_id_like,
    parse_docker_ref,
    parse_name,
    parse_reference,
)

HEX64 = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"
FFFF = "sha256:" + "f" * 64


def error_of(text: str) -> str:
    with pytest.raises(InvalidArgument) as e:
        parse_reference(text)
    return str(e.value)


# normalize_test.go TestValidateReferenceName + TestValidateRemoteName
VALID_NAMES = [
    "docker/docker",
    "library/debian",
    "debian",
    "docker.io/docker/docker",
    "docker.io/library/debian",
    "docker.io/debian",
    "index.docker.io/docker/docker",
    "index.docker.io/library/debian",
    "index.docker.io/debian",
    "127.0.0.1:5000/docker/docker",
    "127.0.0.1:5000/library/debian",
    "127.0.0.1:5000/debian",
    "192.168.0.1",
    "192.168.0.1:80",
    "192.168.0.1:8/debian",
    "192.168.0.2:25000/debian",
    "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
    "[fc00::1]:5000/docker",
    "[fc00::1]:5000/docker/docker",
    "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
    "docker.io/" + HEX64,
    "Docker/docker",
    "DOCKER/docker",
    "docker-rules/docker",
    "docker---rules/docker",
    "doc/docker",
    "d/docker",
    "jess/t",
    "dock__er/docker",
]

INVALID_NAMES = [
    "https://github.com/docker/docker",
    "docker/Docker",
    "-docker",
    "-docker/docker",
    "-docker.io/docker/docker",
    "docker///docker",
    "docker.io/docker/Docker",
    "docker.io/docker///docker",
    "[fc00::1]",
    "[fc00::1]:5000",
    "fc00::1:5000/debian",
    "[fe80::1%eth0]:5000/debian",
    "[2001:db8:3:4::192.0.2.33]:5000/debian",
    HEX64,
    "docker-/docker",
    "-docker-/docker",
    "____/____",
    "_docker/_docker",
    "dock..er/docker",
    "dock_.er/docker",
    "dock-.er/docker",
    "docker/",
    "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker",
    # not from Docker's tables: Python-specific traps (Go's \w is ASCII; Python's $ matches before "\n")
    "busybox:tag\u00e9",
    "busybox\n",
    "busybox:latest\n",
    " busybox",
]


@pytest.mark.parametrize("text", VALID_NAMES)
def test_docker_valid_names_parse(text: str) -> None:
    parse_reference(text)


@pytest.mark.parametrize("text", INVALID_NAMES)
def test_docker_invalid_names_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_reference(text)


# normalize_test.go TestParseRepositoryInfo: (path, familiar, full, ambiguous, domain)
REPOSITORY_INFO = [
    ("fooo/bar", "fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar", "docker.io"),
    ("library/ubuntu", "ubuntu", "docker.io/library/ubuntu", "library/ubuntu", "docker.io"),
    ("nonlibrary/ubuntu", "nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu", None, "docker.io"),
    ("other/library", "other/library", "docker.io/other/library", None, "docker.io"),
    ("private/moonbase", "127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase", None, "127.0.0.1:8000"),
    ("privatebase", "127.0.0.1:8000/privatebase", "127.0.0.1:8000/privatebase", None, "127.0.0.1:8000"),
    ("private/moonbase", "example.com/private/moonbase", "example.com/private/moonbase", None, "example.com"),
    ("privatebase", "example.com/privatebase", "example.com/privatebase", None, "example.com"),
    ("private/moonbase", "example.com:8000/private/moonbase", "example.com:8000/private/moonbase", None, "example.com:8000"),
    ("privatebasee", "example.com:8000/privatebasee", "example.com:8000/privatebasee", None, "example.com:8000"),
    ("library/ubuntu-12.04-base", "ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base",
     "index.docker.io/library/ubuntu-12.04-base", "docker.io"),
    ("library/foo", "foo", "docker.io/library/foo", "docker.io/foo", "docker.io"),
    ("library/foo/bar", "library/foo/bar", "docker.io/library/foo/bar", None, "docker.io"),
    ("store/foo/bar", "store/foo/bar", "docker.io/store/foo/bar", None, "docker.io"),
    # an uppercase first component can only be a host
    ("bar", "Foo/bar", "Foo/bar", None, "Foo"),
    ("bar", "FOO/bar", "FOO/bar", None, "FOO"),
]


@pytest.mark.parametrize("path,familiar,full,ambiguous,domain", REPOSITORY_INFO)
def test_repository_info(path: str, familiar: str, full: str, ambiguous: str | None, domain: str) -> None:
    for text in filter(None, (familiar, full, ambiguous)):
        ref = parse_reference(text)
        assert ref.familiar_name == familiar
        assert ref.name == full
        assert str(ref) == full
        assert ref.domain == domain
        assert ref.path == path


# normalize_test.go TestNormalizedSplitHostname
@pytest.mark.parametrize(
    "text,domain,path",
    [
        ("test.com/foo", "test.com", "foo"),
        ("test_com/foo", "docker.io", "test_com/foo"),
        ("docker/migrator", "docker.io", "docker/migrator"),
        ("test.com:8080/foo", "test.com:8080", "foo"),
        ("test-com:8080/foo", "test-com:8080", "foo"),
        ("foo", "docker.io", "library/foo"),
        ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
        ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
        ("docker.io/foo", "docker.io", "library/foo"),
        ("docker.io/library/foo", "docker.io", "library/foo"),
        ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
        ("localhost/foo", "localhost", "foo"),
        ("localhost:5000/foo/bar", "localhost:5000", "foo/bar"),
        ("[::1]:5000/repo", "[::1]:5000", "repo"),
        ("[2001:db8::1]/repo", "[2001:db8::1]", "repo"),
        ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "bar/baz/quux"),
    ],
)
def test_domain_and_path(text: str, domain: str, path: str) -> None:
    ref = parse_reference(text)
    assert (ref.domain, ref.path) == (domain, path)


# reference_test.go TestReferenceParse, through the normalising parser: (input, name, tag, digest)
@pytest.mark.parametrize(
    "text,name,tag,digest",
    [
        ("test_com", "docker.io/library/test_com", None, None),
        ("test.com:tag", "docker.io/library/test.com", "tag", None),
        ("test.com:5000", "docker.io/library/test.com", "5000", None),
        ("test.com/repo:tag", "test.com/repo", "tag", None),
        ("test:5000/repo", "test:5000/repo", None, None),
        ("test:5000/repo:tag", "test:5000/repo", "tag", None),
        ("test:5000/repo@" + FFFF, "test:5000/repo", None, FFFF),
        ("test:5000/repo:tag@" + FFFF, "test:5000/repo", "tag", FFFF),
        ("lowercase:Uppercase", "docker.io/library/lowercase", "Uppercase", None),
        ("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io/test.example.com/my-app", "test.example.com", None),
        ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com/myimage", "xn--n3h.com", None),
        ("xn--7o8h.com/myimage:xn--7o8h.com@sha512:" + "f" * 128, "xn--7o8h.com/myimage", "xn--7o8h.com",
         "sha512:" + "f" * 128),
        ("foo_bar.com:8080", "docker.io/library/foo_bar.com", "8080", None),
        ("foo/foo_bar.com:8080", "docker.io/foo/foo_bar.com", "8080", None),
        ("192.168.1.1", "docker.io/library/192.168.1.1", None, None),
        ("192.168.1.1:tag", "docker.io/library/192.168.1.1", "tag", None),
        ("192.168.1.1:5000", "docker.io/library/192.168.1.1", "5000", None),
        ("192.168.1.1/repo", "192.168.1.1/repo", None, None),
        ("192.168.1.1:5000/repo", "192.168.1.1:5000/repo", None, None),
        ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000/repo", "5050", None),
        ("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]/repo", "tag", None),
        ("[2001:db8::1]:5000/repo:tag@" + FFFF, "[2001:db8::1]:5000/repo", "tag", FFFF),
        ("[2001:db8::]:5000/repo", "[2001:db8::]:5000/repo", None, None),
        ("a/" * 127 + "a:tag-puts-this-over-max", "docker.io/" + "a/" * 127 + "a", "tag-puts-this-over-max", None),
    ],
)
def test_reference_parts(text: str, name: str, tag: str | None, digest: str | None) -> None:
    ref = parse_reference(text)
    assert ref.name == name
    assert ref.tag == tag
    assert (str(ref.digest) if ref.digest else None) == digest


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "invalid reference format"),
        (":justtag", "invalid reference format"),
        ("@" + FFFF, "invalid reference format"),
        ("foo:bad tag", "invalid reference format"),
        ("foo:-tag", "invalid reference format"),
        ("foo:" + "t" * 129, "invalid reference format"),
        ("aa/asdf$$^/aa", "invalid reference format"),
        ("[2001:db8::1]", "invalid reference format"),
        ("[2001:db8::1]:5000", "invalid reference format"),
        ("[2001:db8::1]:tag", "invalid reference format"),
        ("[fe80::1%eth0]:5000/repo", "invalid reference format"),
        ("[fe80::1%@invalidzone]:5000/repo", "invalid reference format"),
        ("repo@sha256:" + "f" * 31, "invalid reference format"),  # under 32 hex digits: not even a digest
        ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
        ("Uppercase:tag", "invalid reference format: repository name (library/Uppercase) must be lowercase"),
        ("test:5000/Uppercase/lowercase:tag",
         "invalid reference format: repository name (Uppercase/lowercase) must be lowercase"),
        ("docker.io/library/Foo", "invalid reference format: repository name (library/Foo) must be lowercase"),
        (HEX64, f"invalid repository name ({HEX64}), cannot specify 64-byte hexadecimal strings"),
        ("a/" * 128 + "a:tag", "repository name must not be more than 255 characters"),
        ("repo@sha256:" + "f" * 34, "invalid checksum digest length"),
        ("repo@sha256:" + "F" * 64, "invalid checksum digest format"),
        ("validname@invaliddigest:" + "f" * 64, "unsupported digest algorithm"),
    ],
)
def test_docker_error_texts(text: str, message: str) -> None:
    assert error_of(text) == message


def test_tag_and_digest_together() -> None:
    short = "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
    ref = parse_reference(short)
    assert str(ref) == "docker.io/library/" + short
    assert ref.tag == "latest"
    assert ref.digest == Digest.parse(short.split("@")[1])
    assert ref.familiar() == short


@pytest.mark.parametrize(
    "text,expected",
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:latest", "docker.io/library/busybox:latest"),
        ("busybox@sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582",
         "docker.io/library/busybox@sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/library/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox:latest", "docker.io/library/busybox:latest"),
        ("library/busybox:latest", "docker.io/library/busybox:latest"),
        ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest"),
        ("gcr.io/library/busybox", "gcr.io/library/busybox:latest"),
        ("gcr.io/library/busybox:latest@sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582",
         "gcr.io/library/busybox@sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582"),
    ],
)
def test_parse_docker_ref(text: str, expected: str) -> None:
    ref = parse_docker_ref(text)
    assert str(ref) == expected
    assert parse_reference(str(ref)) == ref


@pytest.mark.parametrize(
    "text",
    ["busybox", "busybox:1.36", "user/app", "user/app:v1", "localhost:5000/app:dev", "localhost/app",
     "example.com/a/b/c:x", "[::1]:5000/repo:tag", "library/foo/bar",
     "redis@sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"],
)
def test_familiar_round_trip(text: str) -> None:
    ref = parse_reference(text)
    assert ref.familiar() == text
    assert parse_reference(ref.familiar()) == ref
    assert parse_reference(str(ref)) == ref


def test_familiar_of_hub_official_names() -> None:
    assert parse_reference("docker.io/library/busybox").familiar() == "busybox"
    assert parse_reference("index.docker.io/library/busybox:1").familiar() == "busybox:1"
    assert parse_reference("busybox").tag_or_latest().familiar() == "busybox:latest"


def test_tag_or_latest_only_for_bare_names() -> None:
    assert parse_reference("busybox").tag_or_latest().tag == "latest"
    assert parse_reference("busybox:1").tag_or_latest().tag == "1"
    digested = parse_reference("busybox@" + FFFF)
    assert digested.tag_or_latest() == digested


def test_with_tag_and_digest() -> None:
    ref = parse_reference("test.com:8000/foo")
    assert str(ref.with_tag("TAG5")) == "test.com:8000/foo:TAG5"
    assert str(ref.with_digest(FFFF).with_tag("t")) == f"test.com:8000/foo:t@{FFFF}"
    assert str(ref.with_tag("t").with_digest(Digest.parse(FFFF))) == f"test.com:8000/foo:t@{FFFF}"
    assert ref.with_tag("t").repository() == ref
    with pytest.raises(InvalidArgument, match="invalid tag format"):
        ref.with_tag("-foo")
    with pytest.raises(InvalidArgument):
        ref.with_tag("a" * 129)
    with pytest.raises(InvalidArgument):
        ref.with_digest("foo")


def test_references_are_values() -> None:
    assert parse_reference("busybox") == parse_reference("docker.io/library/busybox")
    assert len({parse_reference("busybox"), parse_reference("index.docker.io/busybox")}) == 1
    assert parse_reference("busybox") == Reference("docker.io", "library/busybox")


def test_parse_name_refuses_tag_and_digest() -> None:
    assert parse_name("user/app") == Reference("docker.io", "user/app")
    with pytest.raises(InvalidArgument, match=r"invalid repository name \(user/app:1\)"):
        parse_name("user/app:1")
    with pytest.raises(InvalidArgument):
        parse_name("user/app@" + FFFF)
    with pytest.raises(InvalidArgument, match="must be lowercase"):
        parse_name("User")


@pytest.mark.parametrize(
    "text,like,prefix",
    [
        (HEX64, True, HEX64),
        ("sha256:" + HEX64, True, HEX64),
        ("49995ae9fa99", True, "49995ae9fa99"),
        ("sha256:49995a", True, "49995a"),
        ("abc", True, "abc"),
        ("busybox", False, None),
        ("sha512:" + HEX64, False, None),
        ("ABCDEF", False, None),
        (HEX64 + "0", False, None),
        ("", False, None),
        ("sha256:", False, None),
    ],
)
def test_image_id_like(text: str, like: bool, prefix: str | None) -> None:
    assert is_image_id_like(text) is like
    assert image_id_prefix(text) == prefix


def test_long_hostile_input_is_fast() -> None:
    import time

    start = time.perf_counter()
    for text in ("a-" * 5000 + "!", "x.com/" + "a." * 5000 + "-", "X" + "a" * 10000 + "-/x", "a_" * 5000):
        with pytest.raises(InvalidArgument):
            parse_reference(text)
    assert time.perf_counter() - start < 1.0
