"""Reading the image store the way both edges (the CLI and the API) show it: which images a listing holds (Docker's
filters, and its rule that untagged parents of other images are hidden unless all are asked for), an image's
GraphDriver section, and the layer sizes other images share."""

from __future__ import annotations

import json

from barque.images.store import Image

__all__ = ["select_images", "graph_driver", "shared_sizes", "name_matches"]


def select_images(engine, filters: dict[str, list[str]], all_: bool = False) -> list[Image]:
    """The images a listing shows, newest first; `filters` as `barque.images.filters.parse_filters` makes them."""
    from barque.images.filters import apply_filters

    every = engine.images.list()
    found = apply_filters(engine, every, filters)
    if not all_:
        # intermediate images (untagged parents of other images) are hidden, as Docker does
        parents = {img.parent for img in every if img.parent}
        found = [i for i in found if i.tags or str(i.id) not in parents]
    return found


def graph_driver(engine, image: Image) -> dict:
    """`GraphDriver` of an image's inspect: the storage driver and what it says of the image's top layer."""
    from barque.images.unpack import chain_ids
    from barque.oci.digest import Digest

    config = json.loads(engine.content.read(image.id))
    chains = chain_ids([Digest.parse(d) for d in config["rootfs"]["diff_ids"]])
    data = None
    describe = getattr(engine.snapshotter, "describe", None)
    if chains and describe is not None:
        data = describe(str(chains[-1]))
    return {"Data": data, "Name": engine.driver_name}


def shared_sizes(engine, images: list[Image]) -> dict[str, int]:
    """Image ID → the bytes of its layers that at least one other image also uses (Docker's SharedSize)."""
    from barque.images.unpack import chain_ids, layer_records
    from barque.oci.digest import Digest

    chains_of: dict[str, list[str]] = {}
    users: dict[str, int] = {}
    for image in engine.images.list():
        config = json.loads(engine.content.read(image.id))
        chains = [str(c) for c in chain_ids([Digest.parse(d) for d in (config.get("rootfs") or {}).get("diff_ids")
                                             or []])]
        chains_of[str(image.id)] = chains
        for c in set(chains):
            users[c] = users.get(c, 0) + 1
    shared = sorted({c for c, n in users.items() if n > 1})
    records = layer_records(engine.db, [Digest.parse(c) for c in shared])
    return {str(i.id): sum(records[c].size for c in set(chains_of.get(str(i.id), [])) if c in records)
            for i in images}


def name_matches(name: str, patterns) -> bool:
    """Whether an image's name (a stored tag or digest reference) matches one of a `reference` filter's patterns,
    as the filter itself matches (the familiar form, with or without its tag, or the full name)."""
    import fnmatch

    from barque.oci.reference import parse_reference

    ref = parse_reference(name)
    candidates = {ref.familiar(), ref.familiar_name, str(ref), ref.name}
    return any(fnmatch.fnmatchcase(c, p) for p in patterns for c in candidates)
