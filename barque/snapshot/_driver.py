"""What the directory-based drivers (overlay, btrfs, vfs) share: the on-disk layout, crash safety and the rules.

Layout of a driver root::

    metadata.db         SQLite (see metadata.py): key -> id, kind, parent
    snapshots/<id>/     one directory per snapshot, named by its numeric id (keys are arbitrary strings)
    staging/<pid>-<r>/  a snapshot being built, before it gets an id
    trash/<id>-<r>/     a removed snapshot being deleted

Crash safety: a snapshot is built under staging/ outside any lock (a vfs copy can take a while), then — in one
write transaction — recorded, renamed to snapshots/<id>, the rename made durable, and committed. So the database
never names a directory that is not there; a crash leaves at worst a directory nobody names. Removal deletes the
record first, then the directory. Opening a root sweeps what crashes left: snapshots/<id> without a record (under
the write lock, so never one being created), staging/ entries of dead processes, and trash/.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
from abc import abstractmethod
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from barque.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound
from barque.snapshot.base import Info, Kind, Mount, Snapshotter, Usage
from barque.snapshot.metadata import MetaStore, Record

log = logging.getLogger(__name__)


def disk_usage(path: Path) -> Usage:
    """Like ``du``: bytes allocated (st_blocks * 512) and inodes under `path`, hard-linked files once, no crossing
    into other filesystems."""
    seen: set[tuple[int, int]] = set()
    size = inodes = 0
    try:
        top = os.lstat(path)
    except FileNotFoundError:
        return Usage(0, 0)
    stack = [os.fspath(path)]
    seen.add((top.st_dev, top.st_ino))
    size, inodes = top.st_blocks * 512, 1
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                ident = (st.st_dev, st.st_ino)
                if ident in seen:
                    continue
                seen.add(ident)
                size += st.st_blocks * 512
                inodes += 1
                if entry.is_dir(follow_symlinks=False) and st.st_dev == top.st_dev:
                    stack.append(entry.path)
    return Usage(size, inodes)


def run_tool(argv: Sequence[str], what: str) -> str:
    """Run a command-line tool; a failure becomes FailedPrecondition carrying its stderr."""
    try:
        proc = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    except FileNotFoundError as e:
        raise FailedPrecondition(f"{what}: {argv[0]} is not installed", cause=e) from e
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip()
        raise FailedPrecondition(f"{what}: {' '.join(argv)} exited with {proc.returncode}: {msg}")
    return proc.stdout


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DirectorySnapshotter(Snapshotter):
    """A snapshotter keeping one directory per snapshot under ``<root>/snapshots/<id>``; drivers fill in how a
    snapshot directory is built, sealed, mounted and deleted."""

    name = "directory"

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.abspath(root))
        created = not self.root.exists()
        self._check_root()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self._check_root_created()
        except BaseException:
            if created:
                shutil.rmtree(self.root, ignore_errors=True)
            raise
        self.snapshots_dir = self.root / "snapshots"
        self.staging_dir = self.root / "staging"
        self.trash_dir = self.root / "trash"
        for d in (self.snapshots_dir, self.staging_dir, self.trash_dir):
            d.mkdir(mode=0o700, exist_ok=True)
        self._store = MetaStore(self.root / "metadata.db")
        self._closed = False
        self.cleanup()

    # -- driver hooks ------------------------------------------------------------------------------------------
    def _check_root(self) -> None:
        """Refuse a root this driver cannot work on (before anything is created)."""

    def _check_root_created(self) -> None:
        """Checks that need the root directory to exist (e.g. a probe mount)."""

    def _check_new(self, kind: Kind, parent: Record | None) -> None:
        """Refuse a snapshot the driver could not mount (e.g. too deep for overlayfs)."""

    @abstractmethod
    def _build(self, staging: Path, kind: Kind, parent: Record | None) -> None:
        """Create the snapshot's directory at `staging` (which does not exist yet)."""

    def _seal(self, path: Path, kind: Kind) -> None:
        """Make a snapshot directory that just became a view or committed read-only, if the driver can."""

    def _unseal(self, path: Path) -> None:
        """Undo `_seal` (a commit whose transaction failed)."""

    def _delete_tree(self, path: Path) -> None:
        shutil.rmtree(path)

    @abstractmethod
    def _mounts(self, rec: Record) -> list[Mount]: ...

    @abstractmethod
    def _usage_dir(self, rec: Record) -> Path: ...

    @abstractmethod
    def _apply_target(self, rec: Record) -> tuple[Path, str, list[Path]]: ...

    @abstractmethod
    def _diff_source(self, rec: Record) -> tuple[str, Path, list[Path]] | tuple[str, Path | None, Path]: ...

    # -- helpers -----------------------------------------------------------------------------------------------
    def snapshot_dir(self, snapshot_id: int) -> Path:
        return self.snapshots_dir / str(snapshot_id)

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition(f"{self.name} snapshotter at {self.root} is closed")

    def _get(self, key: str) -> Record:
        self._check_open()
        with self._store.read() as tx:
            return tx.get(key)

    def _claim(self, path: Path) -> Path | None:
        """Take a directory nobody references any more out of the way by renaming it into trash/ (atomic, so of
        two processes sweeping at once exactly one gets it). None if it was already gone."""
        dest = self.trash_dir / f"{path.name}-{os.urandom(4).hex()}"
        try:
            os.rename(path, dest)
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno != errno.EROFS:
                raise
            self._unseal(path)  # a read-only btrfs subvolume cannot be moved
            try:
                os.rename(path, dest)
            except FileNotFoundError:
                return None
        return dest

    def _discard(self, path: Path) -> None:
        """Claim and delete a directory nobody references any more; failures are logged, the next open retries."""
        try:
            dest = self._claim(path)
            if dest is not None:
                self._delete_tree(dest)
        except (OSError, FailedPrecondition) as e:
            log.warning("cannot delete %s (will retry on next open): %s", path, e)

    # -- the interface -----------------------------------------------------------------------------------------
    def prepare(self, key: str, parent: str | None = None, labels: dict[str, str] | None = None) -> list[Mount]:
        return self._create(Kind.ACTIVE, key, parent, labels)

    def view(self, key: str, parent: str | None = None, labels: dict[str, str] | None = None) -> list[Mount]:
        return self._create(Kind.VIEW, key, parent, labels)

    def _create(self, kind: Kind, key: str, parent: str | None, labels: dict[str, str] | None) -> list[Mount]:
        self._check_open()
        if not isinstance(key, str) or not key:
            raise InvalidArgument(f"snapshot key must be a non-empty string, got {key!r}")
        with self._store.read() as tx:
            if tx.find(key) is not None:
                raise AlreadyExists(f"snapshot {key!r} already exists")
            prec = None
            if parent:
                prec = tx.find(parent)
                if prec is None:
                    raise NotFound(f"parent snapshot {parent!r} of {key!r} does not exist")
                if prec.kind != Kind.COMMITTED:
                    raise FailedPrecondition(
                        f"parent {parent!r} of {key!r} is a {prec.kind.value} snapshot, not a committed one")
        self._check_new(kind, prec)

        staging = self.staging_dir / f"{os.getpid()}-{os.urandom(6).hex()}"
        dest: Path | None = None
        try:
            self._build(staging, kind, prec)
            with self._store.write() as tx:
                rec = tx.create(kind, key, parent, labels)
                if prec is not None and rec.parent_ids[:1] != (prec.id,):
                    raise Conflict(f"parent {parent!r} of {key!r} was replaced while {key!r} was being prepared")
                target = self.snapshot_dir(rec.id)
                if os.path.lexists(target):
                    # left by a crash between rename and commit; ids of rolled-back inserts are handed out again
                    log.warning("removing stale snapshot directory %s (no record)", target)
                    self._discard(target)
                os.rename(staging, target)
                dest = target
                self._seal(target, kind)
                fsync_dir(self.snapshots_dir)
        except BaseException:
            for leftover in (staging, dest):
                if leftover is not None and os.path.lexists(leftover):
                    self._discard(leftover)
            raise
        log.debug("%s: %s %r (id %d, parent %r)", self.name, kind.value, key, rec.id, parent)
        return self._mounts(rec)

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> None:
        rec = self._get(key)
        if rec.kind != Kind.ACTIVE:
            raise FailedPrecondition(f"snapshot {key!r} is a {rec.kind.value} snapshot; only active ones can be committed")
        usage = disk_usage(self._usage_dir(rec))
        path = self.snapshot_dir(rec.id)
        sealed = False
        try:
            with self._store.write() as tx:
                tx.commit(key, name, usage, labels)
                self._seal(path, Kind.COMMITTED)
                sealed = True
        except BaseException:
            if sealed:
                self._unseal(path)
            raise
        log.debug("%s: committed %r as %r (id %d)", self.name, key, name, rec.id)

    def mounts(self, key: str) -> list[Mount]:
        rec = self._get(key)
        if rec.kind == Kind.COMMITTED:
            raise FailedPrecondition(f"snapshot {key!r} is committed and cannot be mounted; make a view of it")
        return self._mounts(rec)

    def stat(self, key: str) -> Info:
        return self._get(key).info()

    def exists(self, key: str) -> bool:
        self._check_open()
        if not isinstance(key, str) or not key:
            return False
        with self._store.read() as tx:
            return tx.find(key) is not None

    def remove(self, key: str) -> None:
        self._check_open()
        with self._store.write() as tx:
            rec = tx.remove(key)
        # the record is gone for good; a failure from here on only leaves garbage that the next open sweeps
        self._discard(self.snapshot_dir(rec.id))
        log.debug("%s: removed %r (id %d)", self.name, key, rec.id)

    def usage(self, key: str) -> Usage:
        rec = self._get(key)
        if rec.kind == Kind.COMMITTED:
            return rec.usage
        return disk_usage(self._usage_dir(rec))

    def walk(self) -> Iterator[Info]:
        self._check_open()
        with self._store.read() as tx:
            records = tx.walk()
        for rec in records:
            yield rec.info()

    @contextmanager
    def apply_target(self, key: str) -> Iterator[tuple[Path, str, list[Path]]]:
        rec = self._get(key)
        if rec.kind != Kind.ACTIVE:
            raise FailedPrecondition(f"cannot apply a layer to {key!r}: it is a {rec.kind.value} snapshot")
        yield self._apply_target(rec)

    def diff_source(self, key: str) -> tuple[str, Path, list[Path]] | tuple[str, Path | None, Path]:
        rec = self._get(key)
        if rec.kind == Kind.VIEW:
            raise FailedPrecondition(f"cannot diff {key!r}: it is a view, which has no changes of its own")
        return self._diff_source(rec)

    def cleanup(self) -> None:
        """Sweep what crashes left: unrecorded snapshot dirs, staging dirs of dead processes, the trash."""
        self._check_open()
        with self._store.write() as tx:
            ids = tx.ids()
            for entry in self.snapshots_dir.iterdir():
                if not entry.name.isdigit() or int(entry.name) not in ids:
                    log.info("%s: removing orphaned snapshot directory %s", self.name, entry)
                    self._claim(entry)  # deleted with the rest of the trash below, outside the lock
        for entry in self.staging_dir.iterdir():
            pid_s, _, _ = entry.name.partition("-")
            if pid_s.isdigit() and (int(pid_s) == os.getpid() or _pid_alive(int(pid_s))):
                continue
            log.info("%s: removing abandoned staging directory %s", self.name, entry)
            self._discard(entry)
        for entry in self.trash_dir.iterdir():
            try:
                self._delete_tree(entry)
            except FileNotFoundError:
                pass
            except (OSError, FailedPrecondition) as e:
                if os.path.lexists(entry):
                    log.warning("cannot delete %s: %s", entry, e)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._store.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.root}>"


class FullTreeSnapshotter(DirectorySnapshotter):
    """Drivers whose every snapshot is a whole tree (vfs copies, btrfs subvolumes): layers unpack straight into
    the snapshot with whiteouts as deletions, and diffs compare a snapshot with its parent."""

    def _usage_dir(self, rec: Record) -> Path:
        return self.snapshot_dir(rec.id)

    def _apply_target(self, rec: Record) -> tuple[Path, str, list[Path]]:
        return self.snapshot_dir(rec.id), "delete", []

    def _diff_source(self, rec: Record) -> tuple[str, Path | None, Path]:
        parent = self.snapshot_dir(rec.parent_ids[0]) if rec.parent_ids else None
        return "dirs", parent, self.snapshot_dir(rec.id)
