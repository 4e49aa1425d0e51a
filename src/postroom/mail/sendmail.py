"""Sending through the local sendmail program (C3), with the SmtpSender contract.

``sendmail -i -f FROM -- RCPT...`` with the message on stdin is the interface
every MTA's sendmail (Postfix, Exim, OpenSMTPD, msmtp, nullmailer) accepts.
The program either queues the message for every recipient or for none, so
the result is all-or-nothing:

* exit 0: accepted for everyone;
* 75 (``EX_TEMPFAIL``): temporary for everyone;
* anything else: permanent for everyone, with the program's stderr as reply.

So that callers can treat both transports alike, ``code`` holds the SMTP
equivalent (250, 451, 554); ``reply`` says what really happened (exit status
and stderr). A program killed by a signal counts as temporary.

The message goes in with local (LF) line ends, as a local mail program
expects; sendmail writes CRLF on the wire itself. The run is bounded by
``timeout``; a program that overruns is killed and the send raises a
temporary :class:`~postroom.mail.errors.TemporaryFailure` — it may already
have queued the message, the same duplicate window as a lost SMTP reply.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from types import TracebackType

from postroom.mail.errors import MailError, TemporaryFailure
from postroom.mail.smtp_send import RecipientResult, SendResult

__all__ = ["EX_TEMPFAIL", "SendmailTransport"]

EX_TEMPFAIL = 75  # sysexits.h
_UNSAFE = re.compile(r"[\x00-\x1f\x7f<>]")
_CRLF = re.compile(rb"\r\n?")
_MAX_REPLY = 2000  # characters of stderr kept as the reply


class SendmailTransport:
    """Hands messages to ``path`` (default ``/usr/sbin/sendmail``); see the module docstring."""

    def __init__(self, path: str = "/usr/sbin/sendmail", *, timeout: float = 60.0) -> None:
        self.path = path
        self.timeout = timeout
        self.transactions = 0

    def send(self, mail_from: str, rcpt_to: Sequence[str], raw: bytes) -> SendResult:
        """Run sendmail once for all recipients; see the module docstring for the outcomes."""
        if isinstance(rcpt_to, str):
            rcpt_to = (rcpt_to,)
        if not rcpt_to:
            raise ValueError("send() needs at least one recipient")
        valid = [a for a in rcpt_to if a and not _UNSAFE.search(a) and not a.startswith("-")]
        if mail_from and (_UNSAFE.search(mail_from) or mail_from.startswith("-")):
            raise MailError(f"sender <{mail_from}> is not a valid address", temporary=False)
        if not valid:
            return _all(rcpt_to, [], None, "", False)
        argv = [self.path, "-i", "-f", mail_from or "<>", "--", *valid]
        try:
            done = subprocess.run(  # noqa: S603  (fixed program, validated arguments, no shell)
                argv,
                input=_CRLF.sub(b"\n", raw),
                capture_output=True,
                timeout=self.timeout,
                check=False,
                env={**os.environ, "LC_ALL": "C"},
            )
        except subprocess.TimeoutExpired as exc:
            raise TemporaryFailure(
                f"{self.path} did not finish within {self.timeout:g} s; "
                "the message may have been queued"
            ) from exc
        except OSError as exc:
            raise MailError(
                f"cannot run {self.path}: {exc.strerror or exc}", temporary=False
            ) from exc
        self.transactions += 1
        stderr = done.stderr.decode("utf-8", "replace").strip()[:_MAX_REPLY]
        status = done.returncode
        if status == 0:
            reply = f"accepted by {self.path}" + (f": {stderr}" if stderr else "")
            return _all(rcpt_to, valid, 250, reply, False, accepted=True)
        if status < 0:
            what = f"{self.path} was killed by signal {-status}"
        else:
            what = f"{self.path} exited with status {status}"
        reply = f"{what}: {stderr}" if stderr else what
        # A signal (out of memory, an admin) says nothing against the message: temporary.
        temporary = status == EX_TEMPFAIL or status < 0
        return _all(rcpt_to, valid, 451 if temporary else 554, reply, temporary)

    def close(self) -> None:
        """Nothing to close; here so callers can treat both transports alike."""

    def __enter__(self) -> SendmailTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _all(
    rcpt_to: Sequence[str],
    valid: list[str],
    code: int | None,
    reply: str,
    temporary: bool,
    *,
    accepted: bool = False,
) -> SendResult:
    """The same outcome for every recipient handed over; invalid ones refused locally."""
    handed = set(valid)
    out = [
        RecipientResult(a, accepted, code, reply, temporary)
        if a in handed
        else RecipientResult(a, False, None, f"<{a}>: not a valid address", False)
        for a in rcpt_to
    ]
    return SendResult(tuple(out), code, reply)
