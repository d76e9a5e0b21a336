"""`exec`: run a command in a running container (the engine side is barque.container.exec).

Exit status as `docker exec`: the command's own in the foreground (128+N when signal N ended it), 0 with -d,
126 when the command cannot be run (not found included, as dockerd), 1 when the container does not run.
"""

from __future__ import annotations

import os
import sys

import click

from barque.cli.errors import ExitStatus
from barque.cli.main import CONTEXT, engine_from

EXEC_CONTEXT = {**CONTEXT, "allow_interspersed_args": False}


@click.command("exec", context_settings=EXEC_CONTEXT)
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background.")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-e", "--env", "env", multiple=True, help="Set environment variables.")
@click.option("--env-file", multiple=True, help="Read in a file of environment variables.")
@click.option("-u", "--user", default=None, help="Username or UID (format: <name|uid>[:<group|gid>]).")
@click.option("-w", "--workdir", default=None, help="Working directory inside the container.")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command.")
@click.option("--detach-keys", default=None, help="Override the key sequence for detaching a container.")
@click.argument("container")
@click.argument("command", nargs=-1, required=True)
@click.pass_context
def exec_(ctx, detach, interactive, tty, env, env_file, user, workdir, privileged, detach_keys, container,
          command):
    """Execute a command in a running container."""
    from barque.container.exec import ExecFailed, exec_in
    from barque.container.options import parse_env
    from barque.errors import BarqueError

    if detach_keys is not None:
        from barque.cli.attach_io import parse_detach_keys

        parse_detach_keys(detach_keys)  # a bad sequence is refused before anything runs
    environ = parse_env(env, env_file, os.environ)
    if tty and interactive and not detach and not os.isatty(0):
        raise BarqueError("the input device is not a TTY")
    engine = engine_from(ctx)
    c = engine.containers.get(container)
    try:
        code = exec_in(engine, c, list(command), env=environ, user=user or None, workdir=workdir or None,
                       tty=tty, detach=detach, privileged=privileged, stdin=interactive, detach_keys=detach_keys)
    except ExecFailed as e:
        print(e.message, file=sys.stderr)
        raise ExitStatus(e.code) from None
    if code is None:  # detached with the detach keys: the command runs on
        sys.stderr.write("\r\n")
        sys.stderr.flush()
        return
    if code:
        raise ExitStatus(code)
