"""Image records and their names (tags and repository digests), resolved as Docker resolves them."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from barque.errors import Conflict, InvalidArgument, NotFound
from barque.metadata import Database
from barque.oci.digest import Digest
from barque.oci.reference import Reference, parse_reference

_HEX = re.compile(r"^(sha256:)?[0-9a-f]{1,64}$")


@dataclass(frozen=True)
class Image:
    id: Digest                     # config digest
    target_digest: Digest          # manifest digest
    target_media_type: str
    target_size: int
    created: str
    size: int
    parent: str = ""
    added: float = 0.0
    tags: tuple[str, ...] = field(default=())      # normalised "docker.io/library/busybox:latest"
    digests: tuple[str, ...] = field(default=())   # normalised "docker.io/library/busybox@sha256:..."

    @property
    def short_id(self) -> str:
        return self.id.short


class ImageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- reading -------------------------------------------------------------------------------------------------
    def _build(self, row) -> Image:
        image_id = row["id"]
        tags = tuple(r["name"] for r in self.db.query("SELECT name FROM tags WHERE image_id=? ORDER BY name", (image_id,)))
        digests = tuple(
            r["name"] for r in self.db.query("SELECT name FROM digests WHERE image_id=? ORDER BY name", (image_id,))
        )
        return Image(
            id=Digest.parse(image_id),
            target_digest=Digest.parse(row["target_digest"]),
            target_media_type=row["target_media_type"],
            target_size=row["target_size"],
            created=row["created"],
            size=row["size"],
            parent=row["parent"],
            added=row["added"],
            tags=tags,
            digests=digests,
        )

    def by_id(self, image_id: Digest | str) -> Image:
        rows = self.db.query("SELECT * FROM images WHERE id=?", (str(image_id),))
        if not rows:
            raise NotFound(f"No such image: {image_id}")
        return self._build(rows[0])

    def list(self) -> list[Image]:
        return [self._build(r) for r in self.db.query("SELECT * FROM images ORDER BY added DESC, id")]

    def resolve(self, text: str) -> Image:
        """Find an image by full ID, reference (tag or digest) or unique ID prefix, in Docker's order."""
        return self.lookup(text)[0]

    def lookup(self, text: str) -> tuple[Image, Reference | None]:
        """Like `resolve`, also saying which name matched (None when it matched by ID)."""
        if not text:
            raise InvalidArgument("image name or ID must not be empty")
        if text.startswith("sha256:") and len(text) == 71:
            return self.by_id(Digest.parse(text)), None
        ref: Reference | None = None
        try:
            ref = parse_reference(text)
        except InvalidArgument:
            if not _HEX.match(text):
                raise
        if ref is not None:
            found = self._by_reference(ref)
            if found is not None:
                return found, ref
        if _HEX.match(text):
            prefix = text.removeprefix("sha256:")
            rows = self.db.query("SELECT * FROM images WHERE id LIKE ?", (f"sha256:{prefix}%",))
            if len(rows) == 1:
                return self._build(rows[0]), None
            if len(rows) > 1:
                raise Conflict(f"multiple IDs found with provided prefix: {prefix}")
        raise NotFound(f"No such image: {_missing_name(text, ref)}")

    def _by_reference(self, ref: Reference) -> Image | None:
        if ref.digest is not None:
            rows = self.db.query("SELECT image_id FROM digests WHERE name=?", (f"{ref.name}@{ref.digest}",))
            if not rows:
                # Docker also accepts name@<image id>; and a digest present on a tagged image
                rows = self.db.query("SELECT id AS image_id FROM images WHERE id=?", (str(ref.digest),))
                if rows and not self._has_name(rows[0]["image_id"], ref.name):
                    rows = []
        else:
            rows = self.db.query("SELECT image_id FROM tags WHERE name=?", (str(ref.tag_or_latest()),))
        if not rows:
            return None
        return self.by_id(rows[0]["image_id"])

    def _has_name(self, image_id: str, name: str) -> bool:
        return bool(
            self.db.query("SELECT 1 FROM tags WHERE image_id=? AND name LIKE ?", (image_id, f"{name}:%"))
            or self.db.query("SELECT 1 FROM digests WHERE image_id=? AND name LIKE ?", (image_id, f"{name}@%"))
        )

    def tag_owner(self, ref: Reference) -> Digest | None:
        rows = self.db.query("SELECT image_id FROM tags WHERE name=?", (str(ref.tag_or_latest()),))
        return Digest.parse(rows[0]["image_id"]) if rows else None

    def containers_using(self, image_id: Digest) -> list[str]:
        return [r["id"] for r in self.db.query("SELECT id FROM containers WHERE image_id=?", (str(image_id),))]

    def children(self, image_id: Digest) -> list[str]:
        return [r["id"] for r in self.db.query("SELECT id FROM images WHERE parent=?", (str(image_id),))]

    # ---- writing (call inside db.transaction()) ----------------------------------------------------------------
    def put(self, conn, image: Image) -> None:
        conn.execute(
            "INSERT INTO images(id, target_digest, target_media_type, target_size, created, size, parent, added)"
            " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET target_digest=excluded.target_digest,"
            " target_media_type=excluded.target_media_type, target_size=excluded.target_size, size=excluded.size,"
            " parent=CASE WHEN images.parent='' THEN excluded.parent ELSE images.parent END",
            (
                str(image.id), str(image.target_digest), image.target_media_type, image.target_size,
                image.created, image.size, image.parent, image.added or time.time(),
            ),
        )

    @staticmethod
    def set_tag(conn, ref: Reference, image_id: Digest) -> Digest | None:
        """Point `ref` (tag added when missing) at the image; returns the image the tag moved away from, if any."""
        name = str(ref.tag_or_latest()) if ref.digest is None else None
        if name is None:
            conn.execute(
                "INSERT INTO digests(name, image_id) VALUES (?,?) ON CONFLICT(name) DO UPDATE SET image_id=excluded.image_id",
                (f"{ref.name}@{ref.digest}", str(image_id)),
            )
            return None
        row = conn.execute("SELECT image_id FROM tags WHERE name=?", (name,)).fetchone()
        conn.execute(
            "INSERT INTO tags(name, image_id) VALUES (?,?) ON CONFLICT(name) DO UPDATE SET image_id=excluded.image_id",
            (name, str(image_id)),
        )
        if row and row["image_id"] != str(image_id):
            return Digest.parse(row["image_id"])
        return None

    @staticmethod
    def remove_name(conn, name: str) -> None:
        conn.execute("DELETE FROM tags WHERE name=?", (name,))
        conn.execute("DELETE FROM digests WHERE name=?", (name,))

    @staticmethod
    def delete(conn, image_id: Digest) -> None:
        conn.execute("DELETE FROM images WHERE id=?", (str(image_id),))


def _missing_name(text: str, ref: Reference | None) -> str:
    if ref is None or ref.digest is not None:
        return text
    return ref.tag_or_latest().familiar()
