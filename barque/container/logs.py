"""Container log drivers (`json-file`, `local`, `none`): the writer the monitor runs and the reader `barque logs` uses.

Why this module is shaped the way it is:

* The writer runs inside every container's monitor process, which must stay small in memory. So this module imports
  only `os`, `json` and `time` at module level; anything else (gzip, threading, datetime, barque.errors) is imported
  inside the function that needs it, and only on the path that needs it.
* The file format is Docker's json-file format, byte for byte: one JSON object per line,
  ``{"log":"text\\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}``, with Go's string escaping
  (``<``, ``>``, ``&``, U+2028/U+2029 and control characters as ``\\u00XX``; each invalid UTF-8 byte as ``\\ufffd``)
  and Go's RFC3339Nano time (UTC, trailing zeros of the fraction dropped). Tools that read Docker's files read ours.
* Lines are split as Docker's log copier does: a complete line is one entry ending in ``\\n``; an unterminated line
  waits for its newline, but 16 KiB of it are written as a *partial* entry without ``\\n`` (and what is left on
  close likewise). The pieces of one split line share the first piece's time, as in Docker.
* **Bounded by default.** Docker's json-file default is one file that grows forever, a classic full-disk outage.
  barque uses 20 MiB x 5 files when the user gave no ``max-size`` (``max-size=-1`` asks for Docker's unbounded
  behaviour explicitly). The options a user gave are kept as given in the container's ``LogConfig``; the defaults
  are applied when the writer opens (`log_settings`), as Docker does for its `local` driver.
* barque's ``local`` driver is "json-file with compression and bounded defaults" (20 MiB, 5 files, compressed),
  not Docker's protobuf format: the files are internal, nothing but barque reads them, and one format means one
  reader. Its options and error messages are Docker's `local` ones.
* Writes go straight to the file with one ``write(2)`` per batch of entries, no user-space buffering, so a SIGKILLed
  monitor loses nothing it has already been handed back. Rotation closes the current file, shifts
  ``path.1`` -> ``path.2`` ..., renames ``path`` -> ``path.1`` and opens a fresh ``path``; with compression, ``path.1``
  is gzipped to a temporary name, renamed to ``path.1.gz`` and only then removed, so a reader always finds one
  complete copy. The gzip header's mtime records the last entry's second, so `since` can skip old files unread.
* The reader works from the files alone (no daemon to hold locks): it opens the current file first and drops a
  rotated file that turns out to be the same inode; `follow` notices rotation by the path's inode changing, drains
  the old file to its end and continues in the new one. If the writer rotates twice between two polls, the middle
  file is not followed (at the default 20 MiB that needs hundreds of MB/s of output).
"""

from __future__ import annotations

import json
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = [
    "DEFAULT_MAX_FILE",
    "DEFAULT_MAX_SIZE",
    "DRIVERS",
    "LogEntry",
    "LogWriter",
    "format_entry",
    "log_settings",
    "open_writer",
    "parse_log_config",
    "parse_since",
    "read_logs",
    "rfc3339_nano",
]

DRIVERS = ("json-file", "local", "none")
DEFAULT_MAX_SIZE = 20 * 1024 * 1024   # Docker's `local` default, used for json-file too when max-size is not given
DEFAULT_MAX_FILE = 5
PARTIAL_SIZE = 16 * 1024              # Docker's copier buffer: a line this long is written in partial pieces

_JSON_FILE_OPTS = ("max-file", "max-size", "compress", "labels", "labels-regex", "env", "env-regex", "tag")
_LOCAL_OPTS = _JSON_FILE_OPTS         # Docker's local driver accepts the same keys (the common attributes ignored)
_BUILTIN_OPTS = ("mode", "max-buffer-size")   # accepted for every driver by Docker's daemon; barque never buffers
_BLOCK = 64 * 1024


# ---------------------------------------------------------------------------------------------------------------
# Configuration


def _invalid(message: str) -> Exception:
    from barque.errors import InvalidArgument

    return InvalidArgument(message)


