"""`rmi` and `image prune`, with Docker's rules for untagging versus deleting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from barque.errors import Conflict
from barque.images.gc import GCResult, collect
from barque.images.store import Image
from barque.oci.reference import parse_reference


@dataclass
class RemoveReport:
    untagged: list[str] = field(default_factory=list)   # familiar names, as Docker prints them
    deleted: list[str] = field(default_factory=list)    # image IDs, then removed layer chain IDs
    reclaimed: int = 0

    def lines(self) -> list[str]:
        return [f"Untagged: {n}" for n in self.untagged] + [f"Deleted: {d}" for d in self.deleted]


def _familiar(name: str) -> str:
    return parse_reference(name).familiar()


def _repos(image: Image) -> set[str]:
    names = [n.rsplit(":", 1)[0] for n in image.tags] + [n.split("@", 1)[0] for n in image.digests]
    return set(names)


def _orphaned_digests(repo: str, remaining: Sequence[str]) -> list[str]:
    """Docker's rule: once a repository's last tag is removed, its digest references (`repo@sha256:…`, recorded by
    pull and push) go with it."""
    if any(n.rsplit(":", 1)[0] == repo for n in remaining if "@" not in n):
        return []
    return [n for n in remaining if "@" in n and n.split("@", 1)[0] == repo]


def _single_reference(names: Sequence[str]) -> bool:
    """Docker's isSingleReference: every name is of one repository and at most one is a tag (a container using
    such an image blocks untagging it without --force)."""
    tags = [n for n in names if "@" not in n]
    repos = {n.split("@", 1)[0] if "@" in n else n.rsplit(":", 1)[0] for n in names}
    return bool(names) and len(tags) <= 1 and len(repos) == 1


def remove_image(engine, text: str, force: bool = False, prune_layers: bool = True) -> RemoveReport:
    """Docker's image delete: a reference untags, and deletes the image once no name is left; an ID deletes.
    Records Docker's events: `untag` for each name removed, `delete` for the image."""
    image, ref = engine.images.lookup(text)
    report = _remove(engine, image, ref, text, force, prune_layers)
    _events(engine, image, report)
    return report


def _events(engine, image: Image, report: RemoveReport) -> None:
    from barque.images.events import image_event

    for _ in report.untagged:
        image_event(engine, "untag", str(image.id), str(image.id), image)
    if str(image.id) in report.deleted:
        image_event(engine, "delete", str(image.id), str(image.id))


def _remove(engine, image: Image, ref, text: str, force: bool, prune_layers: bool) -> RemoveReport:
    report = RemoveReport()
    users = engine.images.containers_using(image.id)

    if ref is not None:
        name = f"{ref.name}@{ref.digest}" if ref.digest else str(ref.tag_or_latest())
        names = list(image.tags + image.digests)
        remaining = [n for n in names if n != name]
        cleared = [] if ref.digest else _orphaned_digests(ref.name, remaining)
        remaining = [n for n in remaining if n not in cleared]
        if not users or force or not _single_reference(names):
            with engine.db.transaction() as conn:
                for n in [name, *cleared]:
                    engine.images.remove_name(conn, n)
            report.untagged.extend(_familiar(n) for n in [name, *cleared])
            if remaining or users:
                return report
        else:
            raise Conflict(f'conflict: unable to remove repository reference "{text}" (must force) - container '
                           f"{users[0][:12]} is using its referenced image {image.short_id}")
    else:
        if len(_repos(image)) > 1 and not force:
            raise Conflict(f"conflict: unable to delete {image.short_id} (must be forced) - image is referenced in "
                           "multiple repositories")
        if users and not force:
            raise Conflict(f"conflict: unable to delete {image.short_id} (must be forced) - image is being used by "
                           f"stopped container {users[0][:12]}")
        if users:
            # forced while a container uses it: Docker drops the names but keeps the image for the container
            with engine.db.transaction() as conn:
                for n in image.tags + image.digests:
                    engine.images.remove_name(conn, n)
            report.untagged.extend(_familiar(n) for n in image.tags + image.digests)
            return report
        report.untagged.extend(_familiar(n) for n in image.tags + image.digests)

    if engine.images.children(image.id):
        raise Conflict(f"conflict: unable to delete {image.short_id} (cannot be forced) - image has dependent child "
                       "images")
    with engine.db.transaction() as conn:
        engine.images.delete(conn, image.id)
    report.deleted.append(str(image.id))
    if prune_layers:
        gc = collect(engine)
        report.deleted.extend(gc.layers_removed)
        report.reclaimed = gc.layer_bytes_removed
    return report


def prune_images(engine, all_images: bool = False, label_filters: Sequence[str] = (), *,
                 until: float | None = None, label_not: Sequence[str] = ()) -> tuple[RemoveReport, GCResult]:
    """`image prune`: dangling images (or, with -a, every image no container uses); Docker's prune filters narrow
    it: `until` (only images created before that time), `label` (all must match), `label!` (none may match)."""
    from barque.filters import label_matches
    from barque.images.filters import load_labels
    from barque.oci.times import parse_time

    report = RemoveReport()
    for image in engine.images.list():
        if engine.images.containers_using(image.id):
            continue
        if not all_images and image.tags:
            continue
        if until is not None and (parse_time(image.created) or 0) >= until:
            continue
        if label_filters or label_not:
            labels = load_labels(engine, image)
            if not label_matches(labels, label_filters):
                continue
            if any(label_matches(labels, [spec]) for spec in label_not):
                continue
        if engine.images.children(image.id):
            continue
        with engine.db.transaction() as conn:
            engine.images.delete(conn, image.id)
        one = RemoveReport([_familiar(n) for n in image.tags + image.digests], [str(image.id)])
        _events(engine, image, one)
        report.untagged.extend(one.untagged)
        report.deleted.extend(one.deleted)
    gc = collect(engine)
    report.deleted.extend(gc.layers_removed)
    report.reclaimed = gc.layer_bytes_removed
    return report, gc
