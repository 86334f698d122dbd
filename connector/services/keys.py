"""Scoped API keys made with `odconnect keys`: stored as SHA-256, revocable while the server runs.

A key is 32 random bytes (256 bits) in URL-safe base64 behind the prefix ``odk_``. Only its
SHA-256 is stored. A slow password hash (bcrypt, scrypt, argon2) exists to make guessing a
low-entropy password expensive; nobody guesses a 256-bit random key, and a slow hash would add
tens of milliseconds to every request and could not be looked up by an index (it needs a salt).

Scopes are ordered: each includes the ones before it (a train key can detect, an admin key can do
everything). Which scope an operation needs is said once, in the spec (``x-odconnect-scope``).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select, update

from model_store import Store
from model_store.schema import ApiKey, utcnow

from ..errors import Conflict, Invalid, NotFound
from ..views import api_key_view
from .catalog import check_name

SCOPES = ("detect", "train", "admin")
KEY_PREFIX = "odk_"
# last_used is written at most this often per key: a detect-heavy app must not write on every call.
LAST_USED_RESOLUTION = dt.timedelta(seconds=60)


def allows(key_scope: str, needed: str) -> bool:
    """Whether a key of `key_scope` may call an operation that needs `needed` (unknown scopes: never)."""
    if key_scope not in SCOPES or needed not in SCOPES:
        return False
    return SCOPES.index(key_scope) >= SCOPES.index(needed)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(store: Store, name: str, scope: str) -> tuple[str, dict]:
    """A new key: (the key itself, shown only now; its stored record)."""
    name = check_name(name, "key name")
    if scope not in SCOPES:
        raise Invalid(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with store.transaction() as s:
        row = ApiKey(name=name, scope=scope, key_hash=hash_key(key), prefix=key[:len(KEY_PREFIX) + 4])
        s.add(row)
        s.flush()
        return key, api_key_view(row)


def list_keys(store: Store) -> list[dict]:
    with store.transaction() as s:
        return [api_key_view(k) for k in s.scalars(select(ApiKey).order_by(ApiKey.id))]


def revoke_key(store: Store, key_id: int) -> dict:
    with store.transaction() as s:
        row = s.get(ApiKey, key_id)
        if row is None:
            raise NotFound(f"API key {key_id} does not exist")
        if row.revoked_at is not None:
            raise Conflict(f"API key {key_id} ({row.name}) was already revoked")
        row.revoked_at = utcnow()
        return api_key_view(row)


def lookup(store: Store, key: str) -> dict | None:
    """The scope of a stored, unrevoked key, or None. Reads the database every time (no cache), so a
    revoke is seen by the next request; records when the key was last used (once a minute at most)."""
    if not key.startswith(KEY_PREFIX) or len(key) > 128:
        return None
    digest = hash_key(key)
    with store.transaction() as s:
        row = s.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
        if row is None or row.revoked_at is not None:
            return None
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
            s.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
        return {"id": row.id, "name": row.name, "scope": row.scope}
