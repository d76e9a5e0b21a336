"""The instructions that only change the image's settings (no files): ENV, LABEL, CMD, ENTRYPOINT, EXPOSE, VOLUME,
USER, STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD, MAINTAINER, ARG — each a function from the instruction, with its
words processed, to the change in the state's config, and the history line Docker's builder writes for it.

Docker's classic builder records a settings step as the command of a container that never ran,
`/bin/sh -c #(nop) ` and the instruction, joined by spaces — hence the two spaces of `#(nop)  ENV A=b` — and prints
lists the way Go's fmt does (`CMD ["cat" "/a"]`, `VOLUME [/data]`); these are kept, so `history` reads the same.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable

from barque.build.dockerfile import Instruction
from barque.build.words import process_word, process_words
from barque.gostrings import go_quote
from barque.errors import InvalidArgument

__all__ = ["apply_settings", "nop", "go_quote", "go_list", "SETTINGS", "command_words"]

def nop(text: str, spaced: bool = True, shell: list[str] | None = None) -> str:
    """The created_by of a settings step: the stage's SHELL, `#(nop) ` and the instruction (`spaced`: Docker's
    commit() passes the instruction as one more word, hence a second space)."""
    return " ".join(shell or ["/bin/sh", "-c"]) + " #(nop) " + (" " if spaced else "") + text


def go_list(items, quote: bool = False) -> str:
    return "[" + " ".join(go_quote(i) if quote else i for i in items) + "]"


def command_words(ins: Instruction, shell: list[str]) -> list[str]:
    """The argv of RUN/CMD/ENTRYPOINT/HEALTHCHECK: the JSON form as written, the shell form through SHELL."""
    if ins.json:
        return list(ins.args)
    return [*shell, " ".join(ins.args)]


class Step:
    """What a settings instruction sees: the state to change, and how to process words."""

    def __init__(self, state, env: dict[str, str], escape: str, stage) -> None:
        self.state = state
        self.env = env
        self.escape = escape
        self.stage = stage          # the builder's per-stage bookkeeping (cmd_set)

    def word(self, text: str) -> str:
        return process_word(text, self.env, self.escape)

    def words(self, text: str) -> list[str]:
        return process_words(text, self.env, self.escape)

    @property
    def shell(self) -> list[str]:
        return list(self.state.config.get("Shell") or ["/bin/sh", "-c"])


def _pairs(step: Step, ins: Instruction) -> list[tuple[str, str]]:
    args = list(ins.args)
    return [(step.word(args[i]), step.word(args[i + 1])) for i in range(0, len(args) - 1, 2)]


def _env(step: Step, ins: Instruction) -> str:
    pairs = _pairs(step, ins)
    for key, value in pairs:
        if not key:
            raise InvalidArgument("ENV names can not be blank")
        step.state.set_env(key, value)
    return nop("ENV " + " ".join(f"{k}={v}" for k, v in pairs))


def _label(step: Step, ins: Instruction) -> str:
    pairs = _pairs(step, ins)
    labels = dict(step.state.config.get("Labels") or {})
    for key, value in pairs:
        if not key:
            raise InvalidArgument("LABEL names can not be blank")
        labels[key] = value
    step.state.config["Labels"] = labels
    return nop("LABEL " + " ".join(f"{k}={v}" for k, v in pairs))


def _cmd(step: Step, ins: Instruction) -> str:
    cmd = command_words(ins, step.shell)
    step.state.config["Cmd"] = cmd
    step.stage.cmd_set = True
    return nop("CMD " + go_list(cmd, quote=True))


def _entrypoint(step: Step, ins: Instruction) -> str:
    entry = command_words(ins, step.shell) if (ins.json or any(ins.args)) else []
    step.state.config["Entrypoint"] = entry or None
    if not step.stage.cmd_set:  # an ENTRYPOINT drops the CMD inherited from the base, as Docker's builder does
        step.state.config["Cmd"] = None
    return nop("ENTRYPOINT " + go_list(entry, quote=True))


def _expose(step: Step, ins: Instruction) -> str:
    written: list[str] = []
    ports = dict(step.state.config.get("ExposedPorts") or {})
    for arg in ins.args:
        for word in step.words(arg):
            written.append(word)
            for port in _ports(word):
                ports[port] = {}
    step.state.config["ExposedPorts"] = ports
    return nop("EXPOSE " + " ".join(sorted(written)))  # Docker's parser sorts the ports


def _ports(word: str) -> list[str]:
    """`80`, `80/udp`, `8000-8002/tcp` as Docker's ExposedPorts keys (a range gives one key per port)."""
    number, _, proto = word.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid proto: {proto}")
    first, dash, last = number.partition("-")
    if not first.isdigit() or (dash and not last.isdigit()):
        raise InvalidArgument(f"invalid containerPort: {number}")
    lo, hi = int(first), int(last) if dash else int(first)
    if not 0 < lo <= 65535 or not lo <= hi <= 65535:
        raise InvalidArgument(f"invalid range specified for container port: {number}")
    return [f"{p}/{proto}" for p in range(lo, hi + 1)]


