"""Pulling an image another command needs (`run`, `create`, `build`), with Docker's words for it.

Kept apart from `pull` so those commands import nothing of the registry client while the image is present.
"""

from __future__ import annotations

from typing import TextIO

from barque.errors import NotFound

__all__ = ["ensure_image", "POLICIES"]

POLICIES = ("always", "missing", "never")


def ensure_image(engine, image: str, out: TextIO, policy: str = "missing", platform: str | None = None) -> None:
    """Make sure `image` is in the store: pull it when missing (or always), as `docker run --pull` does. Progress
    goes to `out` (stderr for run and create, as Docker writes it)."""
    from barque.errors import InvalidArgument

    if policy not in POLICIES:
        raise InvalidArgument(f"invalid pull option: '{policy}': must be one of \"always\", \"missing\" or "
                              f"\"never\"")
    if policy != "always":
        try:
            engine.images.lookup(image)
            return
        except NotFound:
            if policy == "never" or not _pullable(image):
                raise
        from barque.oci.reference import parse_reference

        out.write(f"Unable to find image '{parse_reference(image).tag_or_latest().familiar()}' locally\n")
        out.flush()
    from barque.oci.reference import parse_reference

    ref = parse_reference(image)
    pull_image(engine, str(ref if ref.digest is not None else ref.tag_or_latest()), out, platform)


def _pullable(image: str) -> bool:
    """A name (not an ID) that a registry could hold."""
    from barque.errors import InvalidArgument
    from barque.oci.reference import parse_reference

    if image.startswith("sha256:"):
        return False
    try:
        parse_reference(image)
    except InvalidArgument:
        return False
    return True


def pull_image(engine, image: str, out: TextIO, platform: str | None = None) -> None:
    from barque.registry.client.progress import Progress, make_progress
    from barque.registry.client.pull import pull

    inner = make_progress(out)

    class _NoResult(Progress):
        """Docker's run shows the pull's story but not the final reference line of `docker pull`."""

        def message(self, text: str) -> None:
            inner.message(text)

        def layer(self, ident: str, status: str) -> None:
            inner.layer(ident, status)

        def bytes(self, ident: str, action: str, done: int, total: int) -> None:
            inner.bytes(ident, action, done, total)

        def warning(self, text: str) -> None:
            inner.warning(text)

    try:
        pull(engine, image, _NoResult(), platform=platform)
    finally:
        inner.close()
