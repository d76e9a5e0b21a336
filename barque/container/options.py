"""Parsers for the values of `barque run` / `barque create` flags.

Each parser turns one flag's text into the shape Docker's Engine API stores (HostConfig, Config), so the CLI and
the API server share one implementation and `inspect` shows what Docker would. A bad value raises InvalidArgument
worded as Docker's CLI words it: most of Docker's flags are parsed by pflag, which reports
`invalid argument "<value>" for "<flag>" flag: <reason>`, and the CLI exits 125 on it.

The reasons repeat what Docker's libraries say (go-units for sizes and ulimits, Go's time.ParseDuration and
strconv for numbers, moby's signal table), because scripts and users grep for those words.
Pure functions: the only I/O is reading `--env-file` / `--label-file` files.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Iterable, Mapping, Sequence

from barque.errors import InvalidArgument
from barque.gostrings import go_quote

__all__ = [
    "parse_bytes",
    "parse_int_flag",
    "parse_memory_swap",
    "parse_cpus",
    "parse_ulimit",
    "ulimits_to_rlimits",
    "parse_restart",
    "parse_duration",
    "parse_env",
    "merge_env",
    "process_env",
    "parse_labels",
    "parse_security_opts",
    "security_opt_strings",
    "parse_healthcheck",
    "effective_healthcheck",
    "healthcheck_defaults",
    "parse_signal",
    "signal_number",
    "parse_key_value_opts",
    "parse_user",
    "parse_cpuset",
    "parse_pids_limit",
    "parse_userns",
]

SECOND = 1_000_000_000
_INT64_MAX = (1 << 63) - 1


# --- Go-compatible helpers ---------------------------------------------------------------------------------------

def _flag_error(value: str, flag: str, reason: str) -> InvalidArgument:
    """pflag's wording for a value its Set method refused."""
    return InvalidArgument(f"invalid argument {go_quote(value)} for {go_quote(flag)} flag: {reason}")


_GO_INT_BODY = {
    10: re.compile(r"[0-9](?:_?[0-9])*"),
    16: re.compile(r"_?[0-9a-fA-F](?:_?[0-9a-fA-F])*"),
    8: re.compile(r"_?[0-7](?:_?[0-7])*"),
    2: re.compile(r"_?[01](?:_?[01])*"),
}


def _go_parse_int(text: str) -> int:
    """strconv.ParseInt(text, 0, 64), which pflag's int flags use; ValueError carries Go's message."""
    s = text
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    low = s.lower()
    if low.startswith("0x"):
        base, body = 16, s[2:]
    elif low.startswith("0o"):
        base, body = 8, s[2:]
    elif low.startswith("0b"):
        base, body = 2, s[2:]
    elif len(s) > 1 and s[0] == "0":
        base, body = 8, s[1:]
    else:
        base, body = 10, s
    if not body or not _GO_INT_BODY[base].fullmatch(body):
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = sign * int(body.replace("_", ""), base)
    if not -(1 << 63) <= value <= _INT64_MAX:
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value


_GO_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _go_parse_float(text: str) -> float:
    """strconv.ParseFloat(text, 64) for the decimal forms a size can take."""
    if not _GO_FLOAT.fullmatch(text):
        raise ValueError(f"strconv.ParseFloat: parsing {go_quote(text)}: invalid syntax")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"strconv.ParseFloat: parsing {go_quote(text)}: value out of range")
    return value


def parse_int_flag(text: str, flag: str) -> int:
    try:
        return _go_parse_int(text)
    except ValueError as exc:
        raise _flag_error(text, flag, str(exc)) from None


# --- sizes -----------------------------------------------------------------------------------------------------

