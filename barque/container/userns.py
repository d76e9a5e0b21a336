"""`--userns remap`: the container's root is an ordinary, unprivileged user of the host.

The range comes from /etc/subuid and /etc/subgid entries of the user `barque` (as Docker's userns-remap uses those of
`dockremap`); without one, barque uses 65536 ids from 231072 (above the ranges useradd hands out). The image's files
keep their owners on disk: the runtime mounts the rootfs idmapped through the container's user namespace
(barque.runtime's `org.barque.idmap-rootfs` annotation), so file owner 0 reads as the container's root — no chowned
copy of the snapshot is made.
"""

from __future__ import annotations

__all__ = ["remap_ranges", "to_host", "to_container", "root_ids", "writes_host_ids", "container_ids",
           "DEFAULT_RANGE"]

#: what the kernel shows an id outside a user namespace's mappings as, inside it
OVERFLOW_ID = 65534

DEFAULT_RANGE = (231072, 65536)
USER = "barque"


def _subid(path: str) -> tuple[int, int] | None:
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[0] == USER:
                    return int(parts[1]), int(parts[2])
    except (OSError, ValueError):
        return None
    return None


def remap_ranges() -> tuple[list, list]:
    """(uid mappings, gid mappings) as [container id, host id, size] triples."""
    uid = _subid("/etc/subuid") or DEFAULT_RANGE
    gid = _subid("/etc/subgid") or DEFAULT_RANGE
    return [[0, uid[0], uid[1]]], [[0, gid[0], gid[1]]]


def writes_host_ids(c) -> bool:
    """Whether what is written into remapped container `c`'s filesystem from the host must carry host ids. On
    overlay only the shared read-only layers are idmapped (barque.container.idmap) and the writable layer stores host
    ids, as the container's root writes them; the other drivers idmap the container's whole rootfs at run time, so
    their files hold the container's own ids."""
    remapped = (c.record["HostConfig"].get("UsernsMode") or "") == "remap"
    return remapped and (c.record.get("Driver") or "") == "overlay"


def to_host(mapping: list, value: int) -> int | None:
    """A container id as the host stores it, through [inside, outside, size] mappings; None outside them."""
    for inside, outside, size in mapping:
        if inside <= value < inside + size:
            return outside + value - inside
    return None


def to_container(mapping: list, value: int) -> int | None:
    """A host id as the container sees it; None when the mappings do not cover it."""
    for inside, outside, size in mapping:
        if outside <= value < outside + size:
            return inside + value - outside
    return None


def root_ids(userns: tuple[list, list]) -> tuple[int, int]:
    """The host uid and gid of the container's root."""
    return to_host(userns[0], 0) or 0, to_host(userns[1], 0) or 0


def container_ids(c):
    """For a container whose files on disk may hold host ids (`writes_host_ids`): a function taking an owner as
    stored to the owner as the container knows it — what `commit`, `export`, `cp` out and `diff` must record.
    Ids outside the range (the image's own files, seen without the idmapping) are already the container's. None
    for every other container."""
    if not writes_host_ids(c):
        return None
    uid_map, gid_map = remap_ranges()

    def ids(uid: int, gid: int) -> tuple[int, int]:
        u, g = to_container(uid_map, uid), to_container(gid_map, gid)
        return (uid if u is None else u), (gid if g is None else g)

    return ids
