"""`barque` entry point: global options, lazily loaded sub-commands, and the single error exit."""

from __future__ import annotations

import importlib
import logging
import sys

import click

from barque import __version__
from barque.cli.errors import EXIT_USAGE, report


class LazyGroup(click.Group):
    """A group whose sub-commands live in modules imported only when that command runs."""

    def __init__(self, *args, lazy: dict[str, str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._lazy))

    def get_command(self, ctx: click.Context, name: str):
        if name in self._lazy:
            module, _, attr = self._lazy[name].partition(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as e:
            if args and not args[0].startswith("-"):
                raise click.UsageError(f"unknown command: {args[0]}", ctx) from e
            raise


def lazy_group(name: str, help: str, commands: dict[str, str]) -> LazyGroup:
    return LazyGroup(name=name, help=help, lazy=commands, context_settings=CONTEXT)


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}

IMAGE_COMMANDS = {
    "ls": "barque.cli.images:images",
    "list": "barque.cli.images:images",
    "inspect": "barque.cli.images:image_inspect",
    "rm": "barque.cli.images:rmi",
    "remove": "barque.cli.images:rmi",
    "tag": "barque.cli.images:tag",
    "history": "barque.cli.images:history",
    "prune": "barque.cli.images:image_prune",
    "save": "barque.cli.archive:save",
    "load": "barque.cli.archive:load",
    "import": "barque.cli.archive:import_",
    "build": "barque.cli.build:build",
    "pull": "barque.cli.registry_client:pull",
    "push": "barque.cli.registry_client:push",
}

CONTAINER_COMMANDS = {
    "run": "barque.cli.run:run",
    "create": "barque.cli.run:create",
    "start": "barque.cli.containers:start",
    "stop": "barque.cli.containers:stop",
    "restart": "barque.cli.containers:restart",
    "kill": "barque.cli.containers:kill",
    "pause": "barque.cli.containers:pause",
    "unpause": "barque.cli.containers:unpause",
    "rm": "barque.cli.containers:rm",
    "wait": "barque.cli.containers:wait",
    "rename": "barque.cli.containers:rename",
    "logs": "barque.cli.containers:logs",
    "attach": "barque.cli.containers:attach",
    "exec": "barque.cli.exec:exec_",
    "top": "barque.cli.observe:top",
    "stats": "barque.cli.observe:stats",
    "cp": "barque.cli.files:cp",
    "diff": "barque.cli.files:diff",
    "export": "barque.cli.files:export",
    "commit": "barque.cli.files:commit",
    "update": "barque.cli.observe:update",
    "port": "barque.cli.networks:port",
}

TOP_COMMANDS = {
    **CONTAINER_COMMANDS,
    "ps": "barque.cli.containers:ps",
    "events": "barque.cli.observe:events",
    "container": "barque.cli.main:container_group",
    "volume": "barque.cli.main:volume_group",
    "network": "barque.cli.main:network_group",
    "images": "barque.cli.images:images",
    "rmi": "barque.cli.images:rmi",
    "tag": "barque.cli.images:tag",
    "history": "barque.cli.images:history",
    "inspect": "barque.cli.images:inspect",
    "save": "barque.cli.archive:save",
    "load": "barque.cli.archive:load",
    "import": "barque.cli.archive:import_",
    "build": "barque.cli.build:build",
    "info": "barque.cli.system:info",
    "version": "barque.cli.system:version",
    "image": "barque.cli.main:image_group",
    "system": "barque.cli.main:system_group",
    "bootstrap": "barque.cli.main:bootstrap_group",
    "builder": "barque.cli.main:builder_group",
    "pull": "barque.cli.registry_client:pull",
    "push": "barque.cli.registry_client:push",
    "login": "barque.cli.registry_client:login",
    "logout": "barque.cli.registry_client:logout",
    "registry": "barque.cli.main:registry_group",
    "serve": "barque.cli.serve:serve",
}

