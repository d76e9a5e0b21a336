"""A one-pass, streaming tar reader that digests every byte it reads.

The digest covers the whole stream, end-of-archive blocks and any padding after them included, which is what
a layer's diff ID is. Content is handed out as views of one reusable buffer, so a file's bytes are copied once
from the source into the buffer and then written straight to disk.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Iterator
from typing import BinaryIO

from barque.errors import DataCorruption, InvalidArgument
from barque.layers import _tarformat as tf
from barque.oci.digest import Digest

log = logging.getLogger(__name__)

_BUFSIZE = 1 << 20
_MAX_META = 16 << 20  # largest PAX / GNU long-name payload accepted (names are at most a few KiB in practice)


class _Hasher:
    """SHA-256 of the stream, computed beside the unpacking.

    hashlib releases the GIL on large updates, so digesting one chunk overlaps with writing the files of the
    previous one. The chunks are views of the reader's buffer: :meth:`wait` must be called before the buffer
    is overwritten. Small streams never start the thread.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[memoryview | None] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._updates = 0

    def update(self, data: memoryview) -> None:
        self._updates += 1
        if self._updates == 1:
            self._hash.update(data)  # a small stream: no thread
            return
        if self._thread is None:
            self._queue = queue.Queue()
            self._thread = threading.Thread(target=self._run, name="barque-layer-digest", daemon=True)
            self._thread.start()
        assert self._queue is not None
        self._queue.put(data)

    def _run(self) -> None:
        assert self._queue is not None
        while True:
            data = self._queue.get()
            try:
                if data is None:
                    return
                if self._error is None:
                    self._hash.update(data)
            except BaseException as e:  # handed to the reading thread in wait()
                self._error = e
            finally:
                self._queue.task_done()

    def wait(self) -> None:
        """Block until every chunk handed over so far is digested."""
        if self._queue is not None:
            self._queue.join()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def hexdigest(self) -> str:
        self.wait()
        return self._hash.hexdigest()


