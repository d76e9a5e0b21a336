"""Settings of `barque registry serve`: defaults, a YAML config file, then command-line flags (flags win).

The config file is a flat YAML mapping whose keys are the long flag names (dashes or underscores)::

    addr: 0.0.0.0:5000
    root: /srv/registry
    tls-cert: /etc/registry/cert.pem
    tls-key: /etc/registry/key.pem
    htpasswd: /etc/registry/htpasswd
    auth: token            # none | htpasswd | token (default: htpasswd when a file is given, else none)
    token-service: registry.example.com
    token-realm: https://registry.example.com/token   # default: this server's own /token
    token-ttl: 300
    anonymous-pull: false
    read-only: false
    delete-enabled: true
    gc-interval: 3600      # seconds between online collections; 0: only on SIGUSR1 / POST /admin/gc
    gc-grace: 3600         # an unreferenced blob used within this many seconds is kept
    gc-delete-untagged: false
    upload-expiry: 86400   # idle upload sessions are removed after this many seconds (checked at least hourly)
    max-blob-size: 0       # bytes; 0 for no limit
    max-upload-sessions: 1000   # open upload sessions per repository; more is 429 TOOMANYREQUESTS (0: no limit)
    body-timeout: 60       # seconds a request body may send nothing before it is cut off (408); 0: never
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from barque.errors import InvalidArgument

__all__ = ["RegistryConfig", "load_config", "parse_addr", "DEFAULT_ROOT", "DEFAULT_ADDR"]

DEFAULT_ROOT = "/var/lib/barque-registry"
DEFAULT_ADDR = "127.0.0.1:5000"


@dataclass
class RegistryConfig:
    addr: str = DEFAULT_ADDR
    root: Path = Path(DEFAULT_ROOT)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    htpasswd: Path | None = None
    auth: str | None = None
    token_service: str = "barque-registry"
    token_realm: str | None = None
    token_ttl: int = 300
    anonymous_pull: bool = False
    read_only: bool = False
    delete_enabled: bool = False
    gc_interval: float = 0.0
    gc_grace: float = 3600.0
    gc_delete_untagged: bool = False
    upload_expiry: float = 86400.0
    max_blob_size: int = 0
    max_upload_sessions: int = 1000
    body_timeout: float = 60.0

    @property
    def auth_mode(self) -> str:
        return self.auth or ("htpasswd" if self.htpasswd else "none")

    def check(self) -> "RegistryConfig":
        parse_addr(self.addr)
        if self.auth_mode not in ("none", "htpasswd", "token"):
            raise InvalidArgument(f"unknown auth {self.auth!r}: expected none, htpasswd or token")
        if self.auth_mode in ("htpasswd", "token") and not self.htpasswd:
            raise InvalidArgument(f"auth {self.auth_mode} needs --htpasswd FILE for its users")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InvalidArgument("--tls-cert and --tls-key go together")
        for name in ("tls_cert", "tls_key", "htpasswd"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise InvalidArgument(f"{name.replace('_', '-')}: no such file {path}")
        if min(self.gc_grace, self.gc_interval, self.upload_expiry, self.max_blob_size, self.max_upload_sessions,
               self.body_timeout) < 0:
            raise InvalidArgument("durations and sizes must not be negative")
        return self


_FIELDS = {f.name: f for f in dataclasses.fields(RegistryConfig)}


def _coerce(name: str, value: Any) -> Any:
    default = getattr(RegistryConfig, name, None)
    if value is None:
        return None
    if name in ("root", "tls_cert", "tls_key", "htpasswd"):
        return Path(str(value))
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise InvalidArgument(f"config {name.replace('_', '-')}: expected true or false, got {value!r}")
        return value
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        try:
            return type(default)(value)
        except (TypeError, ValueError):
            raise InvalidArgument(f"config {name.replace('_', '-')}: expected a number, got {value!r}") from None
    return str(value)


def load_config(path: Path | None, overrides: dict[str, Any]) -> RegistryConfig:
    """Defaults, then the YAML file at `path`, then `overrides` (flags given on the command line; None = unset)."""
    values: dict[str, Any] = {}
    if path is not None:
        import yaml

        try:
            doc = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as e:
            raise InvalidArgument(f"cannot read config file {path}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise InvalidArgument(f"config file {path} is not valid YAML: {e}") from None
        if not isinstance(doc, dict):
            raise InvalidArgument(f"config file {path}: expected a mapping of settings")
        for key, value in doc.items():
            name = str(key).replace("-", "_")
            if name not in _FIELDS:
                raise InvalidArgument(f"config file {path}: unknown setting {key!r}")
            values[name] = _coerce(name, value)
    for name, value in overrides.items():
        if value is not None:
            values[name] = _coerce(name, value)
    return RegistryConfig(**values).check()


def parse_addr(addr: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` (all interfaces)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise InvalidArgument(f"invalid address {addr!r}: expected HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)