image_group = lazy_group("image", "Manage images", IMAGE_COMMANDS)
container_group = lazy_group("container", "Manage containers", {
    **CONTAINER_COMMANDS,
    "ls": "barque.cli.containers:ps",
    "list": "barque.cli.containers:ps",
    "ps": "barque.cli.containers:ps",
    "inspect": "barque.cli.containers:container_inspect",
    "prune": "barque.cli.containers:container_prune",
    "remove": "barque.cli.containers:rm",
})
volume_group = lazy_group("volume", "Manage volumes", {
    "create": "barque.cli.volumes:create",
    "ls": "barque.cli.volumes:ls",
    "list": "barque.cli.volumes:ls",
    "inspect": "barque.cli.volumes:inspect",
    "rm": "barque.cli.volumes:rm",
    "remove": "barque.cli.volumes:rm",
    "prune": "barque.cli.volumes:prune",
})
network_group = lazy_group("network", "Manage networks", {
    "create": "barque.cli.networks:create",
    "ls": "barque.cli.networks:ls",
    "list": "barque.cli.networks:ls",
    "inspect": "barque.cli.networks:inspect",
    "rm": "barque.cli.networks:rm",
    "remove": "barque.cli.networks:rm",
    "prune": "barque.cli.networks:prune",
    "connect": "barque.cli.networks:connect",
    "disconnect": "barque.cli.networks:disconnect",
})
system_group = lazy_group("system", "Manage barque", {
    "restore": "barque.cli.observe:restore",
    "check": "barque.cli.system:check",
    "df": "barque.cli.system:df",
    "info": "barque.cli.system:info",
    "prune": "barque.cli.system:system_prune",
})
builder_group = lazy_group("builder", "Manage builds", {
    "build": "barque.cli.build:build",
    "prune": "barque.cli.build:builder_prune",
})
registry_group = lazy_group("registry", "Run an OCI distribution registry", {
    "serve": "barque.cli.registry_server:serve",
    "garbage-collect": "barque.cli.registry_server:garbage_collect",
})
bootstrap_group = lazy_group("bootstrap", "Make base images offline from the host's own packages", {
    "busybox": "barque.cli.bootstrap:busybox",
    "debian": "barque.cli.bootstrap:debian",
})


@click.group(cls=LazyGroup, lazy=TOP_COMMANDS, context_settings=CONTEXT)
@click.option("--root", envvar="BARQUE_ROOT", default=None, metavar="DIR",
              help="Root of persistent state (default /var/lib/barque).")
@click.option("--run-root", envvar="BARQUE_RUN_ROOT", default=None, metavar="DIR",
              help="Root of run-time state (default /run/barque).")
@click.option("-s", "--storage-driver", envvar="BARQUE_STORAGE_DRIVER", default=None, metavar="NAME",
              help="Storage driver: overlay (default), btrfs or vfs.")
@click.option("-l", "--log-level", envvar="BARQUE_LOG_LEVEL", default="warning",
              type=click.Choice(["debug", "info", "warn", "warning", "error", "fatal"], case_sensitive=False),
              help="Logging level.")
@click.option("-D", "--debug", is_flag=True, help="Enable debug mode.")
@click.version_option(__version__, "-v", "--version", message="barque version %(version)s")
@click.pass_context
def cli(ctx: click.Context, root, run_root, storage_driver, log_level, debug) -> None:
    """A daemonless container engine that speaks OCI and Docker's formats."""
    from barque.config import Settings

    level = "debug" if debug else log_level.lower().replace("warn", "warning").replace("warninging", "warning")
    logging.basicConfig(level=getattr(logging, "CRITICAL" if level == "fatal" else level.upper()),
                        format="%(levelname)s[%(name)s] %(message)s")
    ctx.obj = Settings.from_env(root, run_root, storage_driver, level)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        cli.main(args=args, prog_name="barque", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.UsageError as e:
        cmd = e.ctx.command_path if e.ctx else "barque"
        msg = e.format_message()
        msg = msg.replace("No such option: ", "unknown flag: ")
        print(f"{msg}\nSee '{cmd} --help'.", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except click.ClickException as e:
        print(f"Error: {e.format_message()}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except BaseException as e:  # noqa: BLE001 - the one place errors become exit codes
        if isinstance(e, SystemExit):
            raise
        sys.exit(report(e))
    sys.exit(0)


def engine_from(ctx: click.Context):
    """The Engine for this invocation, built once."""
    root_ctx = ctx.find_root()
    eng = root_ctx.meta.get("barque.engine")
    if eng is None:
        from barque.engine import Engine

        eng = Engine(root_ctx.obj)
        root_ctx.meta["barque.engine"] = eng
    return eng


if __name__ == "__main__":
    main()
