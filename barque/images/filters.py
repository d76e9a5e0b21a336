"""`--filter` for image listings, with Docker's keys: dangling, reference, label, before, since."""

from __future__ import annotations

import fnmatch
import json
from typing import Sequence

from barque.errors import InvalidArgument
from barque.filters import label_matches
from barque.images.store import Image
from barque.oci.reference import parse_reference

KEYS = ("dangling", "reference", "label", "before", "since")


def parse_filters(items: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep:
            raise InvalidArgument(f"bad format of filter (expected name=value): {item}")
        if key not in KEYS:
            raise InvalidArgument(f"invalid filter '{key}'")
        if key == "dangling" and value.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter 'dangling={value}'")
        out.setdefault(key, []).append(value)
    return out


def load_labels(engine, image: Image) -> dict[str, str]:
    config = json.loads(engine.content.read(image.id))
    return (config.get("config") or {}).get("Labels") or {}


def _reference_matches(image: Image, patterns: Sequence[str]) -> bool:
    for name in image.tags + image.digests:
        ref = parse_reference(name)
        familiar = ref.familiar()
        candidates = {familiar, ref.familiar_name, str(ref), ref.name}
        for pattern in patterns:
            if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
                return True
    return False


def apply_filters(engine, images: list[Image], filters: dict[str, list[str]]) -> list[Image]:
    result = images
    if "dangling" in filters:
        want = filters["dangling"][-1].lower() in ("true", "1")
        result = [i for i in result if (not i.tags) == want]
    if "reference" in filters:
        result = [i for i in result if _reference_matches(i, filters["reference"])]
    if "label" in filters:
        result = [i for i in result if label_matches(load_labels(engine, i), filters["label"])]
    for key in ("before", "since"):
        for value in filters.get(key, []):
            pivot = engine.images.resolve(value)
            if key == "before":
                result = [i for i in result if i.created < pivot.created]
            else:
                result = [i for i in result if i.created > pivot.created]
    return result
