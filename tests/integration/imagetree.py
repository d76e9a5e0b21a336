"""Looking inside an image the way a container would see it: its top layer snapshot mounted read-only."""

from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def image_rootfs(engine, name: str) -> Iterator[Path]:
    from barque.images.unpack import chain_ids
    from barque.oci.digest import Digest
    from barque.snapshot import mounted

    image = engine.images.resolve(name)
    config = json.loads(engine.content.read(image.id))
    chains = chain_ids([Digest.parse(d) for d in config["rootfs"]["diff_ids"]])
    key = f"test-view-{uuid.uuid4().hex}"
    mounts = engine.snapshotter.view(key, str(chains[-1]))
    try:
        with mounted(mounts) as path:
            yield path
    finally:
        engine.snapshotter.remove(key)


def tree_listing(root: Path) -> dict[str, tuple]:
    """path -> (type, mode, uid, gid, size, link target, nlink>1) for every entry under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            kind = "l" if p.is_symlink() else "d" if p.is_dir() else "f"
            out[rel] = (kind, st.st_mode & 0o7777, st.st_uid, st.st_gid,
                        st.st_size if kind == "f" else 0, os.readlink(p) if kind == "l" else "",
                        st.st_nlink > 1 if kind == "f" else False)
    return out
