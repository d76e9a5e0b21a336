"""The mount executor against a recording fake of the libc seam: which syscalls a plan turns into. No root."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from barque.errors import InvalidArgument
from barque.linux import _libc
from barque.snapshot import Mount, mount_all
from barque.snapshot import mount as mount_mod


class FakeLibc(SimpleNamespace):
    """Records calls; has the real module's constants."""

    def __init__(self) -> None:
        super().__init__(**{k: getattr(_libc, k) for k in dir(_libc) if k.isupper()})
        self.calls: list[tuple] = []
        self._fds = iter(range(1000, 2000))

    def mount(self, source, target, fstype, flags=0, data=None):
        self.calls.append(("mount", source, target, fstype, flags, data))

    def umount(self, target, flags=0):
        self.calls.append(("umount", target, flags))

    def fsopen(self, fstype, flags=0):
        self.calls.append(("fsopen", fstype))
        return os.open(os.devnull, os.O_RDONLY)   # a real fd: the code closes it

    def fsconfig(self, fd, cmd, key=None, value=None, aux=0):
        self.calls.append(("fsconfig", cmd, key, value))

    def fsmount(self, fd, flags=0, attr_flags=0):
        self.calls.append(("fsmount", attr_flags))
        return os.open(os.devnull, os.O_RDONLY)

    def move_mount(self, fd, to_path):
        self.calls.append(("move_mount", to_path))


@pytest.fixture
def fake(monkeypatch) -> FakeLibc:
    f = FakeLibc()
    monkeypatch.setattr(mount_mod, "_libc", f)
    return f


def test_parse_options_splits_flags_from_data() -> None:
    p = mount_mod.parse_options(["ro", "rbind", "nosuid", "index=off", "userxattr"])
    assert p.flags == _libc.MS_RDONLY | _libc.MS_BIND | _libc.MS_REC | _libc.MS_NOSUID
    assert p.data == ("index=off", "userxattr")
    assert mount_mod.parse_options(["ro", "rw"]).flags == 0


def test_parse_overlay() -> None:
    ov = mount_mod.parse_overlay(Mount("overlay", "overlay", (
        "index=off", "workdir=/w", "upperdir=/u", "lowerdir=/l2:/l1", "ro")))
    assert (ov.lowers, ov.upper, ov.work, ov.other) == (("/l2", "/l1"), "/u", "/w", ("index=off",))
    assert ov.flags == _libc.MS_RDONLY
    with pytest.raises(InvalidArgument):
        mount_mod.parse_overlay(Mount("overlay", "overlay", ("upperdir=/u", "workdir=/w")))
    with pytest.raises(InvalidArgument):
        mount_mod.parse_overlay(Mount("overlay", "overlay", ("lowerdir=/a:/b", "upperdir=/u")))
    with pytest.raises(InvalidArgument):
        mount_mod.parse_overlay(Mount("overlay", "overlay", ("lowerdir=/only-one",)))
    with pytest.raises(InvalidArgument) as exc:
        mount_mod.parse_overlay(Mount("overlay", "overlay", ("lowerdir=" + ":".join(f"/{i}" for i in range(501)),)))
    assert "at most 500" in str(exc.value)


def test_short_names_are_unique_and_short() -> None:
    names = [mount_mod._short_name(i) for i in range(500)]
    assert len(set(names)) == 500 and max(map(len, names)) == 2
    assert "U" not in names and "W" not in names


def test_ro_bind_is_bind_then_remount(fake: FakeLibc, tmp_path: Path) -> None:
    mount_all([Mount("bind", "/src", ("ro", "rbind"))], tmp_path)
    assert fake.calls == [
        ("mount", "/src", str(tmp_path), None, _libc.MS_BIND | _libc.MS_REC, None),
        ("mount", None, str(tmp_path), None, _libc.MS_REMOUNT | _libc.MS_BIND | _libc.MS_RDONLY, None),
    ]


