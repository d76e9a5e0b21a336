"""Reading and preparing files inside a container's root filesystem without following its symlinks out of it.

An image is untrusted input: its /etc/passwd may be a symlink to the host's, its WORKDIR a symlink to /root of the
host. Every access goes through barque.layers.safepath.RootDir, which resolves paths the way a chroot would.
"""

from __future__ import annotations

import os
from pathlib import Path

from barque.layers.safepath import RootDir, clean_parts

__all__ = ["read_file", "make_dirs", "resolve_user"]


def read_file(rootfs: Path, path: str, limit: int = 4 << 20) -> bytes | None:
    """The content of `path` inside `rootfs` (symlinks resolved inside it), or None when it is not a readable file."""
    parts = clean_parts(path, what="path")
    if not parts:
        return None
    with RootDir(Path(rootfs)) as root:
        found = root.resolve_dir(parts[:-1])
        if found is None:
            return None
        dir_fd, _ = found
        name = parts[-1]
        for _ in range(40):
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
            except OSError as e:
                if e.errno != 40:  # ELOOP: the last component is a symlink, resolve it inside the root
                    return None
                target = os.readlink(name, dir_fd=dir_fd)
                base = () if target.startswith("/") else found[1]
                tparts = clean_parts("/".join([*base, target]), what="path")
                found = root.resolve_dir(tparts[:-1])
                if found is None or not tparts:
                    return None
                dir_fd, name = found[0], tparts[-1]
                continue
            try:
                import stat

                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return None
                return os.read(fd, limit)
            finally:
                os.close(fd)
    return None


def make_dirs(rootfs: Path, path: str, uid: int = 0, gid: int = 0) -> None:
    """Create `path` inside `rootfs` (as WORKDIR and mount points need), owned by uid:gid when made here."""
    parts = clean_parts(path, what="path")
    if not parts:
        return
    with RootDir(Path(rootfs)) as root:
        made: list = []
        root.resolve_dir(parts, create=True, on_create=made.append)
        for p in made:
            fd, _ = root.resolve_dir(p)
            try:
                os.chown(f"/proc/self/fd/{fd}", uid, gid)
            except OSError:
                pass


def _table(data: bytes | None) -> list[list[str]]:
    if not data:
        return []
    return [line.split(":") for line in data.decode(errors="replace").splitlines() if line and not line.startswith("#")]


def resolve_user(rootfs: Path, user: str, group_add=()) -> tuple[int, int, list[int], str]:
    """Docker's rules for `--user`/USER: name or uid, optional :group or :gid; names from the image's /etc/passwd and
    /etc/group; the primary group from passwd when none is given; supplementary groups from /etc/group for a named
    user, then those of `group_add` (HostConfig.GroupAdd: group names or gids, see `additional_groups`). Returns
    (uid, gid, additional gids, home)."""
    from barque.errors import InvalidArgument

    name, _, group = (user or "").partition(":")
    passwd = _table(read_file(rootfs, "/etc/passwd"))
    groups = _table(read_file(rootfs, "/etc/group"))
    uid, gid, home, login = 0, 0, "/", None
    if name == "":
        name = "0"
    entry = next((e for e in passwd if len(e) >= 6 and (e[0] == name or (name.isdigit() and e[2] == name))), None)
    if entry is not None:
        uid, gid, home, login = int(entry[2]), int(entry[3]), entry[5] or "/", entry[0]
    elif name.isdigit():
        uid = int(name)
    else:
        raise InvalidArgument(f"unable to find user {name}: no matching entries in passwd file")
    if group:
        g = next((e for e in groups if len(e) >= 3 and (e[0] == group or (group.isdigit() and e[2] == group))), None)
        if g is not None:
            gid = int(g[2])
        elif group.isdigit():
            gid = int(group)
        else:
            raise InvalidArgument(f"unable to find group {group}: no matching entries in group file")
    extra: list[int] = []
    if login is not None:
        for e in groups:
            if len(e) >= 4 and login in e[3].split(",") and e[2].isdigit() and int(e[2]) != gid:
                extra.append(int(e[2]))
    for g in additional_groups(groups, group_add):
        if g not in extra:
            extra.append(g)
    return uid, gid, extra, home


MAX_ID = 2**31 - 1


def additional_groups(groups: list[list[str]], wanted) -> list[int]:
    """HostConfig.GroupAdd as runc's GetAdditionalGroups reads it (dockerd uses it): each entry is a group of the
    image's /etc/group, by name or gid, else a number taken as a gid as it is; a name found nowhere is an error."""
    from barque.errors import InvalidArgument

    out: list[int] = []
    for want in wanted or ():
        want = str(want)
        g = next((e for e in groups if len(e) >= 3 and e[2].isdigit() and want in (e[0], e[2])), None)
        if g is not None:
            gid = int(g[2])
        else:
            try:
                gid = int(want, 10)
            except ValueError:
                raise InvalidArgument(f"Unable to find group {want}") from None
            if not 0 <= gid <= MAX_ID:
                raise InvalidArgument("uids and gids must be in range 0-2147483647")
        if gid not in out:
            out.append(gid)
    return out
