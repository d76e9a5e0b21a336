"""HTTP to registries: one aiohttp session per command, endpoints chosen by pinging ``/v2/``, authentication on
challenge, retries with exponential backoff, and registry errors turned into barque's error categories.

Retries: connection errors, timeouts, 429 and 5xx are retried up to `MAX_ATTEMPTS` times with backoff doubling from
`BACKOFF_S` (capped at `BACKOFF_MAX_S`), never beyond `RETRY_BUDGET_S` for one request. A name that does not resolve
is not retried (nothing will change in a second). A 401 carrying a token is retried once with a fresh token.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, Callable

from barque import __version__
from barque.errors import BarqueError, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from barque.registry.client.auth import Authenticator, Challenge, parse_challenges
from barque.registry.client.credentials import CredentialStore
from barque.registry.client.hosts import HUB_API_HOST, Endpoint, HostsConfig, load_hosts_config

__all__ = ["Client", "Remote", "RegistryError", "Unauthorized", "MAX_ATTEMPTS", "read_body", "read_prefix",
           "TooLarge"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 120.0
MAX_ATTEMPTS = 5
BACKOFF_S = 0.25
BACKOFF_MAX_S = 4.0
RETRY_BUDGET_S = 60.0
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
USER_AGENT = f"barque/{__version__}"


class Unauthorized(FailedPrecondition):
    """401/403 from a registry (or its token server)."""


class RegistryError(BarqueError):
    """Only a namespace for `error_for`; raised errors are of barque's categories."""


@dataclass(frozen=True)
class _Errors:
    status: int
    codes: tuple[tuple[str, str], ...]   # (code, message)

    def text(self) -> str:
        if not self.codes:
            return ""
        # Docker's errcode text: the code lowercased with spaces ("MANIFEST_UNKNOWN" -> "manifest unknown")
        return "; ".join(f"{c.lower().replace('_', ' ')}: {m}" if m else c.lower().replace("_", " ")
                         for c, m in self.codes)


def _parse_errors(status: int, body: bytes) -> _Errors:
    try:
        doc = json.loads(body)
        errs = doc.get("errors") if isinstance(doc, dict) else None
        codes = tuple((str(e.get("code") or ""), str(e.get("message") or "")) for e in errs or []
                      if isinstance(e, dict))
    except (ValueError, UnicodeDecodeError):
        codes = ()
    return _Errors(status, codes)


ERROR_BODY_MAX = 64 << 10        # an error answer's body: only its start is ever shown


class TooLarge(Exception):
    """A body longer than the limit it was read with."""


async def read_body(resp, limit: int) -> bytes:
    """The whole body of `resp`, read piece by piece; `TooLarge` past `limit` bytes (the rest is never read).

    (``resp.content.read(n)`` is no substitute: it returns what has arrived, at most n bytes, not n bytes.)"""
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise TooLarge(f"{declared} bytes, the limit is {limit}")
    pieces, total = [], 0
    while chunk := await resp.content.read(min(1 << 20, limit + 1 - total)):
        pieces.append(chunk)
        total += len(chunk)
        if total > limit:
            raise TooLarge(f"more than {limit} bytes")
    return b"".join(pieces)


async def read_prefix(resp, limit: int = ERROR_BODY_MAX) -> bytes:
    """At most `limit` bytes of the body (an error answer's: enough to show, never all of a hostile one)."""
    pieces, total = [], 0
    while total < limit and (chunk := await resp.content.read(limit - total)):
        pieces.append(chunk)
        total += len(chunk)
    return b"".join(pieces)


def error_for(method: str, url: str, status: int, body: bytes, what: str = "") -> BarqueError:
    """A barque error for a registry's failure answer, worded as Docker words them."""
    errs = _parse_errors(status, body)
    detail = errs.text()
    if not detail:
        detail = {401: "unauthorized: authentication required", 403: "denied: requested access to the resource is "
                  "denied", 404: "not found"}.get(status, f"unexpected status {status}")
        text = body[:200].decode(errors="replace").strip()
        if text and status not in (401, 403, 404) and not text.startswith("<"):
            detail += f": {text}"
    prefix = f"{what}: " if what else f'{method} "{url}": '
    msg = prefix + detail
    if status in (401, 403):
        return Unauthorized(msg)
    if status == 404:
        return NotFound(msg)
    if status in (400, 405, 413, 416):
        return InvalidArgument(msg)
    return Unavailable(msg)


