"""Engine settings from flags, environment and defaults (Docker's names where Docker has them)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = "/var/lib/barque"
DEFAULT_RUN_ROOT = "/run/barque"


@dataclass(frozen=True)
class Settings:
    root: Path
    run_root: Path
    storage_driver: str | None = None    # None: choose (the one the root used before, else overlay, else vfs)
    log_level: str = "warning"

    @classmethod
    def from_env(cls, root: str | None = None, run_root: str | None = None, storage_driver: str | None = None,
                 log_level: str | None = None) -> "Settings":
        return cls(
            root=Path(root or os.environ.get("BARQUE_ROOT") or DEFAULT_ROOT),
            run_root=Path(run_root or os.environ.get("BARQUE_RUN_ROOT") or DEFAULT_RUN_ROOT),
            storage_driver=storage_driver or os.environ.get("BARQUE_STORAGE_DRIVER") or None,
            log_level=(log_level or os.environ.get("BARQUE_LOG_LEVEL") or "warning").lower(),
        )
