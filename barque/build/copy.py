"""COPY and ADD: choosing sources, digesting them for the cache, and copying them into a step's root filesystem.

Sources, as Docker's builder reads them: each is a path relative to the source root (the context, a stage's or an
image's root filesystem; a leading `/` changes nothing, `..` may not climb out), may hold `*`, `?` and `[…]`
wildcards matched per path component, and is resolved with its symlinks confined to that root. What .dockerignore
excludes is not there. A directory source copies its contents, not itself; a file goes to DEST/NAME when DEST ends
in `/` or is a directory already, else to DEST itself; several sources need a DEST that ends in `/`. A relative
DEST is under WORKDIR. What is copied belongs to root (or to `--chown`), keeps its mode (or takes `--chmod`), and
missing directories on the way to DEST are made (0755, owned as the copy). Symlinks inside a copied tree stay links.
Copies carry the build's epoch as their mtime, not the source's: the cache keys COPY by content, and a checkout's
mtimes are an accident of when it was made — so a layer depends on the content alone (Docker keeps source mtimes;
this is where barque departs from it, for reproducible images).

ADD also unpacks a local tar archive (plain, gzip, bzip2 or xz) into DEST, and fetches a URL into DEST (mode 0600,
the Last-Modified time, `--checksum` verified). Destination paths are resolved inside the root filesystem, so an
image's symlinks cannot send a copy to the host.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from barque.errors import InvalidArgument, NotFound

__all__ = ["Source", "select_sources", "sources_digest", "copy_into", "parse_chmod", "resolve_chown",
           "CopyError"]

_WILDCARDS = frozenset("*?[")


class CopyError(InvalidArgument):
    pass


@dataclass(frozen=True)
class Source:
    rel: str          # relative to the source root, "" for the root itself
    path: Path        # on the host (resolved inside the root)
    name: str         # the name a file gets at DEST/ (the source's last component as written or matched)


def _clean_source(text: str, what: str) -> str:
    cleaned = posixpath.normpath("/" + text).lstrip("/")
    raw = posixpath.normpath(text)
    if raw == ".." or raw.startswith("../"):
        raise CopyError(f"{what} failed: forbidden path outside the build context: {text} ()")
    return "" if cleaned == "." else cleaned


def _resolve(root: Path, rel: str) -> Path:
    from barque.securejoin import secure_join

    return Path(secure_join(str(root), rel))


def _listdir(root: Path, rel: str, excluded: Callable[[str], bool]) -> list[str]:
    try:
        names = sorted(os.listdir(_resolve(root, rel)))
    except (NotADirectoryError, FileNotFoundError):
        return []
    return [n for n in names if not excluded(f"{rel}/{n}" if rel else n)]


def _glob(root: Path, pattern: str, excluded: Callable[[str], bool]) -> list[str]:
    """Context paths matching `pattern`, component by component (Go's filepath.Match: `*` never crosses `/`)."""
    found = [""]
    for comp in pattern.split("/"):
        nxt = []
        for base in found:
            if not any(ch in _WILDCARDS for ch in comp):
                candidate = f"{base}/{comp}" if base else comp
                if os.path.lexists(_resolve(root, candidate)) and not excluded(candidate):
                    nxt.append(candidate)
                continue
            nxt += [f"{base}/{n}" if base else n for n in _listdir(root, base, excluded)
                    if fnmatch.fnmatchcase(n, comp)]
        found = nxt
    return found


def select_sources(root: Path, specs: list[str], excluded: Callable[[str], bool], what: str = "COPY") -> list[Source]:
    out: list[Source] = []
    for spec in specs:
        rel = _clean_source(spec, what)
        if any(ch in _WILDCARDS for ch in rel):
            matches = _glob(root, rel, excluded)
            out += [Source(m, _resolve(root, m), posixpath.basename(m)) for m in matches]
            continue
        path = _resolve(root, rel)
        if excluded(rel) or not os.path.lexists(path):
            raise NotFound(f"{what} failed: file not found in build context or excluded by .dockerignore: stat "
                           f"{rel or '.'}: file does not exist")
        out.append(Source(rel, path, posixpath.basename(rel)))
    if not out:
        raise NotFound(f"{what} failed: no source files were specified")
    return out


def _walk(src: Source, excluded: Callable[[str], bool]) -> Iterator[tuple[str, Path, os.stat_result]]:
    """(path relative to the source, host path, lstat) of a source and, for a directory, everything under it that
    is not excluded, parents before children, names sorted."""
    st = os.lstat(src.path)
    yield "", src.path, st
    if not stat.S_ISDIR(st.st_mode):
        return
    stack = [("", src.path)]
    while stack:
        rel, path = stack.pop()
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
        subdirs = []
        for entry in entries:
            child_rel = f"{rel}/{entry.name}" if rel else entry.name
            if excluded(f"{src.rel}/{child_rel}" if src.rel else child_rel):
                continue
            cst = entry.stat(follow_symlinks=False)
            yield child_rel, Path(entry.path), cst
            if stat.S_ISDIR(cst.st_mode):
                subdirs.append((child_rel, Path(entry.path)))
        stack.extend(reversed(subdirs))


def sources_digest(sources: list[Source], excluded: Callable[[str], bool], hashes=None) -> str:
    """A digest of what the sources hold: names, types, modes, content and link targets — not mtimes or owners.
    `hashes` (barque.build.hashcache) remembers the content digests of files that did not change."""
    h = hashlib.sha256()
    for src in sources:
        h.update(f"source {src.name}\0".encode())
        for rel, path, st in sorted(_walk(src, excluded), key=lambda t: t[0]):
            h.update(f"{rel}\0{stat.S_IFMT(st.st_mode):o}\0{stat.S_IMODE(st.st_mode):o}\0".encode())
            if stat.S_ISREG(st.st_mode):
                if hashes is not None:
                    h.update(hashes.digest(str(path), st))
                else:
                    with open(path, "rb") as f:
                        h.update(hashlib.file_digest(f, "sha256").digest())
            elif stat.S_ISLNK(st.st_mode):
                h.update(os.fsencode(os.readlink(path)))
            h.update(b"\0")
    return h.hexdigest()


def parse_chmod(text: str | None) -> int | None:
    if not text:
        return None
    try:
        mode = int(text, 8)
    except ValueError:
        raise CopyError(f"invalid chmod parameter: {text!r}: expected an octal mode like 0755") from None
    if mode > 0o7777:
        raise CopyError(f"invalid chmod parameter: {text!r}: the mode is out of range")
    return mode


def resolve_chown(rootfs: Path, text: str | None) -> tuple[int, int] | None:
    """--chown=USER[:GROUP] as ids, names looked up in the image's /etc/passwd and /etc/group."""
    if not text:
        return None
    from barque.container.rootfs import read_file

    user, _, group = text.partition(":")

    def lookup(name: str, table: str, what: str) -> tuple[int, int | None]:
        if name.isdigit():
            return int(name), None
        data = read_file(rootfs, table) or b""
        for line in data.decode("utf-8", "replace").splitlines():
            fields = line.split(":")
            if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
                gid = int(fields[3]) if what == "user" and len(fields) > 3 and fields[3].isdigit() else None
                return int(fields[2]), gid
        raise CopyError(f"unable to convert uid/gid chown string to host mapping: can't find {what} {name!r} in "
                        f"{table}")
    uid, primary = lookup(user, "/etc/passwd", "user")
    if group:
        gid, _ = lookup(group, "/etc/group", "group")
    else:
        gid = primary if primary is not None else uid
    return uid, gid


def destination(dest: str, workdir: str) -> tuple[str, bool]:
    """DEST as an absolute path in the image, and whether it names a directory (trailing slash or `.`)."""
    as_dir = dest.endswith("/") or dest in (".", "") or dest.endswith("/.")
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
    return posixpath.normpath(dest), as_dir


class Copier:
    """Copies into one root filesystem: paths resolved inside it, owners and modes as COPY sets them."""

    def __init__(self, rootfs: Path, owner: tuple[int, int] | None, chmod: int | None, mtime: int) -> None:
        self.rootfs = rootfs
        self.uid, self.gid = owner or (0, 0)
        self.chmod = chmod
        self.mtime_ns = mtime * 1_000_000_000

    def host(self, path: str) -> Path:
        return _resolve(self.rootfs, path)

    def make_dirs(self, path: str) -> Path:
        """Directories on the way to `path` (absolute, in the image) made as the copy's owner; the host path.
        The path is resolved first (its symlinks inside the root), so what is made is what the path names."""
        target = self.host(path)
        current = self.rootfs
        for part in target.relative_to(self.rootfs).parts:
            current = current / part
            try:
                os.mkdir(current, 0o755)
            except FileExistsError:
                if current.is_symlink() or not current.is_dir():
                    raise CopyError(f"cannot copy to {path}: {current.relative_to(self.rootfs)} is not a "
                                    "directory") from None
                continue
            os.chmod(current, 0o755)
            os.lchown(current, self.uid, self.gid)
        return target

    def _owned(self, path: Path, st: os.stat_result) -> None:
        os.lchown(path, self.uid, self.gid)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(path, self.chmod if self.chmod is not None else stat.S_IMODE(st.st_mode))
            os.utime(path, ns=(self.mtime_ns, self.mtime_ns))

    def _remove_existing(self, target: Path, is_dir: bool) -> None:
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if is_dir:
                return
            import shutil

            shutil.rmtree(target)
        else:
            os.unlink(target)

    def copy_entry(self, source: Path, st: os.stat_result, target: Path) -> None:
        mode = st.st_mode
        self._remove_existing(target, stat.S_ISDIR(mode))
        if stat.S_ISDIR(mode):
            if not target.is_dir():
                os.mkdir(target)
        elif stat.S_ISREG(mode):
            import shutil

            shutil.copyfile(source, target, follow_symlinks=False)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(source), target)
        elif stat.S_ISFIFO(mode):
            os.mkfifo(target)
        else:
            return  # sockets and devices are not copied from a context
        self._owned(target, st)

    def copy_tree(self, src: Source, excluded: Callable[[str], bool], dest_dir: str) -> None:
        """A directory source's contents into `dest_dir` (absolute, in the image)."""
        self.make_dirs(dest_dir)
        dirs: list[tuple[Path, os.stat_result]] = []
        for rel, path, st in _walk(src, excluded):
            if rel == "":
                continue
            target = self.host(posixpath.join(dest_dir, rel))
            self.copy_entry(path, st, target)
            if stat.S_ISDIR(st.st_mode):
                dirs.append((target, st))
        for target, st in reversed(dirs):  # directory mtimes last: filling them moved them
            os.utime(target, ns=(self.mtime_ns, self.mtime_ns))

    def copy_file(self, source: Path, st: os.stat_result, dest: str) -> None:
        parent = posixpath.dirname(dest)
        self.make_dirs(parent)
        target = self.host(dest)
        if target.is_dir() and not os.path.islink(target):
            raise CopyError(f"cannot copy to {dest}: it is a directory")
        self.copy_entry(source, st, target)


