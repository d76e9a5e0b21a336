"""A Dockerfile read into stages of checked instructions.

The grammar is BuildKit's own: the `dockerfile` package wraps BuildKit's Go parser (parser directives, line
continuations, comments, JSON and shell forms, heredocs). That parser accepts any instruction name and most argument
shapes; what Docker's builder then refuses is refused here, before anything is built, with the file and line: an
unknown instruction, an instruction before the first FROM other than ARG, a wrong number of arguments, an unknown
flag, a stage name Docker would not take, a stage used before it is defined.

Arguments are kept as written (quotes and variables included): substitution depends on the ARG and ENV values in
scope when the step runs, so barque.build.words processes them then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from barque.errors import InvalidArgument

__all__ = ["Dockerfile", "Instruction", "Stage", "parse", "parse_trigger", "DockerfileError"]

#: the flags each instruction takes (a flag may be repeated where Docker allows it: RUN --mount)
FLAGS: dict[str, frozenset[str]] = {
    "ADD": frozenset({"chown", "chmod", "checksum", "keep-git-dir", "link", "exclude"}),
    "COPY": frozenset({"from", "chown", "chmod", "link", "parents", "exclude"}),
    "FROM": frozenset({"platform"}),
    "HEALTHCHECK": frozenset({"interval", "timeout", "start-period", "start-interval", "retries"}),
    "RUN": frozenset({"mount", "network", "security"}),
}
INSTRUCTIONS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL", "MAINTAINER",
    "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
})
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")


class DockerfileError(InvalidArgument):
    """A Dockerfile Docker's builder would refuse; the message names the file and the line."""


@dataclass
class Instruction:
    cmd: str                       # upper case: "RUN"
    args: tuple[str, ...]          # as written, quotes and variables included
    flags: dict[str, list[str]]    # --name=value, each value in order ("" for a bare --name)
    json: bool                     # exec (JSON) form
    line: int                      # first line, 1-based
    original: str                  # the instruction as written, continuations joined
    heredocs: tuple = ()           # (name, content) of each heredoc
    sub: "Instruction | None" = None  # ONBUILD's trigger

    def flag(self, name: str, default: str | None = None) -> str | None:
        values = self.flags.get(name)
        return values[-1] if values else default


@dataclass
class Stage:
    base: str                      # the FROM argument as written (may hold $ARGs)
    name: str | None               # `AS name`, lower-cased
    index: int
    line: int
    platform: str | None = None
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    path: str
    escape: str = "\\"
    syntax: str | None = None
    meta_args: list[Instruction] = field(default_factory=list)  # the ARGs before the first FROM
    stages: list[Stage] = field(default_factory=list)

    def stage(self, ref: str) -> Stage | None:
        """A stage by name or by index (as `COPY --from=` and `--target` name them)."""
        ref_l = ref.lower()
        for s in self.stages:
            if s.name == ref_l:
                return s
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None


def _directives(text: str) -> dict[str, str]:
    """Parser directives: `# name=value` lines at the very top, before any other line (as Docker reads them)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = _DIRECTIVE.match(line)
        if not m:
            break
        key = m.group(1).lower()
        if key in found:
            break
        found[key] = m.group(2)
    return found


def _flags(cmd: str, raw: tuple[str, ...], fail) -> dict[str, list[str]]:
    allowed = FLAGS.get(cmd, frozenset())
    flags: dict[str, list[str]] = {}
    for f in raw:
        if not f.startswith("--"):
            fail(f"invalid flag {f!r}")
        name, _, value = f[2:].partition("=")
        if name not in allowed:
            fail(f"unknown flag: --{name}")
        flags.setdefault(name, []).append(value)
    return flags


def _check_args(ins: Instruction, fail) -> None:
    cmd, args = ins.cmd, ins.args
    n = len([a for a in args if a != ""])
    if cmd in ("ENV", "LABEL", "ARG", "EXPOSE", "VOLUME") and n == 0:
        fail(f"{cmd} requires at least one argument")
    if cmd in ("ENV", "LABEL") and len(args) % 2:
        fail(f"{cmd} names can not be blank" if cmd == "LABEL" else "ENV must have two arguments")
    if cmd in ("COPY", "ADD") and n < 2 and not ins.heredocs:
        fail(f"{cmd} requires at least two arguments, but only one was provided. Destination could not be "
             "determined.")
    if cmd in ("WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER") and n != 1:
        fail(f"{cmd} requires exactly one argument")
    if cmd == "SHELL" and not ins.json:
        fail("SHELL requires the arguments to be in JSON form")
    if cmd == "SHELL" and n == 0:
        fail("SHELL requires at least one argument")
    if cmd == "HEALTHCHECK":
        kind = args[0].upper() if args else ""
        if kind not in ("CMD", "NONE"):
            fail("Unknown type " + (repr(args[0]) if args else '""') + " in HEALTHCHECK (try CMD)")
        if kind == "NONE" and (n > 1 or ins.flags):
            fail("HEALTHCHECK NONE takes no arguments")
        if kind == "CMD" and n < 2:
            fail("Missing command after HEALTHCHECK CMD")


def _instruction(cmd_obj, path: str, escape: str) -> Instruction:
    cmd = cmd_obj.cmd.upper()
    line = cmd_obj.start_line

    def fail(message: str):
        raise DockerfileError(f"dockerfile parse error on line {line} of {path}: {message}")

    if cmd not in INSTRUCTIONS:
        fail(f"unknown instruction: {cmd_obj.cmd}")
    sub = None
    args = tuple(cmd_obj.value)
    if cmd == "ONBUILD":
        trigger = (cmd_obj.sub_cmd or "").upper()
        if not trigger:
            fail("ONBUILD requires at least one argument")
        if trigger == "ONBUILD":
            fail("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("FROM", "MAINTAINER"):
            fail(f"{trigger} isn't allowed as an ONBUILD trigger")
        if trigger not in INSTRUCTIONS:
            fail(f"unknown instruction: {cmd_obj.sub_cmd}")
        trigger_text = cmd_obj.original.split(None, 1)[1] if len(cmd_obj.original.split(None, 1)) > 1 else ""
        sub = Instruction(trigger, args, {}, bool(cmd_obj.json), line, trigger_text.strip())
        _check_args(sub, fail)
    flags = _flags(cmd, tuple(cmd_obj.flags), fail)
    ins = Instruction(cmd, args, flags, bool(cmd_obj.json), line, cmd_obj.original,
                      tuple((h.name, h.content) for h in (cmd_obj.heredocs or ())), sub)
    if cmd != "ONBUILD":
        _check_args(ins, fail)
    return ins


def _failing_line(bk, text: str) -> int:
    """The line BuildKit's parser stops at (its errors do not say): the shortest prefix of the file that fails."""
    lines = text.splitlines(keepends=True)
    for n in range(1, len(lines) + 1):
        try:
            bk.parse_string("".join(lines[:n]))
        except bk.GoParseError:
            return n
    return len(lines)


