"""Mount flags (-v, --mount, --tmpfs, --volumes-from), their resolution into Docker's Mounts, OCI mounts, copy-up,
and the volume store on a temporary database."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
from pathlib import Path

import pytest

from barque.container import mounts
from barque.container.mounts import (
    inherit,
    inspect_mounts,
    merge_tmpfs_options,
    oci_mounts,
    parse_mount_flag,
    parse_tmpfs_flag,
    parse_volume_flag,
    parse_volumes_from,
    populate,
    resolve,
    rootfs_propagation,
    verify_sources,
)
from barque.container.volumes import ANONYMOUS_LABEL, VolumeStore, driver_mount
from barque.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound
from barque.metadata import Database


@pytest.fixture
def store(tmp_path: Path):
    db = Database(tmp_path / "barque.db")
    yield VolumeStore(db, tmp_path / "volumes")
    db.close()


def add_container(store: VolumeStore, cid: str, mounts_: list[dict]) -> None:
    with store.db.transaction() as conn:
        conn.execute("INSERT INTO containers(id, name, image_id, created, record) VALUES (?,?,?,?,?)",
                     (cid, "n" + cid, "sha256:x", 0.0, json.dumps({"Id": cid, "Mounts": mounts_})))


def volume_mount(name: str, dst: str = "/data") -> dict:
    return {"Type": "volume", "Name": name, "Source": "/x", "Destination": dst, "Driver": "local", "Mode": "z",
            "RW": True, "Propagation": ""}


# ---- -v ---------------------------------------------------------------------------------------------------------

def test_volume_flag_named_bind_and_anonymous():
    assert parse_volume_flag("data:/var/lib/data") == {
        "Type": "volume", "Source": "data", "Target": "/var/lib/data", "ReadOnly": False, "_mode": "",
        "VolumeOptions": {"NoCopy": False}}
    bind = parse_volume_flag("/srv//www/:/usr/share/html/:ro,rshared")
    assert (bind["Type"], bind["Source"], bind["Target"], bind["ReadOnly"]) == \
        ("bind", "/srv/www", "/usr/share/html", True)
    assert bind["BindOptions"] == {"Propagation": "rshared"}
    assert bind["_mode"] == "ro,rshared"
    anon = parse_volume_flag("/cache")
    assert (anon["Type"], anon["Source"], anon["Target"], anon["_config_volume"]) == ("volume", "", "/cache", True)
    assert parse_volume_flag("data:/d:nocopy")["VolumeOptions"] == {"NoCopy": True}
    assert parse_volume_flag("data:/d:z,ro")["ReadOnly"] is True


def test_volume_flag_relative_source_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = parse_volume_flag("./sub:/d")
    assert spec["Type"] == "bind" and spec["Source"] == str(tmp_path / "sub")


@pytest.mark.parametrize("text, message", [
    (":/d", "invalid volume specification: ':/d'"),
    ("/d:rw", "invalid volume specification: '/d:rw'"),
    ("a:/b:ro:x", "invalid volume specification: 'a:/b:ro:x'"),
    ("a:/b:rw,ro", "invalid mode: rw,ro"),
    ("a:/b:bogus", "invalid mode: bogus"),
    ("data:rel", "invalid volume specification: 'data:rel': invalid mount config for type \"volume\": "
                 "invalid mount path: 'rel' mount path must be absolute"),
    ("data:/", "invalid volume specification: 'data:/': invalid mount config for type \"volume\": "
               "invalid specification: destination can't be '/'"),
    ("/h:/d:nocopy", "invalid volume specification: '/h:/d:nocopy': invalid mount config for type \"bind\": "
                     "field VolumeOptions must not be specified"),
    ("v1:/d:shared", "invalid volume specification: 'v1:/d:shared': invalid mount config for type \"volume\": "
                     "field BindOptions must not be specified"),
])
def test_volume_flag_errors(text, message):
    with pytest.raises(InvalidArgument) as e:
        parse_volume_flag(text)
    assert str(e.value) == message


# ---- --mount ----------------------------------------------------------------------------------------------------

def test_mount_flag_bind(tmp_path):
    spec = parse_mount_flag(f"type=bind,source={tmp_path},target=/app,readonly,bind-propagation=rslave")
    assert spec == {"Type": "bind", "Source": str(tmp_path), "Target": "/app", "ReadOnly": True,
                    "BindOptions": {"Propagation": "rslave"}}
    # as Docker's CLI sends it: unset fields left out
    assert parse_mount_flag(f"type=bind,src={tmp_path},dst=/app,ro=false") == \
        {"Type": "bind", "Source": str(tmp_path), "Target": "/app"}
    assert parse_mount_flag(f'"type=bind","src={tmp_path}",destination=/app')["Target"] == "/app"


def test_mount_flag_volume_defaults_and_options():
    spec = parse_mount_flag("target=/data,source=vol1,volume-nocopy,volume-label=team=db,"
                            "volume-opt=type=tmpfs,volume-opt=device=tmpfs")
    assert spec == {"Type": "volume", "Source": "vol1", "Target": "/data", "VolumeOptions": {
        "NoCopy": True, "Labels": {"team": "db"}, "DriverConfig": {"Options": {"type": "tmpfs", "device": "tmpfs"}}}}
    assert parse_mount_flag("type=volume,dst=/x") == {"Type": "volume", "Target": "/x"}


def tmpfs_options_of(spec: dict) -> list[str]:
    (m,) = oci_mounts(resolve(None, [spec], [], []))
    return m["options"]


def test_mount_flag_tmpfs_options():
    spec = parse_mount_flag("type=tmpfs,dst=/run,tmpfs-size=64m,tmpfs-mode=1770")
    assert spec == {"Type": "tmpfs", "Target": "/run", "TmpfsOptions": {"SizeBytes": 64 << 20, "Mode": 0o1770}}
    assert tmpfs_options_of(spec) == ["noexec", "nosuid", "nodev", "rprivate", "mode=1770", "size=64m"]
    assert tmpfs_options_of(parse_mount_flag("type=tmpfs,dst=/t,tmpfs-size=1536k"))[-1] == "size=1536k"
    assert tmpfs_options_of(parse_mount_flag("type=tmpfs,dst=/t,ro")) == \
        ["noexec", "nosuid", "nodev", "rprivate", "ro"]


@pytest.mark.parametrize("text, reason", [
    ("type=bind,src=/tmp,dst=/x,rw", "invalid field 'rw' must be a key=value pair"),
    ("type=bind,src=/tmp,dst=/x,colour=red", "unexpected key 'colour' in 'colour=red'"),
    ("type=,dst=/x", "type is required"),
    ("type=volume,src=v1", "target is required"),
    ("type=bind,src=/tmp,dst=/x,volume-nocopy", "cannot mix 'volume-*' options with mount type 'bind'"),
    ("type=volume,dst=/x,bind-propagation=shared", "cannot mix 'bind-*' options with mount type 'volume'"),
    ("type=bind,src=/tmp,dst=/x,tmpfs-size=1m", "cannot mix 'tmpfs-*' options with mount type 'bind'"),
    ("type=bind,src=/tmp,dst=/x,readonly=maybe", "invalid value for readonly: maybe"),
    ("type=tmpfs,dst=/x,tmpfs-size=lots", "invalid value for tmpfs-size: lots"),
    ("type=tmpfs,dst=/x,tmpfs-mode=999", "invalid value for tmpfs-mode: 999"),
])
def test_mount_flag_cli_errors(text, reason):
    with pytest.raises(InvalidArgument) as e:
        parse_mount_flag(text)
    assert str(e.value) == f'invalid argument "{text}" for "--mount" flag: {reason}'


@pytest.mark.parametrize("text, message", [
    ("type=bind,src=/nonexistent-barque-path,dst=/x",
     'invalid mount config for type "bind": bind source path does not exist: /nonexistent-barque-path'),
    ("type=bind,src=/tmp,dst=/x,bind-propagation=sideways",
     'invalid mount config for type "bind": invalid propagation mode: sideways'),
    ("type=bind,src=tmp,dst=/x", "invalid mount config for type \"bind\": invalid mount path: 'tmp' mount path "
                                 "must be absolute"),
    ("type=bind,dst=/x", 'invalid mount config for type "bind": field Source must not be empty'),
    ("type=volume,dst=/x,ro", 'invalid mount config for type "volume": must not set ReadOnly mode when using '
                              "anonymous volumes"),
    ("type=tmpfs,src=foo,dst=/x", 'invalid mount config for type "tmpfs": field Source must not be specified'),
    ("type=npipe,src=foo,dst=/x", 'invalid mount config for type "npipe": mount type unknown'),
    ("type=volume,src=v,dst=/", "invalid mount config for type \"volume\": invalid specification: destination "
                                "can't be '/'"),
])
def test_mount_flag_config_errors(text, message):
    with pytest.raises(InvalidArgument) as e:
        parse_mount_flag(text)
    assert str(e.value) == message


# ---- --tmpfs and --volumes-from ---------------------------------------------------------------------------------

def test_tmpfs_flag_defaults_and_overrides():
    spec = parse_tmpfs_flag("/run")
    assert spec["Target"] == "/run" and spec["_options"] == ["noexec", "nosuid", "nodev", "rprivate"]
    assert spec["ReadOnly"] is False
    spec = parse_tmpfs_flag("/run:rw,exec,size=64m")
    assert spec["_options"] == ["nosuid", "nodev", "rprivate", "rw", "exec", "size=64m"]
    assert parse_tmpfs_flag("/ro:ro")["ReadOnly"] is True


@pytest.mark.parametrize("text, message", [
    ("run", "invalid mount path: 'run' mount path must be absolute"),
    ("/", "invalid specification: destination can't be '/'"),
    ("/run:bogus", 'invalid tmpfs option "bogus"'),
])
def test_tmpfs_flag_errors(text, message):
    with pytest.raises(InvalidArgument) as e:
        parse_tmpfs_flag(text)
    assert str(e.value) == message


def test_merge_tmpfs_options_keeps_the_last_of_each():
    assert merge_tmpfs_options(["noexec", "size=1m", "exec", "size=2m", "defaults"]) == ["exec", "size=2m"]


def test_volumes_from():
    assert parse_volumes_from("web") == ("web", "rw")
    assert parse_volumes_from("web:ro") == ("web", "ro")
    assert parse_volumes_from("web:ro,z") == ("web", "ro")
    assert parse_volumes_from("web:rw") == ("web", "rw")
    for bad in ("web:rshared", "web:nocopy", "web:sideways"):
        with pytest.raises(InvalidArgument, match=f"^invalid mode: {bad.split(':')[1]}$"):
            parse_volumes_from(bad)
    with pytest.raises(InvalidArgument, match="volumes-from specification cannot be an empty string"):
        parse_volumes_from("")


# ---- the volume store -------------------------------------------------------------------------------------------

def test_create_get_list_and_idempotence(store, tmp_path):
    v = store.create("data", labels={"b": "2", "a": "1"}, options={})
    assert v["Name"] == "data" and v["Driver"] == "local" and v["Scope"] == "local"
    assert v["Mountpoint"] == str(tmp_path / "volumes" / "data" / "_data")
    assert Path(v["Mountpoint"]).is_dir()
    assert list(v["Labels"]) == ["a", "b"] and v["Options"] == {}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", v["CreatedAt"])
    assert store.create("data") == v  # Docker: creating an existing name returns it
    assert store.get("data") == v
    assert [x["Name"] for x in store.list()] == ["data"]
    # persistent: a second store over the same files sees it
    other = VolumeStore(Database(tmp_path / "barque.db"), tmp_path / "volumes")
    assert other.get("data") == v
    other.db.close()


def test_create_with_other_options_conflicts(store):
    store.create("cache", options={"type": "tmpfs", "device": "tmpfs"})
    with pytest.raises(Conflict, match="^create cache: volume name must be unique"):
        store.create("cache", options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})


def test_anonymous_volume(store):
    v = store.create(None)
    assert re.fullmatch(r"[0-9a-f]{64}", v["Name"])
    assert v["Labels"] == {ANONYMOUS_LABEL: ""}
    assert store.create("named", anonymous=True)["Labels"] == {ANONYMOUS_LABEL: ""}


@pytest.mark.parametrize("name, message", [
    ("a", "create a: volume name is too short, names should be at least two alphanumeric characters"),
    ("a/b", 'create a/b: "a/b" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" '
            "are allowed. If you intended to pass a host directory, use absolute path"),
    ("..", 'create ..: ".." includes invalid characters'),
    ("_x", 'create _x: "_x" includes invalid characters'),
])
def test_invalid_names(store, name, message):
    with pytest.raises(InvalidArgument) as e:
        store.create(name)
    assert str(e.value).startswith(message)
    assert store.list() == []


@pytest.mark.parametrize("options, message", [
    ({"colour": "red"}, 'create v1: invalid option: "colour"'),
    ({"type": "tmpfs"}, 'create v1: missing required option: "device"'),
    ({"o": "size=1m", "device": "tmpfs"}, 'create v1: missing required option: "type"'),
    ({"size": "1G"}, "create v1: quota size requested but no quota support"),
])
def test_invalid_options(store, options, message):
    with pytest.raises(InvalidArgument) as e:
        store.create("v1", options=options)
    assert str(e.value) == message


def test_unknown_driver(store):
    with pytest.raises(NotFound, match='^create v1: error looking up volume plugin nfs: plugin "nfs" not found$'):
        store.create("v1", driver="nfs")


def test_remove_refuses_volumes_in_use(store):
    store.create("shared")
    add_container(store, "c1", [volume_mount("shared")])
    add_container(store, "c2", [volume_mount("shared", "/other")])
    assert store.in_use("shared") == ["c1", "c2"]
    with pytest.raises(Conflict) as e:
        store.remove("shared", force=True)
    assert str(e.value) == "remove shared: volume is in use - [c1, c2]"
    assert store.get("shared")["Name"] == "shared"


def test_remove_deletes_data_and_missing_needs_force(store):
    v = store.create("gone")
    (Path(v["Mountpoint"]) / "file").write_text("x")
    store.remove("gone")
    assert not Path(v["Mountpoint"]).parent.exists()
    assert not list(store.root.iterdir())  # nothing left aside either
    with pytest.raises(NotFound, match="^get gone: no such volume$"):
        store.remove("gone")
    store.remove("gone", force=True)
    with pytest.raises(NotFound):
        store.get("gone")


def test_prune_anonymous_only_unless_all(store):
    anon = store.create(None)["Name"]
    used_anon = store.create(None)["Name"]
    store.create("named", labels={"keep": "no"})
    store.create("other", labels={"keep": "yes"})
    add_container(store, "c1", [volume_mount(used_anon)])
    data = Path(store.get(anon)["Mountpoint"])
    (data / "f").write_bytes(b"x" * 1000)
    os.link(data / "f", data / "hardlink")  # counted once
    assert store.usage(anon) == 1000
    assert store.prune() == ([anon], 1000)
    assert sorted(v["Name"] for v in store.list()) == sorted([used_anon, "named", "other"])
    assert store.prune(all=True, labels=["keep=yes"]) == (["other"], 0)
    assert store.prune(all=True, not_labels=["keep"]) == ([], 0)
    assert store.prune(all=True) == (["named"], 0)
    assert [v["Name"] for v in store.list()] == [used_anon]


def test_driver_options_become_mount_plans(store, tmp_path):
    store.create("ram", options={"type": "tmpfs", "device": "tmpfs", "o": "size=10m,uid=1000"})
    assert store.volume_source("ram")[1] == {"type": "tmpfs", "source": "tmpfs", "options": ["size=10m", "uid=1000"]}
    store.create("host", options={"type": "none", "o": "bind", "device": str(tmp_path)})
    assert store.volume_source("host") == (str(tmp_path), {"type": "bind", "source": str(tmp_path),
                                                           "options": ["bind"]})
    store.create("lost", options={"type": "none", "o": "bind", "device": "/nonexistent-barque"})
    with pytest.raises(FailedPrecondition, match="failed to mount local volume: mount /nonexistent-barque:"):
        store.volume_source("lost")
    plain = store.create("plain")
    assert store.volume_source("plain") == (plain["Mountpoint"], None)
    assert driver_mount({"type": "ext4", "device": "/dev/sdz1"}, "/d") == \
        ("/d", {"type": "ext4", "source": "/dev/sdz1", "options": []})


def _create_many(args):
    db_path, root, name = args
    db = Database(Path(db_path))
    try:
        return VolumeStore(db, Path(root)).create(name)["Name"]
    finally:
        db.close()


def test_concurrent_creates_from_several_processes(store, tmp_path):
    jobs = [(str(tmp_path / "barque.db"), str(store.root), "same" if i % 2 else f"vol{i}") for i in range(16)]
    with multiprocessing.get_context("fork").Pool(8) as pool:
        names = pool.map(_create_many, jobs)
    assert sorted(set(names)) == sorted({"same"} | {f"vol{i}" for i in range(0, 16, 2)})
    assert len(store.list()) == 9


# ---- resolve ----------------------------------------------------------------------------------------------------

def test_resolve_everything(store, tmp_path):
    host = tmp_path / "host"
    requested = [
        parse_volume_flag("named:/data"),
        parse_volume_flag(f"{host}:/host:ro"),
        parse_volume_flag("/declared"),
        parse_mount_flag("type=volume,src=opts,dst=/opts,volume-opt=type=tmpfs,volume-opt=device=tmpfs,"
                         "volume-label=a=b"),
        parse_mount_flag("type=tmpfs,dst=/scratch"),
        parse_tmpfs_flag("/run"),
    ]
    resolved = resolve(store, requested, ["/data", "/var/cache", "/declared"], [])
    by_dst = {m["Destination"]: m for m in resolved}
    assert set(by_dst) == {"/data", "/host", "/declared", "/opts", "/scratch", "/run", "/var/cache"}
    assert host.is_dir()  # -v creates a missing host directory
    named = store.get("named")
    assert inspect_mounts([by_dst["/data"]]) == [{
        "Type": "volume", "Name": "named", "Source": named["Mountpoint"], "Destination": "/data", "Driver": "local",
        "Mode": "z", "RW": True, "Propagation": ""}]
    assert named["Labels"] is None and named["Options"] is None  # as Docker shows implicitly made volumes
    assert inspect_mounts([by_dst["/host"]]) == [{
        "Type": "bind", "Source": str(host), "Destination": "/host", "Mode": "ro", "RW": False,
        "Propagation": "rprivate"}]
    for dst in ("/declared", "/var/cache"):
        anon = by_dst[dst]
        assert anon["Mode"] == "" and anon["RW"] is True and anon["_nocopy"] is False
        assert store.get(anon["Name"])["Labels"] == {ANONYMOUS_LABEL: ""}
    assert store.get("opts")["Labels"] == {"a": "b"}
    assert by_dst["/opts"]["_nocopy"] is True  # a tmpfs volume's _data is not what gets mounted
    shown = {m["Destination"] for m in inspect_mounts(resolved)}
    assert "/run" not in shown and "/scratch" in shown  # Docker keeps --tmpfs out of Mounts
    assert all(not k.startswith("_") for m in inspect_mounts(resolved) for k in m)
    assert len(store.list()) == 4  # named, opts, two anonymous


def test_resolve_reuses_existing_volume_and_nocopy(store):
    before = store.create("keep", labels={"x": "y"})
    (m,) = resolve(store, [parse_volume_flag("keep:/k:nocopy,ro")], [], [])
    assert m["Name"] == "keep" and m["Mode"] == "nocopy,ro" and m["RW"] is False and m["_nocopy"] is True
    assert store.get("keep") == before


def test_resolve_duplicate_mount_point(store):
    with pytest.raises(InvalidArgument, match="^Duplicate mount point: /d$"):
        resolve(store, [parse_volume_flag("a1:/d"), parse_tmpfs_flag("/d/")], [], [])
    # a declared `-v /d` never clashes, and the explicit mount wins
    (m,) = resolve(store, [parse_volume_flag("/d"), parse_volume_flag("a1:/d")], ["/d"], [])
    assert m["Name"] == "a1"


def test_resolve_volumes_from(store, tmp_path):
    source = resolve(store, [parse_volume_flag("shared:/shared"), parse_volume_flag(f"{tmp_path}:/h"),
                             parse_tmpfs_flag("/run")], [], [])
    inherited = inherit(source, "ro")
    assert {m["Destination"] for m in inherited} == {"/shared", "/h"}
    resolved = resolve(store, [parse_volume_flag("mine:/h")], ["/shared"], inherited)
    by_dst = {m["Destination"]: m for m in resolved}
    assert by_dst["/shared"]["Name"] == "shared" and by_dst["/shared"]["RW"] is False
    assert by_dst["/shared"]["Mode"] == "" and by_dst["/shared"]["_nocopy"] is True
    assert by_dst["/h"]["Name"] == "mine"  # the container's own mount wins over the inherited one
    assert len(resolved) == 2  # the image's /shared is covered by the inherited volume
    rw = inherit(source, "rw")
    assert all(m["RW"] for m in rw)
    with store.db.transaction() as conn:
        conn.execute("DELETE FROM volumes WHERE name='shared'")
    with pytest.raises(NotFound, match="^get shared: no such volume$"):
        resolve(store, [], [], rw)


def test_resolve_checks_engine_api_mounts(store, tmp_path):
    """HostConfig.Mounts from the API arrive without the parser's private keys and unchecked."""
    api = [{"Type": "tmpfs", "Target": "/t/", "TmpfsOptions": {"SizeBytes": 2 << 20}},
           {"Type": "bind", "Source": str(tmp_path), "Target": "/b"},
           {"Type": "volume", "Source": "apivol", "Target": "/v"}]
    by_dst = {m["Destination"]: m for m in resolve(store, api, [], [])}
    assert oci_mounts([by_dst["/t"]])[0]["options"] == ["noexec", "nosuid", "nodev", "rprivate", "size=2m"]
    assert by_dst["/b"]["Propagation"] == "rprivate" and by_dst["/v"]["Name"] == "apivol"
    with pytest.raises(InvalidArgument, match='^invalid mount config for type "volume": field BindOptions must not '):
        resolve(store, [{"Type": "volume", "Target": "/x", "BindOptions": {"Propagation": "shared"}}], [], [])
    with pytest.raises(InvalidArgument, match='^invalid mount config for type "bind": bind source path does not'):
        resolve(store, [{"Type": "bind", "Source": str(tmp_path / "no"), "Target": "/x"}], [], [])
    with pytest.raises(InvalidArgument, match='^invalid mount config for type "tmpfs": field Target must not be'):
        resolve(store, [{"Type": "tmpfs"}], [], [])