def _go_atoi(text: str) -> int:
    """strconv.Atoi: optional sign, ASCII digits, nothing else."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not (digits.isascii() and digits.isdigit()):
        raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def _go_parse_bool(text: str) -> bool:
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def _human_size(text: str, binary: bool = False) -> int:
    """go-units FromHumanSize (decimal: 10m = 10,000,000) or RAMInBytes (binary), case-insensitive, b/ib optional."""
    import re

    m = re.match(r"(?i)^(\d+(?:\.\d+)*) ?([kmgtp])?i?b?$", text)
    if not m:
        raise ValueError(f"invalid size: '{text}'")
    try:
        number = float(m.group(1))
    except ValueError:   # "1.2.3" passes Go's pattern too, then fails ParseFloat
        raise ValueError(f'strconv.ParseFloat: parsing "{m.group(1)}": invalid syntax') from None
    unit = (m.group(2) or "").lower()
    base = 1024 if binary else 1000
    return int(number * base ** ("kmgtp".index(unit) + 1 if unit else 0))


def _check_builtin(opts: dict[str, str]) -> None:
    mode = opts.get("mode", "")
    if mode not in ("", "blocking", "non-blocking"):
        raise _invalid(f"logger: logging mode not supported: {mode}")
    if "max-buffer-size" in opts:
        if mode != "non-blocking":
            raise _invalid("logger: max-buffer-size option is only supported with 'mode=non-blocking'")
        try:
            _human_size(opts["max-buffer-size"], binary=True)
        except ValueError as e:
            raise _invalid(f"error parsing option max-buffer-size: {e}") from None


def _json_file_settings(opts: dict[str, str]) -> tuple[int | None, int, bool]:
    for key in opts:
        if key not in _JSON_FILE_OPTS and key not in _BUILTIN_OPTS:
            raise _invalid(f"unknown log opt '{key}' for json-file log driver")
    bounded = "max-size" not in opts
    max_size: int | None = DEFAULT_MAX_SIZE if bounded else None
    if not bounded and opts["max-size"].strip() != "-1":
        try:
            max_size = _human_size(opts["max-size"])
        except ValueError as e:
            raise _invalid(str(e)) from None
        if max_size <= 0:
            raise _invalid("max-size must be a positive number")
    max_file = DEFAULT_MAX_FILE if bounded else 1
    if "max-file" in opts:
        try:
            max_file = _go_atoi(opts["max-file"])
        except ValueError as e:
            raise _invalid(str(e)) from None
        if max_file < 1:
            raise _invalid("max-file cannot be less than 1")
    compress = False
    if "compress" in opts:
        try:
            compress = _go_parse_bool(opts["compress"])
        except ValueError as e:
            raise _invalid(str(e)) from None
        if compress and (max_file == 1 or max_size is None):
            raise _invalid("compress cannot be true when max-file is less than 2 or max-size is not set")
    return max_size, max_file, compress


def _local_settings(opts: dict[str, str]) -> tuple[int | None, int, bool]:
    for key in opts:
        if key not in _LOCAL_OPTS and key not in _BUILTIN_OPTS:
            raise _invalid(f"unknown log opt '{key}' for log driver local")
    max_size: int | None = DEFAULT_MAX_SIZE
    if "max-size" in opts:
        value = opts["max-size"]
        if value.strip() == "-1":
            max_size = None
        else:
            try:
                max_size = _human_size(value)
            except ValueError as e:
                raise _invalid(f"invalid value for max-size: {value}: {e}") from None
    max_file = DEFAULT_MAX_FILE
    if "max-file" in opts:
        try:
            max_file = _go_atoi(opts["max-file"])
        except ValueError as e:
            raise _invalid(f"invalid value for max-file: {opts['max-file']}: {e}") from None
        if max_file < 0:
            raise _invalid("max-file must not be negative")
    compress = True
    if "compress" in opts:
        try:
            compress = _go_parse_bool(opts["compress"])
        except ValueError as e:
            raise _invalid(f"invalid boolean value for compress: {e}") from None
    if compress and max_file <= 1:
        raise _invalid("compression cannot be enabled when max file count is 1")
    return max_size, max(1, max_file), compress


def log_settings(log_config: dict) -> tuple[int | None, int, bool] | None:
    """The writer's (max_size, max_file, compress) for a `LogConfig`, barque's defaults applied; None for `none`.

    max_size None means unbounded (only when the user asked with ``max-size=-1``).
    """
    driver = log_config.get("Type") or "json-file"
    opts = dict(log_config.get("Config") or {})
    if driver == "none":
        return None
    if driver not in DRIVERS:
        raise _invalid(f'error looking up logging plugin {driver}: plugin "{driver}" not found')
    _check_builtin(opts)
    return _json_file_settings(opts) if driver == "json-file" else _local_settings(opts)


def parse_log_config(driver: str, opts: dict[str, str]) -> dict:
    """Validate ``--log-driver``/``--log-opt`` as Docker does; return Docker's HostConfig.LogConfig shape.

    ``Config`` holds the options as the user gave them (what `inspect` shows); barque's bounded defaults are applied
    by `log_settings` when the writer opens. An empty driver means the default, json-file.
    """
    config = {"Type": driver or "json-file", "Config": {str(k): str(v) for k, v in opts.items()}}
    log_settings(config)
    return config


# ---------------------------------------------------------------------------------------------------------------
# Writing

_escape_re = None
_BAD_BYTE = "\udfff"
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
            "\u2028": "\\u2028", "\u2029": "\\u2029", _BAD_BYTE: "\\ufffd"}
_ESCAPES.update({chr(c): f"\\u{c:04x}" for c in range(0x20) if chr(c) not in _ESCAPES})


def _go_bad_byte(exc: UnicodeDecodeError) -> tuple[str, int]:
    # Go's utf8.DecodeRune reports one invalid byte at a time: one \ufffd escape per byte, then the next byte. The
    # marker is a lone surrogate, which decoding valid UTF-8 never yields; a real U+FFFD in the input stays raw.
    return _BAD_BYTE, exc.start + 1


def _go_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        import codecs

        try:
            codecs.lookup_error("barque-go-utf8")
        except LookupError:
            codecs.register_error("barque-go-utf8", _go_bad_byte)
        return data.decode("utf-8", "barque-go-utf8")


def _go_json_string(data: bytes) -> bytes:
    """A JSON string exactly as Docker's jsonlog writes it (Go's HTML-safe escaping, invalid UTF-8 as U+FFFD)."""
    global _escape_re
    text = _go_text(data)
    if _escape_re is None:
        import re

        _escape_re = re.compile('[\\x00-\\x1f"\\\\<>&\u2028\u2029\udfff]')
    text = _escape_re.sub(lambda m: _ESCAPES[m.group()], text)
    return b'"' + text.encode("utf-8") + b'"'


_second_cache: tuple[int, str] = (-1, "")   # strftime once per second, not once per line


def rfc3339_nano(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC from nanoseconds since the epoch: fraction without trailing zeros, or none."""
    global _second_cache
    sec, frac = divmod(ns, 1_000_000_000)
    cached_sec, base = _second_cache
    if cached_sec != sec:
        base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _second_cache = (sec, base)
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


