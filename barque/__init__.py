"""barque: a daemonless container engine that speaks OCI and Docker's formats."""

__version__ = "0.1.0"