_BINARY = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def _ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes (v0.5): a number, an optional space, then b | k | kb | kib … (binary multiples)."""
    sep = max(text.rfind(c) for c in "0123456789. ")
    if sep == -1:
        raise ValueError(f"invalid size: '{text}'")
    num = text[:sep + 1] if text[sep] != " " else text[:sep]
    sfx = text[sep + 1:]
    size = _go_parse_float(num)
    if size < 0:
        raise ValueError(f"invalid size: '{text}'")
    if sfx:
        low = sfx.lower()
        if len(sfx) > 3:
            raise ValueError(f"invalid suffix: '{low}'")
        if low[0] == "b":
            if len(low) > 1:
                raise ValueError(f"invalid suffix: '{low}'")
        elif low[0] in _BINARY and (len(low) == 1 or low[1:] in ("b", "ib")):
            size *= _BINARY[low[0]]
        else:
            raise ValueError(f"invalid suffix: '{low}'")
    if size > _INT64_MAX:
        raise ValueError(f"invalid size: '{text}'")
    return int(size)


def parse_bytes(text: str, flag: str) -> int:
    """A memory-like size flag (`-m 512m`, `--shm-size 1.5g`, `10MB`) in bytes, as Docker's RAMInBytes reads it.

    `flag` is the flag as pflag names it in errors, e.g. "-m, --memory" or "--shm-size".
    """
    try:
        return _ram_in_bytes(text)
    except ValueError as exc:
        raise _flag_error(text, flag, str(exc)) from None


def parse_memory_swap(text: str) -> int:
    """`--memory-swap`: a size, or -1 for unlimited swap."""
    if text == "-1":
        return -1
    return parse_bytes(text, "--memory-swap")


# --- CPUs ------------------------------------------------------------------------------------------------------

_RATIONAL = re.compile(r"([+-]?[0-9]+)/([0-9]+)|[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_cpus(text: str) -> int:
    """`--cpus 1.5` as HostConfig.NanoCPUs (1500000000). Docker reads it as an exact rational (`3/2` works too)."""
    m = _RATIONAL.fullmatch(text)
    try:
        if not m or (m.group(2) is not None and int(m.group(2)) == 0):
            raise ValueError
        value = Fraction(int(m.group(1)), int(m.group(2))) if m.group(2) is not None else Fraction(text)
    except ValueError:
        raise _flag_error(text, "--cpus", f"failed to parse {text} as a rational number") from None
    nano = value * SECOND
    if nano.denominator != 1:
        raise _flag_error(text, "--cpus", "value is too precise")
    return int(nano)


# --- ulimits ---------------------------------------------------------------------------------------------------

# RLIMIT_* numbers on Linux; "as" is known to the kernel but Docker's go-units refuses it
_RLIMITS = {
    "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6, "nofile": 7, "memlock": 8,
    "as": 9, "locks": 10, "sigpending": 11, "msgqueue": 12, "nice": 13, "rtprio": 14, "rttime": 15,
}


def _ulimit_value(text: str) -> int:
    if text == "infinity":
        return -1
    return _go_parse_int_base10(text)


def _go_parse_int_base10(text: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not -(1 << 63) <= value <= _INT64_MAX:
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value


def parse_ulimit(text: str) -> dict:
    """`--ulimit nofile=1024[:2048]` as a HostConfig.Ulimits entry {"Name", "Soft", "Hard"}.

    A missing hard limit equals the soft one; "infinity" is -1 (unlimited), as go-units reads it.
    """
    try:
        name, sep, limits = text.partition("=")
        if not sep:
            raise ValueError(f"invalid ulimit argument: {text}")
        if name not in _RLIMITS:
            raise ValueError(f"invalid ulimit type: {name}")
        parts = limits.split(":")
        if len(parts) > 2:
            raise ValueError(f"too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`")
        hard = _ulimit_value(parts[1]) if len(parts) == 2 else None
        soft = _ulimit_value(parts[0])
        if hard is None:
            hard = soft
        if hard != -1:
            if soft == -1:
                raise ValueError("ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), "
                                 f"hard: {hard}")
            if soft > hard:
                raise ValueError(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    except ValueError as exc:
        raise _flag_error(text, "--ulimit", str(exc)) from None
    return {"Name": name, "Soft": soft, "Hard": hard}


def ulimits_to_rlimits(ulimits: Iterable[Mapping]) -> list[dict]:
    """HostConfig.Ulimits → the OCI spec's process.rlimits; -1 (unlimited) becomes RLIM_INFINITY."""
    out = []
    for u in ulimits:
        name = u["Name"]
        if name not in _RLIMITS:
            raise InvalidArgument(f"invalid ulimit name {name}")
        out.append({"type": f"RLIMIT_{name.upper()}",
                    "soft": u["Soft"] & 0xFFFF_FFFF_FFFF_FFFF,
                    "hard": u["Hard"] & 0xFFFF_FFFF_FFFF_FFFF})
    return out


# --- restart policy --------------------------------------------------------------------------------------------

_RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")