def parse(text: str, path: str = "Dockerfile") -> Dockerfile:
    """Read a Dockerfile's text into stages of checked instructions; DockerfileError names what is wrong."""
    import dockerfile as bk

    directives = _directives(text)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(f"dockerfile parse error on line 1 of {path}: invalid escape token '{escape}' does "
                              "not match ` or \\")
    try:
        commands = bk.parse_string(text)
    except bk.GoParseError as e:
        raise DockerfileError(f"dockerfile parse error on line {_failing_line(bk, text)} of {path}: {e}") from None
    df = Dockerfile(path=path, escape=escape, syntax=directives.get("syntax"))
    seen: set[str] = set()
    for cmd_obj in commands:
        ins = _instruction(cmd_obj, path, escape)
        if ins.cmd == "FROM":
            df.stages.append(_stage(ins, len(df.stages), seen, path))
            continue
        if not df.stages:
            if ins.cmd != "ARG":
                raise DockerfileError(f"dockerfile parse error on line {ins.line} of {path}: no build stage in "
                                      f"current context ({ins.cmd} before the first FROM)")
            df.meta_args.append(ins)
            continue
        df.stages[-1].instructions.append(ins)
    if not df.stages:
        raise DockerfileError(f"{path}: the Dockerfile has no FROM: no build stage in current context")
    return df


def _stage(ins: Instruction, index: int, seen: set[str], path: str) -> Stage:
    def fail(message: str):
        raise DockerfileError(f"dockerfile parse error on line {ins.line} of {path}: {message}")

    args = [a for a in ins.args if a != ""]
    if len(args) not in (1, 3) or (len(args) == 3 and args[1].upper() != "AS"):
        fail("FROM requires either one or three arguments")
    name = None
    if len(args) == 3:
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            fail(f"invalid name for build stage: {args[2]!r}, name can't start with a number or contain symbols")
        if name in seen:
            fail(f"duplicate stage name {args[2]!r}")
        seen.add(name)
    base = args[0]
    if base.lower() == name:
        fail(f"stage {args[2]!r} refers to itself in FROM: a stage cannot be built from itself")
    return Stage(base=base, name=name, index=index, line=ins.line, platform=ins.flag("platform"))


def parse_change(text: str) -> Instruction:
    """One instruction given alone (`commit --change`, `import --change`), checked as in a Dockerfile."""
    import dockerfile as bk

    try:
        commands = bk.parse_string(text)
    except bk.GoParseError as e:
        raise DockerfileError(str(e)) from None
    if len(commands) != 1:
        raise DockerfileError(f"expected one instruction, got {text!r}")
    return _instruction(commands[0], "--change", "\\")


def parse_trigger(text: str, image: str) -> Instruction:
    """An ONBUILD trigger kept in an image's config (`RUN echo hi`), read as the instruction it is."""
    import dockerfile as bk

    name = f"ONBUILD trigger of {image}"
    try:
        commands = bk.parse_string(text)
    except bk.GoParseError as e:
        raise DockerfileError(f"{name}: {e}") from None
    if len(commands) != 1:
        raise DockerfileError(f"{name}: expected one instruction, got {text!r}")
    ins = _instruction(commands[0], name, "\\")
    if ins.cmd in ("ONBUILD", "FROM", "MAINTAINER"):
        raise DockerfileError(f"{name}: {ins.cmd} isn't allowed as an ONBUILD trigger")
    return ins