def _volume(step: Step, ins: Instruction) -> str:
    paths = [step.word(a) for a in ins.args] if ins.json else [w for a in ins.args for w in step.words(a)]
    volumes = dict(step.state.config.get("Volumes") or {})
    for p in paths:
        if not p.strip():
            raise InvalidArgument("VOLUME specified can not be an empty string")
        volumes[p] = {}
    step.state.config["Volumes"] = volumes
    return nop("VOLUME " + go_list(paths))


def _user(step: Step, ins: Instruction) -> str:
    user = step.word(ins.args[0])
    step.state.config["User"] = user
    return nop("USER " + user)


def _stopsignal(step: Step, ins: Instruction) -> str:
    from barque.container.options import parse_signal

    sig = step.word(ins.args[0])
    parse_signal(sig)  # refuses what Docker refuses
    step.state.config["StopSignal"] = sig
    return nop("STOPSIGNAL " + sig)


def _healthcheck(step: Step, ins: Instruction) -> str:
    from barque.container.health import go_duration
    from barque.container.options import parse_duration

    if ins.args[0].upper() == "NONE":
        step.state.config["Healthcheck"] = {"Test": ["NONE"]}
        return nop('HEALTHCHECK &{["NONE"] "0s" "0s" "0s" \'\\x00\'}')
    rest = list(ins.args[1:])
    if ins.json:
        test = ["CMD", *rest]
    else:
        test = ["CMD-SHELL", " ".join(rest)]
    hc: dict = {"Test": test}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                      ("start-interval", "StartInterval")):
        value = ins.flag(flag)
        if value:
            ns = parse_duration(value, f"--{flag}")
            if ns < 0 or (0 < ns < 1_000_000):
                raise InvalidArgument(f"Interval {flag!r} cannot be less than 1ms")
            hc[key] = ns
    retries = ins.flag("retries")
    if retries:
        if not retries.isdigit() or int(retries) < 0:
            raise InvalidArgument(f"--retries must be a positive integer: {retries!r}")
        hc["Retries"] = int(retries)
    step.state.config["Healthcheck"] = hc
    # Go's %v of Docker's HealthConfig; StartInterval (Docker 25) shows only when set, as older Dockers lack it
    keys = ("Interval", "Timeout", "StartPeriod") + (("StartInterval",) if "StartInterval" in hc else ())
    durations = " ".join(go_quote(go_duration(hc.get(k, 0))) for k in keys)
    return nop(f"HEALTHCHECK &{{{go_list(test, quote=True)} {durations} '\\x{hc.get('Retries', 0):02x}'}}")


def _shell(step: Step, ins: Instruction) -> str:
    shell = list(ins.args)
    step.state.config["Shell"] = shell
    return nop("SHELL " + go_list(shell))


def _onbuild(step: Step, ins: Instruction) -> str:
    trigger = ins.sub.original if ins.sub is not None else ""
    step.state.config["OnBuild"] = [*(step.state.config.get("OnBuild") or []), trigger]
    return nop("ONBUILD " + trigger)


def _maintainer(step: Step, ins: Instruction) -> str:
    author = step.word(ins.args[0]) if len(ins.args) == 1 else " ".join(ins.args)
    step.state.platform["author"] = author
    step.state.changed()
    return nop("MAINTAINER " + author)


SETTINGS: dict[str, Callable[[Step, Instruction], str]] = {
    "ENV": _env, "LABEL": _label, "CMD": _cmd, "ENTRYPOINT": _entrypoint, "EXPOSE": _expose, "VOLUME": _volume,
    "USER": _user, "STOPSIGNAL": _stopsignal, "HEALTHCHECK": _healthcheck, "SHELL": _shell, "ONBUILD": _onbuild,
    "MAINTAINER": _maintainer,
}


def apply_settings(step: Step, ins: Instruction) -> str:
    """Apply a settings instruction to `step.state`; the history's created_by, under the SHELL in force after the
    instruction, as Docker records it (a SHELL instruction's own line already has the new shell)."""
    created_by = SETTINGS[ins.cmd](step, ins)
    step.state.changed()
    return " ".join(step.shell) + created_by[len("/bin/sh -c"):]


def workdir_path(step: Step, ins: Instruction) -> str:
    path = step.word(ins.args[0])
    if not path.startswith("/"):
        path = posixpath.join(step.state.config.get("WorkingDir") or "/", path)
    return posixpath.normpath(path) if path != "/" else "/"
