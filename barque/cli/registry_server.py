"""`barque registry serve` and `barque registry garbage-collect`."""

from __future__ import annotations

import json

import click

from barque.registry.server.config import DEFAULT_ADDR, DEFAULT_ROOT


@click.command("serve")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="YAML file of settings (keys are these flags' long names); flags override it.")
@click.option("--addr", default=None, help=f"Address to listen on, HOST:PORT (default {DEFAULT_ADDR}; port 0 picks one).")
@click.option("--root", "root", default=None, help=f"Registry storage root (default {DEFAULT_ROOT}).")
@click.option("--tls-cert", default=None, help="PEM certificate (chain) to serve HTTPS with.")
@click.option("--tls-key", default=None, help="PEM private key of --tls-cert.")
@click.option("--htpasswd", default=None, help="htpasswd file of users (bcrypt entries, htpasswd -B).")
@click.option("--auth", type=click.Choice(["none", "htpasswd", "token"]), default=None,
              help="Authentication: Basic against --htpasswd, or bearer tokens from this registry's /token.")
@click.option("--token-service", default=None, help="Service name of issued tokens (default barque-registry).")
@click.option("--token-realm", default=None, help="Token realm URL to advertise (default this server's /token).")
@click.option("--token-ttl", type=int, default=None, help="Token lifetime in seconds (default 300).")
@click.option("--anonymous-pull/--no-anonymous-pull", default=None, help="Let anyone pull without credentials.")
@click.option("--read-only/--no-read-only", default=None, help="Refuse every write (405 UNSUPPORTED).")
@click.option("--delete-enabled/--no-delete-enabled", default=None, help="Allow blob and manifest DELETE.")
@click.option("--gc-interval", type=float, default=None,
              help="Seconds between online garbage collections (default 0: only on SIGUSR1).")
@click.option("--gc-grace", type=float, default=None,
              help="Unreferenced blobs used within this many seconds are kept (default 3600).")
@click.option("--gc-delete-untagged/--no-gc-delete-untagged", default=None,
              help="Online collections also delete untagged manifests.")
@click.option("--upload-expiry", type=float, default=None,
              help="Seconds after which an idle upload session is removed (default 86400).")
@click.option("--max-blob-size", type=int, default=None, help="Largest blob accepted, in bytes (default 0: no limit).")
@click.option("--max-upload-sessions", type=int, default=None,
              help="Open upload sessions allowed per repository (default 1000; 0: no limit).")
@click.option("--body-timeout", type=float, default=None,
              help="Seconds a request body may stall before the request is cut off with 408 (default 60; 0: never).")
def serve(config_file, **flags) -> None:
    """Run an OCI distribution-spec registry."""
    from pathlib import Path

    from barque.registry.server.config import load_config
    from barque.registry.server.serve import serve as run

    config = load_config(Path(config_file) if config_file else None, flags)
    config.root.mkdir(parents=True, exist_ok=True)
    run(config)


@click.command("garbage-collect")
@click.option("--root", "root", default=None, help=f"Registry storage root (default {DEFAULT_ROOT}).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="The registry's YAML settings (for root and grace period).")
@click.option("--grace-period", type=float, default=None,
              help="Keep unreferenced blobs used within this many seconds (default 3600).")
@click.option("-m", "--delete-untagged", is_flag=True, help="Also delete manifests no tag reaches.")
@click.option("--upload-expiry", type=float, default=None,
              help="Remove upload sessions idle for this many seconds (default 86400).")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted, delete nothing.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", help="Output format.")
def garbage_collect(root, config_file, grace_period, delete_untagged, upload_expiry, dry_run, fmt) -> None:
    """Delete manifests and blobs nothing references; safe while the registry serves."""
    from pathlib import Path

    from barque.errors import NotFound
    from barque.registry.server.config import load_config
    from barque.registry.server.local import LocalStorage

    config = load_config(Path(config_file) if config_file else None,
                         {"root": root})
    if not (config.root / "registry.db").is_file():
        raise NotFound(f"no registry at {config.root}")
    storage = LocalStorage(config.root)
    try:
        report = storage.collect_garbage(
            config.gc_grace if grace_period is None else grace_period,
            delete_untagged or config.gc_delete_untagged, dry_run,
            config.upload_expiry if upload_expiry is None else upload_expiry)
    finally:
        storage.close()
    if fmt == "json":
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    verb = "would delete" if dry_run else "deleted"
    for m in report.manifests_deleted:
        click.echo(f"{verb} manifest {m}")
    for b in report.blobs_deleted:
        click.echo(f"{verb} blob {b}")
    click.echo(f"{len(report.manifests_deleted)} manifests, {len(report.blobs_deleted)} blobs "
               f"({report.bytes_freed} bytes), {report.uploads_removed} uploads {verb}; "
               f"{report.blobs_kept_recent} unreferenced blobs kept (used within the grace period)")
