"""`login` and `logout`: credentials checked against the registry before they are stored, as `docker login` does.

The registry's ``/v2/`` says how it authenticates: Basic credentials are checked by a second ``/v2/`` request
carrying them; a bearer challenge by asking its token server for a token (no scope, ``offline_token=true``) — a
refresh token it returns is stored as the ``identitytoken`` in place of the password.
"""

from __future__ import annotations

import asyncio
import base64

from barque.errors import Unavailable
from barque.registry.client.credentials import CredentialStore, Credentials, auth_key
from barque.registry.client.hosts import DOCKER_HUB, HUB_AUTH_KEY
from barque.registry.client.transport import Client, Unauthorized

__all__ = ["login", "logout", "registry_host", "verify"]


def registry_host(server: str | None) -> tuple[str, str]:
    """(domain as references name it, config.json key) of what the user typed (a host, URL, or nothing: Hub)."""
    if not server:
        return DOCKER_HUB, HUB_AUTH_KEY
    text = server.strip()
    host = text.split("://", 1)[1] if "://" in text else text
    host = host.split("/", 1)[0]
    if host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        return DOCKER_HUB, HUB_AUTH_KEY
    return host, auth_key(host)


def login(server: str | None, username: str, password: str, store: CredentialStore | None = None,
          client: Client | None = None) -> str:
    """Verify and store; returns the key the credentials were stored under."""
    domain, key = registry_host(server)
    store = store or CredentialStore()
    creds = asyncio.run(_verify(domain, Credentials(username, password), client))
    store.store(key, creds)
    return key


def verify(server: str | None, creds: Credentials, client: Client | None = None) -> Credentials:
    """Check credentials against a registry as `login` does, storing nothing (the API's /auth): what to keep — the
    credentials, or the identity token a token server gave in their place."""
    domain, _ = registry_host(server)
    return asyncio.run(_verify(domain, creds, client))


async def _verify(domain: str, creds: Credentials, client: Client | None) -> Credentials:
    import aiohttp

    own = client is None
    client = client or Client(credentials=CredentialStore())
    if own:
        await client.__aenter__()
    try:
        remote = await client.open(client.hosts.origin_endpoints(domain), "", (), hub=domain == DOCKER_HUB)
        ch = remote.challenge
        if ch is None:
            return creds   # the registry lets anyone in: nothing to check, as Docker
        host = remote.endpoint.host
        if ch.scheme == "basic":
            url = f"{remote.endpoint.url}/v2/"
            auth = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            try:
                async with client.session.get(url, headers={"Authorization": f"Basic {auth}"},
                                              ssl=client.ssl_for(remote.endpoint)) as resp:
                    status, reason = resp.status, resp.reason
            except (aiohttp.ClientError, TimeoutError) as e:
                raise Unavailable(f'Get "{url}": {e}') from e
            if status != 200:
                raise Unauthorized(f"login attempt to {url} failed with status: {status} {reason}")
            return creds
        await client.auth.verify_login(client.session, host, ch, creds, client.ssl_for(remote.endpoint))
        refresh = client.auth.refresh_tokens.get(host)
        if refresh:
            return Credentials(creds.username, "", refresh)
        return creds
    finally:
        if own:
            await client.__aexit__(None, None, None)


def logout(server: str | None, store: CredentialStore | None = None) -> tuple[str, bool]:
    """Forget the credentials; returns (what to name the registry, whether there were any)."""
    domain, key = registry_host(server)
    store = store or CredentialStore()
    return key, store.erase(key)
