"""The build context as a Docker daemon receives it (`POST /build`): a tar stream, or a remote URL.

The stream is plain or compressed (gzip, bzip2, xz, zstd — what Docker's DecompressStream takes) and is unpacked
as it arrives into a directory of its own under the engine's root (`ROOT/tmp/build-PID-RANDOM`, mode 0700): never
held whole in memory, and written through the layer applier, which resolves every entry inside that directory
(an entry can never land outside it, whatever its name or the links before it). A remote is a git repository
(`git://`, `ssh://`, `git@…`, `file://`, `http(s)://….git`, `github.com/…`, with Docker's `#REF:DIR`), cloned; or
an `http(s)://` URL of a tar (compressed or not) or of a plain Dockerfile, downloaded.

The Dockerfile is `dockerfile` inside the context (default `Dockerfile`, else `dockerfile`), resolved inside it.
As Docker's daemon does, `.dockerignore` is not applied to the files here — the client already left out what it
lists — except to the Dockerfile and `.dockerignore` themselves, which are dropped from the context when it
lists them (the docker CLI relies on it for `-f` outside the context and `-f -`).

A directory whose build died without cleaning up (SIGKILL) is removed by the next build (`sweep`).
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
from pathlib import Path
from typing import BinaryIO

from barque.build.context import BuildContext
from barque.build.ignore import IgnoreMatcher, read_patterns
from barque.errors import BarqueError, InvalidArgument

__all__ = ["work_dir", "sweep", "context_from_stream", "context_from_remote", "is_remote_git", "DEFAULT_DOCKERFILE"]

log = logging.getLogger(__name__)

DEFAULT_DOCKERFILE = "Dockerfile"
PREFIX = "build-"
_DIR = re.compile(r"^build-(\d+)-[0-9a-f]+$")


def _tmp_root(engine) -> Path:
    return Path(engine.settings.root) / "tmp"


def work_dir(engine) -> Path:
    """A new private directory for one received build (removed with the context)."""
    base = _tmp_root(engine)
    base.mkdir(mode=0o700, exist_ok=True)
    path = base / f"{PREFIX}{os.getpid()}-{os.urandom(6).hex()}"
    path.mkdir(mode=0o700)
    return path


def sweep(engine) -> None:
    """Remove the directories of received builds whose process is gone."""
    base = _tmp_root(engine)
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return
    for name in names:
        m = _DIR.match(name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # still building
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        shutil.rmtree(base / name, ignore_errors=True)


# ---- the stream ----------------------------------------------------------------------------------------------------

class _Prefixed(io.RawIOBase):
    """`head` (bytes already read) and then the rest of `src`."""

    def __init__(self, head: bytes, src: BinaryIO) -> None:
        super().__init__()
        self._head = head
        self._src = src

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._src.read(len(b))
        if not data:
            return 0
        b[:len(data)] = data
        return len(data)


def _read_head(src: BinaryIO, n: int) -> bytes:
    head = b""
    while len(head) < n:
        more = src.read(n - len(head))
        if not more:
            break
        head += more
    return head


def _decompressed(src: BinaryIO) -> tuple[BinaryIO, str, bool]:
    """(the uncompressed stream, the compression's name, whether the stream is empty)."""
    head = _read_head(src, 6)
    raw = io.BufferedReader(_Prefixed(head, src), buffer_size=1 << 20)
    if head.startswith(b"\x1f\x8b") or head.startswith(b"\x28\xb5\x2f\xfd"):
        from barque.layers import open_decompressed

        return open_decompressed(raw), "gzip" if head.startswith(b"\x1f") else "zstd", False
    if head.startswith(b"BZh"):
        import bz2

        return bz2.BZ2File(raw), "bzip2", False
    if head.startswith(b"\xfd7zXZ\x00"):
        import lzma

        return lzma.LZMAFile(raw), "xz", False
    return raw, "", not head


def _drain(src: BinaryIO) -> None:
    """Read what follows the archive (padding after its end blocks) so the sender's write completes."""
    while src.read(1 << 20):
        pass


def unpack_stream(src: BinaryIO, target: Path) -> None:
    """The tar (plain or compressed) read from `src` into the directory `target`."""
    import bz2
    import lzma

    from barque.layers.apply import apply_layer

    stream, compression, empty = _decompressed(src)
    if empty:
        return  # an empty body: an empty context (Docker then misses the Dockerfile)
    try:
        apply_layer(stream, target, lenient_end=True)
        _drain(stream)
    except (OSError, EOFError, lzma.LZMAError, ValueError) as e:
        what = f"{compression} " if compression else ""
        raise InvalidArgument(f"the build context is not a valid {what}tar archive: {e}") from None
    except BarqueError as e:
        what = f"{compression} " if compression else ""
        raise InvalidArgument(f"the build context is not a valid {what}tar archive: {e.message}") from None
    finally:
        if isinstance(stream, (bz2.BZ2File, lzma.LZMAFile)):
            stream.close()
    _drain(src)


# ---- the Dockerfile --------------------------------------------------------------------------------------------

def _read_dockerfile(root: Path, name: str) -> tuple[str, str]:
    from barque.securejoin import secure_join

    candidates = [name]
    if name == DEFAULT_DOCKERFILE:
        candidates.append(name.lower())
    for candidate in candidates:
        path = Path(secure_join(str(root), candidate))
        try:
            return path.read_text(encoding="utf-8", errors="surrogateescape"), candidate
        except (FileNotFoundError, NotADirectoryError):
            continue
        except IsADirectoryError:
            raise InvalidArgument(f"Cannot locate specified Dockerfile: {name}: it is a directory") from None
        except OSError as e:
            raise InvalidArgument(f"Cannot read the Dockerfile {name}: {e.strerror}") from None
    raise InvalidArgument(f"Cannot locate specified Dockerfile: {name}")


def _drop_ignored_build_files(root: Path, dockerfile: str) -> None:
    """Docker's removeDockerfile: .dockerignore and the Dockerfile leave the context when .dockerignore lists
    them (nothing else: the client applied the rest)."""
    from barque.securejoin import secure_join

    ignore = root / ".dockerignore"
    if not ignore.is_file() or ignore.is_symlink():
        return
    matcher = IgnoreMatcher(read_patterns(ignore.read_text(encoding="utf-8", errors="surrogateescape")))
    for name in (".dockerignore", dockerfile):
        if matcher.matches(name):
            path = Path(secure_join(str(root), name))
            if path.is_file() or path.is_symlink():
                path.unlink()


def _context(root: Path, temp: Path, dockerfile: str | None) -> BuildContext:
    name = (dockerfile or "").strip() or DEFAULT_DOCKERFILE
    text, found = _read_dockerfile(root, name)
    _drop_ignored_build_files(root, found)
    return BuildContext(root=root, dockerfile=text, dockerfile_name=found, ignore=IgnoreMatcher([]), _temp=[temp])


def context_from_stream(engine, src: BinaryIO, dockerfile: str | None) -> BuildContext:
    """The context a client sent as the request's body."""
    temp = work_dir(engine)
    try:
        root = temp / "context"
        root.mkdir(mode=0o755)
        unpack_stream(src, root)
        return _context(root, temp, dockerfile)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


# ---- remote contexts -------------------------------------------------------------------------------------------

def is_remote_git(url: str) -> bool:
    """Docker's IsGitURL, plus barque's own `file://` and `ssh://` (never a path on the server: that would read
    the server's files)."""
    repo = url.split("#", 1)[0]
    if url.startswith(("git://", "git@", "github.com/", "ssh://", "file://")):
        return True
    return url.startswith(("http://", "https://")) and repo.endswith(".git")


def context_from_remote(engine, url: str, dockerfile: str | None) -> BuildContext:
    """The context named by the `remote` parameter: a git repository, or a URL of a tar or a Dockerfile."""
    from barque.build.context import _git_context

    temp = work_dir(engine)
    try:
        if is_remote_git(url):
            if url.startswith("github.com/"):
                url = "https://" + url
            _clone, root = _git_context(url, temp)
            return _context(root, temp, dockerfile)
        if not url.startswith(("http://", "https://")):
            raise InvalidArgument(f"remoteURL ({url}) could not be recognized as URL")
        return _url_context(url, temp, dockerfile)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _url_context(url: str, temp: Path, dockerfile: str | None) -> BuildContext:
    """Docker's URL remote: a tar (its content type, or what its first bytes say) is the context; anything else
    is the Dockerfile of an empty context."""
    from contextlib import ExitStack

    from barque.build.fetch import fetch

    root = temp / "context"
    root.mkdir(mode=0o755)
    with ExitStack() as stack:
        try:
            path, _mtime, _digest = fetch(url, None, stack)
        except BarqueError as e:
            raise type(e)(e.message.replace("ADD failed: ", "unable to prepare context: ", 1)) from None
        with open(path, "rb") as f:
            head = f.read(512)
            f.seek(0)
            compressed = head.startswith((b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"BZh", b"\xfd7zXZ\x00"))
            if compressed or (len(head) > 262 and head[257:262] == b"ustar"):
                unpack_stream(f, root)
                return _context(root, temp, dockerfile)
        name = (dockerfile or "").strip() or DEFAULT_DOCKERFILE
        from barque.securejoin import secure_join

        shutil.copyfile(path, secure_join(str(root), name))
    return _context(root, temp, dockerfile)