def copy_into(rootfs: Path, sources: list[Source], excluded: Callable[[str], bool], dest: str, workdir: str,
              owner: tuple[int, int] | None, chmod: int | None, mtime: int, what: str = "COPY",
              unpack: Callable[[Source], bool] | None = None) -> None:
    """Copy `sources` to DEST inside `rootfs` with Docker's semantics (see the module docstring). `unpack`, for ADD,
    says whether a source is a local archive to extract into DEST instead."""
    target, as_dir = destination(dest, workdir)
    if len(sources) > 1 and not as_dir:
        raise CopyError(f"When using {what} with more than one source file, the destination must be a directory "
                        "and end with a /")
    copier = Copier(rootfs, owner, chmod, mtime)
    for src in sources:
        st = os.lstat(src.path)
        if stat.S_ISDIR(st.st_mode):
            copier.copy_tree(src, excluded, target)
            continue
        if unpack is not None and unpack(src):
            extract_archive(copier, src.path, target)
            continue
        existing = copier.host(target)
        if as_dir or (existing.is_dir() and not existing.is_symlink()):
            copier.copy_file(src.path, st, posixpath.join(target, src.name))
        else:
            copier.copy_file(src.path, st, target)


def is_archive(path: Path) -> bool:
    """A local tar archive, plain or compressed, as ADD unpacks them."""
    import bz2
    import gzip
    import lzma

    try:
        with open(path, "rb") as f:
            head = f.read(16)
        opener = {b"\x1f\x8b": gzip.open, b"BZ": bz2.open, b"\xfd7z": lzma.open}
        for magic, fn in opener.items():
            if head.startswith(magic):
                with fn(path, "rb") as f:
                    block = f.read(512)
                return len(block) == 512 and block[257:262] == b"ustar"
        with open(path, "rb") as f:
            block = f.read(512)
        return len(block) == 512 and block[257:262] == b"ustar"
    except (OSError, EOFError, lzma.LZMAError):
        return False


def extract_archive(copier: Copier, archive: Path, dest: str) -> None:
    """Unpack a tar into DEST (made if missing), confined to it; owners as the archive has them (or --chown)."""
    import bz2
    import gzip
    import lzma

    from barque.layers import apply_layer

    with open(archive, "rb") as f:
        head = f.read(4)
    opener = gzip.open if head.startswith(b"\x1f\x8b") else bz2.open if head.startswith(b"BZ") else \
        lzma.open if head.startswith(b"\xfd7z") else open
    root = copier.make_dirs(dest)
    with opener(archive, "rb") as stream:
        apply_layer(stream, root, whiteouts="delete")
    if copier.uid or copier.gid:
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                os.lchown(os.path.join(dirpath, n), copier.uid, copier.gid)
