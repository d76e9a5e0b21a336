"""The event log behind `barque events`: what happened to containers (and images, volumes…), in Docker's shape.

Docker keeps events in the daemon's memory; barque has no daemon, so every process that makes something happen —
the CLI, a container's monitor, a restart — appends one JSON line to `<root>/events.log`, and `events` reads and
follows that file. Why it is shaped this way:

* **One write per event, with O_APPEND.** The kernel places each append at the end of the file atomically, so lines
  from concurrent processes interleave whole, never torn, without any lock on the common path.
* **Cheap to import.** The container's monitor (a lean `python -S` interpreter) records `die`; so this module
  imports only the standard library at module level.
* **Bounded.** Past `MAX_BYTES` the file is renamed to `events.log.1` (replacing the older one), so the log never
  holds more than two files. The rename happens under an flock on the file being renamed, re-checked after the lock
  is taken, so two writers crossing the limit together rotate once. Docker keeps the last 256 events; barque keeps
  10–20 MB of them, and they survive the CLI that wrote them.
* **Never in the way.** Failing to record an event (full disk, read-only root) is logged, not raised: the
  operation it describes has already happened.
* **Docker's semantics for reading:** `since`/`until` select past events, `follow` goes on with new ones (until
  `until`), and the filters match as dockerd's events filter does (`container=` by ID, ID prefix or name prefix;
  `event=health_status` matching `health_status: healthy`; `image=` with or without its tag; `label=key[=value]`).

Line format, byte-compatible with Docker's `docker events --format '{{json .}}'`:
``{"status":"start","id":"<id>","from":"busybox","Type":"container","Action":"start","Actor":{"ID":"<id>",
"Attributes":{"image":"busybox","name":"x"}},"scope":"local","time":1700000000,"timeNano":1700000000123456789}``
"""

from __future__ import annotations

import json
import logging
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from pathlib import Path

__all__ = [
    "LOG_NAME",
    "MAX_BYTES",
    "FILTER_KEYS",
    "container_attributes",
    "container_event",
    "format_event",
    "make_event",
    "matches",
    "parse_filters",
    "read",
    "record",
]

log = logging.getLogger(__name__)

LOG_NAME = "events.log"
MAX_BYTES = 10 * 1024 * 1024
POLL_INTERVAL = 0.1
#: a file last modified this long before `since` holds no event at or after `since`, with room for coarse mtimes
_MTIME_SLACK_NS = 2_000_000_000
#: dockerd's accepted event filter names
FILTER_KEYS = ("config", "container", "daemon", "event", "image", "label", "network", "node", "plugin", "scope",
               "secret", "service", "type", "volume")
#: actions that carry a detail after a colon ("health_status: healthy"); a filter without the detail matches them all
_FUZZY_ACTIONS = ("health_status", "exec_create", "exec_start")


# ---- writing --------------------------------------------------------------------------------------------------

