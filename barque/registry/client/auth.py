"""Registry authentication: the ``WWW-Authenticate`` challenge, Basic credentials, and bearer tokens.

The flow is Docker's token authentication spec (distribution ``docs/spec/auth/token.md``): a registry answers 401
with ``Bearer realm="…",service="…",scope="…"``; the client asks the realm for a token with ``service`` and one
``scope`` parameter per scope (``repository:NAME:pull`` or ``repository:NAME:pull,push``), presenting Basic
credentials when it has some (or, holding an identity token, POSTs the OAuth2 refresh-token grant), and retries
with ``Authorization: Bearer TOKEN``. Tokens are cached per (realm, service, scopes) until shortly before they expire.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass, field
from typing import Callable

from barque.errors import FailedPrecondition, Unavailable
from barque.registry.client.credentials import Credentials

__all__ = ["Challenge", "parse_challenges", "Authenticator", "scope_for", "TokenError"]

_TOKEN_DEFAULT_TTL = 60
TOKEN_RESPONSE_MAX = 1 << 20   # a token answer is a few KB; Docker's client reads at most 1 MiB of one as well
_CLIENT_ID = "barque"
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNQUOTED_RE = re.compile(r"[^,\s]*")   # laxer than RFC 7235's token: realms sent unquoted carry "://"


class TokenError(FailedPrecondition):
    """The token server refused the credentials."""


@dataclass(frozen=True)
class Challenge:
    scheme: str                      # lowercased: "basic" or "bearer"
    params: dict = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_challenges(header: str) -> list[Challenge]:
    """RFC 7235 challenges: ``Scheme k=v, k="quoted, value", Scheme2 …`` (several challenges may share a header)."""
    out: list[Challenge] = []
    i, n = 0, len(header)
    current: Challenge | None = None
    while i < n:
        while i < n and header[i] in " ,\t":
            i += 1
        m = _TOKEN_RE.match(header, i)
        if not m:
            break
        word = m.group(0)
        j = m.end()
        k = j
        while k < n and header[k] in " \t":
            k += 1
        if k < n and header[k] == "=" and current is not None:
            k += 1
            while k < n and header[k] in " \t":
                k += 1
            if k < n and header[k] == '"':
                k += 1
                value = []
                while k < n and header[k] != '"':
                    if header[k] == "\\" and k + 1 < n:
                        k += 1
                    value.append(header[k])
                    k += 1
                k += 1
                current.params[word.lower()] = "".join(value)
            else:
                vm = _UNQUOTED_RE.match(header, k)
                current.params[word.lower()] = vm.group(0)
                k = vm.end()
            i = k
            continue
        current = Challenge(word.lower(), {})
        out.append(current)
        i = j
    return out


def scope_for(repository: str, actions: str) -> str:
    return f"repository:{repository}:{actions}"


@dataclass
class _Token:
    value: str
    expires: float


class Authenticator:
    """Authorization headers for one process's requests, per registry host."""

    def __init__(self, credentials: Callable[[str], Credentials]) -> None:
        self._lookup = credentials
        self._creds: dict[str, Credentials] = {}
        self._tokens: dict[tuple, _Token] = {}
        self._fetching: dict[tuple, object] = {}            # key -> asyncio.Lock: one token request per scope set
        self.challenges: dict[str, Challenge | None] = {}   # endpoint URL -> its challenge (None: anonymous)
        self.refresh_tokens: dict[str, str] = {}

    def credentials(self, host: str) -> Credentials:
        if host not in self._creds:
            self._creds[host] = self._lookup(host)
        return self._creds[host]

    def set_credentials(self, host: str, creds: Credentials) -> None:
        self._creds[host] = creds

    def forget_token(self, challenge: Challenge, scopes: tuple[str, ...]) -> None:
        self._tokens.pop(self._token_key(challenge, scopes), None)

    @staticmethod
    def _token_key(challenge: Challenge, scopes: tuple[str, ...]) -> tuple:
        return challenge.realm, challenge.params.get("service", ""), tuple(sorted(scopes))

    async def header(self, session, host: str, challenge: Challenge | None, scopes: tuple[str, ...],
                     ssl) -> str | None:
        """The Authorization header value for a request to `host` under `challenge`, or None (anonymous)."""
        if challenge is None:
            return None
        creds = self.credentials(host)
        if challenge.scheme == "basic":
            if creds.empty or not creds.username:
                return None
            return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        if challenge.scheme != "bearer":
            raise FailedPrecondition(f"registry {host} asks for unsupported authentication scheme "
                                     f"{challenge.scheme!r}")
        key = self._token_key(challenge, scopes)
        tok = self._tokens.get(key)
        if tok is None or tok.expires <= time.monotonic():
            import asyncio

            # concurrent requests (five uploads, three downloads) wait for the one token request under way
            lock = self._fetching.setdefault(key, asyncio.Lock())
            async with lock:
                tok = self._tokens.get(key)
                if tok is None or tok.expires <= time.monotonic():
                    tok = await self._fetch_token(session, host, challenge, scopes, creds, ssl)
                    self._tokens[key] = tok
        return "Bearer " + tok.value

    async def _fetch_token(self, session, host: str, challenge: Challenge, scopes: tuple[str, ...],
                           creds: Credentials, ssl, offline: bool = False) -> _Token:
        import aiohttp

        from barque.registry.client.transport import TooLarge, read_body, read_prefix

        realm = challenge.realm
        if not realm.startswith(("http://", "https://")):
            raise FailedPrecondition(f"registry {host} sent a bearer challenge without a valid realm: {realm!r}")
        service = challenge.params.get("service", "")
        try:
            if creds.identity_token:
                form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                        "client_id": _CLIENT_ID, "scope": " ".join(scopes)}
                if service:
                    form["service"] = service
                req = session.post(realm, data=form, ssl=ssl)
            else:
                params: list[tuple[str, str]] = []
                if service:
                    params.append(("service", service))
                params += [("scope", s) for s in scopes]
                headers = {}
                if creds.username:
                    params.append(("account", creds.username))
                    headers["Authorization"] = "Basic " + base64.b64encode(
                        f"{creds.username}:{creds.password}".encode()).decode()
                    if offline:
                        params += [("offline_token", "true"), ("client_id", _CLIENT_ID)]
                req = session.get(realm, params=params, headers=headers, ssl=ssl)
            async with req as resp:
                status = resp.status
                if status == 200:
                    try:
                        body = await read_body(resp, TOKEN_RESPONSE_MAX)
                    except TooLarge as e:
                        raise Unavailable(f"token server {realm} sent an answer that is too large ({e})") from None
                else:
                    body = await read_prefix(resp)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise Unavailable(f"cannot get a token from {realm}: {e or type(e).__name__}") from e
        if status in (401, 403):
            what = "incorrect username or password" if creds.username or creds.identity_token else \
                "authentication required"
            raise TokenError(f"unauthorized: {what} (token server {realm} answered {status})")
        if status != 200:
            raise Unavailable(f"token server {realm} answered {status}: {body[:200].decode(errors='replace')}")
        import json

        try:
            doc = json.loads(body)
        except ValueError as e:
            raise Unavailable(f"token server {realm} sent invalid JSON: {e}") from e
        if not isinstance(doc, dict):
            raise Unavailable(f"token server {realm} sent no token")
        value = doc.get("token") or doc.get("access_token")
        if not isinstance(value, str) or not value:
            raise Unavailable(f"token server {realm} sent no token")
        if isinstance(doc.get("refresh_token"), str):
            self.refresh_tokens[host] = doc["refresh_token"]
        ttl = doc.get("expires_in")
        ttl = ttl if isinstance(ttl, int) and ttl > 0 else _TOKEN_DEFAULT_TTL
        return _Token(value, time.monotonic() + max(ttl - 10, ttl / 2))

    async def verify_login(self, session, host: str, challenge: Challenge, creds: Credentials, ssl) -> None:
        """Check credentials against a bearer realm the way `docker login` does (no scope, offline token)."""
        await self._fetch_token(session, host, challenge, (), creds, ssl, offline=True)