def _connection_message(exc: BaseException) -> str:
    import re

    cert = getattr(exc, "certificate_error", None)
    if cert is not None:
        return f"tls: failed to verify certificate: {getattr(cert, 'verify_message', '') or cert}"
    os_error = getattr(exc, "os_error", None)
    host = getattr(exc, "host", None)
    if os_error is not None and host:
        import os

        errno = getattr(os_error, "errno", None)
        reason = getattr(os_error, "strerror", None) or (os.strerror(errno).lower() if errno else "") or \
            str(os_error) or type(os_error).__name__
        return f"dial tcp {host}:{getattr(exc, 'port', '')}: {reason}"
    text = str(exc) or type(exc).__name__
    return re.sub(r" ssl:(?:<[^>]*>|\S+)", "", text)


class Client:
    """One command's registry traffic. Use as an async context manager."""

    def __init__(self, hosts: HostsConfig | None = None, credentials: CredentialStore | None = None) -> None:
        self.hosts = hosts or load_hosts_config()
        self.credentials = credentials or CredentialStore()
        self.auth = Authenticator(self.credentials.get)
        self.session = None
        self._ssl: dict[Endpoint, Any] = {}

    async def __aenter__(self) -> "Client":
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S * 2, sock_connect=CONNECT_TIMEOUT_S,
                                        sock_read=READ_TIMEOUT_S)
        connector = aiohttp.TCPConnector(limit=32, limit_per_host=12, ttl_dns_cache=300)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                             headers={"User-Agent": USER_AGENT})
        return self

    async def __aexit__(self, *exc) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def ssl_for(self, ep: Endpoint):
        if ep not in self._ssl:
            ctx = ep.ssl_context()
            self._ssl[ep] = True if ctx is None else ctx
        return self._ssl[ep]

    async def ping(self, ep: Endpoint) -> Challenge | None:
        """GET /v2/ on one endpoint: its auth challenge (None when anonymous access works). Raises when the
        endpoint does not answer as a registry."""
        import aiohttp

        url = f"{ep.url}/v2/"
        try:
            async with self.session.get(url, ssl=self.ssl_for(ep), allow_redirects=True) as resp:
                body = await read_prefix(resp)
                status, header = resp.status, resp.headers.getall("WWW-Authenticate", [])
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise Unavailable(f'Get "{url}": {_connection_message(e)}') from e
        if status == 200:
            return None
        if status == 401:
            challenges = [c for h in header for c in parse_challenges(h)]
            for scheme in ("bearer", "basic"):
                for c in challenges:
                    if c.scheme == scheme:
                        return c
            raise Unauthorized(f'Get "{url}": registry asks for authentication without a usable challenge '
                               f"({', '.join(header) or 'no WWW-Authenticate header'})")
        raise error_for("GET", url, status, body)

    async def open(self, endpoints: list[Endpoint], repository: str, scopes: tuple[str, ...],
                   hub: bool = False) -> "Remote":
        """The first endpoint of `endpoints` that answers as a registry, bound to `repository`."""
        last: BarqueError | None = None
        for ep in endpoints:
            try:
                challenge = await self._ping_with_retries(ep)
            except Unavailable as e:
                log.debug("endpoint %s unusable: %s", ep.url, e)
                last = e
                continue
            return Remote(self, ep, challenge, repository, scopes)
        assert last is not None
        if hub:
            raise Unavailable(f"cannot reach Docker Hub ({HUB_API_HOST}): {last.message}. Names without a registry "
                              f"(busybox, user/app) are pulled from Docker Hub; name a registry (HOST[:PORT]/NAME) "
                              f"or configure a mirror in /etc/barque/registries.json; or load an image (barque load -i FILE) or make a "
                              f"base image offline (barque bootstrap busybox)") from last
        raise last

    async def _ping_with_retries(self, ep: Endpoint) -> Challenge | None:
        import aiohttp

        loop = asyncio.get_running_loop()
        deadline = loop.time() + RETRY_BUDGET_S
        delay = BACKOFF_S
        for attempt in range(MAX_ATTEMPTS):
            try:
                return await self.ping(ep)
            except Unavailable as e:
                cause = e.__cause__
                if _no_retry(cause) or attempt == MAX_ATTEMPTS - 1 or loop.time() + delay > deadline:
                    raise
                if isinstance(cause, aiohttp.ClientSSLError) or "SSL" in str(cause):
                    raise  # a TLS failure (plain HTTP server, bad certificate) will not heal
                log.debug("ping %s failed (%s), retrying in %.2fs", ep.url, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
        raise AssertionError("unreachable")


def _no_retry(exc: BaseException | None) -> bool:
    import aiohttp

    if isinstance(exc, getattr(aiohttp, "ClientConnectorDNSError", ())):
        return True
    import socket

    return isinstance(getattr(exc, "os_error", None), socket.gaierror) or isinstance(exc, socket.gaierror)


class Remote:
    """One repository on one endpoint, with its authentication."""

    def __init__(self, client: Client, endpoint: Endpoint, challenge: Challenge | None, repository: str,
                 scopes: tuple[str, ...]) -> None:
        self.client = client
        self.endpoint = endpoint
        self.challenge = challenge
        self.repository = repository
        self.scopes = scopes

    def url(self, suffix: str) -> str:
        if suffix.startswith(("http://", "https://")):
            return suffix
        if suffix.startswith("/"):
            from urllib.parse import urlsplit

            base = urlsplit(self.endpoint.url)
            return f"{base.scheme}://{base.netloc}{suffix}"
        return f"{self.endpoint.url}/v2/{self.repository}/{suffix}"

    async def _auth_headers(self, url: str, scopes: tuple[str, ...]) -> dict:
        from urllib.parse import urlsplit

        # credentials only ever go to the registry's own host, over its own scheme (never to an http:// Location
        # of an https registry)
        parts, own = urlsplit(url), urlsplit(self.endpoint.url)
        if parts.netloc != self.endpoint.host or parts.scheme != own.scheme:
            return {}
        value = await self.client.auth.header(self.client.session, self.endpoint.host, self.challenge, scopes,
                                              self.client.ssl_for(self.endpoint))
        return {"Authorization": value} if value else {}

    async def request(self, method: str, suffix: str, *, headers: dict | None = None,
                      data: bytes | Callable[[], Any] | None = None, scopes: tuple[str, ...] | None = None,
                      params: dict | None = None, allow_redirects: bool = True, retry: bool = True):
        """Send a request (retried as the module says); returns the aiohttp response, which the caller releases.

        `data` is bytes or a callable making a fresh body for each attempt. Non-2xx answers are returned as they
        are, except those retried; the caller decides with `fail`.
        """
        import aiohttp

        scopes = self.scopes if scopes is None else scopes
        url = self.url(suffix)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RETRY_BUDGET_S
        delay = BACKOFF_S
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            h = dict(headers or {})
            h.update(await self._auth_headers(url, scopes))
            body = data() if callable(data) else data
            try:
                resp = await self.client.session.request(method, url, headers=h, data=body, params=params,
                                                         ssl=self.client.ssl_for(self.endpoint),
                                                         allow_redirects=allow_redirects)
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                _close(body)
                if not retry or _no_retry(e) or attempt >= MAX_ATTEMPTS or loop.time() + delay > deadline:
                    raise Unavailable(f'{method.capitalize()} "{url}": {_connection_message(e)}') from e
                log.debug("%s %s: %s; retry %d in %.2fs", method, url, e, attempt, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            _close(body)
            if resp.status == 401 and not refreshed and self.challenge is not None:
                refreshed = True
                new = [c for v in resp.headers.getall("WWW-Authenticate", []) for c in parse_challenges(v)]
                if new and new[0].scheme == "bearer":
                    self.client.auth.forget_token(self.challenge, scopes)
                    self.challenge = new[0] if new[0].realm else self.challenge
                    resp.release()
                    continue
                if self.challenge.scheme == "bearer":
                    self.client.auth.forget_token(self.challenge, scopes)
                    resp.release()
                    continue
            if resp.status in _RETRY_STATUS and retry and attempt < MAX_ATTEMPTS and loop.time() + delay < deadline:
                wait = delay
                if resp.status == 429:
                    try:
                        wait = min(float(resp.headers.get("Retry-After", delay)), BACKOFF_MAX_S)
                    except ValueError:
                        pass
                log.debug("%s %s: status %d; retry %d in %.2fs", method, url, resp.status, attempt, wait)
                resp.release()
                await asyncio.sleep(wait)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            return resp

    async def fail(self, resp, what: str = "") -> BarqueError:
        """The error for a response that did not succeed (its body read, the response released)."""
        try:
            body = await read_prefix(resp)
        except Exception:  # noqa: BLE001 - the status says enough
            body = b""
        finally:
            resp.close()   # not release(): the rest of the body is not read, so the connection cannot be reused
        return error_for(resp.method, str(resp.url), resp.status, body, what)


def _close(body) -> None:
    close = getattr(body, "close", None)
    if close is not None and not isinstance(body, (bytes, bytearray, memoryview)):
        try:
            close()
        except Exception:  # noqa: BLE001
            pass
