"""Strings as Go prints them, for messages and history lines that must read as Docker's."""

from __future__ import annotations

__all__ = ["go_quote"]


def go_quote(text: str) -> str:
    """Go's %q (strconv.Quote): printable characters, non-ASCII included, stay as they are."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif not ch.isprintable():
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x80 else (f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
