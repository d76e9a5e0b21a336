"""barque's OCI runtime (filled in by the runtime issue)."""
