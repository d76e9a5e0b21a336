"""`barque-runtime`: the OCI runtime command line, with runc's verbs and the flags containerd's shim (go-runc) passes.

    barque-runtime [--root DIR] [--log FILE] [--log-format text|json] [--debug] [--systemd-cgroup] COMMAND ...

Errors exit 1 with the message on stderr and, with --log, as a runc/logrus JSON line
({"level":"error","msg":...,"time":...}) — containerd's shim reports the last such line as the failure.
`run` and foreground `exec` exit with the container process's status (128+N when signal N killed it).

Kept light on purpose: argparse and the verb's own module only; the container side imports what it needs lazily.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace as Namespace

__all__ = ["main", "parse_args", "VERBS"]

log = logging.getLogger("barque.runtime")

VERSION = "barque-runtime version 0.1.0\ncommit: barque\nspec: 1.1.0"


class _JSONFormatter(logging.Formatter):
    LEVELS = {"WARNING": "warning", "CRITICAL": "fatal"}

    def format(self, record: logging.LogRecord) -> str:
        t = record.created
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"
        return json.dumps({"level": self.LEVELS.get(record.levelname, record.levelname.lower()),
                           "msg": record.getMessage(), "time": stamp})


def _setup_logging(args: Namespace) -> None:
    root = logging.getLogger("barque")
    root.setLevel(logging.DEBUG if args.debug else logging.WARNING)
    root.propagate = False
    if args.log:
        handler: logging.Handler = logging.FileHandler(args.log)
        if args.log_format == "json":
            handler.setFormatter(_JSONFormatter())
        else:
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root.addHandler(handler)
    else:
        # no log file: warnings go to stderr (nothing on success, as go-runc reads stdout+stderr of `state`)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("barque-runtime: %(levelname)s: %(message)s"))
        root.addHandler(handler)
    if args.debug:
        os.environ["BARQUE_RUNTIME_DEBUG"] = "1"
    debug_log = os.environ.get("BARQUE_RUNTIME_DEBUG_LOG")
    if debug_log:  # a second, text log with tracebacks: for debugging under a shim that removes its log.json
        extra = logging.FileHandler(debug_log)
        extra.setFormatter(logging.Formatter(f"%(asctime)s {os.getpid()} {args.command} %(levelname)s %(message)s"))
        root.addHandler(extra)


class UsageError(Exception):
    """A bad command line: exit 2 with the message, as argparse would."""


# Each verb's flags: name -> (kind, default) with kind "bool", "str", "int" or "list"; short aliases map to names.
# runc's flags, as containerd's shim (go-runc) passes them; `--flag value` and `--flag=value` both work.
_CREATE = {"bundle": ("str", "."), "pid-file": ("str", None), "console-socket": ("str", None),
           "no-pivot": ("bool", False), "no-new-keyring": ("bool", False), "preserve-fds": ("int", 0)}
VERBS: dict[str, tuple[dict, dict, list[str]]] = {
    # verb: (flags, short aliases, positional names; a trailing "*name" takes the rest)
    "create": (_CREATE, {"b": "bundle"}, ["id"]),
    "run": ({**_CREATE, "detach": ("bool", False), "keep": ("bool", False)}, {"b": "bundle", "d": "detach"}, ["id"]),
    "start": ({}, {}, ["id"]),
    "state": ({}, {}, ["id"]),
    "kill": ({"all": ("bool", False)}, {"a": "all"}, ["id", "?signal"]),
    "delete": ({"force": ("bool", False)}, {"f": "force"}, ["id"]),
    "list": ({"format": ("str", "table"), "quiet": ("bool", False)}, {"f": "format", "q": "quiet"}, []),
    "pause": ({}, {}, ["id"]),
    "resume": ({}, {}, ["id"]),
    "ps": ({"format": ("str", "table")}, {"f": "format"}, ["id", "*ps_args"]),
    "exec": ({"process": ("str", None), "detach": ("bool", False), "pid-file": ("str", None),
              "console-socket": ("str", None), "tty": ("bool", False), "env": ("list", None),
              "cwd": ("str", None), "user": ("str", None), "cap": ("list", None), "no-new-privs": ("bool", False),
              "preserve-fds": ("int", 0)},
             {"p": "process", "d": "detach", "t": "tty", "e": "env", "u": "user", "c": "cap"}, ["id", "*args"]),
    "update": ({"resources": ("str", None)}, {"r": "resources"}, ["id"]),
    "features": ({}, {}, []),
    "spec": ({"bundle": ("str", ".")}, {"b": "bundle"}, []),
}
GLOBAL = {"root": ("str", None), "log": ("str", None), "log-format": ("str", "text"), "debug": ("bool", False),
          "systemd-cgroup": ("bool", False), "rootless": ("str", None), "criu": ("str", None),
          "version": ("bool", False), "help": ("bool", False)}
GLOBAL_SHORT = {"v": "version", "h": "help"}
CHOICES = {"log-format": ("text", "json"), "format": ("table", "json")}
USAGE = ("usage: barque-runtime [--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND [OPTIONS] ID\n"
         f"commands: {', '.join(VERBS)}")


def _parse_flags(argv: list[str], flags: dict, short: dict, ns: Namespace,
                 stop_at_positional: bool, greedy_after: int = 0) -> list[str]:
    """Consume flags from the front of argv (and, for a verb, between its positionals); the positionals left.
    With greedy_after N, everything after the N-th positional is left as it is (exec's command line)."""
    for name, (kind, default) in flags.items():
        setattr(ns, name.replace("-", "_"), list(default or []) if kind == "list" else default)
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        if not arg.startswith("-") or arg == "-":
            if stop_at_positional:
                return argv[i:]
            rest.append(arg)
            i += 1
            if greedy_after and len(rest) >= greedy_after:
                return rest + argv[i:]
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        name = short.get(name, name) if not arg.startswith("--") else name
        if name not in flags:
            raise UsageError(f"unknown option {arg.split('=')[0]}")
        kind = flags[name][0]
        attr = name.replace("-", "_")
        if kind == "bool":
            setattr(ns, attr, value.lower() not in ("false", "0") if eq else True)
            i += 1
            continue
        if not eq:
            if i + 1 >= len(argv):
                raise UsageError(f"option --{name} needs a value")
            value = argv[i + 1]
            i += 1
        i += 1
        if name in CHOICES and value not in CHOICES[name]:
            raise UsageError(f"--{name} must be one of {', '.join(CHOICES[name])}, not {value!r}")
        if kind == "int":
            if not value.lstrip("-").isdigit():
                raise UsageError(f"--{name} needs a number, not {value!r}")
            setattr(ns, attr, int(value))
        elif kind == "list":
            getattr(ns, attr).append(value)
        else:
            setattr(ns, attr, value)
    return rest


def parse_args(argv: list[str]) -> Namespace:
    """runc's command line: global flags, the verb, its flags and positionals (flags may follow positionals, as
    urfave/cli allows, until a verb that takes a command line (exec, ps) has its id)."""
    ns = Namespace()
    rest = _parse_flags(argv, GLOBAL, GLOBAL_SHORT, ns, stop_at_positional=True)
    if ns.root is None:
        ns.root = os.environ.get("BARQUE_RUNTIME_ROOT", "/run/barque-runtime")
    ns.command = rest[0] if rest else None
    if ns.version or ns.help or ns.command is None:
        return ns
    if ns.command not in VERBS:
        raise UsageError(f"unknown command {ns.command!r}")
    flags, short, positionals = VERBS[ns.command]
    greedy = next((i for i, p in enumerate(positionals) if p.startswith("*")), 0)
    values = _parse_flags(rest[1:], flags, short, ns, stop_at_positional=False, greedy_after=greedy)
    for i, name in enumerate(positionals):
        if name.startswith("*"):
            setattr(ns, name[1:], values[i:])
            values = values[:i]
            break
        if i < len(values):
            setattr(ns, name.lstrip("?"), values[i])
        elif name.startswith("?"):
            setattr(ns, name[1:], None)
        else:
            raise UsageError(f"{ns.command} needs a container {name}")
    else:
        if len(values) > len(positionals):
            raise UsageError(f"{ns.command}: unexpected argument {values[len(positionals)]!r}")
    if ns.command == "kill" and ns.signal is None:
        ns.signal = "SIGTERM"
    return ns


def main(argv: list[str] | None = None) -> None:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        print(f"barque-runtime: {e}\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    if args.version:
        print(VERSION)
        sys.exit(0)
    if args.help or not args.command:
        print(USAGE, file=sys.stdout if args.help else sys.stderr)
        sys.exit(0 if args.help else 2)
    if os.environ.get("BARQUE_RUNTIME_DEBUG"):  # reaches us through containerd and its shim, flags do not
        args.debug = True
    _setup_logging(args)
    try:
        code = _dispatch(args)
    except Exception as e:  # noqa: BLE001 - the one place errors become messages and an exit status
        from barque.errors import BarqueError

        if isinstance(e, BarqueError) or isinstance(e, OSError):
            msg = str(e)
        else:
            msg = f"internal error: {type(e).__name__}: {e}"
        log.debug("%s failed", args.command, exc_info=True)
        log.error("%s", msg)
        if args.log:  # the handler above went to the file; the user still wants to see it
            print(f"barque-runtime: {msg}", file=sys.stderr)
        sys.exit(1)
    sys.stdout.flush()
    sys.exit(code)


def _dispatch(args: Namespace) -> int:
    from barque.runtime.state import StateStore

    store = StateStore(Path(args.root))
    cmd = args.command
    if cmd in ("create", "run"):
        from barque.runtime.create import CreateOptions

        if args.no_pivot:
            from barque.errors import InvalidArgument

            raise InvalidArgument("--no-pivot is not supported: barque-runtime always uses pivot_root")
        opts = CreateOptions(bundle=Path(args.bundle), pid_file=Path(args.pid_file) if args.pid_file else None,
                             console_socket=args.console_socket, preserve_fds=args.preserve_fds)
        if cmd == "create":
            from barque.runtime.create import create

            create(store, args.id, opts)
            return 0
        from barque.runtime.run import run

        return run(store, args.id, opts, detach=args.detach, keep=args.keep)
    if cmd == "start":
        from barque.runtime.start import start

        start(store, args.id)
        return 0
    if cmd == "state":
        from barque.runtime.state_cmd import state

        print(json.dumps(state(store, args.id), indent=2))
        return 0
    if cmd == "kill":
        from barque.runtime.kill import kill, parse_signal

        kill(store, args.id, parse_signal(args.signal), args.all)
        return 0
    if cmd == "delete":
        from barque.runtime.delete import delete

        delete(store, args.id, args.force)
        return 0
    if cmd == "list":
        from barque.runtime.list import list_containers, render_table

        states = list_containers(store)
        if args.quiet:
            print("\n".join(s["id"] for s in states))
        elif args.format == "json":
            print(json.dumps(states))
        else:
            sys.stdout.write(render_table(states))
        return 0
    if cmd in ("pause", "resume"):
        from barque.runtime import pause

        getattr(pause, cmd)(store, args.id)
        return 0
    if cmd == "ps":
        from barque.runtime.ps import pids, render_table as ps_table

        found = pids(store, args.id)
        if args.format == "json":
            print(json.dumps(found))
        else:
            sys.stdout.write(ps_table(found))
        return 0
    if cmd == "exec":
        return _exec(store, args)
    if cmd == "update":
        from barque.errors import InvalidArgument
        from barque.runtime.update import update

        if args.resources is None:
            raise InvalidArgument("update needs --resources FILE (or - for stdin)")
        text = sys.stdin.read() if args.resources == "-" else Path(args.resources).read_text()
        update(store, args.id, text)
        return 0
    if cmd == "features":
        from barque.runtime.features import features

        print(json.dumps(features(), indent=2))
        return 0
    if cmd == "spec":
        from barque.runtime.defaults import base_spec

        target = Path(args.bundle) / "config.json"
        if target.exists():
            from barque.errors import AlreadyExists

            raise AlreadyExists(f"{target} exists already")
        target.write_text(json.dumps(base_spec(["sh"], "rootfs", terminal=False), indent=2) + "\n")
        return 0
    raise AssertionError(cmd)


def _exec(store, args: Namespace) -> int:
    from barque.errors import InvalidArgument
    from barque.runtime.exec import exec_process, process_from_args

    if args.process:
        try:
            process = json.loads(Path(args.process).read_bytes())
        except (OSError, ValueError) as e:
            raise InvalidArgument(f"--process {args.process}: {e}") from e
    else:
        argv = args.args[1:] if args.args[:1] == ["--"] else args.args
        if not argv:
            raise InvalidArgument("exec needs --process FILE or the command to run")
        base = store.load(args.id).config().get("process") or {}
        process = process_from_args(base, argv, env=args.env, cwd=args.cwd, user=args.user, tty=args.tty,
                                    caps=args.cap, no_new_privs=args.no_new_privs)
    return exec_process(store, args.id, process, detach=args.detach,
                        pid_file=Path(args.pid_file) if args.pid_file else None,
                        console_socket=args.console_socket, preserve_fds=args.preserve_fds)


if __name__ == "__main__":
    main()
