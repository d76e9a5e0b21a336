"""`tag`: one more name for an image (Docker's rules: the source by name or ID, never a digest as the new name)."""

from __future__ import annotations

from barque.errors import InvalidArgument
from barque.images.store import Image
from barque.oci.reference import Reference, parse_reference

__all__ = ["tag_image"]


def tag_image(engine, source: str, target: Reference | str) -> Image:
    """Point `target` (a tag; `latest` when it has none) at the image `source` names; returns that image. An unknown
    source is reported before a bad target, as Docker does."""
    image = engine.images.resolve(source)
    ref = parse_reference(target) if isinstance(target, str) else target
    if ref.digest is not None:
        raise InvalidArgument("refusing to create a tag with a digest reference")
    from barque.images.events import image_event

    with engine.db.transaction() as conn:
        engine.images.set_tag(conn, ref, image.id)
    image_event(engine, "tag", str(image.id), ref.familiar(), image)
    return image
