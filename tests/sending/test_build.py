"""build_message: encoded headers read back right, Bcc hidden, bad input refused before building."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage

import pytest

from postroom.mail.mime import parse_headers, parse_message
from postroom.mail.mime.build import (
    InvalidMessage,
    OutgoingAttachment,
    OutgoingMessage,
    ascii_domain,
    build_message,
)

FROM = "alice@example.test"


def parsed(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def content(part: object) -> str:
    """A part's decoded text with the LF line ends it was given (the stdlib keeps CRLF)."""
    assert isinstance(part, EmailMessage)
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def test_utf8_headers_round_trip() -> None:
    subject = "Grüße aus Köln – Ünïcödé, and a long subject that has to be folded somewhere 🎉"
    built = build_message(
        OutgoingMessage(
            from_address=FROM,
            from_name="Älice Müller",
            to=["Bøb Ørsted <bob@remote.test>", '"Doe, John" <john@remote.test>'],
            cc=["Zoë <zoe@remote.test>"],
            reply_to="Support, Team <support@example.test>",
            subject=subject,
            text="Grüße aus Köln! A mostly ASCII text is sent as quoted-printable.\n",
        )
    )
    head = header_block(built.raw)
    assert head.isascii() and not built.needs_smtputf8
    assert b"=?utf-8?" in head
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    # The stdlib reads it back...
    msg = parsed(built.raw)
    assert msg["Subject"] == subject
    assert str(msg["From"]) == "Älice Müller <alice@example.test>"
    assert [a.display_name for a in msg["To"].addresses] == ["Bøb Ørsted", "Doe, John"]
    assert msg["Reply-To"].addresses[0].display_name == "Support, Team"
    # ... and so does our own parser.
    headers = parse_headers(built.raw)
    assert headers.subject == subject
    assert [(a.name, a.email) for a in headers.to] == [
        ("Bøb Ørsted", "bob@remote.test"),
        ("Doe, John", "john@remote.test"),
    ]
    assert headers.cc[0].name == "Zoë"
    assert msg.get_content_type() == "text/plain"
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert content(msg) == "Grüße aus Köln! A mostly ASCII text is sent as quoted-printable.\n"


def test_iso_2022_jp_headers_and_body() -> None:
    subject = "会議の件について、来週の予定を確認させてください。よろしくお願いします"
    text = "山田様\n\nいつもお世話になっております。\n"
    built = build_message(
        OutgoingMessage(
            from_address=FROM,
            from_name="佐藤 花子",
            to=["山田 太郎 <yamada@example.jp>"],
            subject=subject,
            text=text,
            charset="iso-2022-jp",
        )
    )
    assert built.raw.isascii()  # ISO-2022-JP is a 7-bit encoding, headers included
    head = header_block(built.raw).decode()
    assert "=?iso-2022-jp?b?" in head and "utf-8" not in head
    assert all(len(line) <= 78 for line in head.split("\r\n"))
    msg = parsed(built.raw)
    assert msg["Subject"] == subject
    assert msg["From"].addresses[0].display_name == "佐藤 花子"
    assert msg.get_content_charset() == "iso-2022-jp"
    assert msg["Content-Transfer-Encoding"] == "7bit"
    assert content(msg) == text
    headers = parse_headers(built.raw)
    assert headers.subject == subject
    assert headers.to[0].name == "山田 太郎"
    assert parse_message(built.raw).text == text


def test_iso_8859_15_headers_and_body() -> None:
    built = build_message(
        OutgoingMessage(
            from_address=FROM,
            to=["Jérôme <jerome@example.fr>"],
            subject="Prix: 10 € - déjà payé",
            text="Ça coûte 10 €.\n",
            charset="iso-8859-15",
        )
    )
    head = header_block(built.raw).decode()
    assert "=?iso-8859-15?q?" in head
    msg = parsed(built.raw)
    assert msg["Subject"] == "Prix: 10 € - déjà payé"
    assert msg.get_content_charset() == "iso-8859-15"
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert content(msg) == "Ça coûte 10 €.\n"