def test_rw_bind_is_one_call(fake: FakeLibc, tmp_path: Path) -> None:
    mount_all([Mount("bind", "/src", ("rw", "rbind"))], tmp_path)
    assert len(fake.calls) == 1


def _deep_plan(n: int, upper: bool = True) -> tuple[Mount, list[str]]:
    lowers = [f"/var/lib/barque/snapshots/overlay/snapshots/{i}/fs-padding-padding-padding-padding"
              for i in range(n, 0, -1)]
    opts = ["index=off"]
    if upper:
        opts += ["workdir=/var/lib/barque/snapshots/overlay/snapshots/999/work",
                 "upperdir=/var/lib/barque/snapshots/overlay/snapshots/999/fs"]
    opts.append("lowerdir=" + ":".join(lowers))
    return Mount("overlay", "overlay", tuple(opts)), lowers


def test_overlay_with_lowerdir_plus(fake: FakeLibc, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(mount_mod, "overlay_supports_lowerdir_plus", lambda: True)
    plan, lowers = _deep_plan(150)
    mount_all([plan], tmp_path)
    configs = [c for c in fake.calls if c[0] == "fsconfig"]
    assert [c[3] for c in configs if c[2] == "lowerdir+"] == lowers       # one call per layer, top-most first
    assert ("fsconfig", _libc.FSCONFIG_SET_STRING, "index", "off") in configs
    assert ("fsconfig", _libc.FSCONFIG_CMD_CREATE, None, None) == configs[-1]
    assert fake.calls[-1] == ("move_mount", str(tmp_path))
    assert not any(c[0] == "mount" for c in fake.calls)


def test_overlay_legacy_short_enough_is_one_mount(fake: FakeLibc, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(mount_mod, "overlay_supports_lowerdir_plus", lambda: False)
    plan, lowers = _deep_plan(3)
    mount_all([plan], tmp_path)
    [(_, source, target, fstype, _, data)] = fake.calls
    assert (source, target, fstype) == ("overlay", str(tmp_path), "overlay")
    assert data.endswith("lowerdir=" + ":".join(lowers)) and "upperdir=" in data


def test_overlay_legacy_too_long_goes_through_short_links(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(mount_mod, "overlay_supports_lowerdir_plus", lambda: False)
    seen = {}

    def fake_child(cwd, source, target, fstype, flags, data):
        # while the child would run, the links exist and point at the layers
        opts = dict(o.partition("=")[::2] for o in data.split(","))
        seen.update(cwd=cwd, target=target, data=data,
                    lowers=[os.readlink(os.path.join(cwd, n)) for n in opts["lowerdir"].split(":")],
                    upper=os.readlink(os.path.join(cwd, opts["upperdir"])),
                    work=os.readlink(os.path.join(cwd, opts["workdir"])))

    monkeypatch.setattr(mount_mod, "_mount_in_child", fake_child)
    plan, lowers = _deep_plan(400)
    assert len(",".join(plan.options)) > 4 * 4096
    mount_all([plan], tmp_path)
    assert seen["lowers"] == lowers
    assert seen["upper"] == plan.option("upperdir") and seen["work"] == plan.option("workdir")
    assert len(seen["data"]) < 4096 and seen["target"] == str(tmp_path)
    assert not os.path.exists(seen["cwd"])          # the link directory is gone after the mount


def test_failed_second_mount_undoes_the_first(fake: FakeLibc, tmp_path: Path) -> None:
    def failing_mount(source, target, fstype, flags=0, data=None):
        fake.calls.append(("mount", source, target, fstype, flags, data))
        if source == "/second":
            raise OSError(2, "no such file")

    fake.mount = failing_mount
    with pytest.raises(Exception):
        mount_all([Mount("bind", "/first", ("rw",)), Mount("bind", "/second", ("rw",))], tmp_path)
    assert fake.calls[-1] == ("umount", str(tmp_path), _libc.MNT_DETACH)
