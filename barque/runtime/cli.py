"""`barque-runtime`: the OCI runtime command line, with runc's verbs and the flags containerd's shim (go-runc) passes.

    barque-runtime [--root DIR] [--log FILE] [--log-format text|json] [--debug] [--systemd-cgroup] COMMAND ...

Errors exit 1 with the message on stderr and, with --log, as a runc/logrus JSON line
({"level":"error","msg":...,"time":...}) — containerd's shim reports the last such line as the failure.
`run` and foreground `exec` exit with the container process's status (128+N when signal N killed it).

Kept light on purpose: argparse and the verb's own module only; the container side imports what it needs lazily.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser"]

log = logging.getLogger("barque.runtime")

VERSION = "barque-runtime version 0.1.0\ncommit: barque\nspec: 1.1.0"


class _JSONFormatter(logging.Formatter):
    LEVELS = {"WARNING": "warning", "CRITICAL": "fatal"}

    def format(self, record: logging.LogRecord) -> str:
        t = record.created
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"
        return json.dumps({"level": self.LEVELS.get(record.levelname, record.levelname.lower()),
                           "msg": record.getMessage(), "time": stamp})


def _setup_logging(args: argparse.Namespace) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="barque-runtime", description="barque's OCI runtime")
    p.add_argument("--root", default=os.environ.get("BARQUE_RUNTIME_ROOT", "/run/barque-runtime"))
    p.add_argument("--log", default=None)
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true", help="accepted; systemd is not used")
    p.add_argument("--rootless", default=None, help="accepted; barque-runtime runs as root")
    p.add_argument("--criu", default=None, help=argparse.SUPPRESS)
    p.add_argument("-v", "--version", action="store_true")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def create_like(name: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name)
        c.add_argument("--bundle", "-b", default=".")
        c.add_argument("--pid-file", default=None)
        c.add_argument("--console-socket", default=None)
        c.add_argument("--no-pivot", action="store_true")
        c.add_argument("--no-new-keyring", action="store_true")
        c.add_argument("--preserve-fds", type=int, default=0)
        c.add_argument("id")
        return c

    create_like("create")
    r = create_like("run")
    r.add_argument("--detach", "-d", action="store_true")
    r.add_argument("--keep", action="store_true", help="do not delete the container when it exits")
    sub.add_parser("start").add_argument("id")
    sub.add_parser("state").add_argument("id")
    k = sub.add_parser("kill")
    k.add_argument("--all", "-a", action="store_true")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="SIGTERM")
    d = sub.add_parser("delete")
    d.add_argument("--force", "-f", action="store_true")
    d.add_argument("id")
    ls = sub.add_parser("list")
    ls.add_argument("--format", "-f", choices=("table", "json"), default="table")
    ls.add_argument("--quiet", "-q", action="store_true")
    for verb in ("pause", "resume"):
        sub.add_parser(verb).add_argument("id")
    ps = sub.add_parser("ps")
    ps.add_argument("--format", "-f", choices=("table", "json"), default="table")
    ps.add_argument("id")
    ps.add_argument("ps_args", nargs=argparse.REMAINDER)
    e = sub.add_parser("exec")
    e.add_argument("--process", "-p", default=None)
    e.add_argument("--detach", "-d", action="store_true")
    e.add_argument("--pid-file", default=None)
    e.add_argument("--console-socket", default=None)
    e.add_argument("--tty", "-t", action="store_true")
    e.add_argument("--env", "-e", action="append", default=[])
    e.add_argument("--cwd", default=None)
    e.add_argument("--user", "-u", default=None)
    e.add_argument("--cap", "-c", action="append", default=[])
    e.add_argument("--no-new-privs", action="store_true")
    e.add_argument("--preserve-fds", type=int, default=0)
    e.add_argument("id")
    e.add_argument("args", nargs=argparse.REMAINDER)
    u = sub.add_parser("update")
    u.add_argument("--resources", "-r", default=None)
    u.add_argument("id")
    sub.add_parser("features")
    s = sub.add_parser("spec")
    s.add_argument("--bundle", "-b", default=".")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.version:
        print(VERSION)
        sys.exit(0)
    if not args.command:
        build_parser().print_usage(sys.stderr)
        sys.exit(2)
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


def _dispatch(args: argparse.Namespace) -> int:
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

        return run(store, args.id, opts, detach=args.detach)
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


def _exec(store, args: argparse.Namespace) -> int:
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
