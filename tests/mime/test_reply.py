"""Replies and forwards from raw parent messages: subject, threading, quoting, recipients."""

from __future__ import annotations

import pytest

from postroom.mail.mime import parse_message
from postroom.mail.mime.build import OutgoingMessage, build_message
from postroom.mail.mime.headers import parse_headers
from postroom.mail.mime.reply import (
    MAX_REFERENCES,
    ForwardLabels,
    ReplyMode,
    ReplyParent,
    draft,
    forward_subject,
    recipients,
    reply_subject,
    threading,
)

OWN = ["support@example.test", "sales@example.test"]


def raw_mail(headers: dict[str, str], body: str = "Hello there.\n") -> bytes:
    lines = [f"{name}: {value}" for name, value in headers.items()]
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", body]
    return "\r\n".join(lines).encode()


def parent_of(raw: bytes) -> ReplyParent:
    parsed = parse_message(raw)
    return ReplyParent.from_raw(raw, parsed.text, parsed.html)


BASE = {
    "From": '"Doe, Jane" <jane@customer.test>',
    "To": "Support <support@example.test>, bob@customer.test",
    "Cc": "carol@customer.test, Support Plus <SUPPORT+ISSUE-4@Example.test>",
    "Subject": "Printer on fire",
    "Date": "Tue, 03 Mar 2026 10:15:00 +0100",
    "Message-ID": "<m2@customer.test>",
    "References": "<m0@customer.test> <m1@example.test>",
    "In-Reply-To": "<m1@example.test>",
}


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Printer on fire", "Re: Printer on fire"),
        ("Re: Printer on fire", "Re: Printer on fire"),
        ("RE: Printer on fire", "Re: Printer on fire"),
        ("AW: Re: Printer on fire", "Re: Printer on fire"),
        ("SV: SV:  Printer   on fire", "Re: Printer on fire"),
        ("Re[3]: Printer on fire", "Re: Printer on fire"),
        ("Re: Fwd: Printer on fire", "Re: Fwd: Printer on fire"),
        ("Fwd: Printer on fire", "Re: Fwd: Printer on fire"),
        ("Regarding the printer", "Re: Regarding the printer"),
        ("Review: draft", "Re: Review: draft"),
        ("", "Re:"),
    ],
)
def test_reply_subject_adds_re_once(subject: str, expected: str) -> None:
    assert reply_subject(subject) == expected


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Printer on fire", "Fwd: Printer on fire"),
        ("Fwd: Printer on fire", "Fwd: Printer on fire"),
        ("FW: WG: Printer on fire", "Fwd: Printer on fire"),
        ("Re: Printer on fire", "Fwd: Re: Printer on fire"),
        ("Forward planning", "Fwd: Forward planning"),
    ],
)
def test_forward_subject_adds_fwd_once(subject: str, expected: str) -> None:
    assert forward_subject(subject) == expected


def test_reply_threads_on_the_parent() -> None:
    result = draft(parent_of(raw_mail(BASE)), ReplyMode.REPLY, own_addresses=OWN, attribution="")
    assert result.in_reply_to == "m2@customer.test"
    assert result.references == ("m0@customer.test", "m1@example.test", "m2@customer.test")


def test_without_references_the_parents_in_reply_to_starts_the_chain() -> None:
    headers = {k: v for k, v in BASE.items() if k != "References"}
    result = draft(parent_of(raw_mail(headers)), ReplyMode.REPLY, own_addresses=OWN, attribution="")
    assert result.references == ("m1@example.test", "m2@customer.test")


def test_a_parent_without_message_id_gives_no_in_reply_to() -> None:
    headers = {k: v for k, v in BASE.items() if k not in ("Message-ID", "References")}
    headers["In-Reply-To"] = "<m1@example.test>"
    assert threading(None, (), "m1@example.test") == (None, ("m1@example.test",))
    result = draft(parent_of(raw_mail(headers)), ReplyMode.REPLY, own_addresses=OWN, attribution="")
    assert result.in_reply_to is None
    assert result.references == ("m1@example.test",)


def test_long_reference_chains_keep_the_root_and_the_newest() -> None:
    chain = " ".join(f"<r{i}@customer.test>" for i in range(50))
    raw = raw_mail({**BASE, "References": chain})
    result = draft(parent_of(raw), ReplyMode.REPLY, own_addresses=OWN, attribution="")
    assert len(result.references) == MAX_REFERENCES
    assert result.references[0] == "r0@customer.test"
    assert result.references[-2:] == ("r49@customer.test", "m2@customer.test")
    assert "r19@customer.test" not in result.references
    assert "r20@customer.test" in result.references


def test_the_built_reply_carries_the_threading_headers_folded() -> None:
    chain = " ".join(f"<{'x' * 30}{i}@customer.test>" for i in range(40))
    result = draft(
        parent_of(raw_mail({**BASE, "References": chain})),
        ReplyMode.REPLY,
        own_addresses=OWN,
        attribution="",
    )
    built = build_message(
        OutgoingMessage(
            from_address="support@example.test",
            to=result.to,
            subject=result.subject,
            text="Thanks\n",
            in_reply_to=result.in_reply_to,
            references=result.references,
        )
    )
    assert all(len(line) <= 78 for line in built.raw.split(b"\r\n"))
    headers = parse_headers(built.raw)
    assert headers.in_reply_to == "m2@customer.test"
    assert headers.references == result.references
    assert headers.subject == "Re: Printer on fire"


