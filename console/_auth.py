"""Operator accounts, password hashing and server-side sessions of the console.

Users come from a TOML (or JSON) file; passwords are stored only as scrypt hashes
(``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``, stdlib :func:`hashlib.scrypt`)::

    [users."ion.popescu"]
    role = "operator"            # operator: may act on alerts; viewer: read only
    password = "scrypt$16384$8$1$...$..."

Sessions are server-side: the browser holds only a random id in an ``HttpOnly``,
``SameSite=Strict`` cookie. Each session has a CSRF token (sent back by the browser in
the ``X-CSRF-Token`` header of every POST), an absolute expiry (a shift) and an idle
expiry. Everything here is synchronous and takes ``now`` from an injected clock, so the
tests control time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from console._errors import UsersFileError

Role = Literal["operator", "viewer"]
ROLES: tuple[Role, ...] = ("operator", "viewer")

# scrypt cost: n=2**14, r=8, p=1 uses 16 MiB and ~50 ms per hash (OWASP minimum is n=2**13
# with r=8); verification reads the parameters from the stored hash, so they can grow.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_DKLEN = 32
_MAXMEM = 64 * 1024 * 1024


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """A new salted scrypt hash of ``password`` (``scrypt$n$r$p$salt$hash``)."""
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=_DKLEN, maxmem=_MAXMEM)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(dk)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time compare; False if malformed)."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        want = base64.b64decode(parts[5], validate=True)
        got = hashlib.scrypt(
            password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(want), maxmem=_MAXMEM
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, want)


@dataclass(frozen=True, slots=True)
class User:
    """One console account."""

    name: str
    role: Role
    password_hash: str = field(repr=False)


def parse_users(data: dict[str, object], source: str) -> dict[str, User]:
    """Users from a decoded users file (``{"users": {name: {role, password}}}``).

    Raises :class:`UsersFileError` naming the first bad entry; a plain-text password
    (anything not ``scrypt$...``) is refused.
    """
    users = data.get("users")
    if not isinstance(users, dict) or not users:
        raise UsersFileError(source, "users", "needs a non-empty [users] table")
    out: dict[str, User] = {}
    for name, entry in users.items():
        where = f"users.{name}"
        if not isinstance(entry, dict):
            raise UsersFileError(source, where, "must be a table with role and password")
        role = entry.get("role")
        pw = entry.get("password")
        if role not in ROLES:
            raise UsersFileError(source, f"{where}.role", f"must be one of {list(ROLES)}")
        if not isinstance(pw, str) or not pw.startswith("scrypt$") or len(pw.split("$")) != 6:
            raise UsersFileError(
                source,
                f"{where}.password",
                "must be a scrypt hash (make one: python -m console hash-password)",
            )
        out[str(name)] = User(name=str(name), role=role, password_hash=pw)
    return out


def load_users(path: str | Path) -> dict[str, User]:
    """Read a users file (``.json``: JSON, anything else: TOML)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise UsersFileError(str(p), "-", f"cannot read: {exc.strerror}") from exc
    try:
        data = json.loads(raw) if p.suffix == ".json" else tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsersFileError(str(p), "-", f"not valid {p.suffix or 'TOML'}: {exc}") from exc
    if not isinstance(data, dict):
        raise UsersFileError(str(p), "-", "must hold an object")
    return parse_users(data, str(p))


def users_toml(users: dict[str, tuple[Role, str]]) -> str:
    """A users file (TOML) for ``{name: (role, plain password)}`` (passwords hashed)."""
    lines = ["# Limes console users (passwords are scrypt hashes)", ""]
    for name, (role, pw) in users.items():
        lines += [
            f"[users.{json.dumps(name)}]",
            f'role = "{role}"',
            f'password = "{hash_password(pw)}"',
            "",
        ]
    return "\n".join(lines)


def write_demo_users(path: str | Path) -> dict[str, tuple[Role, str]]:
    """Write a users file with ``operator`` and ``viewer`` and fresh random passwords
    (mode 0600); returns ``{name: (role, password)}`` to print once."""
    users: dict[str, tuple[Role, str]] = {
        "operator": ("operator", secrets.token_urlsafe(9)),
        "viewer": ("viewer", secrets.token_urlsafe(9)),
    }
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.touch(mode=0o600)
    p.chmod(0o600)
    p.write_text(users_toml(users))
    return users


@dataclass(slots=True)
class Session:
    """A logged-in browser: who, CSRF token, when it was created and last used."""

    sid: str = field(repr=False)
    user: str
    role: Role
    csrf: str = field(repr=False)
    created: float
    last_seen: float


class SessionStore:
    """Server-side sessions in memory (one service process), with login throttling.

    A session ends ``ttl_s`` after login (absolute) or ``idle_s`` after its last
    request, whichever is first. After ``max_failures`` failed logins for one user name
    within ``lockout_s``, further attempts for it are refused until the window passes.
    """

    def __init__(
        self,
        users: dict[str, User],
        *,
        ttl_s: float = 12 * 3600.0,
        idle_s: float = 3600.0,
        max_failures: int = 5,
        lockout_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.users = users
        self.ttl_s = ttl_s
        self.idle_s = idle_s
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, list[float]] = {}
        # a hash to check unknown user names against, so they take as long as known ones
        self._dummy = hash_password(secrets.token_urlsafe(16))

    def locked(self, name: str) -> bool:
        """Whether logins for ``name`` are throttled now."""
        now = self.clock()
        recent = [t for t in self._failures.get(name, []) if now - t < self.lockout_s]
        self._failures[name] = recent
        return len(recent) >= self.max_failures

    def check(self, name: str, password: str) -> User | None:
        """The user when ``password`` is right (pure, slow: call it off the event loop).

        An unknown name costs one hash like a known one (no user enumeration by timing).
        """
        user = self.users.get(name)
        ok = verify_password(password, user.password_hash if user else self._dummy)
        return user if ok and user is not None else None

    def open(self, name: str, user: User | None) -> Session | None:
        """Book a login attempt for ``name`` whose :meth:`check` gave ``user``: a new
        session, or None (wrong password, counted towards the throttle)."""
        now = self.clock()
        if user is None:
            self._failures.setdefault(name, []).append(now)
            return None
        self._failures.pop(name, None)
        self._purge(now)
        s = Session(
            sid=secrets.token_urlsafe(32),
            user=user.name,
            role=user.role,
            csrf=secrets.token_urlsafe(32),
            created=now,
            last_seen=now,
        )
        self._sessions[s.sid] = s
        return s

    def login(self, name: str, password: str) -> Session | None:
        """:meth:`check` then :meth:`open` (None when throttled or wrong)."""
        if self.locked(name):
            return None
        return self.open(name, self.check(name, password))

    def get(self, sid: str | None) -> Session | None:
        """The live session for cookie value ``sid`` (refreshes its idle timer)."""
        if not sid:
            return None
        s = self._sessions.get(sid)
        if s is None:
            return None
        now = self.clock()
        if self._expired(s, now):
            del self._sessions[sid]
            return None
        s.last_seen = now
        return s

    def logout(self, sid: str) -> None:
        """End a session."""
        self._sessions.pop(sid, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _expired(self, s: Session, now: float) -> bool:
        return now - s.created > self.ttl_s or now - s.last_seen > self.idle_s

    def _purge(self, now: float) -> None:
        for sid in [sid for sid, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[sid]
