"""The tar format, as far as layers need it: ustar headers, PAX extended headers, GNU long names.

barque reads and writes tar itself instead of through :mod:`tarfile` because layers need things tarfile does
not give: a digest of the exact bytes in the same pass, an error (not a silent end of archive) on a corrupt
header in the middle of a stream, and byte-exact control of what is written so that the same tree always gives
the same diff ID. Numbers follow Go's archive/tar (what Docker, containerd and BuildKit use): octal, or GNU
base-256 when octal does not fit; strings are raw bytes, decoded with ``surrogateescape`` so that any name the
filesystem holds survives a round trip.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from barque.errors import DataCorruption

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)

REG = b"0"
AREG = b"\0"  # pre-POSIX regular file
LINK = b"1"
SYMLINK = b"2"
CHAR = b"3"
BLOCKDEV = b"4"
DIR = b"5"
FIFO = b"6"
CONT = b"7"  # contiguous file: a regular file everywhere that matters
PAX = b"x"
PAX_GLOBAL = b"g"
GNU_LONGNAME = b"L"
GNU_LONGLINK = b"K"
GNU_SPARSE = b"S"
GNU_VOLHDR = b"V"

# entry types whose header is all there is: any size they claim carries no data (as Go's reader treats them)
HEADER_ONLY = frozenset({LINK, SYMLINK, CHAR, BLOCKDEV, DIR, FIFO})

PAX_XATTR = "SCHILY.xattr."
_LIBARCHIVE_XATTR = "LIBARCHIVE.xattr."

_POSIX_MAGIC = b"ustar\x0000"
_GNU_MAGIC = b"ustar  \x00"


def fsdecode(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def fsencode(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


@dataclass(slots=True)
class TarEntry:
    """One member of a tar stream, after its PAX / GNU extension headers were folded in."""

    name: str
    typeflag: bytes
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime_ns: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)

    @property
    def is_regular(self) -> bool:
        return self.typeflag in (REG, AREG, CONT)


# ---------------------------------------------------------------------------------------------------- reading


def cstr(b: bytes) -> bytes:
    i = b.find(b"\0")
    return b if i < 0 else b[:i]


def parse_number(b: bytes, what: str) -> int:
    if b and b[0] & 0x80:  # GNU base-256: 0x80 positive, 0xff negative (two's complement)
        value = int.from_bytes(b, "big")
        if b[0] == 0xFF:
            return value - (1 << (8 * len(b)))
        return value & ~(0x80 << (8 * (len(b) - 1)))
    text = cstr(b).strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise DataCorruption(f"invalid tar header: {what} field {bytes(b)!r} is not a number") from None


def checksum_ok(block: bytes | memoryview) -> bool:
    stored = bytes(block[148:156])
    if stored == b"\0" * 8:
        return False
    want = parse_number(stored, "checksum")
    unsigned = sum(block) - sum(stored) + 8 * 0x20
    if unsigned == want:
        return True
    # some historic tars summed signed chars
    signed = sum(x - 256 if x > 127 else x for x in bytes(block)) - sum(x - 256 if x > 127 else x for x in stored) + 8 * 0x20
    return signed == want


_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")


def _octal_fast(field: bytes, what: str) -> int:
    """The common case (NUL/space padded octal) in one call; anything else through parse_number."""
    try:
        return int(field.rstrip(b"\0 ") or b"0", 8)
    except ValueError:
        return parse_number(field, what)


def parse_header(block: bytes | memoryview) -> TarEntry:
    """Decode one 512-byte header; raises DataCorruption if it is not a valid tar header.

    For GNU long-name and PAX headers the entry's fields are the extension header's own; the reader folds them
    into the entry that follows.
    """
    block = bytes(block)
    (name, mode, uid, gid, size, mtime, chksum, typeflag, linkname, magic, _uname, _gname, devmajor, devminor,
     prefix) = _USTAR.unpack(block)
    if sum(block) - sum(chksum) + 8 * 0x20 != _octal_fast(chksum, "checksum") and not checksum_ok(block):
        raise DataCorruption("invalid tar header: checksum mismatch")
    i = name.find(b"\0")
    if i >= 0:
        name = name[:i]
    if magic[:6] == b"ustar\x00":  # POSIX ustar/pax; GNU's "ustar  " uses that area for other things
        prefix = cstr(prefix)
        if prefix:
            name = prefix + b"/" + name
    entry = TarEntry(
        name=name.decode("utf-8", "surrogateescape"),
        typeflag=typeflag,
        mode=_octal_fast(mode, "mode"),
        uid=_octal_fast(uid, "uid"),
        gid=_octal_fast(gid, "gid"),
        size=_octal_fast(size, "size"),
        mtime_ns=_octal_fast(mtime, "mtime") * 1_000_000_000,
    )
    if linkname[0]:
        entry.linkname = cstr(linkname).decode("utf-8", "surrogateescape")
    if typeflag in (CHAR, BLOCKDEV):
        entry.devmajor = _octal_fast(devmajor, "devmajor")
        entry.devminor = _octal_fast(devminor, "devminor")
    return entry


def parse_pax(data: bytes) -> dict[str, bytes]:
    """Parse PAX extended header records ("LEN KEY=VALUE\\n"); values stay bytes (xattrs are binary)."""
    records: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:  # padding some writers leave
            break
        sp = data.find(b" ", pos)
        try:
            length = int(data[pos:sp]) if sp > pos else -1
        except ValueError:
            length = -1
        if length <= 0 or pos + length > len(data) or data[pos + length - 1] != 0x0A:
            raise DataCorruption("invalid PAX extended header record")
        key, eq, value = data[sp + 1 : pos + length - 1].partition(b"=")
        if not eq:
            raise DataCorruption("invalid PAX extended header record: no '='")
        records[fsdecode(key)] = value
        pos += length
    return records


def parse_pax_time(value: bytes) -> int:
    """A PAX time ("1700000000.123456789", maybe negative) in nanoseconds."""
    text = value.decode("ascii", "replace").strip()
    sign = -1 if text.startswith("-") else 1
    whole, _, frac = text.lstrip("+-").partition(".")
    try:
        ns = int(whole or "0") * 1_000_000_000 + int((frac[:9] or "0").ljust(9, "0"))
    except ValueError:
        raise DataCorruption(f"invalid PAX time {text!r}") from None
    return sign * ns


def apply_pax(entry: TarEntry, records: dict[str, bytes]) -> None:
    """Fold PAX records into an entry, overriding its ustar fields."""
    import base64
    from urllib.parse import unquote_to_bytes

    for key, value in records.items():
        try:
            if key == "path":
                entry.name = fsdecode(value)
            elif key == "linkpath":
                entry.linkname = fsdecode(value)
            elif key == "size":
                entry.size = int(value)
            elif key == "uid":
                entry.uid = int(value)
            elif key == "gid":
                entry.gid = int(value)
            elif key == "mtime":
                entry.mtime_ns = parse_pax_time(value)
            elif key.startswith(PAX_XATTR):
                entry.xattrs[key[len(PAX_XATTR) :]] = value
            elif key.startswith(_LIBARCHIVE_XATTR):  # bsdtar: URL-encoded name, base64 value
                name = fsdecode(unquote_to_bytes(key[len(_LIBARCHIVE_XATTR) :]))
                entry.xattrs.setdefault(name, base64.b64decode(value + b"=" * (-len(value) % 4)))
            elif key.startswith("GNU.sparse."):
                entry.typeflag = GNU_SPARSE
        except ValueError:
            raise DataCorruption(f"invalid PAX record {key}={value!r}") from None


# ---------------------------------------------------------------------------------------------------- writing


def _octal(value: int, width: int) -> bytes | None:
    """``width``-byte octal field with a NUL terminator, or None when it does not fit."""
    if 0 <= value < 8 ** (width - 1):
        return b"%0*o\0" % (width - 1, value)
    return None


def _base256(value: int, width: int) -> bytes:
    if value < 0:
        return (value + (1 << (8 * width))).to_bytes(width, "big")
    return (value | (0x80 << (8 * (width - 1)))).to_bytes(width, "big")


def pax_record(key: str, value: bytes) -> bytes:
    body = b" " + fsencode(key) + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body


def _pad(n: int) -> bytes:
    return bytes(-n % BLOCK)


def build_header(
    name: bytes,
    typeflag: bytes,
    *,
    mode: int = 0,
    uid: int = 0,
    gid: int = 0,
    size: int = 0,
    mtime: int = 0,
    linkname: bytes = b"",
    devmajor: int = 0,
    devminor: int = 0,
    xattrs: dict[str, bytes] | None = None,
) -> bytes:
    """Header block(s) for one entry: a PAX 'x' header first when some field does not fit ustar.

    Like Go's writer in PAX format: user and group names empty, no atime/ctime, only the records needed.
    """
    records: dict[str, bytes] = {}
    if len(name) > 100 or not name.isascii():
        records["path"] = name
    if len(linkname) > 100 or not linkname.isascii():
        records["linkpath"] = linkname
    for key, value, width in (("uid", uid, 8), ("gid", gid, 8), ("size", size, 12), ("mtime", mtime, 12)):
        if _octal(value, width) is None:
            records[key] = str(value).encode()
    for key in sorted(xattrs or ()):
        records[PAX_XATTR + key] = (xattrs or {})[key]
    out = b""
    if records:
        data = b"".join(pax_record(k, records[k]) for k in sorted(records))
        base = name.rstrip(b"/").rsplit(b"/", 1)
        pax_name = (base[0] + b"/PaxHeaders.0/" + base[1]) if len(base) == 2 else b"PaxHeaders.0/" + base[0]
        out = _ustar(pax_name[:100], PAX, 0o644, 0, 0, len(data), 0, b"", 0, 0) + data + _pad(len(data))
    return out + _ustar(name[:100], typeflag, mode, uid, gid, size, mtime, linkname[:100], devmajor, devminor)


def _ustar(name: bytes, typeflag: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, linkname: bytes,
           devmajor: int, devminor: int) -> bytes:
    def num(value: int, width: int) -> bytes:
        # values a PAX record already carries get 0 here, as Go does; device numbers have no PAX key: base-256
        return _octal(value, width) or _octal(0, width)  # type: ignore[return-value]

    dev = (_octal(devmajor, 8) or _base256(devmajor, 8)) + (_octal(devminor, 8) or _base256(devminor, 8))
    block = bytearray(BLOCK)
    block[0 : len(name)] = name
    block[100:108] = num(mode & 0o7777, 8)
    block[108:116] = num(uid, 8)
    block[116:124] = num(gid, 8)
    block[124:136] = num(size, 12)
    block[136:148] = num(mtime, 12)
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[157 : 157 + len(linkname)] = linkname
    block[257:265] = _POSIX_MAGIC
    block[329:345] = dev
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def padding(size: int) -> bytes:
    """Zero bytes completing an entry's data to a whole block."""
    return _pad(size)


END_OF_ARCHIVE = bytes(2 * BLOCK)
