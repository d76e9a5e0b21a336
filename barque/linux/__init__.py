"""The kernel seam: the only package that calls libc directly (through `_libc`)."""
