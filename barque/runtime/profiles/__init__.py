"""Data for the runtime security defaults (the default seccomp profile)."""
