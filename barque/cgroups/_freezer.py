"""The freezer of either version: v1 `freezer.state` (FROZEN / FREEZING / THAWED), v2 `cgroup.freeze` with the
outcome reported in `cgroup.events` ("frozen 1"). Freezing is asynchronous in both: wait for the kernel to say so."""

from __future__ import annotations

from pathlib import Path

from barque.errors import NotFound, Unavailable

from . import _fs

FREEZE_TIMEOUT = 10.0


def _write(f: Path, value: str) -> None:
    try:
        _fs.write(f, value)
    except FileNotFoundError as e:
        raise NotFound(f"cgroup {f.parent} does not exist", cause=e) from e
    except OSError as e:
        raise _fs.refusal(f, value, e) from e


class V1Freezer:
    def __init__(self, d: Path) -> None:
        self.dir = d
        self._state = d / "freezer.state"

    def frozen(self) -> bool:
        try:
            return _fs.read(self._state) == "FROZEN"
        except FileNotFoundError as e:
            raise NotFound(f"cgroup {self.dir} does not exist", cause=e) from e

    def freeze(self, timeout: float = FREEZE_TIMEOUT) -> None:
        polls = 0

        def done() -> bool:
            # a task forking while the freeze is under way can leave the cgroup FREEZING: ask again now and then
            nonlocal polls
            polls += 1
            if polls % 10 == 0:
                _write(self._state, "FROZEN")
            return self.frozen()

        _write(self._state, "FROZEN")
        if not _fs.wait_until(done, timeout):
            self.thaw()
            raise Unavailable(f"cgroup {self.dir} did not freeze within {timeout:g}s (still FREEZING)")

    def thaw(self) -> None:
        _write(self._state, "THAWED")
        if not _fs.wait_until(lambda: _fs.read(self._state) == "THAWED", FREEZE_TIMEOUT):
            raise Unavailable(f"cgroup {self.dir} did not thaw within {FREEZE_TIMEOUT:g}s")


class V2Freezer:
    def __init__(self, d: Path) -> None:
        self.dir = d

    def frozen(self) -> bool:
        if not self.dir.is_dir():
            raise NotFound(f"cgroup {self.dir} does not exist")
        return _fs.read_keyed(self.dir / "cgroup.events").get("frozen") == 1

    def freeze(self, timeout: float = FREEZE_TIMEOUT) -> None:
        _write(self.dir / "cgroup.freeze", "1")
        if not _fs.wait_until(self.frozen, timeout):
            self.thaw()
            raise Unavailable(f"cgroup {self.dir} did not freeze within {timeout:g}s")

    def thaw(self) -> None:
        _write(self.dir / "cgroup.freeze", "0")
        if not _fs.wait_until(lambda: not self.frozen(), FREEZE_TIMEOUT):
            raise Unavailable(f"cgroup {self.dir} did not thaw within {FREEZE_TIMEOUT:g}s")
