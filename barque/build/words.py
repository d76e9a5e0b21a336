"""Word processing of Dockerfile arguments, with BuildKit's rules: quotes, the escape character, and variable
substitution (`$V`, `${V}`, `${V:-word}`, `${V:+word}`, `${V:?message}` and the colon-less forms that test only
whether V is set).

Docker applies it to the arguments of ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR and
ONBUILD, never to RUN, CMD or ENTRYPOINT in shell form (the shell expands those in the container). The rules, as
BuildKit's shell lexer has them:

* Outside quotes the escape character (`\\`, or `` ` `` after `# escape=`) makes the next character literal; at the
  very end of a word it is dropped.
* Single quotes keep everything literal up to the closing quote; no substitution happens inside them.
* Double quotes allow substitution; inside them the escape character escapes only `"`, `$` and itself, and is kept
  as is before any other character.
* `$` followed by neither a name nor `{` is a literal `$`. A name is letters, digits and `_` (one digit alone for
  `$1`-style positional names, which are always empty in a Dockerfile).
* An unset variable is empty. `${V:-w}` is w when V is unset or empty, `${V-w}` only when unset; `${V:+w}` is w when
  V is set and not empty, `${V+w}` when set; `${V:?msg}` / `${V?msg}` fail the build with msg when V is unset (or,
  with the colon, empty). The word after the modifier is itself processed (it may hold quotes and variables).

`process_word` gives one string (quotes removed); `process_words` also splits on unquoted whitespace, as Docker does
for the arguments of instructions that take several words (EXPOSE, VOLUME in shell form…). `used_variables`
names the variables a word used, for the unused-build-arg warning and the cache key.
"""

from __future__ import annotations

from collections.abc import Mapping

from barque.errors import InvalidArgument

__all__ = ["process_word", "process_words", "expand_heredoc", "used_variables", "WordError"]

_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")
_DIGITS = frozenset("0123456789")


class WordError(InvalidArgument):
    """A word the lexer cannot process: an unterminated quote or substitution, an unknown modifier, `${V:?}`."""


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str, raw: bool = False) -> None:
        if escape not in ("\\", "`"):
            raise WordError(f"invalid escape token '{escape}' does not match ` or \\")
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.used: list[str] = []
        self.raw = raw  # BuildKit's RawQuotes+RawEscapes (heredocs): quotes and escapes stay as written

    # -- scanning
    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch

    # -- words
    def words(self, stop: str = "", split: bool = False) -> list[str]:
        """Process up to `stop` (not consumed) or the end. Without `split`: one word, spaces kept. With it, as
        BuildKit's ProcessWords: unquoted whitespace — typed or substituted — separates words, quoted and escaped
        text never does, and a word left empty is dropped."""
        words: list[str] = []
        current: list[str] = []

        def add(text: str, raw: bool) -> None:
            if not split or raw:
                current.append(text)
                return
            for ch in text:
                if ch.isspace():
                    if any(current):
                        words.append("".join(current))
                        current.clear()
                else:
                    current.append(ch)

        while True:
            ch = self.peek()
            if not ch or (stop and ch == stop):
                break
            self.next()
            if ch == self.escape:
                escaped = self.next()
                if escaped:
                    add(ch + escaped if self.raw else escaped, raw=True)
            elif self.raw and ch in "'\"":
                add(ch, raw=True)
            elif ch == "'":
                add(self.single_quoted(), raw=True)
            elif ch == '"':
                add(self.double_quoted(), raw=True)
            elif ch == "$":
                add(self.dollar(), raw=False)
            else:
                add(ch, raw=False)
        if not split:
            return ["".join(current)]
        if any(current):
            words.append("".join(current))
        return words

    def single_quoted(self) -> str:
        out: list[str] = []
        while True:
            ch = self.next()
            if not ch:
                raise WordError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def double_quoted(self) -> str:
        out: list[str] = []
        while True:
            ch = self.next()
            if not ch:
                raise WordError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
            elif ch == self.escape:
                following = self.peek()
                if not following:
                    continue  # an escape at the very end is dropped
                if following in ('"', "$", self.escape):
                    out.append(self.next())
                else:
                    out.append(ch)
            else:
                out.append(ch)

    # -- substitution
    def name(self) -> str:
        ch = self.peek()
        if ch in _DIGITS:  # positional: one digit
            self.next()
            return ch
        start = self.pos
        while self.peek() and self.peek() in _NAME_CHARS:
            self.pos += 1
        return self.text[start:self.pos]

    def lookup(self, name: str) -> str | None:
        self.used.append(name)
        return self.env.get(name)

    def dollar(self) -> str:
        ch = self.peek()
        if ch != "{":
            if not ch or (ch not in _NAME_START and ch not in _DIGITS):
                return "$"
            value = self.lookup(self.name())
            return value or ""
        self.next()
        name = self.name()
        if not name:
            raise WordError(f"bad substitution: ${{{self.text[self.pos:self.pos + 1]}")
        self.used.append(name)
        ch = self.next()
        if ch == "}":
            return self.env.get(name) or ""
        colon = ch == ":"
        if colon:
            ch = self.next()
        if ch not in ("-", "+", "?"):
            if not ch:
                raise WordError("syntax error: missing '}'")
            raise WordError(f"unsupported modifier ({ch}) in substitution")
        word = "".join(self.words(stop="}"))
        if self.next() != "}":
            raise WordError("syntax error: missing '}'")
        value = self.env.get(name)
        present = value is not None and (value != "" or not colon)
        if ch == "-":
            return value if present else word  # type: ignore[return-value]
        if ch == "+":
            return word if present else ""
        if not present:  # "?": the build stops with the word as its message
            if not word:
                word = "is not allowed to be empty" if value is not None else "is not allowed to be unset"
            raise WordError(f"{name}: {word}")
        return value  # type: ignore[return-value]


def process_word(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """`text` as one word: quotes removed, escapes applied, variables substituted from `env`."""
    return _Lexer(text, env, escape).words()[0]


def process_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """`text` split on unquoted whitespace, each word processed as `process_word` does."""
    return _Lexer(text, env, escape).words(split=True)


def expand_heredoc(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """A heredoc's content with its variables substituted and everything else — quotes, escapes, newlines — as
    written (BuildKit lexes heredocs with raw quotes and raw escapes)."""
    return _Lexer(text, env, escape, raw=True).words()[0]


def used_variables(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """The names of the variables `text` refers to, in order (for the unused build-arg warning)."""
    lexer = _Lexer(text, env, escape)
    lexer.words()
    return list(dict.fromkeys(lexer.used))
