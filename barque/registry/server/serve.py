"""Running the registry: bind, announce, serve until SIGTERM/SIGINT, collect garbage on SIGUSR1 or a timer.

The one line printed on standard output once the socket listens is ``barque registry listening on
http(s)://HOST:PORT`` (the actual port when 0 was asked for): scripts and tests wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Callable

from barque.registry.server.config import RegistryConfig, parse_addr

__all__ = ["serve", "LISTENING"]

log = logging.getLogger(__name__)

LISTENING = "barque registry listening on"


def _ssl_context(config: RegistryConfig):
    if config.tls_cert is None:
        return None
    import ssl

    from barque.errors import InvalidArgument

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    except (ssl.SSLError, OSError) as e:
        raise InvalidArgument(f"cannot use TLS certificate {config.tls_cert} / key {config.tls_key}: {e}") from None
    return ctx


def serve(config: RegistryConfig, announce: Callable[[str], None] | None = None) -> None:
    asyncio.run(_serve(config, announce or _print))


def _print(line: str) -> None:
    print(line, flush=True)


async def _serve(config: RegistryConfig, announce: Callable[[str], None]) -> None:
    from aiohttp import web

    from barque.registry.server.app import make_app
    from barque.registry.server.local import LocalStorage

    ssl_ctx = _ssl_context(config)
    host, port = parse_addr(config.addr)
    storage = LocalStorage(config.root, config.max_blob_size, config.max_upload_sessions)
    app = make_app(config, storage)
    state = app["registry"]
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_ctx, backlog=512, reuse_address=True)
        await site.start()
        bound = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        announce(f"{LISTENING} {'https' if ssl_ctx else 'http'}://{shown}:{bound[1]}")

        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        tasks: set[asyncio.Task] = set()

        def collect() -> None:
            task = loop.create_task(_collect_logged(state))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, collect)
        if config.gc_interval > 0:
            tasks.add(loop.create_task(_periodic(config.gc_interval, collect)))
        if config.upload_expiry > 0:
            # abandoned sessions go even when garbage collection is off (as distribution's upload purging)
            every = min(max(config.upload_expiry / 2, 1.0), 3600.0)
            tasks.add(loop.create_task(_periodic(every, lambda: _expire_uploads(state, tasks))))
        await stop.wait()
        for task in list(tasks):
            task.cancel()
    finally:
        await runner.cleanup()
        storage.close()


async def _periodic(interval: float, collect: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(interval)
        collect()


def _expire_uploads(state, tasks: set) -> None:
    async def run() -> None:
        try:
            removed = await state.run(state.storage.expire_uploads, state.config.upload_expiry)
            if removed:
                log.info("removed %d idle upload sessions", removed)
        except Exception:  # noqa: BLE001 - a failed sweep must not stop the server
            log.exception("expiring upload sessions failed")

    task = asyncio.get_running_loop().create_task(run())
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _collect_logged(state) -> None:
    try:
        report = await state.collect_garbage()
        print(f"garbage collection: {len(report.manifests_deleted)} manifests, {len(report.blobs_deleted)} blobs "
              f"({report.bytes_freed} bytes) deleted", file=sys.stderr, flush=True)
    except Exception:  # noqa: BLE001 - a failed collection must not stop the server
        log.exception("garbage collection failed")
