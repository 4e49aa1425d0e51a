"""Encryption at rest for passwords and tokens (MultiFernet, key rotation).

Keys come from ``POSTROOM_ENCRYPTION_KEYS`` (comma-separated, newest first)
or from the key file in the data directory, created on first use. The first
key encrypts; every key decrypts, so rotation can re-encrypt row by row.
"""

from __future__ import annotations

import os
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from postroom.core.keyfiles import read_or_create_secret, write_private


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with any configured key."""


def _keys_from_env() -> list[str] | None:
    raw = os.environ.get(settings.POSTROOM_ENCRYPTION_KEYS_ENV, "").strip()
    if not raw:
        return None
    return [k.strip() for k in raw.split(",") if k.strip()]


def current_keys() -> list[str]:
    env_keys = _keys_from_env()
    if env_keys:
        return env_keys
    path = settings.POSTROOM_ENCRYPTION_KEY_FILE
    read_or_create_secret(path, kind="fernet")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


@cache
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k.encode()) for k in keys])


def _fernet() -> MultiFernet:
    return _fernet_for(tuple(current_keys()))


def encrypt(plaintext: str) -> str:
    if plaintext == "":
        return ""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    if token == "":
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable(
            "A stored secret cannot be decrypted: the encryption key changed or was lost."
        ) from exc


def rotate_token(token: str, fernet: MultiFernet) -> str:
    return "" if token == "" else fernet.rotate(token.encode()).decode()


def new_key() -> str:
    return Fernet.generate_key().decode()


def keys_are_from_env() -> bool:
    return _keys_from_env() is not None


def write_key_file(keys: list[str]) -> None:
    write_private(settings.POSTROOM_ENCRYPTION_KEY_FILE, "\n".join(keys) + "\n")
    _fernet_for.cache_clear()
