"""The build context: the files COPY and ADD may read, and the Dockerfile.

A context is a directory (read where it is: nothing is copied or sent), a tar on standard input (`-`, plain or
compressed; standard input that is not a tar is a Dockerfile alone, with an empty context), or a git repository
(`file://PATH`, `git://…`, `…​.git`, a local repository's path, with `#REF:SUBDIR` as Docker takes it) cloned into a temporary directory.

What `.dockerignore` excludes does not exist for COPY and ADD, as in Docker where it never reaches the daemon; a
Dockerfile's own `NAME.dockerignore` beside it replaces the context's, as BuildKit has it. The
Dockerfile is found as Docker's CLI finds it: `-f` relative to the current directory (or `-f -` for standard
input), else `Dockerfile` (or `dockerfile`) at the top of the context.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from barque.build.ignore import IgnoreMatcher, read_patterns
from barque.errors import InvalidArgument, NotFound

__all__ = ["BuildContext", "open_context", "is_git_url"]

log = logging.getLogger(__name__)


@dataclass
class BuildContext:
    root: Path                       # the context's top directory
    dockerfile: str                  # the Dockerfile's text
    dockerfile_name: str             # as error messages name it
    ignore: IgnoreMatcher
    _temp: list[Path] = field(default_factory=list)

    @property
    def stable(self) -> bool:
        """A directory of the user's, which later builds will read again (not a temporary copy)."""
        return not self._temp

    def excluded(self, rel: str) -> bool:
        return bool(rel) and self.ignore.matches(rel)

    def close(self) -> None:
        import shutil

        for t in self._temp:
            shutil.rmtree(t, ignore_errors=True)
        self._temp.clear()

    def __enter__(self) -> "BuildContext":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def is_git_url(ref: str) -> bool:
    """A git repository to clone: a git URL, or a local repository's path given with `#REF[:DIR]` or ending in
    `.git` (a plain directory that happens to be a checkout is read as a directory, as Docker reads it)."""
    if ref.startswith(("file://", "git://", "git@", "ssh://")) or (
            ref.startswith(("http://", "https://")) and ref.split("#", 1)[0].endswith(".git")):
        return True
    path, hash_, _ = ref.partition("#")
    if not (hash_ or path.rstrip("/").endswith(".git")) or not os.path.isdir(path):
        return False
    return os.path.isdir(os.path.join(path, ".git")) or (os.path.isfile(os.path.join(path, "HEAD"))
                                                         and os.path.isdir(os.path.join(path, "objects")))


def _temp_dir(prefix: str, parent: Path | None = None) -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def _is_tar(head: bytes) -> bool:
    return len(head) > 262 and head[257:262] == b"ustar"


def _stdin_context(data_stream) -> tuple[Path | None, bytes | None]:
    """A context from standard input: (directory, None) for a tar, (None, dockerfile bytes) otherwise."""
    import io
    import shutil
    import tarfile

    from barque.layers import detect_compression, open_decompressed

    data = data_stream.read()
    if not data:
        raise InvalidArgument("unable to prepare context: the context from standard input is empty")
    compression = detect_compression(data[:16])
    plain = data
    if compression:
        try:
            plain = open_decompressed(io.BytesIO(data)).read()
        except (OSError, EOFError, InvalidArgument) as e:
            raise InvalidArgument(f"unable to prepare context: the context from standard input is not a valid "
                                  f"{compression} stream: {e}") from None
    if not _is_tar(plain[:512]):
        if compression:
            raise InvalidArgument("unable to prepare context: standard input is compressed but not a tar archive")
        return None, data
    target = _temp_dir("barque-context-")
    try:
        with tarfile.open(fileobj=io.BytesIO(plain), mode="r:") as tf:
            tf.extractall(target, filter="tar")
    except (tarfile.TarError, OSError, EOFError) as e:
        shutil.rmtree(target, ignore_errors=True)
        raise InvalidArgument(f"unable to prepare context: the context from standard input is not a valid tar "
                              f"archive: {e}") from None
    return target, None


