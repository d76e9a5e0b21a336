"""Benchmarks against barque's anchors (Docker, runc) and the helpers they share with the interop tests."""
