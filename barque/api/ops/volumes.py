"""Volume operations of the API (they change the store and the disk, so they run in a zygote child): create,
remove, prune — the local driver's VolumeStore, whose messages are dockerd's."""

from __future__ import annotations

from barque.api.zygote import op


@op("volume.create")
def create(engine, args, chan):
    return engine.volumes.create(args.get("name") or None, driver=args.get("driver") or "local",
                                 labels=args.get("labels"), options=args.get("options"))


@op("volume.remove")
def remove(engine, args, chan):
    engine.volumes.remove(args["name"], force=bool(args.get("force")))
    return None


@op("volume.prune")
def prune(engine, args, chan):
    names, reclaimed = engine.volumes.prune(all=bool(args.get("all")), labels=args.get("label") or [],
                                            not_labels=args.get("label!") or [])
    return {"VolumesDeleted": names, "SpaceReclaimed": reclaimed}
