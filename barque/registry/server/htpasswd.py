"""Users from an htpasswd file with bcrypt entries, as ``htpasswd -B`` writes them (``user:$2y$...``).

Only bcrypt is accepted, as in Docker's distribution: MD5-crypt, SHA1 and plain entries are refused with the line
number. bcrypt is slow on purpose (~0.1-0.3 s per check at cost 10), and a registry client sends Basic credentials on
every request, so a successful check is remembered (keyed by a SHA-256 of user, password and hash) for the life of
the process; failures are never remembered. The file is re-read when its mtime changes, so users can be added
without a restart.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path

from barque.errors import InvalidArgument

__all__ = ["Htpasswd", "parse_htpasswd"]

# $2a$/$2b$/$2y$, a two-digit cost, then 22 characters of salt and 31 of hash in bcrypt's base64 alphabet
_BCRYPT_RE = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")


def parse_htpasswd(text: str, where: str = "htpasswd") -> dict[str, bytes]:
    users: dict[str, bytes] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            raise InvalidArgument(f"{where}:{number}: expected USER:HASH")
        if not hashed.startswith(("$2y$", "$2b$", "$2a$")):
            raise InvalidArgument(f"{where}:{number}: user {user!r} has no bcrypt hash (make it with htpasswd -B)")
        if not _BCRYPT_RE.fullmatch(hashed):
            # a mangled entry: that user cannot log in (the others still can), as bcrypt cannot check it
            continue
        users[user] = hashed.encode()
    return users


class Htpasswd:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._users: dict[str, bytes] = {}
        self._good: set[bytes] = set()
        self._load()

    def _load(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError as e:
            raise InvalidArgument(f"cannot read htpasswd file {self.path}: {e.strerror}") from None
        if st.st_mtime != self._mtime:
            self._users = parse_htpasswd(self.path.read_text(), str(self.path))
            self._mtime = st.st_mtime
            self._good.clear()

    def verify(self, user: str, password: str) -> bool:
        """Whether `user` exists and `password` is theirs (blocking: bcrypt; call from a thread)."""
        import bcrypt

        with self._lock:
            try:
                self._load()
            except InvalidArgument:
                return False
            hashed = self._users.get(user)
        if hashed is None:
            return False
        key = hashlib.sha256(b"\0".join([user.encode(), password.encode(), hashed])).digest()
        if key in self._good:
            return True
        # bcrypt treats $2y$ (PHP/Apache's name) exactly as $2b$
        try:
            ok = bcrypt.checkpw(password.encode(), b"$2b$" + hashed[4:] if hashed.startswith(b"$2y$") else hashed)
        except ValueError:   # a hash bcrypt cannot read: a refusal, never a server error
            return False
        if ok:
            with self._lock:
                self._good.add(key)
        return ok
