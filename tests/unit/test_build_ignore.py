""".dockerignore reading and matching (barque.build.ignore) with Docker's semantics, examples from its docs."""

from __future__ import annotations

import pytest

from barque.build.ignore import IgnoreMatcher, read_patterns
from barque.errors import InvalidArgument


def test_read_patterns_cleans_and_skips():
    text = "\ufeff# comment\n\n  */temp*  \n/abs/path\n./rel/../other/\n!  keep.md\n!/x\n   # not a comment\n"
    assert read_patterns(text) == ["*/temp*", "abs/path", "other", "!keep.md", "!x", "# not a comment"]


def excluded(patterns: list[str], paths: list[str]) -> list[str]:
    m = IgnoreMatcher(patterns)
    return [p for p in paths if m.matches(p)]


@pytest.mark.parametrize("patterns, paths, expected", [
    # Docker's documentation examples
    (["*/temp*"], ["somedir/temporary.txt", "somedir/temp", "temp.txt", "a/b/temp"],
     ["somedir/temporary.txt", "somedir/temp"]),
    (["*/*/temp*"], ["somedir/subdir/temporary.txt", "somedir/temp"], ["somedir/subdir/temporary.txt"]),
    (["temp?"], ["tempa", "tempab", "temp/"], ["tempa"]),
    (["**/*.go"], ["main.go", "a/b/c.go", "a/b/c.gox"], ["main.go", "a/b/c.go"]),
    (["*.md", "!README.md"], ["README.md", "CHANGES.md", "docs/x.md"], ["CHANGES.md"]),
    (["*.md", "!README*.md", "README-secret.md"], ["README.md", "README-secret.md", "README-x.md", "a.md"],
     ["README-secret.md", "a.md"]),
    # a pattern matching a parent directory excludes everything below it
    (["dir"], ["dir", "dir/a", "dir/a/b", "dirx", "x/dir"], ["dir", "dir/a", "dir/a/b"]),
    (["dir/"], ["dir/a"], ["dir/a"]),
    (["a/**"], ["a", "a/b", "a/b/c", "ab"], ["a/b", "a/b/c"]),
    (["**"], ["x", "y/z"], ["x", "y/z"]),
    (["a/**/z"], ["a/z", "a/b/z", "a/b/c/z", "a/zz"], ["a/z", "a/b/z", "a/b/c/z"]),
    (["[a-c]x", "[!a]y"], ["ax", "cx", "dx", "by", "ay"], ["ax", "cx", "by"]),
    (["\\*star"], ["*star", "xstar"], ["*star"]),
    (["file.txt"], ["file.txt", "fileXtxt"], ["file.txt"]),       # "." is literal
    (["a+b(c)"], ["a+b(c)", "aab(c)"], ["a+b(c)"]),
    # an exception re-includes a file under an excluded directory; the last matching pattern decides
    (["docs", "!docs/keep.txt"], ["docs/drop.txt", "docs/keep.txt"], ["docs/drop.txt"]),
    (["!x", "x"], ["x"], ["x"]),
    (["x", "!x"], ["x"], []),
])
def test_matching(patterns, paths, expected):
    assert excluded(read_patterns("\n".join(patterns)), paths) == expected


def test_skips_directory_only_without_exceptions():
    assert IgnoreMatcher(["node_modules"]).skips_directory("node_modules")
    assert not IgnoreMatcher(["node_modules", "!node_modules/keep"]).skips_directory("node_modules")
    assert not IgnoreMatcher(["other"]).skips_directory("node_modules")


@pytest.mark.parametrize("patterns, message", [
    (["!"], "illegal exclusion pattern"),
    (["[abc"], "unterminated"),
])
def test_bad_patterns(patterns, message):
    with pytest.raises(InvalidArgument, match=message):
        IgnoreMatcher(patterns)
