"""`rmi` of images that carry repository digests (recorded by pull and push), by Docker's rules: removing a
repository's last tag takes that repository's digest references with it, so the image is deleted once nothing else
names it; a container using an image of one repository blocks the untag without --force."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.root


def inspect(b, name: str, fmt: str) -> str:
    return b("image", "inspect", "--format", fmt, name).stdout.strip()


@pytest.fixture
def pushed(bb, registry_factory):
    """busybox pushed to and pulled back from a barque registry: the image has a tag and a RepoDigest."""
    ref = f"{registry_factory().host}/team/busybox:1"
    bb("tag", "busybox", ref)
    bb("push", ref)
    bb("rmi", ref, "busybox")
    bb("pull", ref)
    return bb, ref


def test_last_tag_takes_the_repositorys_digests_along(pushed):
    b, ref = pushed
    repo = ref.rsplit(":", 1)[0]
    digests = inspect(b, ref, "{{json .RepoDigests}}")
    assert f'"{repo}@sha256:' in digests
    image_id = inspect(b, ref, "{{.Id}}")
    out = b("rmi", ref).stdout.splitlines()
    assert out[0] == f"Untagged: {ref}"
    assert out[1].startswith(f"Untagged: {repo}@sha256:")
    assert f"Deleted: {image_id}" in out
    assert b("images", "-aq").stdout.strip() == ""


def test_another_repositorys_tag_keeps_the_image(pushed):
    b, ref = pushed
    repo = ref.rsplit(":", 1)[0]
    b("tag", ref, "other:1")
    out = b("rmi", ref).stdout.splitlines()
    assert out[0] == f"Untagged: {ref}" and out[1].startswith(f"Untagged: {repo}@sha256:")
    assert not any(line.startswith("Deleted:") for line in out)
    assert inspect(b, "other:1", "{{json .RepoDigests}}") == "[]"


def test_a_second_tag_of_the_repository_keeps_its_digests(pushed):
    b, ref = pushed
    repo = ref.rsplit(":", 1)[0]
    b("tag", ref, f"{repo}:2")
    assert b("rmi", ref).stdout.splitlines() == [f"Untagged: {ref}"]
    assert f'"{repo}@sha256:' in inspect(b, f"{repo}:2", "{{json .RepoDigests}}")


def test_a_container_blocks_untagging_its_only_reference(pushed):
    b, ref = pushed
    b("create", "--name", "user", ref, "true")
    r = b("rmi", ref, check=False)
    assert r.returncode == 1
    assert "must force" in r.stderr and "is using its referenced image" in r.stderr
    assert inspect(b, ref, "{{.Id}}")
    out = b("rmi", "-f", ref).stdout.splitlines()
    assert out[0] == f"Untagged: {ref}" and not any(line.startswith("Deleted:") for line in out)
