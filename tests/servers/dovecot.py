"""A private Dovecot (IMAP, IMAPS, POP3, POP3S) on loopback, started and stopped by tests.

Each :class:`Dovecot` writes a standalone config (no ``/etc/dovecot`` include) into its own
temporary directory and runs ``dovecot -F`` as a child of the test process.

How it is kept from hanging or leaking
--------------------------------------
* stdin is ``/dev/null`` and stdout/stderr go to a file: Dovecot's children inherit them,
  and a test runner that captures output would otherwise wait for end-of-file forever.
* It runs in its own process group. :meth:`Dovecot.stop` SIGKILLs every Dovecot process in
  that group and waits until none is left (a graceful shutdown costs Dovecot about a second,
  and the directory is deleted anyway); :meth:`Dovecot.restart` stops gracefully with
  SIGTERM. An ``atexit`` hook stops instances a test forgot, and when started from the main
  thread the master also gets ``PR_SET_PDEATHSIG`` (through ``setpriv``), so a test process
  killed with SIGKILL still takes Dovecot with it (within about a second; only its temp
  directory is left behind).

Plaintext login refused (LOGINDISABLED / PRIVACYREQUIRED)
---------------------------------------------------------
Dovecot treats a connection as secure when the client address equals the server address, so
on 127.0.0.1 plaintext LOGIN works even with ``disable_plaintext_auth = yes`` (and even with
``ssl = required``: measured). Every instance therefore also listens on **127.0.0.2**, on the
same ports. Linux answers 127.0.0.0/8 from ``lo`` with source address 127.0.0.1, so a client
connecting to 127.0.0.2 arrives from 127.0.0.1 to 127.0.0.2: not equal, not trusted. No
client-side bind is needed. On that address (measured with Dovecot 2.3.19):

* IMAP capabilities before STARTTLS contain ``LOGINDISABLED`` and no ``AUTH=`` mechanisms;
  LOGIN answers ``NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure
  (SSL/TLS) connections.``
* POP3 ``CAPA`` has no ``USER`` and an empty ``SASL``; ``USER`` already answers ``-ERR [AUTH]
  Plaintext authentication disallowed on non-secure (SSL/TLS) connections.`` (With
  ``ssl = required``, ``AUTH`` would say ``Authentication not allowed until SSL/TLS is
  enabled.`` instead; this module does not use that setting, as it changes nothing on
  127.0.0.1.)
* After STARTTLS / STLS (or on the implicit-TLS ports) login works normally. The valid
  certificate names 127.0.0.2, so a verifying client can connect there.

Use :attr:`Dovecot.untrusted_host` with any instance, or construct with
``plaintext_refused=True`` to make :attr:`Dovecot.host` itself be 127.0.0.2.

STARTTLS not offered
--------------------
``Dovecot(certs, ssl=False)`` writes ``ssl = no``: no STARTTLS/STLS capability and no
implicit-TLS listeners (:attr:`imaps_port`/:attr:`pop3s_port` raise). On 127.0.0.2 such an
instance refuses plaintext login *and* offers no way to encrypt.

Mail owner
----------
Mail must belong to a normal system user at or above ``first_valid_uid``. When running as
root a system user ``postroom-test`` is created with ``useradd`` if missing (it is obvious in
``ps`` and ``ls -l`` and owns nothing else); if ``useradd`` is not available, ``nobody`` is
used. When not root, everything (mail, login and internal processes) runs as the current
user, with the login chroots switched off as Dovecot requires for rootless operation.

Users and logins
----------------
Each user is a one-line passwd-file of its own (``users/<name>``, path ``%Lu`` in the config)
with a ``{PLAIN}`` password (``{SHA256.HEX}`` for a password that contains ``:``, which the
format cannot hold). One file per user because Dovecot stats a passwd-file at most once per
second: a new user is a file never opened before, so it can log in at once. A *changed*
password is only seen from the next second on, so :meth:`Dovecot.set_password` and
:meth:`Dovecot.remove_user` wait for the clock to tick (at most 1 s); every write also moves
the file's mtime forward, so a same-length change within a second is not missed.

Failed logins: ``auth_failure_delay = 0``, yet every failure is still answered after about
0.5 s (Dovecot flushes failure replies on a 500 ms timer). The per-IP *auth penalty* (the
next login from 127.0.0.1 after a failure waits 4 s, then 8, 15) is switched off by unlinking
the ``anvil-auth-penalty`` socket before the auth process first starts: auth then finds no
penalty service and disables the feature. The documented way (``mode = 0`` on that
listener) works too, but makes the auth process retry the connection for 5 s on its start.
"""

