"""`Storage` on the local filesystem: blobs in barque's ContentStore under the registry root, metadata in SQLite.

Layout of a registry root::

    blobs/sha256/<hex>, blobs/sha512/<hex>   the content store (manifests are blobs too)
    ingest/                                  the content store's temporary files
    uploads/<id>/data                        bytes of an upload session in progress
    registry.db                              repositories, blob links, manifests, tags, referrers, sessions
    token.key                                the token issuer's key (0600), when token auth is used

One rule makes garbage collection safe while serving: **a blob file is created (renamed into ``blobs/``) only inside
the write transaction that records it**, and the collector decides and deletes inside one write transaction too
(`barque.registry.server.gc`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Sequence

from barque.content.store import ContentStore
from barque.oci.digest import Digest
from barque.registry.server.db import Database
from barque.registry.server.errors import RegistryError
from barque.registry.server.manifests import ManifestFacts
from barque.registry.server.storage import (
    BlobStat, GCReport, Referrer, Storage, StoredManifest, UploadState, UploadWriter,
)

__all__ = ["LocalStorage"]


class _Hashing:
    """The running sha256 of an upload session, kept between its requests so completing needs no re-read."""

    def __init__(self) -> None:
        self.hasher = hashlib.sha256()
        self.offset = 0


class _FileUploadWriter(UploadWriter):
    def __init__(self, storage: "LocalStorage", upload_id: str, path: Path, hashing: _Hashing | None) -> None:
        self._storage = storage
        self._id = upload_id
        self._file = open(path, "ab", buffering=0)
        self.offset = self._file.seek(0, os.SEEK_END)
        # a hash that does not match the file (another process wrote, or we restarted) is dropped; completing
        # then re-reads the file
        self._hashing = hashing if hashing is not None and hashing.offset == self.offset else None

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        if self._hashing is not None:
            self._hashing.hasher.update(view)
        while view:
            n = self._file.write(view)
            view = view[n:]
        self.offset += len(data)
        if self._hashing is not None:
            self._hashing.offset = self.offset

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            self._storage._release(self._id, self._hashing)


class LocalStorage(Storage):
    def __init__(self, root: Path, max_blob_size: int = 0, max_upload_sessions: int = 0) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = ContentStore(self.root)
        self.uploads_dir = self.root / "uploads"
        self.uploads_dir.mkdir(exist_ok=True)
        self.db = Database(self.root / "registry.db")
        self.max_blob_size = max_blob_size
        self.max_upload_sessions = max_upload_sessions
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self._hashing: dict[str, _Hashing] = {}

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------------------------------------ blobs

    def _visible(self, c, repo: str, digest: Digest) -> int | None:
        row = c.execute("SELECT b.size FROM repo_blobs r JOIN blobs b ON b.digest = r.digest "
                        "WHERE r.repo = ? AND r.digest = ?", (repo, str(digest))).fetchone()
        if row is None or not self.store.exists(digest):
            return None
        return row[0]

    def stat_blob(self, repo: str, digest: Digest, touch: bool = False) -> BlobStat:
        if touch:
            with self.db.write() as c:
                size = self._visible(c, repo, digest)
                if size is not None:
                    c.execute("UPDATE blobs SET last_used = ? WHERE digest = ?", (time.time(), str(digest)))
        else:
            size = self._visible(self.db.conn(), repo, digest)
        if size is None:
            raise RegistryError("BLOB_UNKNOWN", str(digest))
        return BlobStat(digest, size, path=self.store.path(digest))

    def delete_blob(self, repo: str, digest: Digest) -> None:
        with self.db.write() as c:
            cur = c.execute("DELETE FROM repo_blobs WHERE repo = ? AND digest = ?", (repo, str(digest)))
            if cur.rowcount == 0:
                raise RegistryError("BLOB_UNKNOWN", str(digest))

    def mount_blob(self, repo: str, from_repo: str, digest: Digest) -> BlobStat | None:
        with self.db.write() as c:
            size = self._visible(c, from_repo, digest)
            if size is None:
                return None
            self._link(c, repo, digest, size)
        return BlobStat(digest, size, path=self.store.path(digest))

    def blob_repositories(self, digest: Digest, limit: int) -> list[str]:
        rows = self.db.conn().execute("SELECT repo FROM repo_blobs WHERE digest = ? ORDER BY repo LIMIT ?",
                                      (str(digest), limit)).fetchall()
        return [r[0] for r in rows]

    def _link(self, c, repo: str, digest: Digest, size: int) -> None:
        now = time.time()
        c.execute("INSERT INTO repositories (name, created) VALUES (?, ?) ON CONFLICT DO NOTHING", (repo, now))
        c.execute("INSERT INTO blobs (digest, size, last_used) VALUES (?, ?, ?) "
                  "ON CONFLICT (digest) DO UPDATE SET last_used = excluded.last_used", (str(digest), size, now))
        c.execute("INSERT INTO repo_blobs (repo, digest) VALUES (?, ?) ON CONFLICT DO NOTHING", (repo, str(digest)))

    # ---------------------------------------------------------------------------------------------- uploads

    def _upload_dir(self, upload_id: str) -> Path:
        return self.uploads_dir / upload_id

    def start_upload(self, repo: str) -> UploadState:
        upload_id = str(uuid.uuid4())
        d = self._upload_dir(upload_id)
        d.mkdir()
        (d / "data").touch()
        now = time.time()
        try:
            with self.db.write() as c:
                if self.max_upload_sessions:
                    (count,) = c.execute("SELECT COUNT(*) FROM uploads WHERE repo = ?", (repo,)).fetchone()
                    if count >= self.max_upload_sessions:
                        raise RegistryError("TOOMANYREQUESTS", f"{repo} has {count} upload sessions open, the limit "
                                            f"is {self.max_upload_sessions}: finish or cancel some",
                                            headers={"Retry-After": "60"})
                c.execute("INSERT INTO uploads (id, repo, started, updated) VALUES (?, ?, ?, ?)",
                          (upload_id, repo, now, now))
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        return UploadState(upload_id, repo, 0, now)

    def expire_uploads(self, expiry: float) -> int:
        """Remove upload sessions idle for more than `expiry` seconds (not one being written now), and upload
        directories without a session; returns how many sessions went."""
        from barque.registry.server.gc import _sweep_stray_uploads

        with self.db.write() as c:
            with self._lock:
                busy = set(self._busy)
            ids = [r[0] for r in c.execute("SELECT id FROM uploads WHERE updated < ?", (time.time() - expiry,))
                   if r[0] not in busy]
            c.executemany("DELETE FROM uploads WHERE id = ?", [(i,) for i in ids])
        with self._lock:
            for upload_id in ids:
                self._hashing.pop(upload_id, None)
        for upload_id in ids:
            shutil.rmtree(self._upload_dir(upload_id), ignore_errors=True)
        _sweep_stray_uploads(self, expiry)
        return len(ids)

    def get_upload(self, repo: str, upload_id: str) -> UploadState:
        row = self.db.conn().execute("SELECT started FROM uploads WHERE id = ? AND repo = ?",
                                     (upload_id, repo)).fetchone()
        if row is None:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", upload_id)
        try:
            offset = (self._upload_dir(upload_id) / "data").stat().st_size
        except FileNotFoundError:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", upload_id) from None
        return UploadState(upload_id, repo, offset, row[0])

    def open_upload(self, repo: str, upload_id: str) -> UploadWriter:
        self.get_upload(repo, upload_id)
        with self._lock:
            if upload_id in self._busy:
                raise RegistryError("BLOB_UPLOAD_INVALID", "another request is writing to this upload",
                                    status=409)
            self._busy.add(upload_id)
            hashing = self._hashing.pop(upload_id, None) or _Hashing()
        try:
            writer = _FileUploadWriter(self, upload_id, self._upload_dir(upload_id) / "data", hashing)
            self.db.conn().execute("UPDATE uploads SET updated = ? WHERE id = ?", (time.time(), upload_id))
        except BaseException:
            self._release(upload_id, None)
            raise
        if self.max_blob_size and writer.offset > self.max_blob_size:
            writer.close()
            raise RegistryError("SIZE_INVALID", f"blob larger than {self.max_blob_size} bytes", status=413)
        return writer

    def _release(self, upload_id: str, hashing: _Hashing | None) -> None:
        with self._lock:
            self._busy.discard(upload_id)
            if hashing is not None:
                self._hashing[upload_id] = hashing

    def _discard_upload(self, upload_id: str) -> None:
        with self.db.write() as c:
            c.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
        with self._lock:
            self._hashing.pop(upload_id, None)
        shutil.rmtree(self._upload_dir(upload_id), ignore_errors=True)

    def cancel_upload(self, repo: str, upload_id: str) -> None:
        self.get_upload(repo, upload_id)
        self._discard_upload(upload_id)

    def finish_upload(self, repo: str, upload_id: str, digest: Digest) -> BlobStat:
        state = self.get_upload(repo, upload_id)
        with self._lock:
            if upload_id in self._busy:
                raise RegistryError("BLOB_UPLOAD_INVALID", "another request is writing to this upload", status=409)
            self._busy.add(upload_id)
            hashing = self._hashing.pop(upload_id, None)
        try:
            data = self._upload_dir(upload_id) / "data"
            if hashing is not None and digest.algorithm == "sha256" and hashing.offset == state.offset:
                actual = Digest("sha256", hashing.hasher.hexdigest())
            else:
                actual = _hash_file(data, digest.algorithm)
            if actual != digest:
                self._discard_upload(upload_id)
                raise RegistryError("DIGEST_INVALID", f"content has digest {actual}, not {digest}")
            with open(data, "rb") as f:
                os.fsync(f.fileno())
            os.chmod(data, 0o444)
            target = self.store.path(digest)
            target.parent.mkdir(parents=True, exist_ok=True)
            with self.db.write() as c:
                # the rename happens under the write lock: see gc.py
                os.rename(data, target)
                self._link(c, repo, digest, state.offset)
                c.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
        finally:
            with self._lock:
                self._busy.discard(upload_id)
        shutil.rmtree(self._upload_dir(upload_id), ignore_errors=True)
        return BlobStat(digest, state.offset, path=target)

    # ------------------------------------------------------------------------------------------- manifests

    def _digest_for(self, c, repo: str, tag: str | None, digest: Digest | None) -> str:
        if tag is not None:
            row = c.execute("SELECT digest FROM tags WHERE repo = ? AND tag = ?", (repo, tag)).fetchone()
            if row is None:
                raise RegistryError("MANIFEST_UNKNOWN", f"{repo}:{tag}")
            return row[0]
        return str(digest)

    def get_manifest(self, repo: str, tag: str | None, digest: Digest | None, with_data: bool = True
                     ) -> StoredManifest:
        c = self.db.conn()
        d = self._digest_for(c, repo, tag, digest)
        row = c.execute("SELECT media_type, size FROM manifests WHERE repo = ? AND digest = ?", (repo, d)).fetchone()
        if row is None:
            raise RegistryError("MANIFEST_UNKNOWN", f"{repo}@{d}")
        parsed = Digest.parse(d)
        data = None
        if with_data:
            try:
                data = self.store.read(parsed, max_size=row[1])
            except Exception:
                raise RegistryError("MANIFEST_UNKNOWN", f"{repo}@{d}") from None
        return StoredManifest(parsed, row[0], row[1], data)

    def put_manifest(self, repo: str, tags: Sequence[str], digest: Digest, data: bytes, facts: ManifestFacts
                     ) -> None:
        d = str(digest)
        now = time.time()
        with self.db.write() as c:
            missing = [str(b) for b in facts.blobs if self._visible(c, repo, b) is None]
            missing += [str(m) for m in facts.manifests
                        if c.execute("SELECT 1 FROM manifests WHERE repo = ? AND digest = ?",
                                     (repo, str(m))).fetchone() is None]
            if missing:
                raise RegistryError("MANIFEST_BLOB_UNKNOWN", missing[0] if len(missing) == 1 else missing)
            # the manifest's own bytes become a blob under the write lock (gc.py)
            self.store.add(data, digest)
            self._link(c, repo, digest, len(data))
            c.execute("DELETE FROM manifest_refs WHERE repo = ? AND manifest = ?", (repo, d))
            c.executemany("INSERT OR IGNORE INTO manifest_refs (repo, manifest, target, kind) VALUES (?, ?, ?, ?)",
                          [(repo, d, str(b), "blob") for b in facts.blobs]
                          + [(repo, d, str(m), "manifest") for m in facts.manifests])
            c.execute("INSERT INTO manifests (repo, digest, media_type, size, artifact_type, annotations, subject, "
                      "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (repo, digest) DO UPDATE SET "
                      "media_type = excluded.media_type, created = excluded.created",
                      (repo, d, facts.media_type, len(data), facts.artifact_type,
                       json.dumps(facts.annotations), str(facts.subject) if facts.subject else None, now))
            c.executemany("INSERT INTO tags (repo, tag, digest, updated) VALUES (?, ?, ?, ?) ON CONFLICT (repo, tag) "
                          "DO UPDATE SET digest = excluded.digest, updated = excluded.updated",
                          [(repo, tag, d, now) for tag in tags])

    def delete_manifest(self, repo: str, digest: Digest) -> None:
        d = str(digest)
        with self.db.write() as c:
            cur = c.execute("DELETE FROM manifests WHERE repo = ? AND digest = ?", (repo, d))
            if cur.rowcount == 0:
                raise RegistryError("MANIFEST_UNKNOWN", f"{repo}@{d}")
            c.execute("DELETE FROM manifest_refs WHERE repo = ? AND manifest = ?", (repo, d))
            c.execute("DELETE FROM tags WHERE repo = ? AND digest = ?", (repo, d))

    def delete_tag(self, repo: str, tag: str) -> None:
        with self.db.write() as c:
            cur = c.execute("DELETE FROM tags WHERE repo = ? AND tag = ?", (repo, tag))
            if cur.rowcount == 0:
                raise RegistryError("MANIFEST_UNKNOWN", f"{repo}:{tag}")

    def list_tags(self, repo: str, n: int | None, last: str | None) -> list[str]:
        c = self.db.conn()
        if c.execute("SELECT 1 FROM repositories WHERE name = ?", (repo,)).fetchone() is None:
            raise RegistryError("NAME_UNKNOWN", repo)
        rows = c.execute("SELECT tag FROM tags WHERE repo = ? AND tag > ? ORDER BY tag LIMIT ?",
                         (repo, last or "", -1 if n is None else n + 1)).fetchall()
        return [r[0] for r in rows]

    def list_repositories(self, n: int | None, last: str | None) -> list[str]:
        rows = self.db.conn().execute(
            "SELECT name FROM repositories r WHERE name > ? AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo = r.name)"
            " ORDER BY name LIMIT ?", (last or "", -1 if n is None else n + 1)).fetchall()
        return [r[0] for r in rows]

    def referrers(self, repo: str, subject: Digest, artifact_type: str | None) -> list[Referrer]:
        q = "SELECT media_type, digest, size, artifact_type, annotations FROM manifests WHERE repo = ? AND subject = ?"
        args: list = [repo, str(subject)]
        if artifact_type is not None:
            q += " AND artifact_type = ?"
            args.append(artifact_type)
        rows = self.db.conn().execute(q + " ORDER BY digest", args).fetchall()
        return [Referrer(r[0], Digest.parse(r[1]), r[2], r[3], json.loads(r[4])) for r in rows]

    # --------------------------------------------------------------------------------------------- maintenance

    def collect_garbage(self, grace: float, delete_untagged: bool = False, dry_run: bool = False,
                        upload_expiry: float | None = None) -> GCReport:
        from barque.registry.server.gc import collect

        return collect(self, grace, delete_untagged, dry_run, upload_expiry)


def _hash_file(path: Path, algorithm: str) -> Digest:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return Digest(algorithm, h.hexdigest())
