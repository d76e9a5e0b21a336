"""`barque registry serve`: an OCI distribution-spec 1.1 registry on barque's content store.

Public surface: `RegistryConfig` / `load_config` (settings), `serve` (run until a signal), `make_app` (the aiohttp
application, for embedding), `Storage` (the backend interface) and `LocalStorage` (its filesystem implementation),
`collect` (garbage collection). Everything else is inside. Modules are imported on first use: aiohttp is heavy.
"""

from __future__ import annotations

import importlib

__all__ = ["RegistryConfig", "load_config", "serve", "make_app", "Storage", "LocalStorage", "collect"]

_WHERE = {
    "RegistryConfig": "config", "load_config": "config", "serve": "serve", "make_app": "app",
    "Storage": "storage", "LocalStorage": "local", "collect": "gc",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"barque.registry.server.{_WHERE[name]}"), name)
    raise AttributeError(name)
