"""The one place the CLI turns barque's error categories into messages and exit codes.

Docker's CLI exits 125 for its own usage errors (unknown flag, wrong argument count) and 1 when the engine refuses
an operation ("Error response from daemon: …"); `run`-like commands use 125/126/127 and pass the container's own
status through — those commands raise `ExitStatus` themselves.
"""

from __future__ import annotations

import sys

from barque import errors

EXIT_USAGE = 125
EXIT_ERROR = 1


class ExitStatus(Exception):
    """Leave with this status after printing nothing more (the command already spoke)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _stdout_closed() -> bool:
    """Whether standard output is a pipe whose reader has gone (a broken pipe elsewhere, a socket say, is an error
    to report)."""
    import select

    try:
        p = select.poll()
        p.register(1, select.POLLOUT)
        return any(ev & select.POLLERR for _, ev in p.poll(0))
    except (OSError, ValueError):
        return False


def report(exc: BaseException) -> int:
    """Print `exc` the way Docker's CLI would and return the exit status to use."""
    if isinstance(exc, ExitStatus):
        return exc.status
    if isinstance(exc, errors.BarqueError):
        # Docker says "Error response from daemon: …"; barque has no daemon, so it says "Error: …" as Podman does
        print(f"Error: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if isinstance(exc, BrokenPipeError) and _stdout_closed():
        return EXIT_ERROR  # `barque ps | head`: the reader is gone, so is anyone to tell
    if isinstance(exc, OSError):
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    raise exc