def _float_ns(when: float) -> int:
    """Epoch seconds to nanoseconds without the float product's error (T + 0.125 stays .125, not .124999936)."""
    sec = int(when // 1)
    return sec * 1_000_000_000 + round((when - sec) * 1_000_000_000)


def _entry(stream_json: bytes, text: bytes, ns: int) -> bytes:
    return (b'{"log":' + _go_json_string(text) + b',"stream":' + stream_json + b',"time":"'
            + rfc3339_nano(ns).encode("ascii") + b'"}\n')


class LogWriter:
    """Appends a container's output to `path` in json-file format, rotating by size.

    `max_size` None means never rotate; `max_file` counts the current file too (Docker's meaning). One lock makes
    `write` safe from a stdout thread and a stderr thread at once.
    """

    def __init__(self, path: str, max_size: int | None, max_file: int, compress: bool = False) -> None:
        import threading

        self.path = path
        self.max_size = max_size if max_size is not None and max_size >= 0 else None
        self.max_file = max(1, max_file)
        self.compress = bool(compress) and self.max_file > 1 and self.max_size is not None
        self._lock = threading.Lock()
        self._pending: dict[str, bytes] = {}
        self._partial_ns: dict[str, int] = {}
        self._stream_json: dict[str, bytes] = {}
        self._last_ns = 0
        self._fd: int | None = self._open(truncate=False)
        self._size = os.fstat(self._fd).st_size

    def _open(self, truncate: bool) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | (os.O_TRUNC if truncate else 0)
        return os.open(self.path, flags, 0o640)

    def write(self, stream: str, data: bytes, when: float | None = None) -> None:
        """Log `data` read from `stream` ("stdout"/"stderr"); complete lines are on disk when this returns."""
        ns = time.time_ns() if when is None else _float_ns(when)
        with self._lock:
            if self._fd is None:
                raise ValueError("write to a closed LogWriter")
            buf = self._pending.pop(stream, b"") + bytes(data)
            entries: list[tuple[bytes, int]] = []
            start = 0
            while True:
                nl = buf.find(b"\n", start, start + PARTIAL_SIZE)
                if nl >= 0:
                    entries.append((buf[start:nl + 1], self._partial_ns.pop(stream, ns)))
                    start = nl + 1
                elif len(buf) - start >= PARTIAL_SIZE:
                    first = self._partial_ns.setdefault(stream, ns)
                    entries.append((buf[start:start + PARTIAL_SIZE], first))
                    start += PARTIAL_SIZE
                else:
                    break
            if start < len(buf):
                self._pending[stream] = buf[start:]
            self._append(stream, entries)

    def _append(self, stream: str, entries: list[tuple[bytes, int]]) -> None:
        if not entries:
            return
        sj = self._stream_json.get(stream)
        if sj is None:
            sj = self._stream_json[stream] = _go_json_string(stream.encode("utf-8", "replace"))
        batch: list[bytes] = []
        for text, ns in entries:
            line = _entry(sj, text, ns)
            if self.max_size is not None and self._size > 0 and self._size + len(line) > self.max_size:
                self._flush(batch)
                batch = []
                self._rotate()
            batch.append(line)
            self._size += len(line)
            self._last_ns = ns
        self._flush(batch)

    def _flush(self, batch: list[bytes]) -> None:
        if not batch:
            return
        view = memoryview(b"".join(batch))
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = None
        path = self.path
        if self.max_file < 2:
            _unlink(path)
        else:
            for ext in ("", ".gz"):
                _unlink(f"{path}.{self.max_file - 1}{ext}")
            for i in range(self.max_file - 1, 1, -1):
                for ext in ("", ".gz"):
                    try:
                        os.rename(f"{path}.{i - 1}{ext}", f"{path}.{i}{ext}")
                    except FileNotFoundError:
                        pass
            os.rename(path, f"{path}.1")
        self._fd = self._open(truncate=True)
        self._size = 0
        if self.compress:
            _gzip_file(f"{path}.1", self._last_ns)

    def close(self) -> None:
        """Write what is left of unterminated lines (as partial entries, without newline) and close the file."""
        with self._lock:
            if self._fd is None:
                return
            now = time.time_ns()
            for stream in list(self._pending):
                text = self._pending.pop(stream)
                self._append(stream, [(text, self._partial_ns.pop(stream, now))])
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _gzip_file(src: str, last_ns: int) -> None:
    """Compress `src` to `src.gz` (whole, then renamed into place), then remove `src`.

    The gzip mtime is the second of the file's last entry, which lets a reader with `since` skip the file unread.
    """
    import gzip

    tmp = src + ".gz.tmp"
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as raw:
            os.fchmod(raw.fileno(), 0o640)
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6,
                               mtime=last_ns // 1_000_000_000) as gz:
                while chunk := fin.read(1 << 20):
                    gz.write(chunk)
        os.rename(tmp, src + ".gz")
    except OSError:
        _unlink(tmp)   # the uncompressed rotated file stays: readable, just bigger
        return
    _unlink(src)


def open_writer(log_config: dict, path: str) -> LogWriter | None:
    """The writer a container's monitor uses for its `LogConfig`, or None for the `none` driver."""
    settings = log_settings(log_config)
    if settings is None:
        return None
    max_size, max_file, compress = settings
    return LogWriter(path, max_size, max_file, compress)


# ---------------------------------------------------------------------------------------------------------------
# Reading


class LogEntry:
    """One log record: its stream, its time as stored (RFC 3339), that time as epoch seconds, and its bytes."""

    __slots__ = ("stream", "time", "ts", "data")

    def __init__(self, stream: str, time: str, ts: float, data: bytes) -> None:
        self.stream = stream
        self.time = time
        self.ts = ts
        self.data = data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LogEntry):
            return NotImplemented
        return (self.stream, self.time, self.ts, self.data) == (other.stream, other.time, other.ts, other.data)

    def __repr__(self) -> str:
        return f"LogEntry(stream={self.stream!r}, time={self.time!r}, ts={self.ts!r}, data={self.data!r})"


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (no calendar module needed in the monitor)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _split_time(t: str) -> tuple[str, str, str] | None:
    """("YYYY-MM-DDTHH:MM:SS", fraction digits, zone) of an RFC 3339 time, or None."""
    if len(t) < 20 or t[4] != "-" or t[7] != "-" or t[10] not in "Tt" or t[13] != ":" or t[16] != ":":
        return None
    rest = t[19:]
    frac = ""
    if rest[:1] == ".":
        i = 1
        while i < len(rest) and "0" <= rest[i] <= "9":
            i += 1
        frac, rest = rest[1:i], rest[i:]
        if not frac:
            return None
    if rest not in ("Z", "z") and not (len(rest) == 6 and rest[0] in "+-" and rest[3] == ":"):
        return None
    return t[:19], frac, rest


