"""The header fast path: decoding, addresses, dates, threading keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from postroom.mail.mime import Address, normalize_subject, parse_headers
from postroom.mail.mime.addresses import parse_address_list
from postroom.mail.mime.headers import normalize_msgid, parse_date, parse_msgid_list
from postroom.mail.mime.words import decode_words, parse_parameters


def headers(*lines: str | bytes, body: bytes = b"body\r\n") -> bytes:
    raw = b"".join((line.encode() if isinstance(line, str) else line) + b"\r\n" for line in lines)
    return raw + b"\r\n" + body


class TestEncodedWords:
    def test_q_and_b(self) -> None:
        assert decode_words("=?utf-8?q?caf=C3=A9_cr=C3=A8me?=") == "café crème"
        assert decode_words("=?UTF-8?B?w6l0w6k=?=") == "été"

    def test_whitespace_between_words_is_dropped(self) -> None:
        assert decode_words("=?utf-8?q?a?= =?utf-8?q?b?=\r\n =?utf-8?q?c?=") == "abc"
        assert decode_words("x =?utf-8?q?a?= y") == "x a y"

    def test_multibyte_character_split_across_words(self) -> None:
        # "é" = C3 A9, split between two words as some senders do.
        assert decode_words("=?utf-8?B?Y2Fmw6k=?= =?utf-8?Q?=C3?= =?utf-8?Q?=A9?=") == "caféé"

    def test_different_charsets_in_a_row(self) -> None:
        assert decode_words("=?iso-8859-1?q?=E9?= =?koi8-r?b?8NLJ18XU?=") == "éПривет"

    def test_rfc2231_language_suffix(self) -> None:
        assert decode_words("=?utf-8*de?q?Gr=C3=BC=C3=9Fe?=") == "Grüße"

    def test_broken_words(self) -> None:
        assert decode_words("=?utf-8?B?w6l0w6k?=") == "été"  # missing padding
        assert decode_words("=?NONE?B?VEVTVA=?=") == "TEST"  # unknown charset
        assert decode_words("=?utf-8?q?unterminated") == "=?utf-8?q?unterminated"
        assert decode_words("=?utf-8?q?with spaces?=") == "with spaces"
        assert decode_words("pre=?utf-8?q?fix?=") == "prefix"

    def test_unknown_charset_is_recorded(self) -> None:
        defects: list[str] = []
        assert decode_words("=?x-bogus?q?caf=E9?=", defects=defects) == "café"
        assert defects and "x-bogus" in defects[0]


class TestParameters:
    def test_plain(self) -> None:
        main, params = parse_parameters('Text/Plain; charset="utf-8"; format=flowed')
        assert main == "text/plain"
        assert params == {"charset": "utf-8", "format": "flowed"}

    def test_rfc2231_continuations_with_charset(self) -> None:
        value = (
            "attachment; filename*0*=UTF-8''%E6%97%A5%E6%9C%AC;\r\n"
            " filename*1*=%E8%AA%9E%E3%81%AE;\r\n"
            ' filename*2="file.txt"'
        )
        assert parse_parameters(value)[1]["filename"] == "日本語のfile.txt"

    def test_rfc2231_single_and_precedence(self) -> None:
        value = "attachment; filename=\"fallback.txt\"; filename*=iso-8859-1'fr'r%E9sum%E9.txt"
        assert parse_parameters(value)[1]["filename"] == "résumé.txt"

    def test_rfc2231_unordered_sections(self) -> None:
        value = 'attachment; filename*1="two.txt"; filename*0="part-"'
        assert parse_parameters(value)[1]["filename"] == "part-two.txt"

    def test_encoded_word_in_quoted_value(self) -> None:
        value = 'attachment; filename="=?UTF-8?B?44Gm44GZ44GoLnR4dA==?="'
        assert parse_parameters(value)[1]["filename"] == "てすと.txt"

    def test_raw_8bit_value(self) -> None:
        value = 'attachment; filename="r\udce9sum\udce9.pdf"'  # surrogate-escaped cp1252 bytes
        assert parse_parameters(value)[1]["filename"] == "résumé.pdf"

    def test_garbage(self) -> None:
        assert parse_parameters("") == ("", {})
        assert parse_parameters(";;;=;")[0] == ""
        main, params = parse_parameters("text/plain charset=utf-8")  # missing semicolon
        assert main == "text/plain" and params["charset"] == "utf-8"
        assert parse_parameters('text/plain; name="unterminated')[1]["name"] == "unterminated"
        assert parse_parameters("text/plain; charset")[1] == {}


class TestAddresses:
    def test_common_forms(self) -> None:
        assert parse_address_list('"Doe, John" <John.Doe@Example.COM>, jane@example.org') == (
            Address("Doe, John", "John.Doe@example.com"),
            Address("", "jane@example.org"),
        )
        assert parse_address_list("alice@example.com (Alice Liddell)") == (
            Address("Alice Liddell", "alice@example.com"),
        )

    def test_encoded_names_with_commas(self) -> None:
        assert parse_address_list("=?utf-8?Q?M=C3=BCller,_Hans?= <h@x.de>, b@x.de") == (
            Address("Müller, Hans", "h@x.de"),
            Address("", "b@x.de"),
        )
        assert parse_address_list('"=?utf-8?Q?M=C3=BCller?=" <h@x.de>') == (
            Address("Müller", "h@x.de"),
        )

    def test_groups(self) -> None:
        assert parse_address_list("Undisclosed recipients:;") == ()
        assert parse_address_list("team: a@x.com, b@x.com;, c@x.com") == (
            Address("", "a@x.com"),
            Address("", "b@x.com"),
            Address("", "c@x.com"),
        )

    def test_garbage_is_tolerated(self) -> None:
        assert parse_address_list(", , a@x.com,") == (Address("", "a@x.com"),)
        assert parse_address_list('"Only a name" <>') == (Address("Only a name", ""),)
        assert parse_address_list("Bob <bob@x.com") == (Address("Bob", "bob@x.com"),)
        assert parse_address_list("<<>>") == ()
        assert parse_address_list("root") == (Address("", "root"),)
        assert parse_address_list("Name With Spaces") == (Address("Name With Spaces", ""),)
        assert parse_address_list("@route,@other:user@host.com") != ()
        assert parse_address_list("<@route:user@Host.com>") == (Address("", "user@host.com"),)

    def test_utf8_addresses(self) -> None:
        assert parse_address_list("Jöhn <jdöe@Mächine.Example>") == (
            Address("Jöhn", "jdöe@mächine.example"),
        )

    def test_str(self) -> None:
        assert str(Address("Doe, John", "j@x.com")) == '"Doe, John" <j@x.com>'
        assert str(Address('Say "hi"', "j@x.com")) == '"Say \\"hi\\"" <j@x.com>'
        assert str(Address("", "j@x.com")) == "j@x.com"
        assert str(Address("Name", "")) == "Name"


class TestDates:
    def test_rfc5322(self) -> None:
        assert parse_date("Tue, 14 Nov 2023 10:04:12 +0100") == datetime(
            2023, 11, 14, 10, 4, 12, tzinfo=timezone(timedelta(hours=1))
        )
        assert parse_date("14 Nov 2023 10:04 -0000") == datetime(2023, 11, 14, 10, 4, tzinfo=UTC)

    @pytest.mark.parametrize(
        "value",
        [
            "Tue, 14 Nov 2023 10:04:12 EST",
            "Tue, 14 Nov 23 10:04:12 -0500",
            "Tuesday, 14-Nov-2023 10:04:12 -0500",
            "Tue, 14 Nov 2023 10:04:12 -0500 (Eastern Standard Time)",
        ],
    )
    def test_variants(self, value: str) -> None:
        got = parse_date(value)
        assert got is not None and got.tzinfo is not None
        assert got.astimezone(UTC).hour == 15

    def test_no_zone_is_utc(self) -> None:
        got = parse_date("Tue, 14 Nov 2023 10:04:12")
        assert got == datetime(2023, 11, 14, 10, 4, 12, tzinfo=UTC)

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "garbage",
            "Wed, 15 Dec 2010    59:10 -0500",
            "32 Jan 2020 10:00 +0000",
            "Mon, 30 Feb 2020 10:00:00 +0000",
        ],
    )
    def test_broken(self, value: str) -> None:
        assert parse_date(value) is None

    def test_iso(self) -> None:
        assert parse_date("2023-11-14T10:00:00+01:00") == datetime(
            2023, 11, 14, 9, tzinfo=UTC
        ).astimezone(timezone(timedelta(hours=1)))


class TestThreading:
    def test_message_ids(self) -> None:
        assert normalize_msgid(" <abc@x.com> ") == "abc@x.com"
        assert normalize_msgid("<abc@x.com> (added by postmaster)") == "abc@x.com"
        assert normalize_msgid("< a b @x.com >") == "ab@x.com"
        assert normalize_msgid("abc@x.com") == "abc@x.com"
        assert normalize_msgid("") is None and normalize_msgid("   ") is None
        assert normalize_msgid("<>") is None
        assert normalize_msgid("Your message of Tuesday") is None

    def test_references_in_order_without_repeats(self) -> None:
        value = "<a@x> <b@x>\r\n\t<a@x>, <c@x>"
        assert parse_msgid_list(value) == ("a@x", "b@x", "c@x")
        assert parse_msgid_list("a@x b@x") == ("a@x", "b@x")

    @pytest.mark.parametrize(
        ("subject", "normalized"),
        [
            ("Re: Offer", "Offer"),
            ("RE: Fwd: FW: Offer", "Offer"),
            ("AW: WG: Angebot", "Angebot"),
            ("Odp: Oferta", "Oferta"),
            ("返信: 見積もり", "見積もり"),
            ("回复：报价", "报价"),
            ("Re[2]: Offer", "Offer"),
            ("Re:Re:  Offer ", "Offer"),
            ("SV: VS: Tilbud", "Tilbud"),
            ("[list] Re: topic", "[list] topic"),
            ("Offer (fwd)", "Offer"),
            ("Results: Q3", "Results: Q3"),
            ("Rechnung 4711", "Rechnung 4711"),
            ("", ""),
        ],
    )
    def test_normalized_subject(self, subject: str, normalized: str) -> None:
        assert normalize_subject(subject) == normalized

    def test_thread_key_candidates(self) -> None:
        h = parse_headers(
            headers(
                "Message-ID: <me@x>",
                "In-Reply-To: <parent@x>",
                "References: <root@x> <mid@x> <parent@x> <me@x>",
            )
        )
        assert h.thread_key_candidates() == ("parent@x", "mid@x", "root@x")
        assert h.references == ("root@x", "mid@x", "parent@x", "me@x")


class TestParseHeaders:
    def test_everything_decoded(self) -> None:
        h = parse_headers(
            headers(
                "From: =?UTF-8?Q?Jane_Exampl=C3=A9?= <Jane@Example.NET>",
                "To: a@x.com,",
                " =?ISO-8859-2?Q?Pawe=B3?= <p@Example.PL>",
                "Cc: c@x.com",
                "Reply-To: r@x.com",
                "Sender: s@x.com",
                "Subject: =?UTF-8?Q?Re:_Lieferung?=\r\n =?UTF-8?Q?_=E2=80=93_OK?=",
                "Date: Tue, 14 Nov 2023 10:04:12 +0100",
                "Message-ID: <m@x.com>",
                "Content-Type: text/plain; charset=utf-8",
            )
        )
        assert h.from_ == (Address("Jane Examplé", "Jane@example.net"),)
        assert h.to == (Address("", "a@x.com"), Address("Paweł", "p@example.pl"))
        assert h.cc == (Address("", "c@x.com"),)
        assert h.reply_to == (Address("", "r@x.com"),)
        assert h.sender == (Address("", "s@x.com"),)
        assert h.subject == "Re: Lieferung – OK"
        assert h.normalized_subject == "Lieferung – OK"
        assert h.message_id == "m@x.com"
        assert h.date is not None and h.date.utcoffset() == timedelta(hours=1)
        assert h.content_type == "text/plain" and h.charset == "utf-8"
        assert h.defects == ()

    def test_missing_everything(self) -> None:
        h = parse_headers(b"X-Nothing: here\r\n\r\nbody")
        assert h.message_id is None and h.date is None and h.subject == "" and h.from_ == ()

    def test_rfc6532_raw_utf8(self) -> None:
        h = parse_headers(
            headers("Subject: Grüße aus Köln 🎉".encode(), "From: Jöhn <jöhn@bü.example>".encode())
        )
        assert h.subject == "Grüße aus Köln 🎉"
        assert h.from_ == (Address("Jöhn", "jöhn@bü.example"),)
        assert h.defects == ()

    def test_8bit_garbage_uses_message_charset_then_cp1252(self) -> None:
        h = parse_headers(
            headers(
                b"Subject: \xf0\xd2\xc9\xd7\xc5\xd4", b"Content-Type: text/plain; charset=koi8-r"
            )
        )
        assert h.subject == "Привет"
        cp = parse_headers(headers(b"Subject: Ver\xe3o \x99", b"From: Jos\xe9 <j@x.pt>"))
        assert cp.subject == "Verão ™"
        assert cp.from_ == (Address("José", "j@x.pt"),)
        assert cp.defects and all("cp1252" in d for d in cp.defects)
        latin = parse_headers(headers(b"Subject: \x81\x8d odd"))
        assert latin.subject == "\x81\x8d odd"

    def test_subject_whitespace_normalised(self) -> None:
        h = parse_headers(headers("Subject:   lots \t of\r\n   space  "))
        assert h.subject == "lots of space"

    def test_lf_line_endings_and_mbox_line(self) -> None:
        raw = b"From sender@x Mon Jan  1 00:00:00 2024\nSubject: mbox\nFrom: a@x\n\nbody\n"
        h = parse_headers(raw)
        assert h.subject == "mbox" and h.from_ == (Address("", "a@x"),)

    def test_blank_lines_before_headers(self) -> None:
        assert parse_headers(b"\r\n\r\nSubject: late\r\n\r\nbody").subject == "late"

    def test_obsolete_space_before_colon(self) -> None:
        assert parse_headers(b"Subject : old style\r\nFrom  : a@x\r\n\r\n").subject == "old style"

    def test_first_occurrence_wins_but_recipients_add_up(self) -> None:
        h = parse_headers(
            headers("Subject: one", "Subject: two", "To: a@x", "To: b@x", "From: f@x", "From: g@x")
        )
        assert h.subject == "one"
        assert [a.email for a in h.to] == ["a@x", "b@x"]
        assert [a.email for a in h.from_] == ["f@x"]

    def test_body_is_not_read(self) -> None:
        h = parse_headers(b"Subject: s\r\n\r\nSubject: not a header\r\nFrom: nobody\r\n")
        assert h.subject == "s" and h.from_ == ()

    def test_headers_only_message(self) -> None:
        assert parse_headers(b"Subject: no body at all").subject == "no body at all"

    def test_similar_names_are_not_taken(self) -> None:
        h = parse_headers(
            headers(
                "Resent-From: r@x", "X-To: x@x", "Toxic: 1", "Content-Type-X: y", "Subjects: no"
            )
        )
        assert h.from_ == () and h.to == () and h.subject == "" and h.content_type == "text/plain"

    def test_empty_and_binary_input(self) -> None:
        assert parse_headers(b"").subject == ""
        assert parse_headers(bytes(range(256)) * 4).message_id is None

    def test_likely_has_attachments(self) -> None:
        mixed = parse_headers(headers('Content-Type: multipart/mixed; boundary="b"'))
        alternative = parse_headers(headers('Content-Type: multipart/alternative; boundary="b"'))
        pdf = parse_headers(headers("Content-Type: application/pdf"))
        assert mixed.likely_has_attachments and pdf.likely_has_attachments
        assert not alternative.likely_has_attachments
