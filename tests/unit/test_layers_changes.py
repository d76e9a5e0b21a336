"""diff_dirs and overlay_changes: which paths a layer must carry."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from barque.errors import InvalidArgument
from barque.layers import Change, diff_dirs, overlay_changes

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (mknod, trusted.* xattrs)")


def kinds(changes) -> list[tuple[str, str]]:
    return [(c.kind, c.path) for c in changes]


def make_base(d: Path) -> Path:
    d.mkdir()
    (d / "etc").mkdir()
    (d / "etc/passwd").write_text("root:x:0:0\n")
    (d / "etc/hosts").write_text("127.0.0.1 localhost\n")
    (d / "var/lib/old").mkdir(parents=True)
    (d / "var/lib/old/state").write_text("s")
    (d / "bin").mkdir()
    (d / "bin/sh").write_text("#!")
    os.symlink("sh", d / "bin/ash")
    (d / "same").mkdir()
    (d / "same/untouched").write_text("u")
    return d


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    lower = make_base(tmp_path / "lower")
    upper = tmp_path / "upper"
    # a faithful copy, like the vfs driver makes (cp -a keeps mtimes, modes, xattrs)
    subprocess.run(["cp", "-a", str(lower), str(upper)], check=True)
    return lower, upper


def test_identical_trees_have_no_changes(trees) -> None:
    lower, upper = trees
    assert list(diff_dirs(lower, upper)) == []


def test_adds_modifies_and_top_most_deletes(trees) -> None:
    lower, upper = trees
    (upper / "etc/passwd").write_text("root:x:0:0\nnew:x:1:1\n")
    (upper / "etc/new.conf").write_text("n")
    shutil.rmtree(upper / "var/lib/old")
    (upper / "opt/app").mkdir(parents=True)
    (upper / "opt/app/run").write_text("r")
    os.remove(upper / "bin/ash")
    os.symlink("/bin/sh", upper / "bin/ash")  # same name, new target
    got = kinds(diff_dirs(lower, upper))
    assert got == [
        ("modify", "bin"),
        ("modify", "bin/ash"),
        ("modify", "etc"),
        ("add", "etc/new.conf"),
        ("modify", "etc/passwd"),
        ("add", "opt"),
        ("add", "opt/app"),
        ("add", "opt/app/run"),
        ("modify", "var"),
        ("modify", "var/lib"),
        ("delete", "var/lib/old"),  # its children are not listed
    ]


def test_metadata_only_changes_count(trees) -> None:
    lower, upper = trees
    os.utime(upper / "etc/hosts", ns=(0, 1_000_000_000_123))  # same size and content, other mtime
    os.chmod(upper / "same", 0o700)  # a directory whose own metadata changed
    os.setxattr(upper / "bin/sh", "user.note", b"x")
    got = kinds(diff_dirs(lower, upper))
    assert ("modify", "etc/hosts") in got
    assert ("modify", "same") in got
    assert ("modify", "bin/sh") in got
    assert not any(path.startswith("same/") for _, path in got)


def test_a_new_hard_link_brings_its_other_name(trees) -> None:
    lower, upper = trees
    os.link(upper / "etc/passwd", upper / "etc/passwd-link")
    got = kinds(diff_dirs(lower, upper))
    assert ("modify", "etc/passwd") in got and ("add", "etc/passwd-link") in got


def test_type_changes(trees) -> None:
    lower, upper = trees
    shutil.rmtree(upper / "same")
    (upper / "same").write_text("now a file")
    os.remove(upper / "etc/hosts")
    (upper / "etc/hosts").mkdir()
    (upper / "etc/hosts/inner").write_text("i")
    got = kinds(diff_dirs(lower, upper))
    assert ("modify", "same") in got and not any(p.startswith("same/") for _, p in got)
    assert ("modify", "etc/hosts") in got and ("add", "etc/hosts/inner") in got


def test_whole_tree_is_all_adds_in_byte_order(tmp_path: Path) -> None:
    root = tmp_path / "t"
    (root / "a").mkdir(parents=True)
    (root / "a/x").write_text("")
    (root / "a-b").write_text("")
    (root / "B").write_text("")
    changes = list(diff_dirs(None, root))
    assert all(c.kind == "add" and c.source == root / c.path for c in changes)
    # byte order of whole paths, as Docker sorts: "a" < "a-b" < "a/x" ('-' < '/'), capitals first
    assert [c.path for c in changes] == ["B", "a", "a-b", "a/x"]


def test_diff_of_a_missing_dir_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        list(diff_dirs(None, tmp_path / "nope"))


def test_change_validates_itself(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        Change("rename", "a", tmp_path)
    with pytest.raises(InvalidArgument):
        Change("delete", "a", tmp_path)
    with pytest.raises(InvalidArgument):
        Change("add", "a", None)


@needs_root
def test_overlay_changes_of_a_hand_made_upper(tmp_path: Path) -> None:
    lower = make_base(tmp_path / "lower")
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/passwd").write_text("changed")
    os.mknod(upper / "etc/hosts", 0o020000, os.makedev(0, 0))  # overlayfs' whiteout
    (upper / "var/lib/old").mkdir(parents=True)
    os.setxattr(upper / "var/lib/old", "trusted.overlay.opaque", b"y")
    (upper / "var/lib/old/fresh").write_text("f")
    os.setxattr(upper / "etc", "trusted.overlay.origin", b"\x00junk")  # bookkeeping: ignored
    (upper / "new").write_text("n")
    got = list(overlay_changes(upper, [lower]))
    assert [(c.kind, c.path, c.opaque) for c in got] == [
        ("modify", "etc", False),
        ("delete", "etc/hosts", False),
        ("modify", "etc/passwd", False),
        ("add", "new", False),
        ("modify", "var", False),
        ("modify", "var/lib", False),
        ("modify", "var/lib/old", True),
        ("add", "var/lib/old/fresh", False),
    ]