def make_event(type_: str, action: str, actor_id: str, attributes: Mapping[str, str] | None = None,
               time_ns: int | None = None) -> dict:
    """One event in Docker's shape; the deprecated status/id/from are filled for container and image events, as
    dockerd fills them. Attributes are kept sorted by name, as Go marshals a map."""
    ns = time.time_ns() if time_ns is None else time_ns
    attrs = {str(k): str(v) for k, v in sorted((attributes or {}).items())}
    event: dict = {}
    if type_ in ("container", "image"):
        event["status"] = action
        event["id"] = actor_id
        if type_ == "container" and attrs.get("image"):
            event["from"] = attrs["image"]
    event.update(Type=type_, Action=action, Actor={"ID": actor_id, "Attributes": attrs}, scope="local",
                 time=ns // 1_000_000_000, timeNano=ns)
    return event


def record(root: Path | str, type_: str, action: str, actor_id: str,
           attributes: Mapping[str, str] | None = None) -> dict | None:
    """Append one event to `<root>/events.log`; the event, or None when it could not be written (logged)."""
    event = make_event(type_, action, actor_id, attributes)
    line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
    path = os.path.join(os.fspath(root), LOG_NAME)
    try:
        _append(path, line, MAX_BYTES)
    except OSError as e:
        log.warning("event %s %s %s not recorded in %s: %s", type_, action, actor_id[:12], path, e)
        return None
    return event


def container_attributes(record_: Mapping) -> dict[str, str]:
    """Docker's attributes of a container event: the container's labels, its image as given, its name."""
    config = record_.get("Config") or {}
    attrs = {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}
    attrs["image"] = str(config.get("Image") or record_.get("Image") or "")
    attrs["name"] = str(record_.get("Name") or "").lstrip("/")
    return attrs


def container_event(root: Path | str, record_: Mapping, action: str, **extra: str) -> dict | None:
    """`record` for a container, from its record (inspect-shaped): e.g. `container_event(engine.root, c.record,
    "die", exitCode="0")`."""
    return record(root, "container", action, record_["Id"], {**container_attributes(record_), **extra})


def _append(path: str, data: bytes, max_bytes: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and size + len(data) > max_bytes:
            fd = _rotate(path, fd, max_bytes, len(data))
        written = os.write(fd, data)  # one write: O_APPEND puts it whole at the end, whoever else appends
        if written != len(data):
            raise OSError(f"short write ({written} of {len(data)} bytes)")
    finally:
        os.close(fd)


def _rotate(path: str, fd: int, max_bytes: int, incoming: int) -> int:
    """Rename the full log to `.1` (once, however many writers find it full) and return an fd on the new log."""
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        mine = os.fstat(fd)
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        # another writer may have rotated while we waited: then `path` is a new file and ours is already `.1`
        if current is not None and (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino) \
                and mine.st_size + incoming > max_bytes:
            os.replace(path, path + ".1")
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)


# ---- filters --------------------------------------------------------------------------------------------------

def parse_filters(values: Sequence[str]) -> dict[str, list[str]]:
    """`--filter name=value` flags (repeatable) as {name: [values]}, checked as Docker checks them."""
    from barque.errors import InvalidArgument

    out: dict[str, list[str]] = {}
    for v in values:
        name, sep, value = v.partition("=")
        if not sep:
            raise InvalidArgument("bad format of filter (expected name=value)")
        name = name.strip().lower()
        if name not in FILTER_KEYS:
            raise InvalidArgument(f"invalid filter '{name}'")
        out.setdefault(name, []).append(value.strip())
    return out


def _strip_tag(ref: str) -> str:
    """`busybox:latest` → `busybox` (not the port of `host:5000/x`, not a digest)."""
    ref = ref.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    return ref[:colon] if colon > slash else ref


def _exact(values: Sequence[str] | None, source: str) -> bool:
    return not values or source in values


def _fuzzy(values: Sequence[str] | None, source: str) -> bool:
    return not values or any(source == v or source.startswith(v) for v in values)


def matches(event: Mapping, filters: Mapping[str, Sequence[str]] | None) -> bool:
    """Whether `event` passes `filters` (as from `parse_filters`): values of one name are alternatives, different
    names must all match."""
    if not filters:
        return True
    actor = event.get("Actor") or {}
    actor_id = str(actor.get("ID") or "")
    attrs = actor.get("Attributes") or {}
    type_ = str(event.get("Type") or "")
    action = str(event.get("Action") or "")

    if not _exact(filters.get("type"), type_) or not _exact(filters.get("scope"), str(event.get("scope") or "")):
        return False
    wanted_events = filters.get("event")
    if wanted_events:
        fuzzy = any(v in _FUZZY_ACTIONS for v in wanted_events)
        if not (_fuzzy if fuzzy else _exact)(wanted_events, action):
            return False
    if filters.get("image"):
        name = str(attrs.get("name" if type_ == "image" else "image", ""))
        values = filters["image"]
        if not any(x in values for x in (actor_id, name, _strip_tag(actor_id), _strip_tag(name)) if x):
            return False
    from barque.filters import label_matches

    if not label_matches(attrs, filters.get("label") or ()):
        return False
    name = str(attrs.get("name", ""))
    for kind in ("container", "volume", "network", "plugin", "daemon", "service", "node", "secret", "config"):
        values = filters.get(kind)
        # dockerd's fuzzyMatchName: the full ID, a prefix of the name, or a prefix of the short ID
        if values and not (actor_id in values or _fuzzy(values, name) or _fuzzy(values, actor_id[:12])):
            return False
    return True


# ---- reading --------------------------------------------------------------------------------------------------

def _time_ns(line: bytes) -> int | None:
    """The event's timeNano without parsing the whole line (it is the last member, as `record` writes it)."""
    i = line.rfind(b'"timeNano":')
    if i < 0:
        return None
    digits = line[i + 11:].rstrip(b"}\n \r")
    return int(digits) if digits.isdigit() else None


def _parse(line: bytes, since_ns: int | None, until_ns: int | None,
           filters: Mapping[str, Sequence[str]] | None) -> dict | None:
    t = _time_ns(line)
    if t is None:
        return None  # a torn or foreign line: skipped
    if (since_ns is not None and t < since_ns) or (until_ns is not None and t > until_ns):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and matches(event, filters) else None


def _open(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def _same_file(fd: int, path: str) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _lines(fd: int, buf: bytearray) -> list[bytes]:
    """Whole lines now readable from `fd` (a partial last line stays in `buf` until its end arrives)."""
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        buf += chunk
    end = buf.rfind(b"\n")
    if end < 0:
        return []
    out = bytes(buf[:end + 1]).splitlines(keepends=True)
    del buf[:end + 1]
    return out


def _skip_old(fd: int, since_ns: int | None) -> None:
    """Seek past a file whose every event is older than `since` (by its mtime), so that following starts cheaply."""
    if since_ns is not None and os.fstat(fd).st_mtime_ns + _MTIME_SLACK_NS < since_ns:
        os.lseek(fd, 0, os.SEEK_END)


def read(root: Path | str, since: float | None = None, until: float | None = None,
         filters: Mapping[str, Sequence[str]] | None = None, follow: bool = False, *,
         poll: float = POLL_INTERVAL, clock: Callable[[], float] = time.time,
         stop: Callable[[], bool] | None = None) -> Iterator[dict]:
    """Events recorded under `root`, oldest first: those between `since` and `until` (epoch seconds, inclusive;
    None: unbounded) that pass `filters`. With `follow`, then new ones as they are recorded, until the clock passes
    `until` (forever without it) or `stop()` says so (a reader whose client went away). A rotation while following
    is noticed by the path's inode changing: the old file is drained to its end before the new one is read."""
    since_ns = None if since is None else int(since * 1_000_000_000)
    until_ns = None if until is None else int(until * 1_000_000_000)
    path = os.path.join(os.fspath(root), LOG_NAME)
    current = _open(path)  # first, so a rotation from here on shows as `.1` being this very file
    try:
        rotated = _open(path + ".1")
        if rotated is not None:
            try:
                if current is None or not _same_file(current, path + ".1"):
                    _skip_old(rotated, since_ns)
                    for line in _lines(rotated, bytearray()):
                        if (event := _parse(line, since_ns, until_ns, filters)) is not None:
                            yield event
            finally:
                os.close(rotated)
        buf = bytearray()
        if current is not None:
            _skip_old(current, since_ns)
        while True:
            if current is not None:
                for line in _lines(current, buf):
                    if (event := _parse(line, since_ns, until_ns, filters)) is not None:
                        yield event
            if not follow or (until is not None and clock() > until) or (stop is not None and stop()):
                return
            if current is None or not _same_file(current, path):
                newer = _open(path)
                if newer is not None:
                    if current is not None:  # drain what was appended to the old file before it was renamed
                        for line in _lines(current, buf):
                            if (event := _parse(line, since_ns, until_ns, filters)) is not None:
                                yield event
                        os.close(current)
                    current, buf = newer, bytearray()
                    continue
            time.sleep(poll)
    finally:
        if current is not None:
            os.close(current)


# ---- rendering ------------------------------------------------------------------------------------------------

def format_event(event: Mapping, utc: bool = False) -> str:
    """Docker's CLI line: `2024-01-02T03:04:05.123456789Z container start <id> (image=busybox, name=x)`.

    The time is local, with its offset ("Z" in UTC), as Go's `time.Unix(...).Format(RFC3339NanoFixed)` prints it."""
    from datetime import datetime, timezone

    ns = int(event.get("timeNano") or int(event.get("time") or 0) * 1_000_000_000)
    secs, frac = divmod(ns, 1_000_000_000)
    dt = datetime.fromtimestamp(secs, timezone.utc)
    if not utc:
        dt = dt.astimezone()
    offset = dt.utcoffset()
    if not offset:
        zone = "Z"
    else:
        minutes = int(offset.total_seconds()) // 60
        sign = "+" if minutes >= 0 else "-"
        zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    out = f"{dt.strftime('%Y-%m-%dT%H:%M:%S')}.{frac:09d}{zone} "
    actor = event.get("Actor") or {}
    out += f"{event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        out += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return out
