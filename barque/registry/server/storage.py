"""The registry's storage interface: everything the HTTP layer may ask of where blobs and metadata live.

The handlers know nothing of paths or SQL; they call these operations (blocking ones from a thread, via
`app.run_blocking`). `barque.registry.server.local.LocalStorage` implements them on barque's ContentStore and a
SQLite database; an S3-compatible backend would implement the same class (its `BlobStat.url` lets the HTTP layer
redirect a blob GET instead of serving the bytes itself).

Errors are `RegistryError`s with the spec's codes (BLOB_UNKNOWN, MANIFEST_UNKNOWN, NAME_UNKNOWN, DIGEST_INVALID…):
these are facts about the repository, not about HTTP, so the storage is where they are known.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from barque.oci.digest import Digest
from barque.registry.server.manifests import ManifestFacts

__all__ = ["Storage", "BlobStat", "UploadState", "UploadWriter", "StoredManifest", "Referrer", "GCReport"]


@dataclass(frozen=True)
class BlobStat:
    digest: Digest
    size: int
    path: Path | None = None   # a local file to send, or
    url: str | None = None     # somewhere to redirect to


@dataclass(frozen=True)
class UploadState:
    id: str
    repo: str
    offset: int                # bytes received so far
    started: float


class UploadWriter(abc.ABC):
    """Appends to one upload session; only one writer per session at a time."""

    offset: int

    @abc.abstractmethod
    def write(self, data: bytes | memoryview) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...


@dataclass(frozen=True)
class StoredManifest:
    digest: Digest
    media_type: str
    size: int
    data: bytes | None = None  # None for a HEAD


@dataclass(frozen=True)
class Referrer:
    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None
    annotations: dict[str, str]

    def to_dict(self) -> dict:
        out: dict = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = self.annotations
        return out


@dataclass
class GCReport:
    manifests_deleted: list[str] = field(default_factory=list)   # "repo@digest"
    blobs_deleted: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    uploads_removed: int = 0
    blobs_kept_recent: int = 0   # unreferenced but inside the grace period

    def to_dict(self) -> dict:
        return {"manifests_deleted": self.manifests_deleted, "blobs_deleted": self.blobs_deleted,
                "bytes_freed": self.bytes_freed, "uploads_removed": self.uploads_removed,
                "blobs_kept_recent": self.blobs_kept_recent}


class Storage(abc.ABC):
    # ---- blobs
    @abc.abstractmethod
    def stat_blob(self, repo: str, digest: Digest, touch: bool = False) -> BlobStat:
        """The blob as visible in `repo` (BLOB_UNKNOWN otherwise). `touch` refreshes its last-used time, which
        protects it from garbage collection for the grace period (a HEAD before a push skips the upload)."""

    @abc.abstractmethod
    def delete_blob(self, repo: str, digest: Digest) -> None:
        """Unlink the blob from `repo`; its bytes go at the next garbage collection if nothing else uses them."""

    @abc.abstractmethod
    def mount_blob(self, repo: str, from_repo: str, digest: Digest) -> BlobStat | None:
        """Link a blob of `from_repo` into `repo` (refreshing it); None when `from_repo` does not have it."""

    @abc.abstractmethod
    def blob_repositories(self, digest: Digest, limit: int) -> list[str]:
        """Up to `limit` repositories holding the blob, in name order: the candidates of a mount without ``from``
        (the caller keeps those the client may pull)."""

    # ---- uploads
    @abc.abstractmethod
    def start_upload(self, repo: str) -> UploadState: ...

    @abc.abstractmethod
    def get_upload(self, repo: str, upload_id: str) -> UploadState:
        """BLOB_UPLOAD_UNKNOWN when there is no such session in `repo`."""

    @abc.abstractmethod
    def open_upload(self, repo: str, upload_id: str) -> UploadWriter: ...

    @abc.abstractmethod
    def finish_upload(self, repo: str, upload_id: str, digest: Digest) -> BlobStat:
        """Verify the session's bytes against `digest` and publish the blob in `repo`. DIGEST_INVALID (and the
        session discarded, nothing stored) on a mismatch."""

    @abc.abstractmethod
    def cancel_upload(self, repo: str, upload_id: str) -> None: ...

    def expire_uploads(self, expiry: float) -> int:
        """Remove sessions idle for more than `expiry` seconds; how many went. (Run periodically by `serve`.)"""
        return 0

    # ---- manifests and tags
    @abc.abstractmethod
    def get_manifest(self, repo: str, tag: str | None, digest: Digest | None, with_data: bool = True
                     ) -> StoredManifest: ...

    @abc.abstractmethod
    def put_manifest(self, repo: str, tags: Sequence[str], digest: Digest, data: bytes, facts: ManifestFacts
                     ) -> None:
        """Store a validated manifest (its digest already checked) and point every one of `tags` at it, all in one
        step. MANIFEST_BLOB_UNKNOWN when it names blobs or manifests `repo` does not have."""

    @abc.abstractmethod
    def delete_manifest(self, repo: str, digest: Digest) -> None:
        """The manifest and every tag pointing at it; MANIFEST_UNKNOWN when absent."""

    @abc.abstractmethod
    def delete_tag(self, repo: str, tag: str) -> None: ...

    @abc.abstractmethod
    def list_tags(self, repo: str, n: int | None, last: str | None) -> list[str]:
        """Sorted tags after `last`, at most n+1 of them (so the caller knows whether more follow)."""

    @abc.abstractmethod
    def list_repositories(self, n: int | None, last: str | None) -> list[str]: ...

    @abc.abstractmethod
    def referrers(self, repo: str, subject: Digest, artifact_type: str | None) -> list[Referrer]: ...

    # ---- maintenance
    @abc.abstractmethod
    def collect_garbage(self, grace: float, delete_untagged: bool = False, dry_run: bool = False,
                        upload_expiry: float | None = None) -> GCReport: ...

    def close(self) -> None:  # noqa: B027 - optional
        pass