def test_character_outside_the_charset_is_refused() -> None:
    with pytest.raises(InvalidMessage) as caught:
        build_message(
            OutgoingMessage(from_address=FROM, to=[FROM], subject="①", charset="iso-2022-jp")
        )
    assert caught.value.field == "subject" and "iso-2022-jp" in caught.value.reason
    with pytest.raises(InvalidMessage, match="text"):
        build_message(
            OutgoingMessage(from_address=FROM, to=[FROM], text="Grüße ☃", charset="iso-8859-1")
        )


def test_bcc_is_hidden_but_in_the_envelope() -> None:
    built = build_message(
        OutgoingMessage(
            from_address=FROM,
            to=["bob@remote.test"],
            cc=["Carol <CAROL@Remote.Test>"],
            bcc=["secret@hidden.test", "bob@REMOTE.test"],
            text="x",
        )
    )
    assert b"secret" not in built.raw and b"Bcc" not in built.raw
    # Duplicates (domain case-insensitively) go once; To, Cc, Bcc order.
    assert built.envelope_recipients == (
        "bob@remote.test",
        "CAROL@Remote.Test",
        "secret@hidden.test",
    )
    only_bcc = build_message(OutgoingMessage(from_address=FROM, bcc=["secret@hidden.test"]))
    assert parsed(only_bcc.raw)["To"] == "undisclosed-recipients:;"
    assert only_bcc.envelope_recipients == ("secret@hidden.test",)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"subject": "Hello\r\nBcc: victim@example.test"}, "subject"),
        ({"subject": "Hello\nX-Injected: 1"}, "subject"),
        ({"from_name": "Alice\rX: y"}, "from_name"),
        ({"to": ["bob@remote.test\r\nBcc: x@y.test"]}, "to[0]"),
        ({"extra_headers": {"X-Campaign": "a\nBcc: x@y.test"}}, "extra_headers['X-Campaign']"),
        ({"extra_headers": {"X-Bad Name": "v"}}, "extra_headers"),
        ({"extra_headers": {"Bcc": "x@y.test"}}, "extra_headers['Bcc']"),
        ({"extra_headers": {"Content-Type": "text/html"}}, "extra_headers['Content-Type']"),
        ({"attachments": [("a\r\nb.txt", "text/plain", b"x")]}, "attachments[0].filename"),
        ({"message_id": "<abc@x\r\n>"}, "message_id"),
    ],
)
def test_header_injection_is_refused(change: dict[str, object], field: str) -> None:
    spec = {"from_address": FROM, "to": ["bob@remote.test"], "text": "x", **change}
    with pytest.raises(InvalidMessage) as caught:
        build_message(OutgoingMessage(**spec))  # type: ignore[arg-type]
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("to", "reason"),
    [
        ("not an address", "not an address"),
        ("bob@", "not an address"),
        ("@remote.test", "not an address"),
        ("bob smith@remote.test", "before @"),
        ("bob..smith@remote.test", "before @"),
        ("bob@remote..test", "domain"),
        ("bob@-remote.test", "domain"),
        ("bob@remote_test.example", "domain"),
        ("Bob <bob@remote.test", "before @"),
        ('"Bob <bob@remote.test>', "quotes"),
        ("bob@remote.test, carol@remote.test", "before @"),
        ("x" * 65 + "@remote.test", "64"),
    ],
)
def test_bad_address_is_refused_with_field_and_reason(to: str, reason: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        build_message(OutgoingMessage(from_address=FROM, to=["ok@remote.test", to], text="x"))
    assert caught.value.field == "to[1]"
    assert reason in caught.value.reason
    assert str(caught.value).startswith("to[1]: ")


def test_addresses_that_are_valid_though_unusual() -> None:
    built = build_message(
        OutgoingMessage(
            from_address=FROM,
            to=[
                '"john doe"@remote.test',
                "o'brien+tag@remote.test",
                "postmaster@[192.0.2.1]",
                "  Spaced Name   <spaced@remote.test>  ",
            ],
            text="x",
        )
    )
    assert built.envelope_recipients == (
        '"john doe"@remote.test',
        "o'brien+tag@remote.test",
        "postmaster@[192.0.2.1]",
        "spaced@remote.test",
    )


def test_no_recipients_refused() -> None:
    with pytest.raises(InvalidMessage, match="no recipients"):
        build_message(OutgoingMessage(from_address=FROM, text="x"))


def test_attachments_and_html_alternative() -> None:
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 10
    built = build_message(
        OutgoingMessage(
            from_address=FROM,
            to=["bob@remote.test"],
            subject="Report",
            text="See attached.\n",
            html="<p>See <b>attached</b>.</p>\n",
            attachments=[
                OutgoingAttachment("Bericht März.pdf", "application/pdf", pdf),
                ("notes.txt", "text/plain", "Ünïcode notes\n".encode()),
                ("fwd.eml", "message/rfc822", b"Subject: inner\r\n\r\nInner body\r\n"),
            ],
        )
    )
    msg = parsed(built.raw)
    assert msg.get_content_type() == "multipart/mixed"
    alternative = next(msg.iter_parts())
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    assert content(msg.get_body(("html",))) == "<p>See <b>attached</b>.</p>\n"
    mine = parse_message(built.raw)
    assert mine.text == "See attached.\n"
    found = {a.filename: a for a in mine.attachments}
    assert found["Bericht März.pdf"].content_type == "application/pdf"
    assert found["Bericht März.pdf"].payload == pdf
    assert found["notes.txt"].payload == "Ünïcode notes\n".encode()
    forwarded = [p for p in msg.walk() if p.get_content_type() == "message/rfc822"]
    assert forwarded and forwarded[0]["Content-Transfer-Encoding"] == "7bit"
    # MIME-Version belongs to the top-level header only.
    assert built.raw.count(b"MIME-Version:") == 1


def test_message_id_date_and_extra_headers() -> None:
    date = datetime(2024, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=9)))
    url = "<https://example.test/unsubscribe/" + "a" * 80 + ">"
    built = build_message(
        OutgoingMessage(
            from_address="alice@bücher.example",
            to=["bob@remote.test"],
            text="x",
            date=date,
            extra_headers={"List-Unsubscribe": url, "X-Note": "schön"},
            in_reply_to="<parent@example.test>",
        )
    )
    msg = parsed(built.raw)
    assert built.message_id.startswith("<") and built.message_id.endswith("@xn--bcher-kva.example>")
    assert msg["Message-ID"] == built.message_id
    assert msg["Date"].datetime == date
    # A long URL stays as written (the policy folder would turn it into encoded words).
    unfolded = b" ".join(built.raw.replace(b"\r\n ", b" ").split(b" "))
    assert f"List-Unsubscribe: {url}".encode() in b" ".join(unfolded.split())
    assert msg["X-Note"] == "schön"
    assert msg["In-Reply-To"] == "<parent@example.test>"
    # Threading headers have their own fields, checked like the Message-ID.
    with pytest.raises(InvalidMessage) as refused:
        build_message(
            OutgoingMessage(
                from_address=FROM, to=[FROM], extra_headers={"In-Reply-To": "<p@example.test>"}
            )
        )
    assert refused.value.field == "extra_headers['In-Reply-To']"
    again = build_message(
        OutgoingMessage(from_address=FROM, to=[FROM], text="x", message_id="fixed.1@example.test")
    )
    assert again.message_id == "<fixed.1@example.test>"
    assert parse_headers(again.raw).message_id == "fixed.1@example.test"
    generated = {
        build_message(OutgoingMessage(from_address=FROM, to=[FROM])).message_id for _ in range(50)
    }
    assert len(generated) == 50


