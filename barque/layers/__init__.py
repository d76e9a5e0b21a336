"""Layer tars: applying them to directories and making them from changes.

The public surface is what this module exports; everything in ``_*.py`` is internal.
"""

from barque.layers.apply import ApplyResult, IdMap, apply_layer
from barque.layers.changes import Change, diff_dirs, overlay_changes
from barque.layers.compression import detect_compression, open_compressor, open_decompressed
from barque.layers.tarwriter import PackedLayer, pack_dir, pack_layer, write_layer
from barque.layers.whiteout import OPAQUE, WHITEOUT_META_PREFIX, WHITEOUT_PREFIX

__all__ = [
    "ApplyResult",
    "Change",
    "IdMap",
    "OPAQUE",
    "PackedLayer",
    "WHITEOUT_META_PREFIX",
    "WHITEOUT_PREFIX",
    "apply_layer",
    "detect_compression",
    "diff_dirs",
    "open_compressor",
    "open_decompressed",
    "overlay_changes",
    "pack_dir",
    "pack_layer",
    "write_layer",
]
