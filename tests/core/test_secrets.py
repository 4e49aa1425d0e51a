import os
import stat

import pytest
from django.conf import settings

from postroom.accounts.actions import do_save_account
from postroom.accounts.models import EmailAccount
from postroom.core import secrets
from postroom.core.actions import do_rotate_encryption_key
from postroom.core.keyfiles import read_or_create_secret


def test_key_files_are_private(tmp_path):
    path = tmp_path / "k"
    value = read_or_create_secret(path, kind="fernet")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # A second start reads the same key instead of making a new one.
    assert read_or_create_secret(path, kind="fernet") == value


def test_data_dir_keys_created_with_mode_0600():
    secrets.current_keys()
    for path in (settings.POSTROOM_ENCRYPTION_KEY_FILE, settings.DATA_DIR / "secret_key"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_round_trip_and_ciphertext_differs():
    token = secrets.encrypt("hunter2")
    assert "hunter2" not in token
    assert secrets.decrypt(token) == "hunter2"


def test_unknown_key_gives_specific_error(monkeypatch):
    token = secrets.encrypt("hunter2")
    monkeypatch.setenv(settings.POSTROOM_ENCRYPTION_KEYS_ENV, secrets.new_key())
    with pytest.raises(secrets.SecretUnreadable, match="key"):
        secrets.decrypt(token)


@pytest.fixture
def isolated_key_file(tmp_path, monkeypatch, settings):
    monkeypatch.delenv(settings.POSTROOM_ENCRYPTION_KEYS_ENV, raising=False)
    settings.POSTROOM_ENCRYPTION_KEY_FILE = tmp_path / "encryption_keys"
    return settings.POSTROOM_ENCRYPTION_KEY_FILE


def _account(email: str, password: str) -> EmailAccount:
    account = EmailAccount(
        name=email,
        email=email,
        incoming_host="imap.example.test",
        incoming_port=993,
        incoming_security="ssl",
        incoming_protocol="imap",
        smtp_host="smtp.example.test",
        smtp_port=465,
        smtp_security="ssl",
    )
    return do_save_account(
        account, actor=None, password=password, smtp_password="smtp-" + password, check=False
    )


@pytest.mark.django_db
def test_rotate_key_reencrypts_everything_and_drops_old_key(isolated_key_file):
    account = _account("rot@example.test", "pw-one")
    old_cipher = EmailAccount.objects.get(pk=account.pk).password_encrypted
    old_keys = isolated_key_file.read_text().split()

    count, new_key = do_rotate_encryption_key()

    assert count >= 1
    assert isolated_key_file.read_text().split() == [new_key]
    assert stat.S_IMODE(os.stat(isolated_key_file).st_mode) == 0o600
    fresh = EmailAccount.objects.get(pk=account.pk)
    assert fresh.password_encrypted != old_cipher
    assert fresh.get_password() == "pw-one"
    assert fresh.get_smtp_password() == "smtp-pw-one"
    # The old key alone can no longer read what is stored.
    from cryptography.fernet import Fernet, InvalidToken

    with pytest.raises(InvalidToken):
        Fernet(old_keys[0].encode()).decrypt(fresh.password_encrypted.encode())