def test_invalid_message_id_and_naive_date() -> None:
    with pytest.raises(InvalidMessage) as caught:
        build_message(OutgoingMessage(from_address=FROM, to=[FROM], message_id="no-at-sign"))
    assert caught.value.field == "message_id"
    with pytest.raises(InvalidMessage) as caught:
        build_message(OutgoingMessage(from_address=FROM, to=[FROM], date=datetime(2024, 1, 1)))
    assert caught.value.field == "date"
    assert build_message(
        OutgoingMessage(from_address=FROM, to=[FROM], date=datetime(2024, 1, 1, tzinfo=UTC))
    ).raw.startswith(b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n")


def test_internationalised_addresses() -> None:
    built = build_message(
        OutgoingMessage(
            from_address=FROM,
            to=["Jürgen <jürgen@bücher.example>", "info@faß.de", "ascii@xn--mnchen-3ya.example"],
            text="x",
        )
    )
    assert built.needs_smtputf8
    assert built.envelope_recipients == (
        "jürgen@xn--bcher-kva.example",
        "info@xn--fa-hia.de",  # IDNA 2008: ß is kept (IDNA 2003 would map it to "fass.de")
        "ascii@xn--mnchen-3ya.example",
    )
    assert "To: =?utf-8?q?J=C3=BCrgen?= <jürgen@xn--bcher-kva.example>".encode() in built.raw
    ascii_only = build_message(OutgoingMessage(from_address=FROM, to=["x@bücher.example"]))
    assert not ascii_only.needs_smtputf8 and ascii_only.raw.isascii()


def test_ascii_domain() -> None:
    assert ascii_domain("example.test") == "example.test"
    assert ascii_domain("Bücher.Example").lower() == "xn--bcher-kva.example"
    assert ascii_domain("例え。テスト") == "xn--r8jz45g.xn--zckzah"
    # IDNA 2008 (UTS 46 non-transitional) keeps the final sigma and ß, which IDNA 2003 maps
    # to σ and ss, making them other domains. Figures checked against the idna package.
    assert ascii_domain("σοφος.gr") == "xn--0xaajbq.gr"
    assert ascii_domain("ΣΟΦΟΣ.gr") == "xn--0xaakcn.gr"
    assert ascii_domain("faß.de") == "xn--fa-hia.de"
    with pytest.raises(ValueError):
        ascii_domain("bücher..example")


def test_charset_checked() -> None:
    with pytest.raises(InvalidMessage) as caught:
        build_message(OutgoingMessage(from_address=FROM, to=[FROM], charset="klingon-8"))
    assert caught.value.field == "charset"
    with pytest.raises(InvalidMessage):
        build_message(OutgoingMessage(from_address=FROM, to=[FROM], charset="utf-16"))


def test_mostly_non_ascii_text_uses_base64() -> None:
    built = build_message(
        OutgoingMessage(from_address=FROM, to=[FROM], text="日本語のテキスト。" * 20)
    )
    msg = parsed(built.raw)
    assert msg["Content-Transfer-Encoding"] == "base64"
    assert content(msg) == "日本語のテキスト。" * 20 + "\n"


def test_long_address_lists_fold_and_read_back() -> None:
    to = [f"Ünïcödé Person {i} with a rather long name <person{i}@remote.test>" for i in range(4)]
    to += [f"p{i}@remote.test" for i in range(30)]
    to.append('"A Long Quoted, Name That Goes On And On And On" <long.address@remote.test>')
    built = build_message(OutgoingMessage(from_address=FROM, to=to, text="x"))
    head = header_block(built.raw)
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    expected = [t.rpartition("<")[2].rstrip(">") if "<" in t else t for t in to]
    assert [a.email for a in parse_headers(built.raw).to] == expected
    names = [a.display_name for a in parsed(built.raw)["To"].addresses]
    assert names[0] == "Ünïcödé Person 0 with a rather long name"
    assert names[-1] == "A Long Quoted, Name That Goes On And On And On"


def test_errors_name_the_exact_field() -> None:
    with pytest.raises(InvalidMessage) as caught:
        build_message(
            OutgoingMessage(
                from_address=FROM,
                to=["山田 <yamada@example.jp>", "Ⅻ ☃ <snow@example.jp>"],
                charset="iso-2022-jp",
            )
        )
    assert caught.value.field == "to[1]"
    with pytest.raises(InvalidMessage) as caught:
        build_message(
            OutgoingMessage(
                from_address=FROM, to=[FROM], attachments=[("x", "multipart/mixed", b"")]
            )
        )
    assert caught.value.field == "attachments[0].content_type"
    with pytest.raises(InvalidMessage) as caught:
        build_message(OutgoingMessage(from_address=FROM, to=[FROM], reply_to=["nope"]))
    assert caught.value.field == "reply_to[0]"