def test_quote_has_the_attribution_and_quotes_every_line() -> None:
    body = "First line\r\n\r\n> earlier quote\r\nLast line\r\n\r\n"
    result = draft(
        parent_of(raw_mail(BASE, body)),
        ReplyMode.REPLY,
        own_addresses=OWN,
        attribution="Am 3. März 2026 schrieb Jane:",
    )
    assert result.quoted == (
        "Am 3. März 2026 schrieb Jane:\n> First line\n>\n>> earlier quote\n> Last line\n"
    )
    assert "<blockquote" in result.quoted_html
    assert "&gt; earlier quote" in result.quoted_html


def test_parent_sender_name_for_the_attribution() -> None:
    assert parent_of(raw_mail(BASE)).sender_name == "Doe, Jane"
    assert parent_of(raw_mail({**BASE, "From": "x@y.test"})).sender_name == "x@y.test"


def test_reply_goes_to_reply_to_when_present_else_from() -> None:
    plain = parent_of(raw_mail(BASE))
    assert recipients(plain, ReplyMode.REPLY, OWN) == (['"Doe, Jane" <jane@customer.test>'], [])
    with_reply_to = parent_of(raw_mail({**BASE, "Reply-To": "Desk <desk@customer.test>"}))
    assert recipients(with_reply_to, ReplyMode.REPLY, OWN) == (["Desk <desk@customer.test>"], [])


def test_reply_all_adds_to_and_cc_without_our_addresses_or_duplicates() -> None:
    headers = {**BASE, "Cc": BASE["Cc"] + ", Jane <JANE@customer.test>, bob@Customer.test"}
    to, cc = recipients(parent_of(raw_mail(headers)), ReplyMode.REPLY_ALL, OWN)
    assert to == ['"Doe, Jane" <jane@customer.test>']
    # support@ and its plus-variant are ours; jane and bob are there once.
    assert cc == ["bob@customer.test", "carol@customer.test"]


def test_answering_our_own_sent_mail_goes_to_its_recipients() -> None:
    headers = {**BASE, "From": "Support <support+ISSUE-4@example.test>", "To": "jane@customer.test"}
    parent = parent_of(raw_mail(headers))
    assert recipients(parent, ReplyMode.REPLY, OWN) == (["jane@customer.test"], [])
    assert recipients(parent, ReplyMode.REPLY_ALL, OWN) == (
        ["jane@customer.test"],
        ["carol@customer.test"],
    )


def test_forward_has_the_forwarded_block_and_no_recipients() -> None:
    raw = raw_mail(BASE, "The printer is on fire.\r\nPlease help.\r\n")
    result = draft(
        parent_of(raw),
        ReplyMode.FORWARD,
        own_addresses=OWN,
        attribution="unused",
        date_text="3 March 2026 10:15",
        labels=ForwardLabels(),
    )
    assert result.subject == "Fwd: Printer on fire"
    assert (result.to, result.cc) == ([], [])
    assert result.quoted == (
        "---------- Forwarded message ----------\n"
        'From: "Doe, Jane" <jane@customer.test>\n'
        "Date: 3 March 2026 10:15\n"
        "Subject: Printer on fire\n"
        "To: Support <support@example.test>, bob@customer.test\n"
        "Cc: carol@customer.test, Support Plus <SUPPORT+ISSUE-4@example.test>\n"
        "\n"
        "The printer is on fire.\n"
        "Please help.\n"
    )
    assert result.in_reply_to == "m2@customer.test"
    assert "Forwarded message" in result.quoted_html


def test_encoded_headers_are_decoded_in_the_draft() -> None:
    headers = {
        **BASE,
        "From": "=?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@customer.test>",
        "Subject": "=?utf-8?q?AW=3A_Gr=C3=BC=C3=9Fe?=",
    }
    result = draft(
        parent_of(raw_mail(headers)), ReplyMode.REPLY, own_addresses=OWN, attribution="x"
    )
    assert result.subject == "Re: Grüße"
    assert result.to == ["Jürgen Müller <jm@customer.test>"]


def test_line_breaks_in_encoded_names_do_not_reach_the_recipients() -> None:
    headers = {**BASE, "From": "=?utf-8?q?Jane=0D=0ABcc=3A_x?= <jane@customer.test>"}
    result = draft(parent_of(raw_mail(headers)), ReplyMode.REPLY, own_addresses=OWN, attribution="")
    assert result.to == ['"Jane Bcc: x" <jane@customer.test>']
    built = build_message(
        OutgoingMessage(from_address="support@example.test", to=result.to, subject=result.subject)
    )
    assert parse_headers(built.raw).to[0].email == "jane@customer.test"
