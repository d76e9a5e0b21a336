"""Online garbage collection: sweep what no tag or manifest needs, while the registry keeps serving.

Mark: the roots are every manifest (or, with ``delete_untagged``, every tagged manifest plus manifests younger than
the grace period); from a marked manifest, its index entries (child manifests) and its referrers (manifests whose
``subject`` it is) are marked too. The blobs kept are those marked manifests reference (config, layers) and the
manifests' own bytes. Sweep: unmarked manifests, then blobs that are unreferenced **and** not used within the grace
period, then upload sessions idle longer than their expiry, then stray files of the content store (left by a crash
between a rename and its commit) older than the grace period.

Why a concurrent push can never lose a blob
-------------------------------------------
A push is: blobs uploaded (or found by HEAD, or mounted), then the manifest PUT that references them. Between the
two, a blob is referenced by nothing, and that is the window a collector could wrongly delete it in. Three rules
close it:

1. Every way a push learns "this blob is there" writes the blob's ``last_used`` time in the same SQLite database
   the collector reads: completing an upload, a HEAD that answers 200 (`Storage.stat_blob(touch=True)`), a
   cross-repository mount. So a blob a push relies on was used at most (push duration) ago.
2. A blob file appears in ``blobs/`` only inside the write transaction that records it (`LocalStorage.finish_upload`
   renames the upload's file there under the lock; `put_manifest` writes the manifest's bytes under the lock).
3. The collector computes its marks, chooses its victims and unlinks their files inside **one** write transaction
   (``BEGIN IMMEDIATE``): SQLite's write lock, which every other writer — server threads and other processes — waits
   for.

So any write of a push is either wholly before the collection or wholly after it. Before: the collection sees the
fresh ``last_used`` (rule 1) and spares the blob for the grace period (default one hour; a push whose manifest
arrives later than that after its last blob HEAD is the only loser, and its manifest PUT then fails cleanly with
MANIFEST_BLOB_UNKNOWN rather than producing a broken image — the client re-pushes). After: the collection has
already deleted whatever it chose, and the upload's rename (rule 2) re-creates the file with its row, the HEAD
finds no row and answers 404 (so the client uploads again), the mount finds nothing (so it falls back to an
upload). A manifest PUT checks, inside its own write transaction, that every blob it names is present; once it
commits, the blobs are referenced and marked by every later collection. No interleaving leaves a manifest naming a
deleted blob.

Docker's distribution, by contrast, needs the registry stopped or read-only while it collects: its mark and sweep
read and delete on the filesystem with no lock shared with the push path.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from typing import TYPE_CHECKING

from barque.oci.digest import Digest
from barque.registry.server.storage import GCReport

if TYPE_CHECKING:
    from barque.registry.server.local import LocalStorage

__all__ = ["collect", "DEFAULT_GRACE", "DEFAULT_UPLOAD_EXPIRY"]

log = logging.getLogger(__name__)

DEFAULT_GRACE = 3600.0
DEFAULT_UPLOAD_EXPIRY = 24 * 3600.0


def collect(storage: "LocalStorage", grace: float = DEFAULT_GRACE, delete_untagged: bool = False,
            dry_run: bool = False, upload_expiry: float | None = None) -> GCReport:
    report = GCReport()
    expired_uploads: list[str] = []
    with storage.db.write() as c:
        now = time.time()
        cutoff = now - grace
        manifests = {(r, d): created for r, d, created in c.execute("SELECT repo, digest, created FROM manifests")}
        if delete_untagged:
            marked = {(r, d) for r, d in c.execute("SELECT repo, digest FROM tags")} & manifests.keys()
            marked |= {k for k, created in manifests.items() if created >= cutoff}
        else:
            marked = set(manifests)
        children: dict[tuple[str, str], list[str]] = {}
        blob_refs: dict[tuple[str, str], list[str]] = {}
        for repo, manifest, target, kind in c.execute("SELECT repo, manifest, target, kind FROM manifest_refs"):
            (children if kind == "manifest" else blob_refs).setdefault((repo, manifest), []).append(target)
        referrers: dict[tuple[str, str], list[str]] = {}
        for repo, digest, subject in c.execute("SELECT repo, digest, subject FROM manifests WHERE subject IS NOT NULL"):
            referrers.setdefault((repo, subject), []).append(digest)
        todo = list(marked)
        while todo:
            repo, digest = todo.pop()
            for nxt in children.get((repo, digest), []) + referrers.get((repo, digest), []):
                if (repo, nxt) in manifests and (repo, nxt) not in marked:
                    marked.add((repo, nxt))
                    todo.append((repo, nxt))

        doomed_manifests = sorted(set(manifests) - marked)
        report.manifests_deleted = [f"{r}@{d}" for r, d in doomed_manifests]
        keep_blobs = {d for _, d in marked}
        for key in marked:
            keep_blobs.update(blob_refs.get(key, []))

        doomed_blobs: list[tuple[str, int]] = []
        for digest, size, last_used in c.execute("SELECT digest, size, last_used FROM blobs"):
            if digest in keep_blobs:
                continue
            if last_used >= cutoff:
                report.blobs_kept_recent += 1
                continue
            doomed_blobs.append((digest, size))
        report.blobs_deleted = [d for d, _ in doomed_blobs]
        report.bytes_freed = sum(s for _, s in doomed_blobs)

        if upload_expiry is not None:
            expired_uploads = [r[0] for r in c.execute("SELECT id FROM uploads WHERE updated < ?",
                                                       (now - upload_expiry,))]
            report.uploads_removed = len(expired_uploads)
        if dry_run:
            c.execute("ROLLBACK")
            c.execute("BEGIN")  # the context manager commits an empty transaction
            return report

        for repo, digest in doomed_manifests:
            c.execute("DELETE FROM manifests WHERE repo = ? AND digest = ?", (repo, digest))
            c.execute("DELETE FROM manifest_refs WHERE repo = ? AND manifest = ?", (repo, digest))
            c.execute("DELETE FROM tags WHERE repo = ? AND digest = ?", (repo, digest))
        for digest, _ in doomed_blobs:
            c.execute("DELETE FROM blobs WHERE digest = ?", (digest,))
            c.execute("DELETE FROM repo_blobs WHERE digest = ?", (digest,))
            try:
                storage.store.delete(Digest.parse(digest))
            except Exception as e:  # noqa: BLE001 - a missing file is already what we want
                log.debug("blob %s: %s", digest, e)
        for upload_id in expired_uploads:
            c.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
        # stray files: in blobs/ without a row (a crash between rename and commit), past the grace period
        known = {r[0] for r in c.execute("SELECT digest FROM blobs")}
        for info in storage.store.walk():
            if str(info.digest) not in known and info.created < cutoff:
                storage.store.delete(info.digest)
                report.blobs_deleted.append(str(info.digest))
                report.bytes_freed += info.size
    for upload_id in expired_uploads:
        shutil.rmtree(storage.uploads_dir / upload_id, ignore_errors=True)
    if upload_expiry is not None:
        _sweep_stray_uploads(storage, upload_expiry)
        storage.store.sweep_ingest(older_than=max(grace, 3600.0))
    return report


def _sweep_stray_uploads(storage: "LocalStorage", expiry: float) -> None:
    """Upload directories whose session row is gone (a crash mid-cancel) and that are older than the expiry."""
    known = {r[0] for r in storage.db.conn().execute("SELECT id FROM uploads")}
    cutoff = time.time() - max(expiry, 60.0)  # never a directory a session is being created in
    for entry in os.scandir(storage.uploads_dir):
        try:
            if entry.name not in known and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry.path, ignore_errors=True)
        except FileNotFoundError:
            pass
