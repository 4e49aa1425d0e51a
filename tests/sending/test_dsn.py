"""parse_dsn on realistic bounces, and the VERP helpers."""

from __future__ import annotations

import pytest

from postroom.mail.mime.build import OutgoingMessage, build_message
from postroom.mail.mime.dsn import DeliveryReport, parse_dsn, parse_verp, verp_address

from . import dsn_samples as samples


def report(raw: bytes) -> DeliveryReport:
    parsed = parse_dsn(raw)
    assert parsed is not None
    return parsed


def test_postfix_hard_bounce() -> None:
    dsn = report(samples.POSTFIX_FAILED)
    assert dsn.source == "rfc3464"
    assert dsn.original_message_id == "<invoice-42.abc@example.test>"
    assert dsn.reporting_mta == "mail.example.test"
    assert dsn.original_envelope_id is None
    [rcpt] = dsn.recipients
    assert rcpt.final_recipient == "nobody@remote.test"
    assert rcpt.original_recipient == "Nobody@Remote.test"
    assert (rcpt.action, rcpt.status, rcpt.hard) == ("failed", "5.1.1", True)
    assert rcpt.diagnostic == (
        "550 5.1.1 <nobody@remote.test>: Recipient address rejected: "
        "User unknown in virtual mailbox table"
    )
    assert rcpt.remote_mta == "mx.remote.test"
    assert "bounces+5f2a9c@example.test" in dsn.addressed_to


def test_postfix_delay_warning() -> None:
    dsn = report(samples.POSTFIX_DELAYED)
    [rcpt] = dsn.recipients
    assert (rcpt.action, rcpt.status, rcpt.hard) == ("delayed", "4.4.1", False)
    assert rcpt.diagnostic.endswith("Connection timed out")
    assert dsn.original_envelope_id == "outbox-7-attempt-1"
    assert dsn.original_message_id == "<weekly-report-2023-47@example.test>"  # folded header


def test_report_with_returned_message_and_several_recipients() -> None:
    dsn = report(samples.REPORT_WITH_MESSAGE)
    assert dsn.original_message_id == "<notes-17@example.test>"  # not the report's own
    gone, jurgen, relayed = dsn.recipients
    assert (gone.final_recipient, gone.status, gone.hard) == ("gone@remote.test", "5.1.10", True)
    assert gone.diagnostic.startswith("550 5.1.10 RESOLVER.ADR.RecipientNotFound")
    # RFC 6533 utf-8 address; failed after retries with a 4.x.x status: a soft bounce.
    assert (jurgen.final_recipient, jurgen.action, jurgen.hard) == (
        "jürgen@remote.test",
        "failed",
        False,
    )
    assert (relayed.action, relayed.hard) == ("relayed", False)
    assert dsn.addressed_to == ("bounces+abc123@example.test",)


def test_missing_status_is_derived_from_the_diagnostic() -> None:
    raw = samples.POSTFIX_FAILED.replace(b"Status: 5.1.1\r\n", b"").replace(
        b"Action: failed\r\n", b""
    )
    [rcpt] = report(raw).recipients
    assert (rcpt.action, rcpt.status, rcpt.hard) == ("failed", "5.1.1", True)


def test_base64_encoded_delivery_status() -> None:
    import base64

    head, _, rest = samples.POSTFIX_FAILED.partition(b"Content-Type: message/delivery-status\r\n")
    body, _, tail = rest.partition(b"\r\n--4F1B2C3D4E")
    encoded = base64.encodebytes(body.lstrip(b"\r\n")).replace(b"\n", b"\r\n")
    raw = (
        head
        + b"Content-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + encoded
        + b"\r\n--4F1B2C3D4E"
        + tail
    )
    [rcpt] = report(raw).recipients
    assert (rcpt.final_recipient, rcpt.status) == ("nobody@remote.test", "5.1.1")


def test_exim_text_bounce() -> None:
    dsn = report(samples.EXIM_FAILED)
    assert dsn.source == "exim"
    [rcpt] = dsn.recipients
    assert (rcpt.final_recipient, rcpt.action, rcpt.status, rcpt.hard) == (
        "gone@remote.test",
        "failed",
        "5.1.1",
        True,
    )
    assert "User unknown" in rcpt.diagnostic
    assert dsn.original_message_id == "<hello-1@example.test>"
    assert dsn.addressed_to == ("bounces+e1a2@example.test",)


def test_exim_delay_warning() -> None:
    dsn = report(samples.EXIM_DELAYED)
    [rcpt] = dsn.recipients
    assert (rcpt.final_recipient, rcpt.action, rcpt.status, rcpt.hard) == (
        "slow@remote.test",
        "delayed",
        "4.7.1",
        False,
    )
    assert dsn.original_message_id is None  # a delay warning returns nothing of the message


def test_qmail_bounce() -> None:
    dsn = report(samples.QMAIL_FAILED)
    assert dsn.source == "qmail"
    nobody, full = dsn.recipients
    assert (nobody.final_recipient, nobody.status, nobody.hard) == (
        "nobody@qmail.remote.test",
        "5.1.1",
        True,
    )
    # The IP address in the text is not taken for a status code.
    assert (full.final_recipient, full.status) == ("full@qmail.remote.test", "5.2.2")
    assert dsn.original_message_id == "<q-1@example.test>"


@pytest.mark.parametrize(
    "raw",
    [
        samples.READ_RECEIPT,
        samples.HUMAN_REPLY,
        b"From: a@b.test\r\nSubject: hi\r\n\r\nHello\r\n",
        b"",
        b"\x00\xff garbage",
    ],
)
def test_not_a_bounce_gives_none(raw: bytes) -> None:
    assert parse_dsn(raw) is None


def test_verp_round_trip_matches_a_bounce_to_its_message() -> None:
    built = build_message(
        OutgoingMessage(from_address="alice@example.test", to=["nobody@remote.test"], text="x")
    )
    token = "5f2a9c"
    return_path = verp_address("bounces", "example.test", token)
    assert return_path == "bounces+5f2a9c@example.test"
    assert parse_verp(return_path, "bounces") == token
    assert built.message_id  # the other key a bounce can be matched by
    # The bounce comes back addressed to the return path.
    dsn = report(samples.POSTFIX_FAILED)
    assert [parse_verp(a, "bounces") for a in dsn.addressed_to] == [token]


def test_verp_details() -> None:
    assert parse_verp("<Bounces+ABC.1@Example.Test>", "bounces", domain="example.test") == "ABC.1"
    assert parse_verp("bounces+abc@other.test", "bounces", domain="example.test") is None
    assert parse_verp("bounces@example.test", "bounces") is None
    assert parse_verp("bouncesabc@example.test", "bounces") is None
    assert parse_verp("someone+abc@example.test", "bounces") is None
    assert parse_verp("bounces+a/b@example.test", "bounces") is None
    assert (
        verp_address("b", "bücher.example", "t-1", separator="-") == "b-t-1@xn--bcher-kva.example"
    )
    assert parse_verp("b-t-1@xn--bcher-kva.example", "b", separator="-") == "t-1"
    for bad_token in ("", "a+b", "a b", "ä", "-x"):
        with pytest.raises(ValueError):
            verp_address("bounces", "example.test", bad_token)
    with pytest.raises(ValueError):
        verp_address("bounces", "example.test", "x" * 60)
