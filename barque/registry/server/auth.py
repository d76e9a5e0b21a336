"""Who may do what: no auth, htpasswd Basic auth, or bearer tokens of the registry's own issuer.

Each /v2 route needs one `Need` (``repository:NAME:pull``, ``…:push``, ``…:delete``, ``registry:catalog:*``, or just
"authenticated" for ``/v2/``). An `Access` first identifies the caller (bad credentials are a 401 at once), then
says whether that identity has the need; a refusal is 401 UNAUTHORIZED with the ``WWW-Authenticate`` challenge a
client follows (Basic realm, or Bearer realm/service/scope as Docker's token spec has it).

Policy (`Policy.grant`): an authenticated user may pull, push and delete any repository and list the catalog;
anonymous callers may pull when ``anonymous_pull`` is on, and nothing else.
"""

from __future__ import annotations

import abc
import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING

from barque.registry.server.errors import RegistryError
from barque.registry.server.tokens import Scope, TokenError, TokenIssuer, granted

if TYPE_CHECKING:
    from aiohttp import web

    from barque.registry.server.htpasswd import Htpasswd

__all__ = ["Need", "Identity", "Access", "OpenAccess", "BasicAccess", "TokenAccess", "Policy", "basic_credentials"]

USER_ACTIONS = ("pull", "push", "delete", "*")


@dataclass(frozen=True)
class Need:
    type: str = ""      # "" = only authenticated (the /v2/ check)
    name: str = ""
    action: str = ""

    def scope(self) -> str:
        if not self.type:
            return ""
        actions = {"push": "pull,push"}.get(self.action, self.action)
        return f"{self.type}:{self.name}:{actions}"


@dataclass(frozen=True)
class Identity:
    user: str = ""               # "" for anonymous
    claims: dict | None = None   # a verified token's claims


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise RegistryError("UNAUTHORIZED", "malformed Basic credentials") from None
    if not sep:
        raise RegistryError("UNAUTHORIZED", "malformed Basic credentials")
    return user, password


class Policy:
    def __init__(self, anonymous_pull: bool = False) -> None:
        self.anonymous_pull = anonymous_pull

    def grant(self, user: str, scope: Scope) -> tuple[str, ...]:
        """The actions of `scope` that `user` ("" = anonymous) gets."""
        if scope.type == "registry":
            return tuple(a for a in scope.actions if a == "*") if user and scope.name == "catalog" else ()
        if scope.type != "repository":
            return ()
        if user:
            return tuple(a for a in scope.actions if a in USER_ACTIONS)
        return ("pull",) if self.anonymous_pull and "pull" in scope.actions else ()

    def allows(self, user: str, need: Need) -> bool:
        if not need.type:
            return bool(user)
        return need.action in self.grant(user, Scope(need.type, need.name, (need.action,)))


class Access(abc.ABC):
    @abc.abstractmethod
    async def identify(self, request: "web.Request") -> Identity: ...

    @abc.abstractmethod
    def allows(self, identity: Identity, need: Need) -> bool: ...

    @abc.abstractmethod
    def challenge(self, request: "web.Request", need: Need, error: str | None = None) -> RegistryError: ...

    async def check(self, request: "web.Request", need: Need) -> Identity:
        identity = await self.identify(request)
        if not self.allows(identity, need):
            raise self.challenge(request, need, "insufficient_scope" if identity.claims is not None else None)
        return identity


class OpenAccess(Access):
    async def identify(self, request):
        return Identity()

    def allows(self, identity, need):
        return True

    def challenge(self, request, need, error=None):  # pragma: no cover - never refuses
        raise AssertionError("open access never challenges")


class BasicAccess(Access):
    def __init__(self, users: "Htpasswd", policy: Policy, run_blocking, realm: str = "barque-registry") -> None:
        self.users = users
        self.policy = policy
        self.realm = realm
        self._run = run_blocking

    async def identify(self, request):
        try:
            creds = basic_credentials(request.headers.get("Authorization"))
        except RegistryError:
            raise self.challenge(request, Need()) from None
        if creds is None:
            return Identity()
        if not await self._run(self.users.verify, *creds):
            raise self.challenge(request, Need(), detail="invalid username or password")
        return Identity(creds[0])

    def allows(self, identity, need):
        return self.policy.allows(identity.user, need)

    def challenge(self, request, need, error=None, detail=None):
        return RegistryError("UNAUTHORIZED", detail, headers={"WWW-Authenticate": f'Basic realm="{self.realm}"'})


class TokenAccess(Access):
    def __init__(self, issuer: TokenIssuer, users: "Htpasswd", policy: Policy, realm: str | None = None) -> None:
        self.issuer = issuer
        self.users = users
        self.policy = policy
        self.realm = realm

    def realm_for(self, request) -> str:
        return self.realm or f"{request.scheme}://{request.host}/token"

    async def identify(self, request):
        header = request.headers.get("Authorization") or ""
        if header[:7].lower() != "bearer ":
            return Identity()
        try:
            claims = self.issuer.decode(header[7:].strip())
        except TokenError as e:
            raise self.challenge(request, Need(), "invalid_token", detail=str(e)) from None
        return Identity(str(claims.get("sub") or ""), claims)

    def allows(self, identity, need):
        if identity.claims is None:
            return False
        if not need.type:
            return True
        return granted(identity.claims, need.type, need.name, need.action)

    def challenge(self, request, need, error=None, detail=None):
        parts = [f'realm="{self.realm_for(request)}"', f'service="{self.issuer.service}"']
        if need.type:
            parts.append(f'scope="{need.scope()}"')
        if error:
            parts.append(f'error="{error}"')
        return RegistryError("UNAUTHORIZED", detail, headers={"WWW-Authenticate": "Bearer " + ",".join(parts)})
