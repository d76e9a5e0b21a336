"""images, tag, rmi, prune, save, import, info, system df — as a Docker user would drive them."""

from __future__ import annotations

import json
import tarfile


from tests.conftest import FIXTURES, FIXTURE_ID
from tests.integration.imagetree import image_rootfs, tree_listing




def test_images_table_and_quiet(loaded):
    out = loaded("images").stdout.splitlines()
    assert out[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    repos = sorted((line.split()[0], line.split()[1]) for line in out[1:])
    assert repos == [("busybox", "latest"), ("fixture/layers", "1")]
    ids = loaded("images", "-q").stdout.split()
    assert len(ids) == 2 and FIXTURE_ID[7:19] in ids
    assert all(len(i) == 12 for i in ids)


def test_images_format_json_and_template(loaded):
    rows = [json.loads(line) for line in loaded("images", "--format", "json").stdout.splitlines()]
    by_repo = {r["Repository"]: r for r in rows}
    assert by_repo["fixture/layers"]["Tag"] == "1"
    assert by_repo["fixture/layers"]["ID"] == FIXTURE_ID[7:19]
    assert set(rows[0]) >= {"Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository", "Size", "Tag"}
    tmpl = loaded("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(tmpl) == ["busybox:latest", "fixture/layers:1"]


def test_images_filters(loaded):
    assert loaded("images", "--filter", "reference=busy*", "--format", "{{.Repository}}").stdout.split() == ["busybox"]
    assert loaded("images", "--filter", "label=org.example.fixture=layers", "-q").stdout.split() == [FIXTURE_ID[7:19]]
    assert loaded("images", "--filter", "dangling=true", "-q").stdout.split() == []
    assert loaded("images", "busybox", "--format", "{{.Tag}}").stdout.split() == ["latest"]
    bad = loaded("images", "--filter", "colour=red", check=False)
    assert bad.returncode != 0 and "invalid filter 'colour'" in bad.stderr


def test_tag_then_rmi_untags_before_deleting(loaded):
    busybox_id = loaded.engine().images.resolve("busybox").id
    loaded("tag", "busybox", "example.com/team/bb:v1")
    names = loaded("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert "example.com/team/bb:v1" in names
    out = loaded("rmi", "busybox").stdout.splitlines()
    assert out == ["Untagged: busybox:latest"], "another tag remains, so only the name goes"
    out = loaded("rmi", "example.com/team/bb:v1").stdout.splitlines()
    assert out[0] == "Untagged: example.com/team/bb:v1"
    assert out[1].startswith("Deleted: sha256:")
    assert loaded("images", "-q").stdout.split() == [FIXTURE_ID[7:19]]
    # busybox's layer snapshot and blobs went too; the other image's stay
    engine = loaded.engine()
    assert out[2:] and all(line.startswith("Deleted: sha256:") for line in out[2:]), "its layer is reported"
    assert [i.name for i in engine.snapshotter.walk() if not i.name.startswith("sha256:")] == []
    remaining = {str(b.digest) for b in engine.content.walk()}
    assert str(busybox_id) not in remaining
    assert str(engine.images.resolve("fixture/layers:1").id) in remaining


def test_rmi_by_id_with_two_repositories_needs_force(loaded):
    loaded("tag", "busybox", "other/name:x")
    image_id = loaded("images", "-q", "busybox").stdout.split()[0]
    refused = loaded("rmi", image_id, check=False)
    assert refused.returncode == 1
    assert "image is referenced in multiple repositories" in refused.stderr
    forced = loaded("rmi", "-f", image_id).stdout
    assert "Untagged: busybox:latest" in forced and "Untagged: other/name:x" in forced and "Deleted:" in forced


def test_rmi_refuses_an_image_a_container_uses(loaded):
    engine = loaded.engine()
    image = engine.images.resolve("busybox")
    with engine.db.transaction() as conn:  # the containers issue creates these; the record is what rmi checks
        conn.execute("INSERT INTO containers(id, name, image_id, created) VALUES (?,?,?,?)",
                     ("c" * 64, "user", str(image.id), 0.0))
    refused = loaded("rmi", image.id.short, check=False)
    assert refused.returncode == 1 and "being used by stopped container cccccccccccc" in refused.stderr
    refused = loaded("rmi", "busybox", check=False)
    assert refused.returncode == 1 and "must force" in refused.stderr
    assert "busybox" in loaded("images").stdout
    out = loaded("rmi", "-f", "busybox").stdout
    assert out.strip() == "Untagged: busybox:latest"
    assert image.id.short in loaded("images", "-q").stdout, "the image stays (dangling) for its container"


def test_rmi_missing_image(barque):
    res = barque("rmi", "nope:1", check=False)
    assert res.returncode == 1 and "No such image: nope:1" in res.stderr


def test_image_prune_dangling_and_all(loaded):
    loaded("tag", "busybox", "keep:me")
    loaded("rmi", "keep:me")
    out = loaded("image", "prune", "-f").stdout
    assert "Total reclaimed space" in out
    assert len(loaded("images", "-q").stdout.split()) == 2
    loaded("load", "-i", FIXTURES / "oci-layout-layers")  # skopeo's copy: an untagged image of its own
    out = loaded("image", "prune", "-a", "-f").stdout
    assert out.count("deleted: sha256:") >= 2
    assert loaded("images", "-q").stdout.split() == []
    assert list(loaded.engine().content.walk()) == []


def test_save_and_load_roundtrip_keeps_id_and_tree(barque_driver, busybox_tar, tmp_path):
    barque_driver("load", "-i", busybox_tar)
    barque_driver("load", "-i", FIXTURES / "docker-save-layers.tar")
    out = tmp_path / "both.tar"
    barque_driver("save", "-o", out, "busybox:latest", "fixture/layers:1")
    with tarfile.open(out) as tf:
        names = tf.getnames()
        manifest = json.load(tf.extractfile("manifest.json"))
    assert "index.json" in names and "oci-layout" in names
    assert sorted(m["RepoTags"][0] for m in manifest) == ["busybox:latest", "fixture/layers:1"]
    with image_rootfs(barque_driver.engine(), "fixture/layers:1") as root:
        before = tree_listing(root)

    from tests.conftest import Barque, unique

    root2 = barque_driver.root.parent / unique("root2-")  # same filesystem: btrfs roots must be on btrfs
    other = Barque(root2, tmp_path / "run2", driver=barque_driver.driver)
    try:
        loaded = other("load", "-i", out).stdout.splitlines()
        assert sorted(loaded) == ["Loaded image: busybox:latest", "Loaded image: fixture/layers:1"]
        assert json.loads(other("image", "inspect", "fixture/layers:1").stdout)[0]["Id"] == FIXTURE_ID
        with image_rootfs(other.engine(), "fixture/layers:1") as root:
            assert tree_listing(root) == before
    finally:
        from tests.conftest import _cleanup_root

        other.close()
        _cleanup_root(root2)


def test_save_to_stdout_and_oci_archive(loaded, tmp_path):
    res = loaded("save", "fixture/layers:1")
    assert res.stdout_bytes[257:262] == b"ustar"
    oci = tmp_path / "oci.tar"
    loaded("save", "--format", "oci-archive", "-o", oci, "fixture/layers:1")
    with tarfile.open(oci) as tf:
        index = json.load(tf.extractfile("index.json"))
        assert "manifest.json" not in tf.getnames()
    ann = index["manifests"][0]["annotations"]
    assert ann["io.containerd.image.name"] == "docker.io/fixture/layers:1"
    assert ann["org.opencontainers.image.ref.name"] == "1"


def test_save_missing_image_writes_nothing(barque, tmp_path):
    out = tmp_path / "x.tar"
    res = barque("save", "-o", out, "nothing:here", check=False)
    assert res.returncode == 1 and "No such image: nothing:here" in res.stderr
    assert not out.exists() and list(tmp_path.glob(".x.tar*")) == []


def test_import_flat_tar_with_changes(barque_driver):
    out = barque_driver("import", "--change", 'CMD ["cat", "/data/a.txt"]', "--change", "ENV A=1",
                        "-m", "from docker export", FIXTURES / "docker-export-flat.tar", "flat:1").stdout
    assert out.strip().startswith("sha256:")
    inspect = json.loads(barque_driver("image", "inspect", "flat:1").stdout)[0]
    assert inspect["Config"]["Cmd"] == ["cat", "/data/a.txt"]
    assert inspect["Config"]["Env"] == ["A=1"]
    assert inspect["Comment"] == "from docker export"
    assert len(inspect["RootFS"]["Layers"]) == 1
    with image_rootfs(barque_driver.engine(), "flat:1") as root:
        assert (root / "data/a.txt").read_text() == "alpha\n"
        assert not (root / "data/b.txt").exists()
        assert (root / "data/hard-a").stat().st_nlink == 2
    history = barque_driver("history", "--format", "{{.Comment}}", "flat:1").stdout.split("\n")[0]
    assert history == "from docker export"


def test_import_from_stdin_untagged(barque):
    data = (FIXTURES / "docker-export-flat.tar").read_bytes()
    image_id = barque("import", "-", input=data).stdout.strip()
    rows = [json.loads(r) for r in barque("images", "--format", "json").stdout.splitlines()]
    assert rows[0]["Repository"] == "<none>" and rows[0]["ID"] == image_id[7:19]
    assert barque("images", "--filter", "dangling=true", "-q").stdout.split() == [image_id[7:19]]


def test_info_and_system_df(loaded):
    info = json.loads(loaded("info", "--format", "json").stdout)
    assert info["Images"] == 2 and info["Driver"] == "overlay"
    df = loaded("system", "df").stdout.splitlines()
    assert df[0].split()[:3] == ["TYPE", "TOTAL", "ACTIVE"]
    assert df[1].split()[:2] == ["Images", "2"]