def parse_restart(text: str) -> dict:
    """`--restart` as HostConfig.RestartPolicy; checked as Docker's daemon checks it (count only with on-failure)."""
    if text == "":
        return {"Name": "no", "MaximumRetryCount": 0}
    name, sep, count_text = text.partition(":")
    if sep and name == "":
        raise InvalidArgument("invalid restart policy format: no policy provided before colon")
    count = 0
    if count_text:
        if not re.fullmatch(r"[+-]?[0-9]+", count_text):
            raise InvalidArgument("invalid restart policy format: maximum retry count must be an integer")
        count = int(count_text)
    if name not in _RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', "
                              "'on-failure', or 'unless-stopped'")
    if name != "on-failure" and count != 0:
        msg = "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        raise InvalidArgument(msg + (" and cannot be negative" if count < 0 else ""))
    if count < 0:
        raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
    return {"Name": name, "MaximumRetryCount": count}


# --- durations -------------------------------------------------------------------------------------------------

_DURATION_UNITS = {
    "ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
    "s": SECOND, "m": 60 * SECOND, "h": 3600 * SECOND,
}
_DURATION_NUMBER = re.compile(r"([0-9]*)(?:\.([0-9]*))?")


def _go_duration(orig: str) -> int:
    """Go's time.ParseDuration: a signed sequence of decimal numbers with units, e.g. "1m30s", "1.5h", "-2ms"."""
    invalid = ValueError(f"time: invalid duration {go_quote(orig)}")
    s = orig
    negative = False
    if s[:1] in ("-", "+"):
        negative = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise invalid
    total = Fraction(0)
    while s:
        m = _DURATION_NUMBER.match(s)
        whole, frac = m.group(1), m.group(2)
        if not whole and not frac:
            raise invalid
        s = s[m.end():]
        i = 0
        while i < len(s) and s[i] != "." and not s[i].isdigit():
            i += 1
        if i == 0:
            raise ValueError(f"time: missing unit in duration {go_quote(orig)}")
        unit_text, s = s[:i], s[i:]
        unit = _DURATION_UNITS.get(unit_text)
        if unit is None:
            raise ValueError(f"time: unknown unit {go_quote(unit_text)} in duration {go_quote(orig)}")
        number = Fraction(int(whole or "0"))
        if frac:
            number += Fraction(int(frac), 10 ** len(frac))
        total += number * unit
        if total > _INT64_MAX + 1:
            raise invalid
    nanos = int(total)          # Go truncates the fractional nanoseconds
    if not negative and nanos > _INT64_MAX:
        raise invalid
    return -nanos if negative else nanos


def parse_duration(text: str, flag: str) -> int:
    """A Go-syntax duration flag (`--health-interval 1m30s`) in nanoseconds."""
    try:
        return _go_duration(text)
    except ValueError as exc:
        raise _flag_error(text, flag, str(exc)) from None


# --- environment and labels ------------------------------------------------------------------------------------

