"""Bearer tokens of the registry's own issuer: Docker's token authentication spec, JWT signed with HS256.

A client that gets ``401`` with ``WWW-Authenticate: Bearer realm=…,service=…,scope=…`` asks the realm
(``GET /token?service=…&scope=repository:NAME:pull,push``, Basic credentials optional) and receives
``{"token", "access_token", "expires_in", "issued_at"}``. The token's ``access`` claim lists what was granted
(``[{"type": "repository", "name": NAME, "actions": ["pull", "push"]}]``); each /v2 request is checked against it.

The signing key is 32 random bytes kept in ``<root>/token.key`` (mode 0600), made on first start, so tokens stay
valid across restarts and nothing else needs configuring. HS256 only: a token that names another algorithm is
refused outright (no "alg": "none").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Scope", "parse_scopes", "TokenIssuer", "TokenError", "load_key", "granted"]


class TokenError(Exception):
    """A token that is malformed, badly signed, expired or for another service."""


@dataclass(frozen=True)
class Scope:
    type: str      # repository, registry
    name: str      # repository name, or "catalog"
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"

    def to_claim(self) -> dict:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


def parse_scopes(values: list[str]) -> list[Scope]:
    """``repository:NAME:pull,push`` scopes (several per value, space-separated, as the spec allows). NAME may itself
    hold a ``host:port/`` prefix with a colon, so the actions are what follows the last colon."""
    out = []
    for value in values:
        for item in value.split():
            type_, sep, rest = item.partition(":")
            name, sep2, actions = rest.rpartition(":")
            if not sep or not sep2 or not type_ or not name:
                continue  # unknown shapes are ignored, as distribution's token servers do
            acts = tuple(a for a in actions.split(",") if a)
            out.append(Scope(type_, name, acts))
    return out


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_key(root: Path) -> bytes:
    """The issuer's signing key under `root`, made (0600, atomically) when missing."""
    path = Path(root) / "token.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".token.key.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    try:
        os.link(tmp, path)  # first writer wins when two processes start at once
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return bytes.fromhex(path.read_text().strip())


class TokenIssuer:
    def __init__(self, key: bytes, service: str, issuer: str = "barque-registry", ttl: int = 300) -> None:
        self.key = key
        self.service = service
        self.issuer = issuer
        self.ttl = ttl

    def issue(self, subject: str, access: list[Scope], now: float | None = None) -> dict:
        """The token endpoint's JSON answer for `subject` (empty for anonymous) granted `access`."""
        now = int(time.time() if now is None else now)
        claims = {
            "iss": self.issuer, "sub": subject, "aud": self.service,
            "exp": now + self.ttl, "nbf": now - 1, "iat": now,
            "jti": secrets.token_hex(16),
            "access": [s.to_claim() for s in access],
        }
        token = self.encode(claims)
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return {"token": token, "access_token": token, "expires_in": self.ttl, "issued_at": issued}

    def encode(self, claims: dict) -> str:
        header = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}, separators=(",", ":")).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode()
        return f"{header}.{payload}.{_b64(hmac.new(self.key, signing_input, hashlib.sha256).digest())}"

    def decode(self, token: str, now: float | None = None) -> dict:
        """The claims of a valid token for this service; TokenError otherwise."""
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("malformed token")
        try:
            header = json.loads(_unb64(parts[0]))
            claims = json.loads(_unb64(parts[1]))
            signature = _unb64(parts[2])
        except ValueError:
            raise TokenError("malformed token") from None
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            raise TokenError("token algorithm must be HS256")
        expected = hmac.new(self.key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            raise TokenError("token signature is invalid")
        if not isinstance(claims, dict):
            raise TokenError("malformed token claims")
        now = time.time() if now is None else now
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] < now:
            raise TokenError("token has expired")
        if isinstance(claims.get("nbf"), (int, float)) and claims["nbf"] > now + 60:
            raise TokenError("token is not valid yet")
        aud = claims.get("aud")
        if aud != self.service and not (isinstance(aud, list) and self.service in aud):
            raise TokenError("token is for another service")
        if claims.get("iss") != self.issuer:
            raise TokenError("token is from another issuer")
        return claims


def granted(claims: dict, type_: str, name: str, action: str) -> bool:
    """Whether the token's access claim allows `action` on the resource."""
    for entry in claims.get("access") or []:
        if not isinstance(entry, dict):
            continue
        if entry.get("type") == type_ and entry.get("name") == name:
            actions = entry.get("actions") or []
            if action in actions or "*" in actions:
                return True
    return False
