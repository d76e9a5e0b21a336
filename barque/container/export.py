"""`export`: a container's whole filesystem as one flat tar — what `import` turns back into a one-layer image.

As in Docker, the content of volumes and bind mounts is not included (their mount points are, as empty
directories), entries are named without a leading "./" ("bin/", "bin/sh"), and the tar is written from the
container's rootfs as the host sees it: mounted while it runs, its snapshot mounted read-only for the moment
otherwise. Files are read through descriptors resolved inside the rootfs (see barque.container.copy), so a running
container cannot make the export read anything outside it.
"""

from __future__ import annotations

from typing import BinaryIO

__all__ = ["export"]


def export(engine, c, out: BinaryIO) -> int:
    """Write container `c`'s filesystem to `out` as a tar archive; returns the bytes written."""
    from barque.container.copy import container_owned, container_view, walk_entries, write_tar

    with container_view(engine, c, writable=False, binds=False) as view:
        with view.walk(()) as root:
            return write_tar(container_owned(c, walk_entries(view, root, "", include_top=False)), out)
