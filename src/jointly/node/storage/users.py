"""API users of one node and their bearer tokens.

A token is 32 random bytes (URL-safe base64) shown once, when the user is created;
the node keeps only its SHA-256, so a copy of the database does not let anyone
call the API.  Lookup is by hash (an index probe whose timing depends on the hash,
not on how much of a guessed token is right) and the found hash is compared again
in constant time.  The first start of a node creates the user ``admin`` and writes
its token to a file only the node's OS user can read (mode 0600).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from jointly.errors import ConfigError, Conflict, NotFound
from jointly.node.storage.db import Database
from jointly.node.storage.models import ROLES, Role, UserRow

__all__ = ["ROLES", "Role", "User", "UsersRepo", "hash_token"]

ADMIN = "admin"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class User:
    """A user of this node's API (never carries the token or its hash)."""

    name: str
    role: Role
    created: float
    disabled: bool = False


def hash_token(token: str) -> str:
    """SHA-256 (hex) of an API token: what the database stores."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _user(row: UserRow) -> User:
    # the table's CHECK constraint admits only ROLES
    return User(name=row.name, role=cast(Role, row.role), created=row.created, disabled=row.disabled)


class UsersRepo:
    """Users and token checks; every method is one short transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, name: str, role: str) -> str:
        """Create a user and return its new token (shown once; only its hash is kept).

        ``ConfigError`` for a bad name or role, ``Conflict`` if the name is taken.
        """
        _check(name, role)
        token = secrets.token_urlsafe(32)
        try:
            with self._db.write() as s:
                if s.get(UserRow, name) is not None:
                    raise Conflict(f"user {name!r} already exists")
                s.add(UserRow(name=name, role=role, token_hash=hash_token(token), created=time.time(), disabled=False))
        except IntegrityError:
            raise Conflict(f"user {name!r} already exists") from None
        return token

    def get(self, name: str) -> User | None:
        with self._db.read() as s:
            row = s.get(UserRow, name)
            return None if row is None else _user(row)

    def list(self) -> list[User]:
        """Every user, by name."""
        with self._db.read() as s:
            return [_user(r) for r in s.scalars(select(UserRow).order_by(UserRow.name))]

    def by_token(self, token: str) -> User | None:
        """The enabled user holding ``token``, or ``None`` (unknown token or disabled user)."""
        if not token:
            return None
        digest = hash_token(token)
        with self._db.read() as s:
            row = s.scalars(select(UserRow).where(UserRow.token_hash == digest)).first()
            if row is None or not hmac.compare_digest(row.token_hash, digest) or row.disabled:
                return None
            return _user(row)

    def disable(self, name: str) -> None:
        """Disable a user: its token stops working at once.  ``NotFound`` for an unknown user."""
        with self._db.write() as s:
            row = s.get(UserRow, name)
            if row is None:
                raise NotFound(f"no user {name!r}")
            row.disabled = True

    def ensure_admin(self, token_file: Path) -> str | None:
        """On a node's first start, create user ``admin`` and write its token to ``token_file`` (mode 0600).

        Returns the token, or ``None`` when an admin user already exists (nothing is
        written then).  The file is written before the user is committed, so a
        failure never leaves an admin whose token nobody has.
        """
        token = secrets.token_urlsafe(32)
        written = False
        try:
            with self._db.write() as s:
                if s.scalars(select(UserRow.name).where(UserRow.role == ADMIN).limit(1)).first() is not None:
                    return None
                if s.get(UserRow, ADMIN) is not None:
                    raise Conflict(f"user {ADMIN!r} exists without the admin role; create an admin user by hand")
                row = UserRow(name=ADMIN, role=ADMIN, token_hash=hash_token(token), created=time.time(), disabled=False)
                s.add(row)
                s.flush()
                _write_secret(token_file, token + "\n")
                written = True
        except IntegrityError:  # another process created it at the same moment (possible on PostgreSQL)
            if written:
                token_file.unlink(missing_ok=True)
            return None
        except BaseException:
            if written:
                token_file.unlink(missing_ok=True)
            raise
        return token


def _check(name: str, role: str) -> None:
    if not _NAME.match(name):
        raise ConfigError(f"invalid user name {name!r}: letters, digits, '.', '_', '@', '-' (up to 64)")
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")


def _write_secret(path: Path, text: str) -> None:
    """Atomically write ``text`` to ``path``, readable by the owner only from the first byte on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