class TarReader:
    """Iterate over entries with :meth:`entries`; read the current entry's data with :meth:`chunks`.

    Data left unread when the next entry is requested is skipped (and still digested).
    """

    def __init__(self, stream: BinaryIO, *, bufsize: int = _BUFSIZE, lenient_end: bool = False) -> None:
        """`lenient_end`: a stream that ends in the padding after the last entry's data is a clean end, as Go's
        reader takes it (the docker CLI sends build contexts cut so); layers keep the strict reading."""
        self._src = stream
        self._lenient_end = lenient_end
        self._readinto = getattr(stream, "readinto", None)
        self._buf = bytearray(bufsize)
        self._mv = memoryview(self._buf)
        self._start = 0
        self._end = 0
        self._src_eof = False
        self._hash = _Hasher()
        self.size = 0  # bytes read from the stream
        self.offset = 0  # bytes consumed by the parser
        self._remaining = 0  # data bytes of the current entry not consumed
        self._pad = 0  # padding after the current entry's data
        self._current = ""
        self._last = ""  # name of the last complete entry, for messages
        self._finished = False

    # ------------------------------------------------------------------------------------------ buffer

    def _fill(self) -> int:
        """Read more bytes after the buffered ones; returns how many (0 at end of stream)."""
        if self._src_eof:
            return 0
        self._hash.wait()  # the buffer is about to be written: its previous bytes must have been digested
        if self._start == self._end:
            self._start = self._end = 0
        elif self._end == len(self._buf):
            n = self._end - self._start
            self._buf[0:n] = self._mv[self._start : self._end]
            self._start, self._end = 0, n
        target = self._mv[self._end :]
        if self._readinto is not None:
            got = self._readinto(target) or 0
        else:
            data = self._src.read(len(target))
            got = len(data)
            target[:got] = data
        if got == 0:
            self._src_eof = True
            return 0
        self._hash.update(target[:got])
        self._end += got
        self.size += got
        return got

    def _take(self, n: int) -> memoryview | None:
        """Exactly ``n`` (<= buffer size) contiguous bytes; None at a clean end of stream, error if cut short."""
        while self._end - self._start < n:
            if self._start + n > len(self._buf):  # make room at the end
                self._hash.wait()
                m = self._end - self._start
                self._buf[0:m] = self._mv[self._start : self._end]
                self._start, self._end = 0, m
            if not self._fill():
                if self._end == self._start:
                    return None
                raise self._truncated("a header")
        view = self._mv[self._start : self._start + n]
        self._start += n
        self.offset += n
        return view

    def _skip(self, n: int, end_ok: bool = False) -> bool:
        """Skip `n` bytes; False when the stream ended first and `end_ok` allows it."""
        while n:
            if self._start == self._end and not self._fill():
                if end_ok:
                    return False
                raise self._truncated(f"the data of {self._current!r}")
            k = min(n, self._end - self._start)
            self._start += k
            self.offset += k
            n -= k
        return True

    def _truncated(self, where: str) -> DataCorruption:
        after = f" (after entry {self._last!r})" if self._last and where == "a header" else ""
        return DataCorruption(f"tar stream is truncated: it ends inside {where}{after} at offset {self.offset}")

    # ------------------------------------------------------------------------------------------ data

    def chunks(self) -> Iterator[memoryview]:
        """The current entry's data, as views valid only until the next chunk is requested."""
        while self._remaining:
            if self._start == self._end and not self._fill():
                raise self._truncated(f"the data of {self._current!r} ({self._remaining} bytes missing)")
            k = min(self._remaining, self._end - self._start)
            view = self._mv[self._start : self._start + k]
            self._start += k
            self.offset += k
            self._remaining -= k
            yield view

    def buffered_data(self) -> memoryview | None:
        """All of the current entry's remaining data if it is already in the buffer (valid until the next read)."""
        n = self._remaining
        if self._end - self._start < n:
            return None
        view = self._mv[self._start : self._start + n]
        self._start += n
        self.offset += n
        self._remaining = 0
        return view

    def read_all(self, limit: int = _MAX_META) -> bytes:
        """The rest of the current entry's data as bytes (for small payloads)."""
        if self._remaining > limit:
            raise InvalidArgument(f"tar entry {self._current!r} is too large to hold in memory ({self._remaining} bytes)")
        view = self.buffered_data()
        if view is not None:
            return bytes(view)
        return b"".join([bytes(c) for c in self.chunks()])

    # ------------------------------------------------------------------------------------------ entries

    def _next_header(self) -> tf.TarEntry | None:
        if self._remaining:
            self._skip(self._remaining)
            self._remaining = 0
        if self._pad:
            complete = self._skip(self._pad, end_ok=self._lenient_end)
            self._pad = 0
            if not complete:
                return None
        block = self._take(tf.BLOCK)
        if block is None:  # the stream ended at an entry boundary: accepted like Go's reader does
            return None
        if block == tf.ZERO_BLOCK:
            second = self._take(tf.BLOCK)
            if second is None or second == tf.ZERO_BLOCK:
                return None
            raise DataCorruption(f"invalid tar header at offset {self.offset - tf.BLOCK}"
                                 f"{f' (after entry {self._last!r})' if self._last else ''}: a lone zero block")
        try:
            raw = tf.parse_header(block)
        except DataCorruption as e:
            raise DataCorruption(f"{e} at offset {self.offset - tf.BLOCK}"
                                 f"{f' (after entry {self._last!r})' if self._last else ''}") from None
        if raw.size < 0:
            raise DataCorruption(f"invalid tar header for {raw.name!r}: negative size")
        self._remaining = 0 if raw.typeflag in tf.HEADER_ONLY else raw.size
        self._pad = -self._remaining % tf.BLOCK
        self._current = raw.name
        return raw

    def entries(self) -> Iterator[tf.TarEntry]:
        pax: dict[str, bytes] = {}
        long_name: bytes | None = None
        long_link: bytes | None = None
        while True:
            entry = self._next_header()
            if entry is None:
                if pax or long_name is not None or long_link is not None:
                    raise DataCorruption("tar stream ends after an extended header without its entry")
                self._finish()
                return
            kind = entry.typeflag
            if kind == tf.PAX:
                pax.update(tf.parse_pax(self.read_all()))
                continue
            if kind == tf.PAX_GLOBAL:
                log.debug("ignoring PAX global header %r", tf.parse_pax(self.read_all()))
                continue
            if kind == tf.GNU_LONGNAME:
                long_name = tf.cstr(self.read_all())
                continue
            if kind == tf.GNU_LONGLINK:
                long_link = tf.cstr(self.read_all())
                continue
            if long_name is not None:
                entry.name = tf.fsdecode(long_name)
                long_name = None
            if long_link is not None:
                entry.linkname = tf.fsdecode(long_link)
                long_link = None
            if pax:
                tf.apply_pax(entry, pax)
                if "size" in pax and entry.typeflag not in tf.HEADER_ONLY:
                    self._remaining = entry.size
                    self._pad = -entry.size % tf.BLOCK
                pax = {}
            if entry.typeflag == tf.AREG and entry.name.endswith("/"):
                entry.typeflag = tf.DIR
            if entry.typeflag in tf.HEADER_ONLY:
                entry.size = 0
            self._current = entry.name
            yield entry
            self._last = entry.name

    def _finish(self) -> None:
        """Digest whatever follows the end-of-archive marker (record padding) so the digest covers the blob."""
        self._start = self._end = 0
        while self._fill():
            self._start = self._end = 0
        self._finished = True

    def digest(self) -> Digest:
        if not self._finished:
            raise RuntimeError("the tar stream was not read to its end")
        return Digest("sha256", self._hash.hexdigest())

    def close(self) -> None:
        """Stop the digest thread (if one was started); the reader is unusable afterwards."""
        self._hash.close()

    def __enter__(self) -> "TarReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