def test_resolve_normalises_raw_inherited_mounts(store):
    """A source container's record as stored: --tmpfs mounts are not inherited, Mode is not, copy-up never."""
    source = resolve(store, [parse_volume_flag("data1:/d:z"), parse_tmpfs_flag("/run")], [], [])
    raw = [dict(m, RW=False) for m in source]  # what a caller does for `:ro`
    (m,) = resolve(store, [], [], raw)
    assert (m["Name"], m["Mode"], m["RW"], m["_nocopy"]) == ("data1", "", False, True)


def test_resolve_inside_the_callers_transaction(store):
    with pytest.raises(RuntimeError):
        with store.db.transaction() as conn:
            resolve(store, [parse_volume_flag("txvol:/x")], ["/img"], [], conn=conn)
            assert store.get("txvol", conn=conn)["Name"] == "txvol"
            raise RuntimeError("container record failed")
    assert store.list() == []  # rolled back with the container


def test_resolve_reports_bad_volume_names(store):
    with pytest.raises(InvalidArgument, match='^create foo/bar: "foo/bar" includes invalid characters'):
        resolve(store, [parse_volume_flag("foo/bar:/x")], [], [])


# ---- OCI mounts -------------------------------------------------------------------------------------------------

def test_oci_mounts(store, tmp_path):
    store.create("ram", options={"type": "tmpfs", "device": "tmpfs", "o": "size=5m"})
    store.create("hostvol", options={"type": "none", "o": "bind", "device": str(tmp_path)})
    requested = [
        parse_volume_flag(f"{tmp_path}:/a/b/c:ro,rslave"),
        parse_volume_flag("plain:/a"),
        parse_mount_flag(f"type=bind,src={tmp_path},dst=/nr,bind-nonrecursive"),
        parse_volume_flag("ram:/ram:ro"),
        parse_volume_flag("hostvol:/hv"),
        parse_tmpfs_flag("/a/tmp:size=1m"),
    ]
    resolved = resolve(store, requested, [], [])
    spec = oci_mounts(resolved)
    assert [m["destination"] for m in spec][:4] == ["/a", "/nr", "/ram", "/hv"]  # parents first
    by_dst = {m["destination"]: m for m in spec}
    assert by_dst["/a/b/c"] == {"destination": "/a/b/c", "type": "bind", "source": str(tmp_path),
                                "options": ["rbind", "rslave", "ro"]}
    assert by_dst["/a"] == {"destination": "/a", "type": "bind", "source": store.get("plain")["Mountpoint"],
                            "options": ["rbind", "rprivate"]}
    assert by_dst["/nr"]["options"] == ["bind", "rprivate"]
    assert by_dst["/ram"] == {"destination": "/ram", "type": "tmpfs", "source": "tmpfs", "options": ["size=5m", "ro"]}
    assert by_dst["/hv"] == {"destination": "/hv", "type": "bind", "source": str(tmp_path),
                             "options": ["bind", "rprivate"]}
    assert by_dst["/a/tmp"] == {"destination": "/a/tmp", "type": "tmpfs", "source": "tmpfs",
                                "options": ["noexec", "nosuid", "nodev", "rprivate", "size=1m"]}
    assert rootfs_propagation(resolved) == "rslave"
    # read-only inheritance reaches tmpfs mounts too
    (ro_tmpfs,) = oci_mounts(inherit(resolve(store, [parse_mount_flag("type=tmpfs,dst=/t")], [], []), "ro"))
    assert ro_tmpfs["options"][-1] == "ro"