def _parse_time(t: str) -> float | None:
    parts = _split_time(t) if isinstance(t, str) else None
    if parts is None:
        return None
    base, frac, zone = parts
    try:
        days = _days_from_civil(int(base[0:4]), int(base[5:7]), int(base[8:10]))
        secs = int(base[11:13]) * 3600 + int(base[14:16]) * 60 + int(base[17:19])
        offset = 0
        if zone not in ("Z", "z"):
            offset = (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60) * (-1 if zone[0] == "-" else 1)
    except ValueError:
        return None
    return days * 86400 + secs - offset + (int(frac) / 10 ** len(frac) if frac else 0.0)


def _text_bytes(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:   # a lone surrogate escape in the file: U+FFFD, as Go's decoder gives
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


def _parse_line(line: bytes) -> LogEntry | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    stamp = obj.get("time")
    ts = _parse_time(stamp)
    text = obj.get("log", "")
    if ts is None or not isinstance(text, str):
        return None
    stream = obj.get("stream", "")
    return LogEntry(stream if isinstance(stream, str) else "", stamp, ts, _text_bytes(text))


class _Source:
    """One open log file: plain (read in place, current or rotated) or gzip-compressed (rotated)."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd
        st = os.fstat(fd)
        self.ident = (st.st_dev, st.st_ino)
        self.gz = path.endswith(".gz")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def gz_last_second(self) -> int:
        head = os.pread(self.fd, 10, 0)
        if len(head) < 10 or head[:2] != b"\x1f\x8b":
            return 0
        return int.from_bytes(head[4:8], "little")

    def forward(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Lines from `start` (to `end`, or EOF for a rotated file), without their newline."""
        if self.gz:
            import gzip

            with open(self.fd, "rb", closefd=False) as raw:
                raw.seek(0)
                with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                    try:
                        for line in gz:
                            yield line.rstrip(b"\n")
                    except (OSError, EOFError):   # truncated or corrupt archive: what could be read was given
                        return
            return
        pos = start
        carry = b""
        while end is None or pos < end:
            chunk = os.pread(self.fd, _BLOCK if end is None else min(_BLOCK, end - pos), pos)
            if not chunk:
                break
            pos += len(chunk)
            parts = (carry + chunk).split(b"\n")
            carry = parts.pop()
            yield from parts
        if carry:
            yield carry

    def backward(self, end: int) -> Iterator[bytes]:
        """Lines of a plain file before offset `end`, newest first."""
        pos, carry = end, b""
        while pos > 0:
            n = min(_BLOCK, pos)
            pos -= n
            parts = (os.pread(self.fd, n, pos) + carry).split(b"\n")
            carry = parts.pop(0)
            for line in reversed(parts):
                if line:
                    yield line
        if carry:
            yield carry

    def complete_end(self) -> int:
        """Offset just past the last newline: what the writer has finished, excluding a line being written."""
        size = os.fstat(self.fd).st_size
        pos = size
        while pos > 0:
            n = min(_BLOCK, pos)
            chunk = os.pread(self.fd, n, pos - n)
            i = chunk.rfind(b"\n")
            if i >= 0:
                return pos - n + i + 1
            pos -= n
        return 0


def _open_source(path: str) -> _Source | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    return _Source(path, fd)


def _rotated_paths(path: str) -> list[str]:
    """path.N and path.N.gz, oldest (highest N) first; the uncompressed copy wins when both exist."""
    directory, base = os.path.split(path)
    try:
        names = os.listdir(directory or ".")
    except FileNotFoundError:
        return []
    found: dict[int, str] = {}
    prefix = base + "."
    for name in names:
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix):]
        gz = rest.endswith(".gz")
        num = rest[:-3] if gz else rest
        if not (num.isascii() and num.isdigit()):
            continue
        n = int(num)
        if n not in found or not gz:
            found[n] = os.path.join(directory, name)
    return [found[n] for n in sorted(found, reverse=True)]


