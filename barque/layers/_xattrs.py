"""Reading the extended attributes that belong in a layer."""

from __future__ import annotations

import errno
import os

from barque.layers._overlay import OVERLAY_XATTR_PREFIX

# overlayfs bookkeeping must never travel in a layer (a lower carrying trusted.overlay.* would steer the kernel),
# and SELinux labels describe the host that packed the layer, not the image.
_SKIPPED = (OVERLAY_XATTR_PREFIX, "security.selinux")


def layer_xattr(name: str) -> bool:
    """Whether an attribute of this name may be written to, or applied from, a layer."""
    return not name.startswith(_SKIPPED)


def read_xattrs(path: str) -> dict[str, bytes]:
    """The layer-relevant xattrs of ``path`` (not following a final symlink); {} where the fs has none."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    out: dict[str, bytes] = {}
    for name in names:
        if not layer_xattr(name):
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
    return out
