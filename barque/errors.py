"""The few error categories barque raises.

Lower layers raise these with context; the CLI and the API each translate them in exactly one place
(`barque/cli/errors.py`, `barque/api/errors.py`). Anything else escaping is a bug.
"""

from __future__ import annotations

__all__ = [
    "BarqueError",
    "NotFound",
    "AlreadyExists",
    "InvalidArgument",
    "Conflict",
    "FailedPrecondition",
    "Unavailable",
    "DataCorruption",
]


class BarqueError(Exception):
    """Base of every error barque means to show a user."""

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.message = message
        if cause is not None:
            self.__cause__ = cause

    def __str__(self) -> str:
        return self.message


class NotFound(BarqueError):
    """The named thing (image, blob, snapshot, container…) does not exist."""


class AlreadyExists(BarqueError):
    """Creating something whose name or key is taken."""


class InvalidArgument(BarqueError):
    """Bad input from the user: a malformed reference, a broken tar, an unknown media type…"""


class Conflict(BarqueError):
    """The operation clashes with the current state (an image in use, a name in use)."""


class FailedPrecondition(BarqueError):
    """The system is not in a state where the operation can run (a driver unavailable on this kernel)."""


class Unavailable(BarqueError):
    """A resource needed right now cannot be had (a lock timed out, a peer unreachable)."""


class DataCorruption(InvalidArgument):
    """Content does not match what it claims to be: digest or size mismatch, truncated data."""
