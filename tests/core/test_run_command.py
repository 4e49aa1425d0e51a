"""`postroom run` as a new user starts it: a fresh data dir, then a second start."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postroom() -> str:
    found = shutil.which("postroom") or str(Path(sys.executable).parent / "postroom")
    assert os.path.exists(found), "the postroom console script is not installed"
    return found


def _start(data_dir: Path, port: int, **env: str) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    full_env.update({"POSTROOM_DATA_DIR": str(data_dir), **env})
    return subprocess.Popen(
        [_postroom(), "run", "--port", str(port)],
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_login_page(port: int, proc: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"postroom run exited early:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=2) as resp:
                return resp.read().decode()
        except OSError:
            time.sleep(0.3)
    raise AssertionError("postroom run did not serve the login page within 60 s")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_run_starts_on_sqlite_and_restarts_without_losing_anything(tmp_path):
    data = tmp_path / "data"
    port = _free_port()
    proc = _start(data, port, POSTROOM_ADMIN_PASSWORD="first-admin-pw-123")
    try:
        page = _wait_for_login_page(port, proc)
    finally:
        out = _stop(proc)
    assert "csrfmiddlewaretoken" in page
    assert "Created admin user admin" in out
    assert "first-admin-pw-123" not in out  # a password from the environment is not echoed
    db = data / "postroom.sqlite3"
    assert db.exists()
    keys_before = (
        (data / "encryption_keys").read_bytes() if (data / "encryption_keys").exists() else None
    )
    secret_before = (data / "secret_key").read_bytes()

    proc = _start(data, port)
    try:
        _wait_for_login_page(port, proc)
    finally:
        out = _stop(proc)
    assert "Created admin user" not in out  # the existing admin is reused
    assert (data / "secret_key").read_bytes() == secret_before
    if keys_before is not None:
        assert (data / "encryption_keys").read_bytes() == keys_before
