"""Registry credentials where Docker keeps them: ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``).

Read: ``auths[KEY].auth`` (base64 ``user:password``), ``auths[KEY].identitytoken`` (an OAuth refresh token),
``credHelpers[HOST]`` and ``credsStore`` naming a ``docker-credential-NAME`` program spoken to as Docker does
(``get``/``store``/``erase`` with the server on stdin). Docker Hub's key is ``https://index.docker.io/v1/``; other
registries are keyed ``HOST[:PORT]`` (keys written with a scheme or path are matched by their host, as Docker does).

Written by `login`: into the helper when one is configured for the registry, otherwise into config.json, keeping
every other key of the file, mode 0600, by an atomic rename.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from barque.errors import FailedPrecondition, InvalidArgument

__all__ = ["Credentials", "CredentialStore", "config_path", "auth_key"]

HELPER_TIMEOUT_S = 30
_TOKEN_USER = "<token>"


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identity_token)


def config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def auth_key(host: str) -> str:
    """The config.json key of a registry (its API host for Hub's endpoints)."""
    from barque.registry.client.hosts import HUB_API_HOST, HUB_AUTH_KEY

    if host in ("docker.io", "index.docker.io", HUB_API_HOST, HUB_AUTH_KEY):
        return HUB_AUTH_KEY
    return host


def _host_of(key: str) -> str:
    """Docker's ConvertToHostname: strip a scheme and a path."""
    k = key.split("://", 1)[1] if "://" in key else key
    return k.split("/", 1)[0]


class CredentialStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_path()

    # -- the file --------------------------------------------------------------------------------------------
    def _read(self) -> dict:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise FailedPrecondition(f"cannot read {self.path}: {e}") from e
        if not text.strip():
            return {}
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise InvalidArgument(f"invalid Docker config file {self.path}: {e}") from e
        if not isinstance(doc, dict):
            raise InvalidArgument(f"invalid Docker config file {self.path}: expected a JSON object")
        return doc

    def _write(self, doc: dict) -> None:
        """Replace the file atomically. The temporary file is a new one (O_EXCL, O_NOFOLLOW, an unguessable name:
        nothing planted in the directory can receive the credentials) and is 0600 before the first byte."""
        import secrets

        target = self.path.resolve() if self.path.is_symlink() else self.path
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                os.fchmod(f.fileno(), 0o600)   # whatever the umask
                json.dump(doc, f, indent="\t")
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _helper_for(self, doc: dict, key: str) -> str | None:
        helpers = doc.get("credHelpers") or {}
        if isinstance(helpers, dict):
            for k, name in helpers.items():
                if isinstance(name, str) and name and (k == key or _host_of(k) == _host_of(key)):
                    return name
        store = doc.get("credsStore")
        return store if isinstance(store, str) and store else None

    # -- reading ---------------------------------------------------------------------------------------------
    def get(self, host: str) -> Credentials:
        """The credentials for a registry host (empty when there are none)."""
        key = auth_key(host)
        doc = self._read()
        helper = self._helper_for(doc, key)
        if helper:
            creds = _helper_get(helper, key)
            if not creds.empty:
                return creds
        auths = doc.get("auths") or {}
        if not isinstance(auths, dict):
            return Credentials()
        entry = auths.get(key)
        if entry is None:
            for k, v in auths.items():
                if _host_of(k) == _host_of(key):
                    entry = v
                    break
        if not isinstance(entry, dict):
            return Credentials()
        return _decode_entry(entry, key, self.path)

    # -- writing ---------------------------------------------------------------------------------------------
    def store(self, host: str, creds: Credentials) -> None:
        key = auth_key(host)
        doc = self._read()
        helper = self._helper_for(doc, key)
        if helper:
            username, secret = (_TOKEN_USER, creds.identity_token) if creds.identity_token else (creds.username,
                                                                                                 creds.password)
            _run_helper(helper, "store", json.dumps({"ServerURL": key, "Username": username, "Secret": secret}))
            auths = doc.setdefault("auths", {})
            if isinstance(auths, dict):
                auths[key] = {}  # Docker leaves an empty entry so `docker info` lists the registry
                self._write(doc)
            return
        auths = doc.get("auths")
        if not isinstance(auths, dict):
            auths = doc["auths"] = {}
        entry: dict = {}
        if creds.identity_token:
            entry["auth"] = base64.b64encode(f"{creds.username}:".encode()).decode()
            entry["identitytoken"] = creds.identity_token
        else:
            entry["auth"] = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        for k in [k for k in auths if k != key and _host_of(k) == _host_of(key)]:
            del auths[k]
        auths[key] = entry
        self._write(doc)

    def erase(self, host: str) -> bool:
        """Forget a registry's credentials; False when there were none."""
        key = auth_key(host)
        doc = self._read()
        found = False
        helper = self._helper_for(doc, key)
        if helper:
            try:
                found = not _helper_get(helper, key).empty
                if found:
                    _run_helper(helper, "erase", key)
            except FailedPrecondition:
                pass
        auths = doc.get("auths")
        if isinstance(auths, dict):
            for k in [k for k in auths if k == key or _host_of(k) == _host_of(key)]:
                del auths[k]
                found = True
            if found:
                self._write(doc)
        return found


def _decode_entry(entry: dict, key: str, path: Path) -> Credentials:
    username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
    raw = entry.get("auth")
    if raw:
        try:
            decoded = base64.b64decode(str(raw), validate=False).decode()
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidArgument(f"invalid auth for {key} in {path}: not base64 of user:password") from e
        user, sep, pw = decoded.partition(":")
        if not sep:
            raise InvalidArgument(f"invalid auth for {key} in {path}: not base64 of user:password")
        username, password = user, pw
    return Credentials(username, password, str(entry.get("identitytoken") or ""))


def _run_helper(name: str, action: str, stdin: str) -> str:
    program = f"docker-credential-{name}"
    try:
        proc = subprocess.run([program, action], input=stdin.encode(), capture_output=True,
                              timeout=HELPER_TIMEOUT_S, stdin=None)
    except FileNotFoundError:
        raise FailedPrecondition(f"credential helper {program} is configured but not installed (not in $PATH)") \
            from None
    except subprocess.TimeoutExpired:
        raise FailedPrecondition(f"credential helper {program} {action} did not answer within "
                                 f"{HELPER_TIMEOUT_S}s") from None
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0:
        if action == "get" and "credentials not found" in out.lower():
            return ""
        msg = out or proc.stderr.decode(errors="replace").strip()
        raise FailedPrecondition(f"credential helper {program} {action} failed: {msg}")
    return out


def _helper_get(name: str, key: str) -> Credentials:
    out = _run_helper(name, "get", key)
    if not out:
        return Credentials()
    try:
        doc = json.loads(out)
    except ValueError as e:
        raise FailedPrecondition(f"credential helper docker-credential-{name} get printed invalid JSON: {e}") from e
    username, secret = str(doc.get("Username") or ""), str(doc.get("Secret") or "")
    if username == _TOKEN_USER:
        return Credentials(identity_token=secret)
    return Credentials(username, secret)