def _git_context(url: str, parent: Path | None = None) -> tuple[Path, Path]:
    """Clone `url` (`#ref:subdir`) into a temporary directory (in `parent`, default the system's); (the clone, the
    context directory in it)."""
    import shutil
    import subprocess

    repo, _, fragment = url.partition("#")
    ref, _, subdir = fragment.partition(":")
    target = _temp_dir("barque-git-", parent)
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}

    def git(*args: str, cwd: Path | None = None) -> None:
        done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise InvalidArgument(f"unable to prepare context: git {args[0]} of {repo} failed: "
                                  f"{done.stderr.strip() or done.stdout.strip()}")
    try:
        git("clone", "--quiet", "--recurse-submodules", repo, str(target))
        if ref:
            git("checkout", "--quiet", ref, cwd=target)
            git("submodule", "update", "--init", "--recursive", "--quiet", cwd=target)
        shutil.rmtree(target / ".git", ignore_errors=True)
        ctx = (target / subdir) if subdir else target
        if not ctx.resolve().is_relative_to(target.resolve()) or not ctx.is_dir():
            raise InvalidArgument(f"unable to prepare context: {subdir!r} is not a directory of {repo}")
        return target, ctx
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def _read_dockerfile(root: Path, dockerfile: str | None) -> tuple[str, str]:
    if dockerfile:
        path = Path(dockerfile)
        if not path.is_absolute():
            path = Path.cwd() / path
            if not path.exists() and (root / dockerfile).exists():
                path = root / dockerfile  # as Docker's CLI, a name relative to the context is found too
    else:
        path = root / "Dockerfile"
        if not path.exists() and (root / "dockerfile").exists():
            path = root / "dockerfile"
    try:
        return path.read_text(encoding="utf-8", errors="surrogateescape"), str(path)
    except FileNotFoundError:
        raise NotFound(f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat "
                       f"{path}: no such file or directory") from None
    except IsADirectoryError:
        raise InvalidArgument(f"unable to prepare context: Dockerfile {path} is a directory") from None
    except OSError as e:
        raise InvalidArgument(f"unable to prepare context: cannot read the Dockerfile {path}: {e.strerror}") from None


def open_context(ref: str, dockerfile: str | None = None, stdin=None) -> BuildContext:
    """The context named on the command line (`-` reads `stdin`, a binary stream)."""
    temp: list[Path] = []
    stdin = stdin if stdin is not None else sys.stdin.buffer
    try:
        inline: str | None = None
        if dockerfile == "-":
            if ref == "-":
                raise InvalidArgument("invalid argument: can't use stdin for both build context and dockerfile")
            inline = stdin.read().decode("utf-8", "surrogateescape")
        if ref == "-":
            root, text = _stdin_context(stdin)
            if root is None:
                root = _temp_dir("barque-context-")
                temp.append(root)
                inline = text.decode("utf-8", "surrogateescape")
            else:
                temp.append(root)
        elif is_git_url(ref):
            clone, root = _git_context(ref)
            temp.append(clone)
        else:
            root = Path(ref)
            if not root.exists():
                raise NotFound(f'unable to prepare context: path "{ref}" not found')
            if not root.is_dir():
                raise InvalidArgument(f'unable to prepare context: context must be a directory: {ref}')
            if not os.access(root, os.R_OK | os.X_OK):
                raise InvalidArgument(f'unable to prepare context: cannot read the context directory "{ref}": '
                                      "permission denied")
            root = root.resolve()
        if inline is not None:
            text, name = inline, "Dockerfile"
        else:
            text, name = _read_dockerfile(root, dockerfile if ref != "-" else None)
        patterns: list[str] = []
        ignore_file = root / ".dockerignore"
        own = Path(name + ".dockerignore") if inline is None else None
        if own is not None and own.is_file():  # BuildKit: a Dockerfile's own NAME.dockerignore comes first
            ignore_file = own
        if ignore_file.is_file():
            patterns = read_patterns(ignore_file.read_text(encoding="utf-8", errors="surrogateescape"))
        return BuildContext(root=root, dockerfile=text, dockerfile_name=name, ignore=IgnoreMatcher(patterns),
                            _temp=temp)
    except BaseException:
        import shutil

        for t in temp:
            shutil.rmtree(t, ignore_errors=True)
        raise
