"""Reading request bodies with a stall limit: a client that stops sending in the middle of a body (a slowloris, or a
dead peer whose connection never closes) is answered 408 after `RegistryConfig.body_timeout` seconds instead of
holding a connection, a handler and (for an upload) the session's write lock for ever."""

from __future__ import annotations

import asyncio

from barque.registry.server.errors import RegistryError

__all__ = ["read_chunk"]


async def read_chunk(request, timeout: float, code: str) -> bytes:
    """The next piece of `request`'s body (b"" at its end); `code` with status 408 when nothing arrives for
    `timeout` seconds (0: wait for ever)."""
    try:
        async with asyncio.timeout(timeout or None):
            return await request.content.readany()
    except TimeoutError:
        raise RegistryError(code, f"the request body sent nothing for {timeout:g} s", status=408,
                            message="request body timed out") from None