def _tail_entries(rotated: list[_Source], current: _Source | None, current_end: int, count: int) -> list[LogEntry]:
    """The last `count` entries across the files (oldest first), reading plain files backwards from their end."""
    newest_first: list[LogEntry] = []
    files = [(current, current_end)] if current is not None else []
    files += [(src, None) for src in reversed(rotated)]
    for src, end in files:
        need = count - len(newest_first)
        if need <= 0:
            break
        if src.gz:
            from collections import deque

            window: deque = deque(maxlen=need)
            for line in src.forward():
                entry = _parse_line(line)
                if entry is not None:
                    window.append(entry)
            newest_first.extend(reversed(window))
            continue
        for line in src.backward(os.fstat(src.fd).st_size if end is None else end):
            entry = _parse_line(line)
            if entry is not None:
                newest_first.append(entry)
                if len(newest_first) >= count:
                    break
    newest_first.reverse()
    return newest_first


def read_logs(path: str, *, tail: int | None = None, since: float | None = None, until: float | None = None,
              follow: bool = False, still_running: Callable[[], bool] | None = None,
              poll: float = 0.1) -> Iterator[LogEntry]:
    """Entries of a container's log, oldest first, across rotated (and compressed) files.

    `tail` keeps the last N entries (None or negative: all; 0: none, as Docker), applied before `since`/`until` as
    Docker does; `since`/`until` are epoch seconds (inclusive). With `follow`, new entries are read as they come,
    across rotations, until `still_running()` returns False and the file is read to its end (or until `until`
    has passed); without `still_running` it follows until the caller stops iterating.
    """
    current = _open_source(path)
    sources: list[_Source] = []
    try:
        for rotated in _rotated_paths(path):
            src = _open_source(rotated)
            if src is None:
                continue
            if current is not None and src.ident == current.ident:   # rotated between our two opens
                src.close()
                continue
            sources.append(src)
        current_end = current.complete_end() if current is not None else 0

        def wanted(entry: LogEntry) -> bool | None:
            """True to yield, False to skip, None to stop (past `until`)."""
            if until is not None and entry.ts > until:
                return None
            return since is None or entry.ts >= since

        if tail is not None and tail >= 0:
            chosen = _tail_entries(sources, current, current_end, tail) if tail else []
            for entry in chosen:
                ok = wanted(entry)
                if ok is None:
                    return
                if ok:
                    yield entry
        else:
            for src in sources:
                if since is not None and _before(src, since):
                    continue
                for line in src.forward():
                    entry = _parse_line(line)
                    if entry is None:
                        continue
                    ok = wanted(entry)
                    if ok is None:
                        return
                    if ok:
                        yield entry
            if current is not None:
                for line in current.forward(0, current_end):
                    entry = _parse_line(line)
                    if entry is None:
                        continue
                    ok = wanted(entry)
                    if ok is None:
                        return
                    if ok:
                        yield entry
        for src in sources:
            src.close()
        sources = []
        if follow:
            yield from _follow(path, current, current_end, wanted, until, still_running, poll)
    finally:
        for src in sources:
            src.close()
        if current is not None:
            current.close()


