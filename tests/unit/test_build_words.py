"""Dockerfile word processing (barque.build.words) against BuildKit's rules: quotes, escapes, substitutions."""

from __future__ import annotations

import pytest

from barque.build.words import WordError, process_word, process_words, used_variables

ENV = {"abc": "hello", "empty": "", "sp": "a b", "PATH": "/usr/bin"}


@pytest.mark.parametrize("text, expected", [
    ("plain", "plain"),
    ("$abc", "hello"),
    ("${abc}def", "hellodef"),
    ("$abcdef", ""),                 # the longest name: abcdef, unset
    ("pre$abc-post", "prehello-post"),
    ("$", "$"),
    ("a$", "a$"),
    ("$ x", "$ x"),
    ("$-x", "$-x"),
    ("$1", ""),                      # positional names are never set in a Dockerfile
    ("$12", "2"),                    # one digit only
    ("'$abc'", "$abc"),
    ('"$abc"', "hello"),
    ("\\$abc", "$abc"),
    ('"\\$abc"', "$abc"),
    ('"a\\b"', "a\\b"),              # in double quotes only " $ and the escape itself are escaped
    ('"a\\"b"', 'a"b'),
    ('"a\\\\b"', "a\\b"),
    ("a\\b", "ab"),                  # outside quotes the escape makes the next character literal
    ("a\\", "a"),                    # and is dropped at the very end
    ("'a\\b'", "a\\b"),
    ('"it\'s"', "it's"),
    ("'say \"hi\"'", 'say "hi"'),
    ("${unset:-world}", "world"),
    ("${abc:-world}", "hello"),
    ("${empty:-world}", "world"),
    ("${empty-world}", ""),          # without the colon: only unset counts
    ("${unset-world}", "world"),
    ("${abc:+world}", "world"),
    ("${unset:+world}", ""),
    ("${empty:+world}", ""),
    ("${empty+world}", "world"),
    ("${abc?}", "hello"),
    ("${empty?}", ""),
    ("${unset:-${abc}x}", "hellox"),  # the word after a modifier is processed too
    ('${unset:-"a b"}', "a b"),
    ("${unset:-'$abc'}", "$abc"),
    ("${unset:-}", ""),
    ("${sp}", "a b"),
    ("$PATH:/bin", "/usr/bin:/bin"),
    ('""', ""),
])
def test_process_word(text, expected):
    assert process_word(text, ENV) == expected


@pytest.mark.parametrize("text, expected", [
    ("a b  c", ["a", "b", "c"]),
    ('a "b c" d', ["a", "b c", "d"]),
    ("80/tcp $abc", ["80/tcp", "hello"]),
    ("$sp", ["a", "b"]),             # an unquoted substitution is split (ARG PORTS="80 443" / EXPOSE $PORTS)
    ('"$sp"', ["a b"]),              # a quoted one is not
    ("x$sp", ["xa", "b"]),
    ("$empty", []),
    ('"" x', ["x"]),                 # an empty word is dropped, as ProcessWords drops it
    ("  ", []),
    ("a\\ b", ["a b"]),
])
def test_process_words(text, expected):
    assert process_words(text, ENV) == expected


def test_backtick_escape():
    assert process_word("c:\\foo\\bar", ENV, escape="`") == "c:\\foo\\bar"
    assert process_word("`$abc", ENV, escape="`") == "$abc"
    assert process_word('"`"x"', ENV, escape="`") == '"x'
    with pytest.raises(WordError, match="invalid escape token"):
        process_word("x", ENV, escape="#")


@pytest.mark.parametrize("text, message", [
    ("'open", "matching single-quote"),
    ('"open', "matching double-quote"),
    ("${abc", "missing '}'"),
    ("${abc:x}", r"unsupported modifier \(x\) in substitution"),
    ("${unset:-open", "missing '}'"),
    ("${}", "bad substitution"),
    ("${unset?}", "unset: is not allowed to be unset"),
    ("${empty:?}", "empty: is not allowed to be empty"),
    ("${unset:?give it a value}", "unset: give it a value"),
])
def test_errors(text, message):
    with pytest.raises(WordError, match=message):
        process_word(text, ENV)


def test_used_variables():
    assert used_variables("$abc ${unset:-$PATH} '$quoted' $abc", ENV) == ["abc", "unset", "PATH"]
