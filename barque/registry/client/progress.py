"""What pull and push show: Docker's lines (``abc123456789: Pull complete``), per-layer progress bars (rich) on a
terminal, plain lines otherwise, and only the result lines with ``-q``."""

from __future__ import annotations

import sys
from typing import TextIO

from barque.oci.times import human_size

__all__ = ["Progress", "PlainProgress", "QuietProgress", "make_progress"]


class Progress:
    """The interface pull and push report through (this base shows nothing)."""

    def message(self, text: str) -> None:
        """A line of the operation's story (``Using default tag: latest``)."""

    def layer(self, ident: str, status: str) -> None:
        """A layer's new state (``Pulling fs layer``, ``Download complete``)."""

    def bytes(self, ident: str, action: str, done: int, total: int) -> None:
        """Transfer progress of a layer (``Downloading``, ``Pushing``)."""

    def result(self, text: str) -> None:
        """A line shown even when quiet (the pulled reference)."""

    def warning(self, text: str) -> None:
        print(f"WARNING: {text}", file=sys.stderr)

    def close(self) -> None:
        pass


class QuietProgress(Progress):
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def result(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


# states Docker shows only with a progress bar (on a terminal)
_PROGRESS_ONLY = frozenset({"Downloading", "Extracting", "Pushing"})


class PlainProgress(QuietProgress):
    """Docker's output to a pipe: every state change of a layer on its own line, no byte counts."""

    def message(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def layer(self, ident: str, status: str) -> None:
        if status in _PROGRESS_ONLY:
            return
        self.out.write(f"{ident}: {status}\n")
        self.out.flush()


class RichProgress(Progress):
    """Docker's terminal output: one line per layer, updated in place, with a bar while bytes move."""

    def __init__(self, out: TextIO) -> None:
        from rich.console import Console

        self.console = Console(file=out, highlight=False, soft_wrap=True)
        self._rows: dict[str, tuple[str, int, int]] = {}
        self._live = None

    def _new_live(self):
        from rich.live import Live

        live = Live(console=self.console, auto_refresh=True, refresh_per_second=8, get_renderable=self._render,
                    transient=False)
        live.start()
        return live

    def _render(self):
        from rich.text import Text

        lines = []
        width = 50
        for ident, (status, done, total) in self._rows.items():
            line = f"{ident}: {status}"
            if total > 0 and done < total and status in ("Downloading", "Pushing", "Extracting"):
                filled = int(width * done / total)
                bar = "=" * max(filled - 1, 0) + (">" if filled else "") + " " * (width - filled)
                line += f" [{bar}]  {human_size(done, 4)}/{human_size(total, 4)}"
            lines.append(line)
        from rich.console import Group

        return Group(*(Text(line) for line in lines))   # no rows: no line at all (an empty Text is one)

    def message(self, text: str) -> None:
        if self._live is not None:
            # the rows of a finished image stay on screen as last drawn; the next rows get a live area of their own
            self._live.stop()
            self._live = None
            self._rows.clear()
        self.console.print(text, markup=False)

    def _started(self) -> None:
        if self._live is None:
            self._live = self._new_live()

    def layer(self, ident: str, status: str) -> None:
        _, done, total = self._rows.get(ident, ("", 0, 0))
        self._rows[ident] = (status, done, total)
        self._started()

    def bytes(self, ident: str, action: str, done: int, total: int) -> None:
        self._rows[ident] = (action, done, total)
        self._started()

    def result(self, text: str) -> None:
        self.message(text)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def make_progress(out: TextIO, quiet: bool = False) -> Progress:
    if quiet:
        return QuietProgress(out)
    try:
        tty = out.isatty()
    except (AttributeError, ValueError):
        tty = False
    return RichProgress(out) if tty else PlainProgress(out)