def _read_kv_file(path: str, lookup: Mapping[str, str] | None) -> list[str]:
    """Docker's env-file / label-file format: KEY=VALUE lines, `#` comments, a bare KEY looked up (or dropped)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        reason = (exc.strerror or str(exc))
        reason = reason[:1].lower() + reason[1:]
        if isinstance(exc, IsADirectoryError):
            # Go opens a directory fine and fails on the first read, inside the env-file parser
            raise InvalidArgument(f"invalid env file ({path}): read {path}: {reason}", cause=exc) from None
        raise InvalidArgument(f"open {path}: {reason}", cause=exc) from None
    lines: list[str] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            shown = "[" + " ".join(str(b) for b in raw) + "]"
            raise InvalidArgument(f"invalid env file ({path}): invalid utf8 bytes at line {number}: {shown}") from None
        if number == 1:
            text = text.removeprefix("\ufeff")
        line = text.lstrip()
        if not line or line.startswith("#"):
            continue
        key, has_value, _ = line.partition("=")
        if not key:
            raise InvalidArgument(f"invalid env file ({path}): no variable name on line '{line}'")
        if " " in key or "\t" in key:
            raise InvalidArgument(f"invalid env file ({path}): variable '{key}' contains whitespaces")
        if has_value:
            lines.append(line)
        elif lookup is not None:
            if key in lookup:
                lines.append(f"{key}={lookup[key]}")
        else:
            lines.append(key)
    return lines


def parse_env(values: Sequence[str], env_files: Sequence[str], host_env: Mapping[str, str]) -> list[str]:
    """Config.Env from `--env-file` files then `-e` flags (later ones win when the process starts).

    A bare `K` takes the value K has in `host_env`, and is dropped when K is unset there.
    """
    env: list[str] = []
    for path in env_files:
        env.extend(_read_kv_file(path, host_env))
    for value in values:
        key, has_value, _ = value.partition("=")
        if key == "":
            raise _flag_error(value, "-e, --env", f"invalid environment variable: {value}")
        if has_value:
            env.append(value)
        elif key in host_env:
            env.append(f"{key}={host_env[key]}")
    return env


def merge_env(image_env: Sequence[str], run_env: Sequence[str]) -> list[str]:
    """The container's Config.Env as Docker's daemon builds it (its create's `merge`): the run's entries as given,
    repeated keys and bare `K` included, then the image's variables the run did not name. What the process gets is
    `process_env`'s: a later entry wins, a bare `K` unsets a default one (PATH, HOSTNAME…)."""
    run = list(run_env)
    named = {e.partition("=")[0] for e in run}
    return run + [e for e in image_env if e.partition("=")[0] not in named]


def process_env(defaults: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """Docker's ReplaceOrAppendEnvValues, then runc's setenv of each entry in turn: each `K=V` of `overrides`
    replaces K in place or is appended (a repeated K: its first place, its last value); a bare `K` removes K of
    `defaults` only (and is itself left out) — one an earlier override appended stays, as with dockerd."""
    out: list[str | None] = list(defaults)
    where = {e.partition("=")[0]: i for i, e in enumerate(out)}
    removable = set(where)
    for entry in overrides:
        key, has_value, _ = entry.partition("=")
        if not has_value:
            if key in removable:
                out[where[key]] = None
            continue
        if key in where:
            out[where[key]] = entry
        else:
            where[key] = len(out)
            out.append(entry)
    return [e for e in out if e is not None]


def parse_labels(values: Sequence[str], label_files: Sequence[str] = ()) -> dict[str, str]:
    """Config.Labels from `--label-file` files then `--label k=v` flags; `k` alone is an empty label."""
    entries: list[str] = []
    for path in label_files:
        entries.extend(_read_kv_file(path, None))
    for value in values:
        key = value.partition("=")[0].lstrip(" \t")
        if key == "":
            raise _flag_error(value, "-l, --label", f"invalid label '{value}': empty name")
        if " " in key or "\t" in key:
            raise _flag_error(value, "-l, --label", f"label '{key}' contains whitespaces")
        entries.append(value)
    labels: dict[str, str] = {}
    for entry in entries:
        key, _, value = entry.partition("=")
        labels[key] = value
    return labels


# --- security options ------------------------------------------------------------------------------------------

_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_security_opts(values: Sequence[str]) -> dict:
    """`--security-opt` values as a dict: seccomp (None = default profile, "unconfined", or a profile path),
    no_new_privileges (True/False, None = not given), apparmor (profile name or None), label (list of SELinux
    label options, recorded but not applied), systempaths ("unconfined" or None: no masked/read-only /proc paths).
    """
    parsed: dict = {"seccomp": None, "no_new_privileges": None, "apparmor": None, "label": [], "systempaths": None}
    for opt in values:
        if opt == "no-new-privileges":
            parsed["no_new_privileges"] = True
            continue
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")
        if not sep or value == "":
            raise InvalidArgument(f"invalid --security-opt: {go_quote(opt)}")
        if key == "seccomp":
            parsed["seccomp"] = None if value == "builtin" else value
        elif key == "no-new-privileges":
            if value in _GO_TRUE:
                parsed["no_new_privileges"] = True
            elif value in _GO_FALSE:
                parsed["no_new_privileges"] = False
            else:
                raise InvalidArgument(f"invalid --security-opt 2: {go_quote(opt)}")
        elif key == "apparmor":
            parsed["apparmor"] = value
        elif key == "label":
            parsed["label"].append(value)
        elif key == "systempaths" and value == "unconfined":
            parsed["systempaths"] = "unconfined"
        else:
            raise InvalidArgument(f"invalid --security-opt 2: {go_quote(opt)}")
    return parsed


def security_opt_strings(parsed: Mapping) -> list[str]:
    """HostConfig.SecurityOpt for a parse_security_opts result. `systempaths=unconfined` is left out: Docker's CLI
    turns it into empty MaskedPaths/ReadonlyPaths instead of sending it."""
    out = [f"label={v}" for v in parsed.get("label") or []]
    if parsed.get("apparmor") is not None:
        out.append(f"apparmor={parsed['apparmor']}")
    if parsed.get("seccomp") is not None:
        out.append(f"seccomp={parsed['seccomp']}")
    nnp = parsed.get("no_new_privileges")
    if nnp is True:
        out.append("no-new-privileges")
    elif nnp is False:
        out.append("no-new-privileges=false")
    return out


# --- healthcheck -----------------------------------------------------------------------------------------------

_MIN_HEALTH_DURATION = 1_000_000  # 1ms, Docker's containertypes.MinimumDuration

HEALTH_DEFAULTS = {"Interval": 30 * SECOND, "Timeout": 30 * SECOND, "Retries": 3, "StartPeriod": 0,
                   "StartInterval": 5 * SECOND}


def parse_healthcheck(cmd: str | None, interval: str | None, timeout: str | None, retries: str | None,
                      start_period: str | None, start_interval: str | None, no_healthcheck: bool) -> dict | None:
    """The `--health-*` flags as Config.Healthcheck, or None when none was given.

    Zero values are left out (Docker's JSON omits them), so `effective_healthcheck` can inherit the image's.
    """
    durations = {
        "Interval": parse_duration(interval, "--health-interval") if interval is not None else 0,
        "Timeout": parse_duration(timeout, "--health-timeout") if timeout is not None else 0,
        "StartPeriod": parse_duration(start_period, "--health-start-period") if start_period is not None else 0,
        "StartInterval": (parse_duration(start_interval, "--health-start-interval")
                          if start_interval is not None else 0),
    }
    count = parse_int_flag(retries, "--health-retries") if retries is not None else 0
    given = bool(cmd) or count != 0 or any(durations.values())
    if no_healthcheck:
        if given:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not given:
        return None
    for key, flag in (("Interval", "--health-interval"), ("Timeout", "--health-timeout")):
        if durations[key] < 0:
            raise InvalidArgument(f"{flag} cannot be negative")
    if count < 0:
        raise InvalidArgument("--health-retries cannot be negative")
    for key, flag in (("StartPeriod", "--health-start-period"), ("StartInterval", "--health-start-interval")):
        if durations[key] < 0:
            raise InvalidArgument(f"{flag} cannot be negative")
    # the daemon's own check, which barque (having no daemon) makes here
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        if 0 < durations[key] < _MIN_HEALTH_DURATION:
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")
    hc: dict = {}
    if cmd:
        hc["Test"] = ["CMD-SHELL", cmd]
    for key in ("Interval", "Timeout"):
        if durations[key]:
            hc[key] = durations[key]
    if count:
        hc["Retries"] = count
    for key in ("StartPeriod", "StartInterval"):
        if durations[key]:
            hc[key] = durations[key]
    return hc


def effective_healthcheck(image_hc: Mapping | None, run_hc: Mapping | None) -> dict | None:
    """The healthcheck a container runs, merged as Docker's daemon merges Config with the image's config: the
    run's Test replaces the image's, and each zero or missing field inherits the image's. None when there is no
    test, or when the test is ["NONE"] (disabled)."""
    if run_hc is None:
        merged = dict(image_hc) if image_hc else None
    else:
        merged = dict(run_hc)
        if image_hc:
            for key in ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
                if not merged.get(key) and image_hc.get(key):
                    merged[key] = image_hc[key]
    if not merged:
        return None
    test = merged.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    return {k: v for k, v in merged.items() if v or k == "Test"}


def healthcheck_defaults(hc: Mapping) -> dict:
    """`hc` with Docker's defaults in place of zero or missing fields (interval 30s, timeout 30s, 3 retries,
    no start period, start interval 5s)."""
    out = dict(hc)
    for key, default in HEALTH_DEFAULTS.items():
        if not out.get(key):
            out[key] = default
    return out


# --- signals ---------------------------------------------------------------------------------------------------

_SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8, "KILL": 9, "USR1": 10,
    "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19,
    "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28,
    "IO": 29, "PWR": 30, "SYS": 31,
}
_SIGNAL_ALIASES = {"IOT": 6, "CLD": 17, "POLL": 29, "UNUSED": 31}
_SIGRTMIN, _SIGRTMAX = 34, 64    # as glibc (and Docker) number them
for _n in range(_SIGRTMIN, _SIGRTMAX + 1):
    _off = _n - _SIGRTMIN
    if _off == 0:
        _SIGNALS["RTMIN"] = _n
    elif _off <= 15:
        _SIGNALS[f"RTMIN+{_off}"] = _n
    elif _n == _SIGRTMAX:
        _SIGNALS["RTMAX"] = _n
    else:
        _SIGNALS[f"RTMAX-{_SIGRTMAX - _n}"] = _n
_SIGNAL_NAMES = {number: "SIG" + name for name, number in _SIGNALS.items()}


def parse_signal(text: str, flag: str = "--stop-signal") -> str:
    """A signal given as `SIGTERM`, `term`, `15` or `SIGRTMIN+3`, as its canonical name ("SIGTERM").

    `flag` names the option for callers that want to mention it; Docker's message does not.
    """
    if re.fullmatch(r"[+-]?[0-9]+", text):
        number = int(text)
        if number in _SIGNAL_NAMES:
            return _SIGNAL_NAMES[number]
        raise InvalidArgument(f"invalid signal: {text}")
    name = text.upper().removeprefix("SIG")
    number = _SIGNALS.get(name, _SIGNAL_ALIASES.get(name))
    if number is None:
        raise InvalidArgument(f"invalid signal: {text}")
    return _SIGNAL_NAMES[number]


def signal_number(name: str) -> int:
    """The Linux number of a signal name or number as parse_signal accepts it."""
    canonical = parse_signal(name)
    return _SIGNALS[canonical.removeprefix("SIG")]


# --- key=value maps --------------------------------------------------------------------------------------------

_NAMESPACED_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                       "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}
_NAMESPACED_SYSCTL_PREFIXES = ("net.", "fs.mqueue.")


def parse_key_value_opts(values: Sequence[str], flag: str) -> dict[str, str]:
    """`--log-opt k=v`, `--sysctl k=v`, `--storage-opt k=v` … as a map, later keys winning.

    `--sysctl` admits only the namespaced sysctls Docker admits; `--log-opt k` is an empty value as in Docker;
    every other flag needs `key=value`.
    """
    out: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if flag == "--sysctl":
            if not sep or not key or not (key in _NAMESPACED_SYSCTLS or key.startswith(_NAMESPACED_SYSCTL_PREFIXES)):
                raise _flag_error(value, flag, f"sysctl '{value}' is not allowed")
        elif flag == "--storage-opt":
            if not sep:
                raise InvalidArgument("invalid storage option")
        elif flag != "--log-opt" and (not sep or not key):
            raise _flag_error(value, flag, f"invalid key=value pair: {value}")
        out[key] = val
    return out


# --- user, cpuset, pids, userns --------------------------------------------------------------------------------

def parse_user(text: str) -> tuple[str, str | None]:
    """`--user name|uid[:group|gid]` split into (user, group or None); names are resolved later, in the rootfs.

    An empty text is Docker's "no --user": ("", None), the image's user.
    """
    if text == "":
        return "", None
    user, sep, group = text.partition(":")
    if user == "" or (sep and group == "") or ":" in group:
        raise InvalidArgument(f"invalid user format: {go_quote(text)}: expected user[:group]")
    return user, (group if sep else None)


def parse_cpuset(text: str, flag: str) -> str:
    """`--cpuset-cpus` / `--cpuset-mems` list syntax (`0-2,4`), checked as Docker's daemon checks it."""
    what = "mems" if "mems" in flag else "cpus"
    if text == "":
        return text
    for part in text.split(","):
        low, dash, high = part.partition("-")
        ok = low.isascii() and low.isdigit() and (not dash or (high.isascii() and high.isdigit()
                                                                and int(high) >= int(low)))
        if not ok:
            raise InvalidArgument(f"Invalid value {text} for cpuset {what}: invalid format: {text}")
    return text


def parse_pids_limit(text: str) -> int:
    """`--pids-limit`: a positive limit, or 0 for unlimited (Docker reads 0 and -1, any value <= 0, so)."""
    value = parse_int_flag(text, "--pids-limit")
    return value if value > 0 else 0


def parse_userns(text: str) -> str:
    """`--userns`: "" (barque's default), "host", or "remap" — root in the container mapped to an unprivileged
    host range. Docker's "private" means the default and is read as "". """
    if text in ("", "host", "remap"):
        return text
    if text == "private":
        return ""
    raise InvalidArgument("--userns: invalid USER mode")
