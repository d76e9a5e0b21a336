"""The terminal side of attaching: the user's stdin/stdout/stderr joined to a container's monitor, with a raw
terminal and window-size updates for `-t`, signals forwarded for a foreground `run` (--sig-proxy), and Docker's
detach keys (ctrl-p ctrl-q, or --detach-keys)."""

from __future__ import annotations

import os
import signal
import sys

from barque.container.attach import parse_detach_keys

__all__ = ["attach_foreground", "parse_detach_keys"]

PROXIED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def hello_for(streams: set[str]) -> dict:
    return {"stdin": "stdin" in streams, "stdout": "stdout" in streams, "stderr": "stderr" in streams}


def attach_foreground(c, sock, streams: set[str], *, tty: bool, sig_proxy: bool = True,
                      detach_keys: str | None = None) -> int | None:
    from barque.container.attach import Attachment, connect, pump

    hello = hello_for(streams)
    if sock is not None:  # born attached (run, start -a): the hello went with the start
        a = Attachment.__new__(Attachment)
        a.sock, a.buf, a.exit = sock, b"", None
    else:
        a = connect(c, hello)
    keys = parse_detach_keys(detach_keys)
    stdin_fd = 0 if hello["stdin"] else None
    restore = None
    previous: dict = {}
    if tty and stdin_fd is not None and os.isatty(0):
        import termios
        import tty as ttymod

        restore = termios.tcgetattr(0)
        ttymod.setraw(0, termios.TCSANOW)  # not TCSAFLUSH: keep what the user typed ahead

        def on_winch(*_):
            try:
                size = os.get_terminal_size(0)
                a.resize(size.lines, size.columns)
            except OSError:
                pass

        previous[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, on_winch)
        on_winch()
    elif sig_proxy and not tty:
        from barque.container.stop import kill

        def forward(signum, _frame):
            try:
                kill(c, signum)
            except Exception:  # noqa: BLE001 - the container may be gone
                pass

        for s in PROXIED:
            previous[s] = signal.signal(s, forward)
    try:
        result = pump(a, sys.stdout.buffer, sys.stderr.buffer if not tty else sys.stdout.buffer, stdin_fd, tty,
                      keys if tty else b"")
    finally:
        if restore is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, restore)
        for s, h in previous.items():
            signal.signal(s, h)
        a.close()
    if result is None:
        if a.exit is None and not _still_running(c):
            state = c.refresh()
            return int(state.get("ExitCode", 125))
        if tty:
            sys.stderr.write("\r\n")
            sys.stderr.flush()
        return None
    return int(result.get("ExitCode", 0))


def _still_running(c) -> bool:
    return c.refresh().get("Status") in ("running", "paused", "restarting")