def _before(src: _Source, since: float) -> bool:
    """True when every entry of the rotated file is older than `since` (judged without reading it all)."""
    if src.gz:
        last = src.gz_last_second()
        return last > 0 and last + 1 <= since
    for line in src.backward(os.fstat(src.fd).st_size):
        entry = _parse_line(line)
        if entry is not None:
            return entry.ts < since
    return True


def _follow(path: str, current: _Source | None, offset: int, wanted: Callable[[LogEntry], bool | None],
            until: float | None, still_running: Callable[[], bool] | None, poll: float) -> Iterator[LogEntry]:
    carry = b""
    try:
        while True:
            running = still_running() if still_running is not None else True
            if current is not None:
                while True:   # drain what is there now
                    chunk = os.pread(current.fd, _BLOCK, offset)
                    if not chunk:
                        break
                    offset += len(chunk)
                    parts = (carry + chunk).split(b"\n")
                    carry = parts.pop()
                    for line in parts:
                        entry = _parse_line(line)
                        if entry is None:
                            continue
                        ok = wanted(entry)
                        if ok is None:
                            return
                        if ok:
                            yield entry
            try:
                st = os.stat(path)
            except FileNotFoundError:
                st = None
            if st is not None and (current is None or (st.st_dev, st.st_ino) != current.ident):
                # rotated (the writer closed the old file before renaming it): it is drained; go on in the new one
                if current is not None:
                    current.close()
                current, offset, carry = _open_source(path), 0, b""
                continue
            if st is not None and current is not None and st.st_size < offset:   # truncated in place
                offset, carry = 0, b""
                continue
            if not running:
                return
            if until is not None and time.time() > until:
                return
            time.sleep(poll)
    finally:
        if current is not None:
            current.close()