from __future__ import annotations

import atexit
import contextlib
import grp
import hashlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType

from imapclient import IMAPClient

from .certs import CertKind, CertSet, ServerCert
from .sockets import free_ports

DOVECOT_BIN = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM_BIN = shutil.which("doveadm") or "/usr/bin/doveadm"
MAIL_USER = "postroom-test"
TRUSTED_ADDRESS = "127.0.0.1"
UNTRUSTED_ADDRESS = "127.0.0.2"
DH_PARAMS = Path("/usr/share/dovecot/dh.pem")
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

# Strong references: an instance a test dropped without stop() must still be found at exit.
_live: set[Dovecot] = set()
_owner_lock = threading.Lock()


class DovecotError(RuntimeError):
    """Dovecot failed to start, or a doveadm/IMAP helper call failed."""


@dataclass(frozen=True)
class MailOwner:
    """The system account that owns the Maildirs (and, when not root, runs everything)."""

    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class DovecotUser:
    name: str
    password: str


def mail_owner() -> MailOwner:
    """Find or create the account that owns test mail (see the module docstring)."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return MailOwner(entry.pw_name, entry.pw_uid, entry.pw_gid)
    with _owner_lock:
        for _attempt in range(5):
            try:
                entry = pwd.getpwnam(MAIL_USER)
                return MailOwner(entry.pw_name, entry.pw_uid, entry.pw_gid)
            except KeyError:
                pass
            useradd = shutil.which("useradd") or "/usr/sbin/useradd"
            if not os.path.exists(useradd):
                break
            # Another xdist worker may be creating the same user right now; useradd then
            # fails ("already exists" / cannot lock) and the next lookup finds it.
            subprocess.run(
                [
                    useradd,
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    "--comment",
                    "Postroom test mail owner",
                    MAIL_USER,
                ],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                check=False,
            )
            time.sleep(0.1)
        entry = pwd.getpwnam("nobody")
        return MailOwner(entry.pw_name, entry.pw_uid, entry.pw_gid)


class Dovecot:
    """One private Dovecot instance. See the module docstring for the modes.

    Args:
        certs: the session's :class:`~tests.servers.certs.CertSet`.
        cert: which server certificate to present (``"valid"``, ``"expired"``,
            ``"wrong_host"``, ``"self_signed"``, ``"untrusted_ca"``).
        ssl: False writes ``ssl = no``: no STARTTLS/STLS and no imaps/pop3s listeners.
        plaintext_refused: make :attr:`host` the untrusted address 127.0.0.2, where plaintext
            login is refused until TLS.
        disable_plaintext_auth: Dovecot's setting; False lets even 127.0.0.2 log in in clear.
        mail_max_userip_connections: raised from Dovecot's 10 for concurrency tests.
        separator: hierarchy separator of the INBOX namespace.
        extra_config: appended verbatim to the generated config.
        keep_directory: leave the temp dir (config, log, Maildirs) after stop, for debugging.
    """

    def __init__(
        self,
        certs: CertSet,
        *,
        cert: CertKind = "valid",
        ssl: bool = True,
        plaintext_refused: bool = False,
        disable_plaintext_auth: bool = True,
        mail_max_userip_connections: int = 1000,
        separator: str = "/",
        extra_config: str = "",
        keep_directory: bool = False,
    ) -> None:
        self.certs = certs
        self.cert: ServerCert = certs.cert(cert)
        self.ssl = ssl
        self.disable_plaintext_auth = disable_plaintext_auth
        self.mail_max_userip_connections = mail_max_userip_connections
        self.separator = separator
        self.extra_config = extra_config
        self.keep_directory = keep_directory

        self.trusted_host = "localhost"
        self.untrusted_host = UNTRUSTED_ADDRESS
        self.host = self.untrusted_host if plaintext_refused else self.trusted_host
        self.ca_pem = certs.ca_pem
        self.ca_file = certs.ca_file

        self.owner = mail_owner()
        self.directory = Path(tempfile.mkdtemp(prefix="postroom-dovecot-"))
        # 0711: the mail owner and Dovecot's unprivileged processes must traverse it to reach
        # their files, but need not list it.
        self.directory.chmod(0o711)
        self.config_file = self.directory / "dovecot.conf"
        self.users_dir = self.directory / "users"
        self.users_dir.mkdir()
        # Dovecot's auth process (not root) reads the user files.
        self.users_dir.chmod(0o755)
        self.log_file = self.directory / "dovecot.log"
        self.stderr_file = self.directory / "stderr.log"
        self.mail_root = self.directory / "mail"
        self.mail_root.mkdir()
        os.chown(self.mail_root, self.owner.uid, self.owner.gid)
        self.mail_root.chmod(0o700)

        self.ports: dict[str, int] = {}
        self._users: dict[str, str] = {}
        self._stamps: dict[str, int] = {}
        self._user_counter = 0
        self._proc: subprocess.Popen[bytes] | None = None

    # ----------------------------------------------------------------- ports and hosts

    @property
    def imap_port(self) -> int:
        return self.ports["imap"]

    @property
    def pop3_port(self) -> int:
        return self.ports["pop3"]

    @property
    def imaps_port(self) -> int:
        return self._tls_port("imaps")

    @property
    def pop3s_port(self) -> int:
        return self._tls_port("pop3s")

    def _tls_port(self, name: str) -> int:
        if not self.ssl:
            raise DovecotError(f"this Dovecot runs with ssl = no: it has no {name} listener")
        return self.ports[name]

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Dovecot:
        if self.running:
            return self
        last_error = ""
        # A port found free can be taken by another process (another xdist worker) before
        # Dovecot binds it; that shows as "Address already in use" and we try new ports.
        for _attempt in range(5):
            names = ["imap", "pop3", *(["imaps", "pop3s"] if self.ssl else [])]
            self.ports = dict(
                zip(
                    names, free_ports(len(names), (TRUSTED_ADDRESS, UNTRUSTED_ADDRESS)), strict=True
                )
            )
            self.config_file.write_text(self._config())
            self._spawn()
            try:
                self._wait_ready()
            except DovecotError as exc:
                last_error = str(exc)
                self._terminate()
                if "Address already in use" in last_error:
                    continue
                raise
            _live.add(self)
            return self
        raise DovecotError(f"Dovecot could not bind free ports: {last_error}")

    def stop(self) -> None:
        """Stop Dovecot and every process it started; remove the temp dir."""
        _live.discard(self)
        # No graceful shutdown: everything is deleted next, and Dovecot's own shutdown takes
        # a second per instance.
        self._terminate(graceful=self.keep_directory)
        if not self.keep_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def restart(self) -> None:
        """Stop cleanly and start again on the same ports and data (for "server went away")."""
        self._terminate()
        self._spawn()
        self._wait_ready()
        _live.add(self)

    def kill(self) -> None:
        """SIGKILL the whole instance at once, without a clean shutdown (data stays)."""
        if self._proc is not None:
            _kill_group(self._proc.pid, signal.SIGKILL)
        self._terminate()

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Dovecot {state} host={self.host} ports={self.ports} cert={self.cert.kind}>"

    def _spawn(self) -> None:
        # A socket left from an earlier run must not be mistaken for this run's (_wait_ready).
        with contextlib.suppress(FileNotFoundError):
            (self.directory / "run" / "anvil-auth-penalty").unlink()
        argv = [DOVECOT_BIN, "-F", "-c", str(self.config_file)]
        setpriv = shutil.which("setpriv")
        # PDEATHSIG fires when the *thread* that forked the child ends, so only ask for it from
        # the main thread, which lives as long as the test process.
        if setpriv and threading.current_thread() is threading.main_thread():
            argv = [setpriv, "--pdeathsig", "TERM", *argv]
        with self.stderr_file.open("ab") as err:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )

    def _wait_ready(self) -> None:
        """Disable the auth penalty, then wait until IMAP greets with its capabilities."""
        deadline = time.monotonic() + START_TIMEOUT
        # The master creates all its sockets before it accepts anything, and the auth process
        # starts only with the first client; so this runs before auth looks for the socket.
        penalty_socket = self.directory / "run" / "anvil-auth-penalty"
        penalty_deadline = time.monotonic() + 5
        while time.monotonic() < penalty_deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                break
            with contextlib.suppress(FileNotFoundError):
                penalty_socket.unlink()
                break
            time.sleep(0.01)
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise DovecotError(
                    f"dovecot exited with status {self._proc.returncode}:\n{self.log_text()}"
                )
            if _greets(TRUSTED_ADDRESS, self.ports["imap"], b"* OK [CAPABILITY") and _greets(
                TRUSTED_ADDRESS, self.ports["pop3"], b"+OK"
            ):
                return
            time.sleep(0.05)
        raise DovecotError(f"dovecot did not answer within {START_TIMEOUT}s:\n{self.log_text()}")

    def _terminate(self, *, graceful: bool = True) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if not graceful:
            _kill_group(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT)
        # The master is gone; make sure none of its children outlive it (they share its
        # process group because of start_new_session=True).
        _kill_group(proc.pid, signal.SIGKILL, wait=True)

    # ----------------------------------------------------------------- config

    def _config(self) -> str:
        d = self.directory
        root = os.geteuid() == 0
        lines = [
            "# Generated by tests/servers/dovecot.py; standalone, no /etc/dovecot include.",
            f"base_dir = {d / 'run'}",
            f"state_dir = {d / 'state'}",
            "instance_name = dovecot-postroom-test",
            f"log_path = {self.log_file}",
            "protocols = imap pop3",
            f"listen = {TRUSTED_ADDRESS}, {UNTRUSTED_ADDRESS}",
            f"ssl = {'yes' if self.ssl else 'no'}",
            f"disable_plaintext_auth = {'yes' if self.disable_plaintext_auth else 'no'}",
            "auth_mechanisms = plain login",
            "auth_username_format = %Lu",
            # Dovecot's default set plus "+=\\" so "DOMAIN\\user"-style logins can be tested;
            # still no "/", which would escape the users/%Lu passwd-file path. (The backslash
            # must not end the line: there it would continue the line.)
            "auth_username_chars = \\abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
            "01234567890.-_@+=",
            # Failed logins are part of the tests; by default Dovecot holds back every failure
            # reply for 2 s.
            "auth_failure_delay = 0",
            "auth_verbose = yes",
            f"mail_max_userip_connections = {self.mail_max_userip_connections}",
            f"first_valid_uid = {self.owner.uid}",
            "last_valid_uid = 0",
            "mail_location = maildir:~/Maildir",
            "mail_fsync = never",
            "",
            "passdb {",
            "  driver = passwd-file",
            f"  args = scheme=PLAIN username_format=%Lu {self.users_dir}/%Lu",
            "}",
            "userdb {",
            "  driver = passwd-file",
            f"  args = username_format=%Lu {self.users_dir}/%Lu",
            f"  default_fields = uid={self.owner.uid} gid={self.owner.gid} "
            f"home={self.mail_root}/%Lu",
            "}",
            "",
            # Special-use flags as a real server announces them, so "which folder is Sent /
            # Archive" logic has something to find once the folders exist.
            "namespace inbox {",
            "  inbox = yes",
            f"  separator = {self.separator}",
            *(
                f"  mailbox {name} {{\n    special_use = \\{flag}\n  }}"
                for name, flag in (
                    ("Archive", "Archive"),
                    ("Drafts", "Drafts"),
                    ("Junk", "Junk"),
                    ("Sent", "Sent"),
                    ("Trash", "Trash"),
                )
            ),
            "}",
            "",
        ]
        if self.ssl:
            lines += [
                f"ssl_cert = <{self.cert.cert_file}",
                f"ssl_key = <{self.cert.key_file}",
            ]
            if DH_PARAMS.exists():
                lines.append(f"ssl_dh = <{DH_PARAMS}")
        if not root:
            # Rootless Dovecot: every process runs as us and nothing can chroot.
            lines += [
                f"default_internal_user = {self.owner.name}",
                f"default_internal_group = {grp.getgrgid(self.owner.gid).gr_name}",
                f"default_login_user = {self.owner.name}",
                "service anvil {\n  chroot =\n}",
                "service auth-worker {\n  user = $default_internal_user\n}",
            ]
        chroot = "" if root else "  chroot =\n"
        lines += [
            "service imap-login {",
            chroot + _listener("imap", self.ports["imap"], tls=False),
            *([_listener("imaps", self.ports["imaps"], tls=True)] if self.ssl else []),
            "}",
            "service pop3-login {",
            chroot + _listener("pop3", self.ports["pop3"], tls=False),
            *([_listener("pop3s", self.ports["pop3s"], tls=True)] if self.ssl else []),
            "}",
            self.extra_config,
            "",
        ]
        return "\n".join(lines)

    def log_text(self) -> str:
        """Dovecot's own log plus whatever the master wrote to stderr before logging started."""
        parts = []
        for path in (self.stderr_file, self.log_file):
            with contextlib.suppress(FileNotFoundError):
                parts.append(path.read_text(errors="replace"))
        return "".join(parts)

    # ----------------------------------------------------------------- users

    def add_user(self, name: str, password: str) -> DovecotUser:
        """Add a user (or replace its password); a new user can log in at once."""
        _check_user_name(name)
        _check_password(password)
        key = name.lower()
        # A name Dovecot may have looked up before (even one removed since) is only re-read
        # from the next second on.
        seen_before = key in self._stamps
        self._users[key] = password
        self._write_user(key)
        if seen_before:
            _wait_next_second()
        return DovecotUser(name, password)

    def set_password(self, name: str, password: str) -> None:
        """Change a user's password; returns once Dovecot will see it (up to 1 s)."""
        if name.lower() not in self._users:
            raise KeyError(name)
        self.add_user(name, password)

    def remove_user(self, name: str) -> None:
        key = name.lower()
        del self._users[key]
        (self.users_dir / key).unlink()
        _wait_next_second()

    def new_user(self, prefix: str = "user", domain: str = "example.test") -> DovecotUser:
        """Add a user with a unique name and password (for tests that want a clean mailbox)."""
        self._user_counter += 1
        name = f"{prefix}{self._user_counter}-{os.getpid()}@{domain}"
        return self.add_user(name, f"secret-{prefix}{self._user_counter}")

    def password(self, name: str) -> str:
        return self._users[name.lower()]

    @property
    def users(self) -> dict[str, str]:
        """``{lower-cased name: password}`` of every user."""
        return dict(self._users)

    def _write_user(self, key: str) -> None:
        password = self._users[key]
        if ":" in password:
            stored = "{SHA256.HEX}" + hashlib.sha256(password.encode()).hexdigest()
        else:
            stored = "{PLAIN}" + password
        path = self.users_dir / key
        tmp = self.users_dir / f".{key}.tmp"
        # Dovecot looks the name up str_escape()d (a backslash doubled), but finds the file by
        # the raw name.
        escaped = key.replace("\\", "\\\\")
        tmp.write_text(f"{escaped}:{stored}::::::\n")
        tmp.chmod(0o644)
        # Dovecot notices a changed passwd-file by mtime (whole seconds) or size: move the
        # mtime forward on every write so no change can go unnoticed.
        stamp = max(int(time.time()), self._stamps.get(key, 0) + 1)
        self._stamps[key] = stamp
        os.utime(tmp, (stamp, stamp))
        tmp.replace(path)

    # ----------------------------------------------------------------- mailboxes

    def doveadm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``doveadm -c <our config> ARGS`` and return the finished process."""
        result = subprocess.run(
            [DOVEADM_BIN, "-c", str(self.config_file), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if check and result.returncode != 0:
            raise DovecotError(
                f"doveadm {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result

    def create_folder(self, user: str, folder: str, *, exist_ok: bool = True) -> None:
        """Create (and subscribe) a folder; ``folder`` is its UTF-8 name, any depth."""
        result = self.doveadm("mailbox", "create", "-s", "-u", user, folder, check=False)
        if result.returncode != 0:
            if exist_ok and "already exists" in result.stderr:
                return
            raise DovecotError(f"cannot create {folder!r} for {user}: {result.stderr.strip()}")

    @contextlib.contextmanager
    def imap(self, user: str) -> Iterator[IMAPClient]:
        """An IMAPClient logged in as ``user`` over plain IMAP on 127.0.0.1 (a trusted address).

        For setting up and inspecting mailboxes from tests, not for testing the product.
        """
        client = IMAPClient(TRUSTED_ADDRESS, port=self.imap_port, ssl=False, timeout=30)
        # Without TCP_NODELAY every small command waits ~40 ms for a delayed ACK.
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            client.login(user, self.password(user))
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def append(
        self,
        user: str,
        folder: str,
        raw: bytes,
        *,
        flags: Iterable[str] = (),
        when: datetime | None = None,
    ) -> int:
        """Append a raw message to ``folder`` (which must exist); return its UID."""
        with self.imap(user) as client:
            response = client.append(folder, raw, flags=tuple(flags), msg_time=when)
        match = re.search(rb"\[APPENDUID \d+ (\d+)\]", response)
        if match is None:
            raise DovecotError(f"APPEND gave no APPENDUID: {response!r}")
        return int(match.group(1))

    def bulk_load(self, user: str, raws: Iterable[bytes]) -> int:
        """Put many messages into the user's INBOX at once; returns how many.

        Writing Maildir files and letting Dovecot index them takes seconds for
        thousands of messages, where one IMAP APPEND each would take minutes.
        """
        maildir = self.mail_root / user.lower() / "Maildir"
        count = 0
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        stamp = int(time.time())
        for count, raw in enumerate(raws, start=1):
            path = maildir / "cur" / f"{stamp}.bulk{count}.postroom-test:2,"
            path.write_bytes(raw)
        for path in [maildir, *maildir.rglob("*")]:
            os.chown(path, self.owner.uid, self.owner.gid)
        self.doveadm("force-resync", "-u", user, "INBOX")
        return count

    def reset_uidvalidity(self, user: str, folder: str = "INBOX") -> None:
        """Make the server forget its UIDs: new UIDVALIDITY, messages renumbered.

        This is what a restored backup or a migrated server does to clients.
        """
        maildir = self.mail_root / user.lower() / "Maildir"
        if folder != "INBOX":
            maildir = maildir / f".{folder}"
        for path in maildir.iterdir():
            if path.name.startswith("dovecot"):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        time.sleep(1.1)  # UIDVALIDITY is a timestamp: make sure the new one differs
        self.doveadm("force-resync", "-u", user, folder)

    def messages(self, user: str, folder: str = "INBOX") -> dict[int, bytes]:
        """Every message in ``folder`` as ``{uid: raw bytes}``, in UID order."""
        with self.imap(user) as client:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            fetched = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
        return {uid: data[b"BODY[]"] for uid, data in sorted(fetched.items())}

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, tuple[str, ...]]:
        """The flags of every message in ``folder`` as ``{uid: (flag, ...)}``."""
        with self.imap(user) as client:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            fetched = client.fetch(uids, ["FLAGS"]) if uids else {}
        return {
            uid: tuple(f.decode() if isinstance(f, bytes) else str(f) for f in data[b"FLAGS"])
            for uid, data in sorted(fetched.items())
        }

    def folders(self, user: str) -> list[str]:
        with self.imap(user) as client:
            return sorted(str(name) for _flags, _sep, name in client.list_folders())


# --------------------------------------------------------------------- helpers


def _listener(name: str, port: int, *, tls: bool) -> str:
    body = f"    port = {port}\n" + ("    ssl = yes\n" if tls else "")
    return f"  inet_listener {name} {{\n{body}  }}"


def _check_user_name(name: str) -> None:
    # The name is a passwd-file key (colon-separated, line-based) and a file name.
    if not re.fullmatch(r"[A-Za-z0-9._@+=\\-]+", name) or name.startswith("."):
        raise ValueError(f"user name {name!r} is not usable with the passwd-file setup")


def _wait_next_second() -> None:
    """Sleep until the wall clock enters the next whole second."""
    now = time.time()
    time.sleep(int(now) + 1 - now + 0.01)


def _check_password(password: str) -> None:
    # ':' is fine (stored hashed); line breaks and NUL cannot be sent by SASL PLAIN anyway.
    if re.search(r"[\r\n\x00]", password):
        raise ValueError("password must not contain CR, LF or NUL")


def _greets(host: str, port: int, prefix: bytes) -> bool:
    """True when a connection to host:port gets a greeting line starting with ``prefix``."""
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            data = b""
            # Dovecot may first say "* OK Waiting for authentication process to respond..";
            # the real greeting with capabilities follows once auth is ready.
            while not any(line.startswith(prefix) for line in data.split(b"\r\n")):
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                data += chunk
            return True
    except OSError:
        return False


def _group_members(pgid: int) -> list[int]:
    """Live Dovecot processes in process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            exe = os.readlink(entry / "exe")
        except OSError:
            continue
        # Fields after the ")" that closes the command name: state ppid pgrp ...
        fields = stat.rsplit(")", 1)[1].split()
        # Only Dovecot binaries: should the group id ever be recycled by an unrelated
        # process group, that group is left alone.
        is_dovecot = "dovecot" in exe or "doveadm" in exe
        if int(fields[2]) == pgid and fields[0] != "Z" and is_dovecot:
            members.append(int(entry.name))
    return members


def _kill_group(pgid: int, sig: signal.Signals, *, wait: bool = False) -> None:
    """Send ``sig`` to every Dovecot process in group ``pgid`` (our instance's group).

    With ``wait``, repeat until none is left (or :data:`STOP_TIMEOUT` passes).
    """
    deadline = time.monotonic() + STOP_TIMEOUT
    while True:
        members = _group_members(pgid)
        if not members:
            return
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if not wait or time.monotonic() > deadline:
            return
        time.sleep(0.02)


@atexit.register
def _stop_all() -> None:
    # A fixture that was never torn down (crash, KeyboardInterrupt) still leaves no Dovecot.
    for instance in list(_live):
        instance.stop()
