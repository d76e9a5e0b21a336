"""Docker's image events in barque's event log (barque.container.events): tag, untag, delete, import, load, save,
pull and push, with dockerd's actors and attributes — the image ID (a reference for pull and push) and `name`, plus
the image's labels while it still exists."""

from __future__ import annotations

import logging

__all__ = ["image_event"]

log = logging.getLogger(__name__)


def image_event(engine, action: str, actor_id: str, name: str, image=None) -> None:
    """Record one image event; `image` (an Image still in the store) lends its labels. Never raises: the event
    describes what has already happened."""
    from barque.container.events import record

    attrs: dict[str, str] = {}
    if image is not None:
        try:
            from barque.images.filters import load_labels

            attrs.update({str(k): str(v) for k, v in load_labels(engine, image).items()})
        except Exception as e:  # noqa: BLE001 - labels are a detail of the event
            log.debug("labels of %s for its %s event: %s", actor_id, action, e)
    attrs["name"] = name
    try:
        record(engine.settings.root, "image", action, actor_id, attrs)
    except Exception as e:  # noqa: BLE001 - see the docstring
        log.warning("image event %s %s not recorded: %s", action, actor_id, e)
