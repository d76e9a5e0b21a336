"""A writable root filesystem for one build step: an active snapshot over the state's top layer, mounted under the
run root. What the step changed in it becomes the next layer — packed as `commit` packs a container's changes
(sorted entries, whole-second mtimes clamped to the build's epoch, no host user names), stored, and unpacked as that
layer's chain snapshot like any pulled layer, so a built image is on disk exactly what its layers say.

The snapshot and its mount never outlive the step: they go on success, on failure and on Ctrl-C. A build that is
SIGKILLed leaves them behind; garbage collection (which a build's shared lock keeps out while it runs) takes them.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from barque.images.unpack import LayerRef

__all__ = ["WorkTree", "SNAPSHOT_PREFIX", "run_dir"]

log = logging.getLogger(__name__)

SNAPSHOT_PREFIX = "build-"


def run_dir(engine) -> Path:
    return Path(engine.settings.run_root) / "build"


class WorkTree:
    """`view=True`: a read-only look at the state's root filesystem (COPY --from, RUN --mount from=)."""

    def __init__(self, engine, state, view: bool = False) -> None:
        self.engine = engine
        self.state = state
        self.view = view
        self.id = os.urandom(32).hex()
        self.key = SNAPSHOT_PREFIX + self.id
        self.dir = run_dir(engine) / self.id
        self.rootfs = self.dir / "rootfs"
        self._mounted = False

    def __enter__(self) -> "WorkTree":
        from barque.snapshot import mount_all

        self.rootfs.mkdir(parents=True, mode=0o711)
        try:
            chain = self.state.chain_id
            if self.view and chain is None:
                return self  # an empty root filesystem: the empty directory is the view
            snap = self.engine.snapshotter
            if chain is not None and not snap.exists(chain):
                from barque.images.unpack import unpack

                unpack(self.engine.content, snap, self.engine.db, self.state.layers)
            plans = snap.view(self.key, chain) if self.view else snap.prepare(self.key, chain)
            mount_all(plans, self.rootfs)
            self._mounted = True
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def unmount(self) -> None:
        if self._mounted:
            from barque.container.exit import unmount_rootfs

            unmount_rootfs(str(self.rootfs))
            self._mounted = False

    def close(self) -> None:
        try:
            self.unmount()
        finally:
            if self.engine.snapshotter.exists(self.key):
                self.engine.snapshotter.remove(self.key)
            shutil.rmtree(self.dir, ignore_errors=True)

    def layer(self, epoch: int) -> LayerRef | None:
        """The step's changes as a stored, unpacked layer; None when it changed nothing."""
        from barque.container.changes import snapshot_changes
        from barque.errors import InvalidArgument
        from barque.images.unpack import unpack
        from barque.layers import pack_layer

        self.unmount()
        changes = snapshot_changes(self.engine.snapshotter, self.key)
        if not changes:
            return None
        with self.engine.content.writer() as w:
            packed = pack_layer(changes, w, "gzip", source_date_epoch=epoch)
            info = w.commit()
        if info.digest != packed.digest:  # pragma: no cover - the writer digests what pack_layer digested
            raise InvalidArgument(f"build: layer written as {info.digest}, packed as {packed.digest}")
        ref = LayerRef(packed.digest, packed.media_type, packed.diff_id)
        unpack(self.engine.content, self.engine.snapshotter, self.engine.db, [*self.state.layers, ref])
        return ref


def sweep(engine) -> None:
    """Snapshots and mounts of builds that were killed (call under the store's exclusive lock)."""
    from barque.container.exit import unmount_rootfs

    from barque.build.run import force_delete
    from barque.runtime.state import StateStore

    store = StateStore(engine.runtime_root)
    top = run_dir(engine)
    if top.is_dir():
        for d in top.iterdir():
            force_delete(store, d.name)  # a RUN's command that outlived its build
            try:
                unmount_rootfs(str(d / "rootfs"))
            except OSError as e:  # pragma: no cover - reported, the rest goes on
                log.warning("cannot unmount a killed build's root filesystem %s: %s", d, e)
                continue
            shutil.rmtree(d, ignore_errors=True)
    for info in list(engine.snapshotter.walk()):
        if info.name.startswith(SNAPSHOT_PREFIX):
            try:
                engine.snapshotter.remove(info.name)
            except Exception as e:  # noqa: BLE001 - the rest goes on
                log.warning("cannot remove a killed build's snapshot %s: %s", info.name, e)
