"""`barque volume create/ls/inspect/rm/prune` as a Docker user drives them, through the real command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ANON = "com.docker.volume.anonymous"


def names(barque, *args: str) -> list[str]:
    return barque("volume", "ls", "-q", *args).stdout.split()


def mark_in_use(barque, cid: str, volume: str) -> None:
    """A container record that mounts `volume`, as `barque create -v` stores it."""
    engine = barque.engine()
    record = {"Id": cid, "Mounts": [{"Type": "volume", "Name": volume, "Source": "", "Destination": "/data",
                                     "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""}]}
    with engine.db.transaction() as conn:
        conn.execute("INSERT INTO containers(id, name, image_id, created, record) VALUES (?,?,?,?,?)",
                     (cid, "user-" + cid[:6], "sha256:none", 0.0, json.dumps(record)))


def test_create_inspect_and_list(barque):
    assert barque("volume", "create", "--label", "team=db", "--label", "tier", "data1").stdout == "data1\n"
    assert barque("volume", "create", "--name", "data2").stdout == "data2\n"
    assert barque("volume", "create", "data1").stdout == "data1\n"  # Docker: creating again returns the volume
    anon = barque("volume", "create").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", anon)

    (info,) = json.loads(barque("volume", "inspect", "data1").stdout)
    assert info["Name"] == "data1" and info["Driver"] == "local" and info["Scope"] == "local"
    assert info["Labels"] == {"team": "db", "tier": ""} and info["Options"] == {}
    assert info["Mountpoint"] == str(barque.root / "volumes" / "data1" / "_data")
    assert Path(info["Mountpoint"]).is_dir()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["CreatedAt"])
    (anon_info,) = json.loads(barque("volume", "inspect", anon).stdout)
    assert anon_info["Labels"] == {ANON: ""}

    lines = barque("volume", "ls").stdout.splitlines()
    assert lines[0].split() == ["DRIVER", "VOLUME", "NAME"]
    # sorted by name (the anonymous volume's random hex name may sort before or after "data…")
    assert [line.split() for line in lines[1:]] == [["local", n] for n in sorted([anon, "data1", "data2"])]
    assert barque("volume", "list", "-q").stdout.split() == sorted([anon, "data1", "data2"])
    rows = [json.loads(line) for line in barque("volume", "ls", "--format", "json").stdout.splitlines()]
    assert {r["Name"]: r["Labels"] for r in rows}["data1"] == "team=db,tier="
    assert barque("volume", "ls", "--format", "{{.Name}}:{{.Driver}}").stdout.split() == \
        [f"{n}:local" for n in sorted([anon, "data1", "data2"])]
    assert barque("volume", "inspect", "--format", "{{.Name}} {{index .Labels \"team\"}}", "data1").stdout == \
        "data1 db\n"


def test_ls_filters(barque):
    barque("volume", "create", "--label", "env=prod", "web-data")
    barque("volume", "create", "--label", "env=dev", "db-data")
    barque("volume", "create", "cache")
    mark_in_use(barque, "c" * 64, "db-data")
    assert names(barque, "--filter", "name=data") == ["db-data", "web-data"]
    assert names(barque, "-f", "label=env") == ["db-data", "web-data"]
    assert names(barque, "-f", "label=env=prod") == ["web-data"]
    assert names(barque, "-f", "label!=env") == ["cache"]
    assert names(barque, "-f", "dangling=true") == ["cache", "web-data"]
    assert names(barque, "-f", "dangling=false") == ["db-data"]
    assert names(barque, "-f", "driver=local", "-f", "name=cache") == ["cache"]

    bad = barque("volume", "ls", "-f", "colour=red", check=False)
    assert bad.returncode == 1 and bad.stderr.strip() == "Error: invalid filter 'colour'"
    bad = barque("volume", "ls", "-f", "dangling=maybe", check=False)
    assert bad.returncode == 1 and "invalid filter 'dangling=maybe'" in bad.stderr
    bad = barque("volume", "ls", "-f", "dangling", check=False)
    assert bad.returncode == 125 and "bad format of filter (expected name=value)" in bad.stderr


@pytest.mark.parametrize("args, message", [
    (["a/b"], 'Error: create a/b: "a/b" includes invalid characters for a local volume name, only '
              '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'),
    (["x"], "Error: create x: volume name is too short, names should be at least two alphanumeric characters"),
    (["-o", "colour=red", "v1"], 'Error: create v1: invalid option: "colour"'),
    (["-o", "type=tmpfs", "v1"], 'Error: create v1: missing required option: "device"'),
    (["-d", "nfs", "v1"], 'Error: create v1: error looking up volume plugin nfs: plugin "nfs" not found'),
    (["--name", "v1", "v2"], "Error: conflicting options: either specify --name or provide positional arg, not both"),
])
def test_create_refusals(barque, args, message):
    result = barque("volume", "create", *args, check=False)
    assert (result.returncode, result.stderr.strip(), result.stdout) == (1, message, "")
    assert names(barque) == []
    assert not (barque.root / "volumes" / "v1").exists()


def test_create_usage_errors(barque):
    result = barque("volume", "create", "--label", "=x", "v1", check=False)
    assert result.returncode == 125
    assert 'invalid argument "=x" for "--label" flag' in result.stderr
    result = barque("volume", "create", "--colour", "red", check=False)
    assert result.returncode == 125 and "unknown flag: --colour" in result.stderr


def test_create_tmpfs_and_bind_options_are_recorded(barque, tmp_path):
    barque("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=10m,uid=1000", "ram")
    barque("volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt", f"device={tmp_path}", "hostdir")
    (ram, host) = json.loads(barque("volume", "inspect", "ram", "hostdir").stdout)
    assert ram["Options"] == {"device": "tmpfs", "o": "size=10m,uid=1000", "type": "tmpfs"}
    assert host["Options"] == {"device": str(tmp_path), "o": "bind", "type": "none"}
    again = barque("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "ram", check=False)
    assert again.returncode == 1 and "create ram: volume name must be unique" in again.stderr


def test_inspect_missing(barque):
    barque("volume", "create", "here")
    result = barque("volume", "inspect", "here", "nowhere", check=False)
    assert result.returncode == 1
    assert [v["Name"] for v in json.loads(result.stdout)] == ["here"]
    assert result.stderr.strip() == "Error: No such volume: nowhere"
    result = barque("volume", "inspect", "nowhere", check=False)
    assert (result.returncode, json.loads(result.stdout)) == (1, [])


def test_rm(barque):
    for n in ("one", "two", "busy"):
        barque("volume", "create", n)
    data = barque.root / "volumes" / "one" / "_data"
    (data / "file").write_text("content")
    cid = "d" * 64
    mark_in_use(barque, cid, "busy")

    result = barque("volume", "rm", "one", "missing", "busy", "two", check=False)
    assert result.returncode == 1
    assert result.stdout.split() == ["one", "two"]  # Docker goes on past a failure
    assert result.stderr.splitlines() == ["Error: get missing: no such volume",
                                          f"Error: remove busy: volume is in use - [{cid}]"]
    assert names(barque) == ["busy"]
    assert not data.parent.exists()

    forced = barque("volume", "rm", "-f", "busy", "missing", check=False)
    assert forced.returncode == 1 and forced.stdout.split() == ["missing"]  # force forgives only the missing
    assert "volume is in use" in forced.stderr
    assert names(barque) == ["busy"]


def test_prune(barque):
    anon_used = barque("volume", "create").stdout.strip()
    anon = barque("volume", "create").stdout.strip()
    barque("volume", "create", "--label", "keep=yes", "named-keep")
    barque("volume", "create", "named")
    mark_in_use(barque, "e" * 64, anon_used)
    (barque.root / "volumes" / anon / "_data" / "blob").write_bytes(b"x" * 5000)

    declined = barque("volume", "prune", input="n\n")
    assert declined.stdout == ("WARNING! This will remove anonymous local volumes not used by at least one "
                               "container.\nAre you sure you want to continue? [y/N] ")
    assert len(names(barque)) == 4

    out = barque("volume", "prune", input="y\n").stdout
    assert out.endswith(f"Deleted Volumes:\n{anon}\n\nTotal reclaimed space: 5kB\n")
    assert sorted(names(barque)) == sorted([anon_used, "named", "named-keep"])
    assert barque("volume", "prune", "-f").stdout == "Total reclaimed space: 0B\n"

    out = barque("volume", "prune", "-a", "-f", "--filter", "label!=keep").stdout
    assert out == "Deleted Volumes:\nnamed\n\nTotal reclaimed space: 0B\n"
    warning = barque("volume", "prune", "--all", input="").stdout
    assert warning.startswith("WARNING! This will remove all local volumes not used by at least one container.")
    out = barque("volume", "prune", "--filter", "all=true", "--filter", "label=keep=yes", "-f").stdout
    assert out.startswith("Deleted Volumes:\nnamed-keep\n")
    assert names(barque) == [anon_used]
    assert sorted(p.name for p in (barque.root / "volumes").iterdir()) == [anon_used]

    bad = barque("volume", "prune", "-f", "--filter", "dangling=true", check=False)
    assert bad.returncode == 1 and bad.stderr.strip() == "Error: invalid filter 'dangling'"


def test_containers_hold_their_volumes(loaded, tmp_path):
    """`create -v` makes the volumes it names and one per image VOLUME; they are in use until `rm -v`."""
    host = tmp_path / "hostdir"
    cid = loaded("create", "-v", "appdata:/data", "-v", "/scratch", "-v", f"{host}:/host:ro",
                 "busybox", "true").stdout.strip()
    assert host.is_dir()
    vols = names(loaded)
    assert "appdata" in vols and len(vols) == 2
    anon = next(v for v in vols if v != "appdata")
    busy = loaded("volume", "rm", "appdata", check=False)
    assert busy.returncode == 1 and busy.stderr.strip() == f"Error: remove appdata: volume is in use - [{cid}]"
    assert names(loaded, "-f", "dangling=true") == []
    assert loaded("volume", "prune", "-a", "-f").stdout == "Total reclaimed space: 0B\n"
    loaded("rm", "-v", cid)
    assert names(loaded) == ["appdata"]  # `rm -v` removes the anonymous one only, as Docker does
    assert anon not in [p.name for p in (loaded.root / "volumes").iterdir()]
    loaded("volume", "rm", "appdata")
    assert names(loaded) == []
