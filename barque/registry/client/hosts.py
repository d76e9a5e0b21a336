"""Where and how to reach a registry: its endpoints (mirrors, HTTPS, plain HTTP) and their TLS settings.

Configuration file: ``/etc/barque/registries.json`` (another path in ``$BARQUE_REGISTRIES_CONF``). It takes the
registry keys of Docker's ``daemon.json`` plus mirrors for any registry::

    {
      "insecure-registries": ["myregistry:5000", "10.0.0.0/8"],
      "registry-mirrors": ["https://mirror.example.com"],
      "mirrors": {
        "ghcr.io": ["https://ghcr-mirror.example.com"],
        "registry.example.com:5000": ["http://127.0.0.1:5001"]
      }
    }

* ``insecure-registries``: ``HOST[:PORT]`` names or CIDRs. Such a registry is tried over HTTPS without certificate
  verification, then over plain HTTP — Docker's rule. ``127.0.0.0/8`` and ``::1`` (so ``localhost``) are insecure
  without being listed, as in Docker. Host names are not resolved to compare them with CIDRs (Docker does; barque
  keeps name resolution off the path that decides whether to trust a peer). Every other registry is HTTPS only,
  verified against the system CAs and its ``certs.d`` directory.
* ``registry-mirrors``: mirrors of Docker Hub (``docker.io``), as in Docker.
* ``mirrors``: mirrors of any registry, keyed by ``HOST[:PORT]`` (``docker.io`` allowed). Pulls try the mirrors in
  order, then the registry itself; pushes and logins go to the registry only. A mirror URL may carry a path prefix.

Per-registry certificates: ``certs.d/HOST[:PORT]/`` in ``/etc/barque/certs.d`` and ``/etc/docker/certs.d`` (or the
colon-separated directories of ``$BARQUE_CERTS_D``, which replace both): ``*.crt`` files are CAs trusted in addition
to the system's, ``NAME.cert`` + ``NAME.key`` a client certificate pair — Docker's layout.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from barque.errors import InvalidArgument

__all__ = ["Endpoint", "HostsConfig", "load_hosts_config", "DOCKER_HUB", "HUB_API_HOST", "HUB_AUTH_KEY",
           "DEFAULT_CONF", "DEFAULT_CERTS_DIRS"]

DEFAULT_CONF = "/etc/barque/registries.json"
DEFAULT_CERTS_DIRS = ("/etc/barque/certs.d", "/etc/docker/certs.d")
DOCKER_HUB = "docker.io"
HUB_API_HOST = "registry-1.docker.io"
HUB_AUTH_KEY = "https://index.docker.io/v1/"   # the key Docker's config.json uses for Docker Hub
_DEFAULT_INSECURE = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True)
class Endpoint:
    """One base URL to talk to for a registry."""

    url: str                  # scheme://host[:port][/prefix], no trailing slash
    host: str                 # HOST[:PORT] of the URL, the key for credentials and certs.d
    verify: bool = True       # verify the server's certificate (HTTPS)
    mirror: bool = False
    ca_files: tuple[str, ...] = ()
    client_certs: tuple[tuple[str, str], ...] = ()

    @property
    def secure(self) -> bool:
        return self.url.startswith("https://")

    def ssl_context(self):
        """The `ssl` argument for aiohttp: None for plain HTTP, False for unverified TLS, or an SSLContext."""
        if not self.secure:
            return None
        if not self.verify and not self.client_certs:
            return False
        import ssl

        ctx = ssl.create_default_context()
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        for ca in self.ca_files:
            try:
                ctx.load_verify_locations(cafile=ca)
            except (OSError, ssl.SSLError) as e:
                raise InvalidArgument(f"invalid CA certificate {ca}: {e}") from e
        for cert, key in self.client_certs:
            try:
                ctx.load_cert_chain(cert, key)
            except (OSError, ssl.SSLError) as e:
                raise InvalidArgument(f"invalid client certificate {cert} / {key}: {e}") from e
        return ctx


@dataclass
class HostsConfig:
    insecure: list[str] = field(default_factory=list)
    hub_mirrors: list[str] = field(default_factory=list)
    mirrors: dict[str, list[str]] = field(default_factory=dict)
    certs_dirs: tuple[str, ...] = DEFAULT_CERTS_DIRS

    # -- insecure --------------------------------------------------------------------------------------------
    def is_insecure(self, host: str) -> bool:
        name = _hostname(host)
        for entry in [*_DEFAULT_INSECURE, *self.insecure]:
            if "/" in entry:
                try:
                    net = ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    continue
                ip = _ip(name)
                if ip is not None and ip.version == net.version and ip in net:
                    return True
            elif entry == host:
                return True
        return name == "localhost"  # Docker resolves it to 127.0.0.1, insecure by default

    # -- certs.d ---------------------------------------------------------------------------------------------
    def certs_for(self, host: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
        cas: list[str] = []
        pairs: list[tuple[str, str]] = []
        for base in self.certs_dirs:
            d = Path(base) / host
            try:
                names = sorted(os.listdir(d))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name in names:
                if name.endswith(".crt"):
                    cas.append(str(d / name))
                elif name.endswith(".cert"):
                    key = name[: -len(".cert")] + ".key"
                    if key not in names:
                        raise InvalidArgument(f"missing key {key} for client certificate {d / name}")
                    pairs.append((str(d / name), str(d / key)))
                elif name.endswith(".key") and name[: -len(".key")] + ".cert" not in names:
                    raise InvalidArgument(f"missing client certificate {name[:-4]}.cert for key {d / name}")
        return tuple(cas), tuple(pairs)

    # -- endpoints -------------------------------------------------------------------------------------------
    def api_host(self, domain: str) -> str:
        return HUB_API_HOST if domain == DOCKER_HUB else domain

    def origin_endpoints(self, domain: str) -> list[Endpoint]:
        """The registry itself: HTTPS (verified unless insecure), then plain HTTP when insecure."""
        host = self.api_host(domain)
        cas, pairs = self.certs_for(host)
        if self.is_insecure(host):
            return [Endpoint(f"https://{host}", host, verify=False, ca_files=cas, client_certs=pairs),
                    Endpoint(f"http://{host}", host)]
        return [Endpoint(f"https://{host}", host, ca_files=cas, client_certs=pairs)]

    def mirror_endpoints(self, domain: str) -> list[Endpoint]:
        urls = list(self.mirrors.get(domain, []))
        if domain == DOCKER_HUB:
            urls += [u for u in self.hub_mirrors if u not in urls]
        out = []
        for url in urls:
            from urllib.parse import urlsplit

            parts = urlsplit(url if "://" in url else f"https://{url}")
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise InvalidArgument(f"invalid mirror URL {url!r} for {domain}: expected http(s)://HOST[:PORT]")
            host = parts.netloc
            base = f"{parts.scheme}://{host}{parts.path.rstrip('/')}"
            cas, pairs = self.certs_for(host)
            verify = not self.is_insecure(host)
            out.append(Endpoint(base, host, verify=verify, mirror=True, ca_files=cas, client_certs=pairs))
        return out

    def pull_endpoints(self, domain: str) -> list[Endpoint]:
        return [*self.mirror_endpoints(domain), *self.origin_endpoints(domain)]


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _ip(name: str):
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def load_hosts_config(path: str | None = None, certs_dirs: str | None = None) -> HostsConfig:
    """Read the registries file (missing: defaults) and the certs.d search path."""
    conf_path = Path(path or os.environ.get("BARQUE_REGISTRIES_CONF") or DEFAULT_CONF)
    dirs_env = certs_dirs if certs_dirs is not None else os.environ.get("BARQUE_CERTS_D")
    dirs = tuple(d for d in dirs_env.split(":") if d) if dirs_env else DEFAULT_CERTS_DIRS
    try:
        doc = json.loads(conf_path.read_text())
    except FileNotFoundError:
        return HostsConfig(certs_dirs=dirs)
    except (OSError, ValueError) as e:
        raise InvalidArgument(f"invalid registries configuration {conf_path}: {e}") from e
    if not isinstance(doc, dict):
        raise InvalidArgument(f"invalid registries configuration {conf_path}: expected a JSON object")
    insecure = _str_list(doc, "insecure-registries", conf_path)
    for entry in insecure:
        if "/" in entry and "://" not in entry:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as e:
                raise InvalidArgument(f"invalid registries configuration {conf_path}: insecure registry "
                                      f"{entry!r}: {e}") from e
    insecure = [e.split("://", 1)[-1].rstrip("/") if "://" in e else e for e in insecure]
    hub = _str_list(doc, "registry-mirrors", conf_path)
    mirrors_doc = doc.get("mirrors") or {}
    if not isinstance(mirrors_doc, dict):
        raise InvalidArgument(f"invalid registries configuration {conf_path}: mirrors must be an object")
    mirrors: dict[str, list[str]] = {}
    for key, urls in mirrors_doc.items():
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise InvalidArgument(f"invalid registries configuration {conf_path}: mirrors[{key!r}] must be a list "
                                  "of URLs")
        name = "docker.io" if key in ("index.docker.io", HUB_API_HOST) else key
        mirrors[name] = list(urls)
    return HostsConfig(insecure=insecure, hub_mirrors=hub, mirrors=mirrors, certs_dirs=dirs)


def _str_list(doc: dict, key: str, path: Path) -> list[str]:
    value = doc.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"invalid registries configuration {path}: {key} must be a list of strings")
    return list(value)