def format_entry(entry: LogEntry, timestamps: bool) -> bytes:
    """What `docker logs` prints for an entry; with `-t`, Docker's fixed nine-digit RFC 3339 time and a space first."""
    if not timestamps:
        return entry.data
    parts = _split_time(entry.time)
    if parts is None:
        sec, frac = divmod(round(entry.ts * 1_000_000_000), 1_000_000_000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"
    else:
        base, frac_digits, zone = parts
        stamp = f"{base}.{(frac_digits + '000000000')[:9]}{'Z' if zone in ('Z', 'z') else zone}"
    return stamp.encode("ascii") + b" " + entry.data


# ---------------------------------------------------------------------------------------------------------------
# --since / --until

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                   "h": 3600.0}


def _go_duration(text: str) -> float | None:
    """Go's time.ParseDuration in seconds ("1h30m", "1.5s", "-10m"), or None if `text` is not one."""
    import re

    m = re.fullmatch(r"([-+]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+)", text)
    if not m:
        return None
    total = sum(float(n) * _DURATION_UNITS[u]
                for n, u in re.findall(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)", m.group(2)))
    return -total if m.group(1) == "-" else total


def parse_since(text: str, now: float) -> float:
    """`--since`/`--until` as Docker reads them, to epoch seconds.

    A Go duration ("10m", "1h30m", "42s") means `now` minus it (whole seconds, as Docker); an RFC 3339 time with or
    without fraction, seconds, minutes or time of day (no zone: local time); or a Unix time "1700000000[.123]".
    """
    value = text
    if value != "0":
        d = _go_duration(value)
        if d is not None:
            import math

            return float(math.floor(now - d))
    stamp = _parse_docker_time(value, now)
    if stamp is not None:
        return stamp
    secs, dot, frac = value.partition(".")
    if "-" not in value and secs.isascii() and secs.isdigit() and (not dot or (frac.isascii() and frac.isdigit())):
        return int(secs) + (int(frac) / 10 ** len(frac) if frac else 0.0)
    raise _invalid(f'failed to parse value as time or duration: "{text}"')


def _parse_docker_time(value: str, now: float) -> float | None:
    """Docker's timetypes.GetTimestamp layouts; a zone-less time is in the local zone in force at `now`."""
    import re
    from datetime import datetime, timedelta, timezone

    in_local = not any(c in value for c in "zZ+") and value.count("-") != 3
    date = r"(\d{4})-(\d\d)-(\d\d)"
    if "." in value:
        clock = r"T(\d\d):(\d\d):(\d\d)\.(\d{1,9})"
    elif "T" in value:
        colons = value.count(":")
        if not in_local and not any(c in value for c in "zZ") and colons > 0:
            colons -= 1   # the zone offset's own colon
        clock = {0: r"T(\d\d)()()()", 1: r"T(\d\d):(\d\d)()()"}.get(colons, r"T(\d\d):(\d\d):(\d\d)()")
    else:
        clock = "()()()()"
    m = re.fullmatch(date + clock + ("" if in_local else r"(Z|[+-]\d\d:\d\d)"), value)
    if not m:
        return None
    y, mo, d, hh, mm, ss, frac = m.groups()[:7]
    if in_local:
        tz = timezone(timedelta(seconds=time.localtime(now).tm_gmtoff))
    else:
        z = m.group(8)
        tz = timezone.utc if z == "Z" else timezone(
            (-1 if z[0] == "-" else 1) * timedelta(hours=int(z[1:3]), minutes=int(z[4:6])))
    try:
        dt = datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0), tzinfo=tz)
    except ValueError:
        return None
    return dt.timestamp() + (int(frac) / 10 ** len(frac) if frac else 0.0)
