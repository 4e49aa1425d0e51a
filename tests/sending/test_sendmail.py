"""SendmailTransport with a sendmail-compatible script that records what it receives."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from postroom.mail.errors import MailError, TemporaryFailure
from postroom.mail.mime.build import OutgoingMessage, build_message
from postroom.mail.sendmail import EX_TEMPFAIL, SendmailTransport

SCRIPT = """#!{python}
import json, sys, time
from pathlib import Path
out = Path({out!r})
data = sys.stdin.buffer.read()
calls = json.loads(out.read_text()) if out.exists() else []
calls.append({{"argv": sys.argv[1:], "stdin": data.decode("utf-8")}})
out.write_text(json.dumps(calls))
time.sleep({sleep})
if {status}:
    sys.stderr.write({stderr!r})
sys.exit({status})
"""


def fake_sendmail(
    tmp_path: Path, status: int = 0, stderr: str = "", sleep: float = 0.0
) -> tuple[str, Path]:
    out = tmp_path / "calls.json"
    script = tmp_path / "sendmail"
    script.write_text(
        SCRIPT.format(
            python=sys.executable, out=str(out), status=status, stderr=stderr, sleep=sleep
        )
    )
    script.chmod(0o755)
    return str(script), out


def calls(out: Path) -> list[dict[str, object]]:
    result: list[dict[str, object]] = json.loads(out.read_text())
    return result


def built() -> bytes:
    return build_message(
        OutgoingMessage(
            from_address="Alice <alice@example.test>",
            to=["bob@remote.test"],
            bcc=["carol@remote.test"],
            subject="Über sendmail",
            text="Hello\n.\nA line with only a dot above.\n",
        )
    ).raw


def test_accepted_for_everyone_with_argv_and_stdin_recorded(tmp_path: Path) -> None:
    path, out = fake_sendmail(tmp_path)
    raw = built()
    with SendmailTransport(path) as transport:
        result = transport.send("alice@example.test", ["bob@remote.test", "carol@remote.test"], raw)
    assert result.all_accepted and result.data_code == 250
    assert all((r.code, r.temporary) == (250, False) for r in result.recipients)
    [call] = calls(out)
    assert call["argv"] == [
        "-i",
        "-f",
        "alice@example.test",
        "--",
        "bob@remote.test",
        "carol@remote.test",
    ]
    # The message with local line ends; "-i" keeps the lone dot from ending it.
    assert call["stdin"] == raw.decode().replace("\r\n", "\n")
    assert "\n.\nA line with only a dot" in str(call["stdin"])
    assert transport.transactions == 1


def test_ex_tempfail_is_temporary_for_everyone(tmp_path: Path) -> None:
    path, _ = fake_sendmail(tmp_path, status=EX_TEMPFAIL, stderr="queue file write error\n")
    result = SendmailTransport(path).send("alice@example.test", ["a@x.test", "b@x.test"], built())
    assert not any(r.accepted for r in result.recipients)
    assert all((r.code, r.temporary) == (451, True) for r in result.recipients)
    assert "status 75" in result.recipients[0].reply
    assert "queue file write error" in result.recipients[0].reply


def test_other_exit_codes_are_permanent_with_stderr(tmp_path: Path) -> None:
    path, _ = fake_sendmail(tmp_path, status=67, stderr="sendmail: user unknown")
    result = SendmailTransport(path).send("alice@example.test", ["a@x.test"], built())
    [only] = result.recipients
    assert (only.accepted, only.code, only.temporary) == (False, 554, False)
    assert only.reply == f"{path} exited with status 67: sendmail: user unknown"


def test_null_sender_and_invalid_recipients(tmp_path: Path) -> None:
    path, out = fake_sendmail(tmp_path)
    result = SendmailTransport(path).send("", ["-oQ/tmp@x.test", "a@x.test", "b@x\ntest"], built())
    bad_option, good, bad_newline = result.recipients
    assert good.accepted
    assert (bad_option.accepted, bad_option.code) == (False, None)
    assert (bad_newline.accepted, bad_newline.code) == (False, None)
    assert calls(out)[0]["argv"] == ["-i", "-f", "<>", "--", "a@x.test"]


def test_timeout_kills_the_program_and_is_temporary(tmp_path: Path) -> None:
    path, _ = fake_sendmail(tmp_path, sleep=5)
    with pytest.raises(TemporaryFailure) as caught:
        SendmailTransport(path, timeout=0.5).send("alice@example.test", ["a@x.test"], built())
    assert caught.value.temporary and "may have been queued" in str(caught.value)


def test_missing_program_is_a_permanent_error(tmp_path: Path) -> None:
    with pytest.raises(MailError) as caught:
        SendmailTransport(str(tmp_path / "nope")).send("a@x.test", ["b@x.test"], built())
    assert not caught.value.temporary and "cannot run" in str(caught.value)
