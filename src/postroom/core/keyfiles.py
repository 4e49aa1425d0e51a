"""Secrets created on first start as 0600 files in the data directory.

Kept free of Django because settings import it before Django is configured.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet


def _new_secret(kind: str) -> str:
    if kind == "fernet":
        return Fernet.generate_key().decode()
    return secrets.token_urlsafe(50)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_or_create_secret(path: Path, kind: str) -> str:
    """Return the first line of ``path``, creating it with a new secret if absent."""
    try:
        return path.read_text().splitlines()[0].strip()
    except FileNotFoundError:
        pass
    value = _new_secret(kind)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process created it between our read and our create: use theirs.
        return path.read_text().splitlines()[0].strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value
