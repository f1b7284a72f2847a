"""UsersRepo: tokens are shown once and stored only as hashes; the first start creates the admin."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from jointly.errors import ConfigError, Conflict, NotFound
from jointly.node.storage import Storage, hash_token


def test_create_and_authenticate(storage: Storage) -> None:
    token = storage.users.create("alice", "analyst")
    assert len(token) >= 40
    user = storage.users.by_token(token)
    assert user is not None and (user.name, user.role, user.disabled) == ("alice", "analyst", False)
    assert storage.users.by_token(token + "x") is None
    assert storage.users.by_token("") is None
    assert storage.users.get("alice") == user
    assert storage.users.get("bob") is None


def test_only_the_hash_of_the_token_is_stored(storage: Storage) -> None:
    token = storage.users.create("alice", "auditor")
    with storage.db.read() as s:
        stored: str = s.execute(text("SELECT token_hash FROM users WHERE name = 'alice'")).scalar_one()
    assert stored == hash_token(token) != token
    assert len(stored) == 64 and int(stored, 16) >= 0


def test_list_disable_and_errors(storage: Storage) -> None:
    t_b = storage.users.create("bob", "auditor")
    storage.users.create("alice", "admin")
    assert [(u.name, u.role) for u in storage.users.list()] == [("alice", "admin"), ("bob", "auditor")]
    storage.users.disable("bob")
    assert storage.users.by_token(t_b) is None
    bob = storage.users.get("bob")
    assert bob is not None and bob.disabled
    with pytest.raises(NotFound):
        storage.users.disable("carol")
    with pytest.raises(Conflict):
        storage.users.create("bob", "analyst")
    with pytest.raises(ConfigError, match="unknown role"):
        storage.users.create("carol", "root")
    with pytest.raises(ConfigError, match="invalid user name"):
        storage.users.create("carol smith", "analyst")


def test_ensure_admin_writes_a_private_token_file_once(tmp_path: Path, storage: Storage) -> None:
    token_file = tmp_path / "secrets" / "admin.token"
    token = storage.users.ensure_admin(token_file)
    assert token is not None
    assert token_file.read_text().strip() == token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    admin = storage.users.by_token(token)
    assert admin is not None and (admin.name, admin.role) == ("admin", "admin")
    token_file.unlink()
    assert storage.users.ensure_admin(token_file) is None
    assert not token_file.exists()
    assert [p.name for p in token_file.parent.iterdir()] == []  # no temporary file left


def test_ensure_admin_is_skipped_when_another_admin_exists(tmp_path: Path, storage: Storage) -> None:
    storage.users.create("root", "admin")
    assert storage.users.ensure_admin(tmp_path / "admin.token") is None
    assert not (tmp_path / "admin.token").exists()


def test_ensure_admin_refuses_a_non_admin_user_named_admin(tmp_path: Path, storage: Storage) -> None:
    storage.users.create("admin", "auditor")
    with pytest.raises(Conflict):
        storage.users.ensure_admin(tmp_path / "admin.token")
    assert not (tmp_path / "admin.token").exists()
