"""The public surface other packages code against."""

import barque.layers as layers


def test_exported_names() -> None:
    assert set(layers.__all__) == {
        "ApplyResult", "Change", "IdMap", "OPAQUE", "PackedLayer", "WHITEOUT_META_PREFIX", "WHITEOUT_PREFIX",
        "apply_layer", "detect_compression", "diff_dirs", "open_compressor", "open_decompressed",
        "overlay_changes", "pack_dir", "pack_layer", "write_layer",
    }
    for name in layers.__all__:
        assert getattr(layers, name) is not None
    assert layers.WHITEOUT_PREFIX == ".wh."
    assert layers.OPAQUE == ".wh..wh..opq"
