"""The engine-wide network settings, from barque's config file — Docker's daemon.json keys where Docker has them.

The file is `/etc/barque/daemon.json` (or `$BARQUE_CONFIG`); every key is optional:

    {"bip": "172.17.0.1/16",          the default bridge's address and subnet
     "fixed-cidr": "172.17.1.0/24",   where the default bridge hands out addresses (inside bip's subnet)
     "icc": true,                     containers on the default bridge may talk to each other
     "ip-masq": true,                 masquerade the default bridge's traffic to the outside
     "mtu": 1500,
     "default-address-pools": [{"base": "172.18.0.0/16", "size": 16}, …],   user-defined networks' subnets
     "dns": ["192.0.2.53"]}           resolvers for containers, in place of the host's
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field

from barque.errors import InvalidArgument

__all__ = ["NetworkConfig", "load", "DEFAULT_BRIDGE", "DEFAULT_BIP", "CONFIG_ENV", "CONFIG_PATH"]

CONFIG_ENV = "BARQUE_CONFIG"
CONFIG_PATH = "/etc/barque/daemon.json"
DEFAULT_BRIDGE = "barque0"
DEFAULT_BIP = "172.17.0.1/16"
#: Docker's default pools: 172.17-31.x.x/16 (172.17 is the default bridge's), then 192.168.x.x as /20s
DEFAULT_POOLS = tuple({"base": f"172.{n}.0.0/16", "size": 16} for n in range(17, 32)) + (
    {"base": "192.168.0.0/16", "size": 20},)


@dataclass(frozen=True)
class NetworkConfig:
    bip: ipaddress.IPv4Interface = ipaddress.IPv4Interface(DEFAULT_BIP)
    fixed_cidr: ipaddress.IPv4Network | None = None
    icc: bool = True
    ip_masq: bool = True
    mtu: int = 1500
    pools: tuple = field(default=DEFAULT_POOLS)
    dns: tuple[str, ...] = ()


def _fail(path: str, message: str) -> InvalidArgument:
    return InvalidArgument(f"invalid configuration in {path}: {message}")


def load(path: str | None = None) -> NetworkConfig:
    path = path or os.environ.get(CONFIG_ENV) or CONFIG_PATH
    try:
        with open(path) as f:
            raw = json.load(f)
    except FileNotFoundError:
        return NetworkConfig()
    except (OSError, ValueError) as e:
        raise _fail(path, str(e)) from e
    if not isinstance(raw, dict):
        raise _fail(path, "the file must hold a JSON object")
    kw: dict = {}
    try:
        if raw.get("bip"):
            kw["bip"] = ipaddress.IPv4Interface(raw["bip"])
            if kw["bip"].ip == kw["bip"].network.network_address:
                raise _fail(path, f"bip {raw['bip']} is a network address, not the bridge's own address")
        if raw.get("fixed-cidr"):
            kw["fixed_cidr"] = ipaddress.IPv4Network(raw["fixed-cidr"], strict=False)
            bip = kw.get("bip", NetworkConfig.bip)
            if not kw["fixed_cidr"].subnet_of(bip.network):
                raise _fail(path, f"fixed-cidr {raw['fixed-cidr']} is not inside the bridge's subnet {bip.network}")
    except ValueError as e:
        raise _fail(path, str(e)) from e
    for key, attr in (("icc", "icc"), ("ip-masq", "ip_masq")):
        if key in raw:
            if not isinstance(raw[key], bool):
                raise _fail(path, f"{key} must be true or false")
            kw[attr] = raw[key]
    if "mtu" in raw:
        if not isinstance(raw["mtu"], int) or not 68 <= raw["mtu"] <= 65535:
            raise _fail(path, "mtu must be a number from 68 to 65535")
        kw["mtu"] = raw["mtu"]
    if raw.get("default-address-pools"):
        pools = []
        for p in raw["default-address-pools"]:
            try:
                base = ipaddress.IPv4Network(p["base"])
                size = int(p["size"])
            except (KeyError, TypeError, ValueError) as e:
                raise _fail(path, f"default-address-pools: {p!r}: {e}") from e
            if not base.prefixlen <= size <= 30:
                raise _fail(path, f"default-address-pools: size {size} does not fit in {base}")
            pools.append({"base": str(base), "size": size})
        kw["pools"] = tuple(pools)
    if raw.get("dns"):
        try:
            kw["dns"] = tuple(str(ipaddress.ip_address(d)) for d in raw["dns"])
        except ValueError as e:
            raise _fail(path, f"dns: {e}") from e
    return NetworkConfig(**kw)