def test_verify_sources(store, tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    resolved = resolve(store, [parse_mount_flag(f"type=bind,src={gone},dst=/g")], [], [])
    verify_sources(resolved)
    gone.rmdir()
    with pytest.raises(FailedPrecondition, match=f"bind source path does not exist: {gone}$"):
        verify_sources(resolved)


# ---- copy-up ----------------------------------------------------------------------------------------------------

def make_rootfs(tmp_path: Path) -> Path:
    rootfs = tmp_path / "rootfs"
    data = rootfs / "var" / "lib" / "app"
    (data / "sub").mkdir(parents=True)
    (data / "conf").write_text("hello")
    os.chmod(data / "conf", 0o640)
    (data / "link").symlink_to("conf")
    (data / "sub" / "deep").write_text("deep")
    os.chmod(data, 0o750)
    (rootfs / "etc").mkdir()
    (rootfs / "etc" / "marker").write_text("rootfs etc")
    return rootfs


def test_populate_copies_content_once(tmp_path):
    rootfs = make_rootfs(tmp_path)
    volume = tmp_path / "vol"
    volume.mkdir()
    assert populate(volume, rootfs, "/var/lib/app") is True
    assert (volume / "conf").read_text() == "hello"
    assert os.stat(volume / "conf").st_mode & 0o777 == 0o640
    assert os.readlink(volume / "link") == "conf"
    assert (volume / "sub" / "deep").read_text() == "deep"
    assert os.stat(volume).st_mode & 0o777 == 0o750  # the directory's own mode comes along
    (volume / "conf").write_text("changed by the container")
    assert populate(volume, rootfs, "/var/lib/app") is False  # not empty: never overwritten
    assert (volume / "conf").read_text() == "changed by the container"


def test_populate_missing_or_not_a_directory(tmp_path):
    rootfs = make_rootfs(tmp_path)
    volume = tmp_path / "vol"
    volume.mkdir()
    assert populate(volume, rootfs, "/nowhere") is False
    assert populate(volume, rootfs, "/var/lib/app/conf") is False
    assert list(volume.iterdir()) == []


def test_populate_does_not_follow_symlinks_out_of_the_rootfs(tmp_path):
    rootfs = make_rootfs(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host")
    (rootfs / "escape").symlink_to(str(outside))          # absolute: resolved inside the rootfs
    (rootfs / "up").symlink_to("../../../../../../etc")   # climbs: stops at the rootfs
    volume = tmp_path / "vol"
    volume.mkdir()
    assert populate(volume, rootfs, "/escape") is False
    assert populate(volume, rootfs, "/up") is True
    assert sorted(os.listdir(volume)) == ["marker"]
    assert (volume / "marker").read_text() == "rootfs etc"


def test_public_surface():
    assert set(mounts.__all__) >= {"parse_volume_flag", "parse_mount_flag", "parse_tmpfs_flag",
                                   "parse_volumes_from", "resolve", "oci_mounts", "populate"}
