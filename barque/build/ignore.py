""".dockerignore: which files of a build context COPY and ADD may see, with Docker's semantics.

Reading (as Docker's dockerignore.ReadAll): one pattern per line; a line starting with `#` is a comment; surrounding
whitespace is trimmed and empty lines skipped; `!` starts an exception (re-inclusion); each pattern is cleaned as a
path (`a/./b/../c` → `a/c`) and a leading `/` dropped, so patterns are relative to the context root.

Matching (as moby's patternmatcher): patterns are tried in order and the last one that matches decides — an
exclusion pattern excludes, an exception re-includes. A pattern matches a path when it matches the path itself or
any of its parent directories (`dir` excludes `dir/sub/file`). In a pattern `*` is any run of characters but `/`,
`?` one character but `/`, `[...]` a class, `\\` escapes the next character, and `**` any number of directories,
none included (`**/x` matches `x` and `a/b/x`; `a/**` everything under `a`).

The Dockerfile and the .dockerignore itself are always read by the builder, even when excluded; they only stay out
of what COPY and ADD copy, as in Docker.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

from barque.errors import InvalidArgument

__all__ = ["IgnoreMatcher", "read_patterns"]

def _clean(pattern: str) -> str:
    cleaned = posixpath.normpath(pattern)
    if cleaned.startswith("//"):  # normpath keeps a leading double slash
        cleaned = "/" + cleaned.lstrip("/")
    if len(cleaned) > 1 and cleaned.startswith("/"):
        cleaned = cleaned[1:]
    return cleaned


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore file's text, cleaned; exceptions keep their `!`."""
    patterns = []
    for i, line in enumerate(text.splitlines()):
        if i == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = _clean(pattern)
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def _compile(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":  # "**/" is "**"
                    i += 1
                if i >= n:
                    out.append(".*")          # a trailing "**": everything below
                else:
                    out.append("(.*/)?")      # any number of directories, none included
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i < n:
                out.append(re.escape(pattern[i]))
                i += 1
            else:
                out.append(r"\\")
        elif ch == "[":
            end = pattern.find("]", i + 1 if i < n and pattern[i] in "!^" else i)
            if end < 0:
                raise InvalidArgument(f"syntax error in .dockerignore pattern {pattern!r}: unterminated [")
            body = pattern[i:end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(ch))
    out.append("$")
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as e:
        raise InvalidArgument(f"syntax error in .dockerignore pattern {pattern!r}: {e}") from None


@dataclass(frozen=True)
class _Pattern:
    text: str
    exclusion: bool  # an exception ("!"): matching it re-includes
    regex: re.Pattern[str]


class IgnoreMatcher:
    """`matches(path)`: whether a context path (relative, `/`-separated) is excluded."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: list[_Pattern] = []
        for p in patterns:
            exclusion = p.startswith("!")
            text = p[1:] if exclusion else p
            if not text:
                raise InvalidArgument('illegal exclusion pattern: "!"')
            self.patterns.append(_Pattern(text, exclusion, _compile(text)))

    @property
    def has_exceptions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def matches(self, path: str) -> bool:
        path = _clean(path)
        parent = posixpath.dirname(path)
        parents = parent.split("/") if parent else []
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:  # an exclusion cannot exclude more, an exception has nothing to re-include
                continue
            hit = bool(p.regex.match(path))
            if not hit:
                for i in range(len(parents)):
                    if p.regex.match("/".join(parents[:i + 1])):
                        hit = True
                        break
            if hit:
                matched = not p.exclusion
        return matched

    def skips_directory(self, path: str) -> bool:
        """Whether a walk may skip directory `path` whole: it is excluded and no exception could bring back
        anything below it."""
        return self.matches(path) and not self.has_exceptions
