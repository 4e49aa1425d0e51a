"""Full extraction: bodies, attachments, limits, broken structure."""

from __future__ import annotations

import base64

import pytest

from postroom.mail.mime import MimeParseError, parse_message
from tests.mime.samples import typical_message

HEAD = "From: a@example.com\r\nTo: b@example.com\r\nSubject: test\r\nMIME-Version: 1.0\r\n"


def multipart(subtype: str, *parts: str, boundary: str = "BOUNDARY", head: str = HEAD) -> bytes:
    body = "".join(f"--{boundary}\r\n{part}\r\n" for part in parts)
    return (
        f'{head}Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'
        f"preamble\r\n{body}--{boundary}--\r\nepilogue\r\n"
    ).encode("utf-8", "surrogateescape")


def part(headers: str, body: str) -> str:
    return f"{headers}\r\n\r\n{body}"


PLAIN = part("Content-Type: text/plain; charset=utf-8", "Hello plain")
HTML = part("Content-Type: text/html; charset=utf-8", "<p>Hello <b>html</b></p>")


def attachment(name_header: str, data: bytes, ctype: str = "application/pdf") -> str:
    encoded = base64.encodebytes(data).decode().replace("\n", "\r\n").strip()
    return part(
        f"Content-Type: {ctype}\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: {name_header}",
        encoded,
    )


class TestBodies:
    def test_plain_only(self) -> None:
        parsed = parse_message(
            (HEAD + "Content-Type: text/plain\r\n\r\nline one\r\nline two\r\n").encode()
        )
        assert parsed.text == "line one\nline two\n"
        assert parsed.html is None and parsed.attachments == () and parsed.defects == ()

    def test_alternative_picks_both(self) -> None:
        parsed = parse_message(multipart("alternative", PLAIN, HTML))
        assert parsed.text == "Hello plain"
        assert parsed.html == "<p>Hello <b>html</b></p>"
        assert not parsed.text_from_html

    def test_html_only_derives_text(self) -> None:
        parsed = parse_message(multipart("alternative", HTML))
        assert parsed.text == "Hello html"
        assert parsed.text_from_html

    def test_html_is_kept_unsanitised(self) -> None:
        evil = part("Content-Type: text/html", "<script>alert(1)</script><p onclick=x>hi</p>")
        parsed = parse_message(multipart("mixed", evil))
        assert parsed.html == "<script>alert(1)</script><p onclick=x>hi</p>"

    def test_enriched_alternative_is_not_an_attachment(self) -> None:
        enriched = part("Content-Type: text/enriched", "<bold>Hello</bold>")
        parsed = parse_message(multipart("alternative", PLAIN, enriched))
        assert parsed.attachments == () and parsed.text == "Hello plain"

    def test_calendar_alternative_is_an_attachment(self) -> None:
        ics = part(
            "Content-Type: text/calendar; method=REQUEST", "BEGIN:VCALENDAR\r\nEND:VCALENDAR"
        )
        parsed = parse_message(multipart("alternative", PLAIN, HTML, ics))
        assert [a.content_type for a in parsed.attachments] == ["text/calendar"]

    def test_mixed_text_parts_are_joined(self) -> None:
        footer = part("Content-Type: text/plain", "-- footer")
        pdf = attachment('attachment; filename="a.pdf"', b"%PDF")
        parsed = parse_message(multipart("mixed", PLAIN, pdf, footer))
        assert parsed.text == "Hello plain\n-- footer"

    def test_related_html_with_inline_image(self) -> None:
        html = part("Content-Type: text/html", '<img src="cid:logo@x">')
        image = part(
            "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\nContent-ID: <logo@x>",
            base64.b64encode(b"\x89PNG fake").decode(),
        )
        parsed = parse_message(multipart("related", html, image))
        (logo,) = parsed.attachments
        assert logo.content_id == "logo@x" and logo.disposition == "inline"
        assert logo.payload == b"\x89PNG fake"
        assert parsed.inline_images == {"logo@x": logo}

    def test_format_flowed(self) -> None:
        flowed = part(
            "Content-Type: text/plain; charset=utf-8; format=flowed",
            "This is a long \r\nparagraph.\r\n> quoted soft \r\n> line\r\n\r\n-- \r\nsig",
        )
        parsed = parse_message(multipart("mixed", flowed))
        assert parsed.text == "This is a long paragraph.\n> quoted soft line\n\n-- \nsig"

    def test_format_flowed_delsp(self) -> None:
        flowed = part("Content-Type: text/plain; format=flowed; delsp=yes", "日本 \r\n語")
        assert parse_message(multipart("mixed", flowed)).text == "日本語"

    def test_quoted_printable_and_8bit(self) -> None:
        qp = part(
            "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable",
            "caf=E9 soft=\r\nbreak",
        )
        assert parse_message(multipart("mixed", qp)).text == "café softbreak"

    def test_misspelt_transfer_encodings(self) -> None:
        for cte in ("Quoted-Printable;", "quoted printable", " QUOTED-PRINTABLE "):
            qp = part(
                f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: {cte}",
                "a=3Db",
            )
            assert parse_message(multipart("mixed", qp)).text == "a=b", cte
        for cte in ("7-bit", "8bits", "binary", "", "text/html"):
            plain = part(f"Content-Type: text/plain\r\nContent-Transfer-Encoding: {cte}", "a=3Db")
            assert parse_message(multipart("mixed", plain)).text == "a=3Db", cte

    def test_unknown_transfer_encoding_is_recorded(self) -> None:
        odd = part("Content-Type: text/plain\r\nContent-Transfer-Encoding: x-martian", "keep me")
        parsed = parse_message(multipart("mixed", odd))
        assert parsed.text == "keep me"
        assert any("x-martian" in d for d in parsed.defects)


class TestAttachments:
    def test_rfc2231_filename_with_continuations_and_charset(self) -> None:
        disposition = (
            "attachment;\r\n filename*0*=UTF-8''%C3%9Cbersicht%20;\r\n"
            ' filename*1*=%E2%80%93%20Q3;\r\n filename*2=".xlsx"'
        )
        parsed = parse_message(multipart("mixed", PLAIN, attachment(disposition, b"PK\x03\x04")))
        (a,) = parsed.attachments
        assert a.filename == "Übersicht – Q3.xlsx"
        assert a.payload == b"PK\x03\x04" and a.size == 4

    def test_rfc2231_legacy_charset(self) -> None:
        disposition = "attachment; filename*=iso-8859-1''r%E9sum%E9.pdf"
        parsed = parse_message(multipart("mixed", attachment(disposition, b"x")))
        assert parsed.attachments[0].filename == "résumé.pdf"

    def test_name_from_content_type_and_encoded_words(self) -> None:
        att = part(
            'Content-Type: application/pdf; name="=?utf-8?B?0KHRh9C10YIucGRm?="\r\n'
            "Content-Transfer-Encoding: base64",
            base64.b64encode(b"%PDF").decode(),
        )
        parsed = parse_message(multipart("mixed", PLAIN, att))
        assert parsed.attachments[0].filename == "Счет.pdf"
        assert parsed.attachments[0].disposition == "attachment"

    def test_raw_8bit_filename(self) -> None:
        raw = multipart("mixed", attachment('attachment; filename="r\udce9sum\udce9.pdf"', b"x"))
        assert parse_message(raw).attachments[0].filename == "résumé.pdf"

    @pytest.mark.parametrize(
        ("given", "safe"),
        [
            ("../../etc/passwd", "passwd"),
            ("C:\\Users\\me\\evil.exe", "evil.exe"),
            ("line\r\nbreak.txt", "line break.txt"),
            ("invoice\u202etxt.exe", "invoicetxt.exe"),  # right-to-left override
            ("...", None),
            ("   ", None),
        ],
    )
    def test_filenames_are_made_safe(self, given: str, safe: str | None) -> None:
        raw = multipart("mixed", attachment(f"attachment; filename*=utf-8''{_pct(given)}", b"x"))
        assert parse_message(raw).attachments[0].filename == safe

    def test_long_filename_keeps_extension(self) -> None:
        raw = multipart("mixed", attachment(f'attachment; filename="{"x" * 300}.pdf"', b"x"))
        name = parse_message(raw).attachments[0].filename
        assert name is not None and len(name) <= 200 and name.endswith(".pdf")

    def test_over_the_limit_is_dropped_and_recorded(self) -> None:
        big = attachment('attachment; filename="big.bin"', b"\0" * 5000, "application/octet-stream")
        small = attachment(
            'attachment; filename="small.bin"', b"\1" * 10, "application/octet-stream"
        )
        parsed = parse_message(multipart("mixed", PLAIN, big, small), max_attachment_bytes=1000)
        big_a, small_a = parsed.attachments
        assert (big_a.filename, big_a.size, big_a.dropped, big_a.payload) == (
            "big.bin",
            5000,
            True,
            None,
        )
        assert (small_a.size, small_a.dropped, small_a.payload) == (10, False, b"\1" * 10)
        assert parsed.dropped_attachments == (big_a,)
        assert parsed.text == "Hello plain"  # bodies are never dropped

    def test_limit_applies_to_decoded_size(self) -> None:
        data = b"y" * 900  # 1,200+ bytes once base64 encoded
        parsed = parse_message(
            multipart("mixed", attachment("attachment", data)), max_attachment_bytes=900
        )
        assert not parsed.attachments[0].dropped

    def test_no_limit_keeps_everything(self) -> None:
        raw = typical_message(3, attachment_bytes=200_000)
        (pdf,) = parse_message(raw).attachments
        assert pdf.size == 200_000 and pdf.payload is not None
        assert pdf.filename == "Rechnung 4711 – Kopie.pdf"

    def test_inline_named_text_is_body_and_file(self) -> None:
        inline = part(
            'Content-Type: text/plain\r\nContent-Disposition: inline; filename="notes.txt"', "notes"
        )
        parsed = parse_message(multipart("mixed", PLAIN, inline))
        assert parsed.text == "Hello plain\nnotes"
        assert [(a.filename, a.disposition) for a in parsed.attachments] == [
            ("notes.txt", "inline")
        ]

    def test_display_name(self) -> None:
        parsed = parse_message(multipart("mixed", attachment("attachment", b"x")))
        assert parsed.attachments[0].filename is None
        assert parsed.attachments[0].display_name == "attachment.pdf"

    def test_forwarded_message_is_one_attachment_byte_for_byte(self) -> None:
        inner = "From: c@x\r\nSubject: Inner =?utf-8?q?subj=C3=A9ct?=\r\n\r\ninner body\r\n"
        forwarded = part("Content-Type: message/rfc822", inner)
        parsed = parse_message(multipart("mixed", PLAIN, forwarded))
        (eml,) = parsed.attachments
        assert eml.payload == inner.encode()
        assert eml.filename == "Inner subjéct.eml"
        assert parsed.text == "Hello plain"

    def test_uuencode(self) -> None:
        uu = "begin 644 hello.txt\r\n%:&5L;&\\`\r\n`\r\nend\r\n"
        att = part(
            "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-uuencode", uu
        )
        assert parse_message(multipart("mixed", att)).attachments[0].payload == b"hello"

    def test_broken_base64(self) -> None:
        att = part(
            'Content-Type: application/octet-stream; name="x"\r\nContent-Transfer-Encoding: base64',
            "aGVsbG8gd29ybGQ",  # padding missing
        )
        parsed = parse_message(multipart("mixed", att))
        assert parsed.attachments[0].payload == b"hello world"
        assert any("base64" in d for d in parsed.defects)


class TestBrokenStructure:
    def test_empty_input_is_the_only_error(self) -> None:
        for raw in (b"", b"   \r\n\r\n  "):
            with pytest.raises(MimeParseError):
                parse_message(raw)

    def test_missing_closing_boundary(self) -> None:
        raw = multipart("mixed", PLAIN).replace(b"--BOUNDARY--", b"")
        parsed = parse_message(raw)
        assert parsed.text.startswith("Hello plain")
        assert any("closing boundary" in d for d in parsed.defects)

    def test_boundary_never_appears(self) -> None:
        raw = (
            HEAD + 'Content-Type: multipart/mixed; boundary="nope"\r\n\r\nJust text\r\n'
        ).encode()
        parsed = parse_message(raw)
        assert parsed.text == "Just text\n"
        assert any("boundary" in d for d in parsed.defects)

    def test_no_boundary_parameter(self) -> None:
        raw = (HEAD + "Content-Type: multipart/mixed\r\n\r\nJust text\r\n").encode()
        assert parse_message(raw).text == "Just text\n"

    def test_boundary_prefix_of_another(self) -> None:
        inner = multipart("alternative", PLAIN, HTML, boundary="BOUNDARY_inner", head="").decode()
        raw = multipart("mixed", inner.lstrip("\r\n"), attachment("attachment", b"x"))
        parsed = parse_message(raw)
        assert parsed.text == "Hello plain" and parsed.html is not None
        assert len(parsed.attachments) == 1

    def test_boundary_with_trailing_space_and_lf_endings(self) -> None:
        raw = (
            b"Subject: lf\nContent-Type: multipart/mixed; boundary=b\n\n--b  \n"
            b"Content-Type: text/plain\n\nlf body\n--b-- \n"
        )
        assert parse_message(raw).text == "lf body"

    def test_part_without_headers(self) -> None:
        raw = multipart("mixed", "\r\nno headers here")
        assert parse_message(raw).text == "no headers here"

    def test_part_missing_blank_line(self) -> None:
        raw = multipart("mixed", "Content-Type: text/plain\r\nstraight into the body")
        assert parse_message(raw).text == "straight into the body"

    def test_digest_defaults_to_messages(self) -> None:
        raw = multipart("digest", "\r\nFrom: x@y\r\nSubject: digest item\r\n\r\nitem body")
        (item,) = parse_message(raw).attachments
        assert item.content_type == "message/rfc822" and item.filename == "digest item.eml"

    def test_deep_nesting_is_cut(self) -> None:
        body = PLAIN
        for level in range(100):
            body = multipart("mixed", body, boundary=f"b{level}", head="").decode()
        parsed = parse_message((HEAD + body).encode())
        assert any("nested deeper" in d for d in parsed.defects)

    def test_invalid_content_type(self) -> None:
        raw = (HEAD + "Content-Type: garbage\r\n\r\nstill text\r\n").encode()
        parsed = parse_message(raw)
        assert parsed.text == "still text\n"
        assert any("invalid content type" in d for d in parsed.defects)

    def test_not_a_message_at_all(self) -> None:
        parsed = parse_message(b"MIT License\n\nPermission is hereby granted\n")
        assert parsed.text.startswith("MIT License")
        assert parsed.headers.subject == ""

    def test_nul_and_broken_bytes_never_reach_the_result(self) -> None:
        from tests.mime.conftest import assert_storable

        raw = (
            b"Subject: a\x00b\r\nFrom: x\x00 <a@b>\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/pl\xe9in\r\nContent-Transfer-Encoding: \xe9\r\n\r\nx\x00y\r\n"
            b"--b\r\nContent-Type: text/plain; charset=utf-7\r\n\r\n+2D0-\r\n--b--\r\n"
        )
        parsed = parse_message(raw)
        assert_storable(parsed)
        assert parsed.headers.subject == "a\ufffdb"
        assert parsed.text == "x\ufffdy\n\ufffd"

    def test_random_bytes(self) -> None:
        import random

        rnd = random.Random(7)
        for _ in range(200):
            raw = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 400)))
            if raw.strip():
                parse_message(raw)

    def test_mutated_corpus_messages(self) -> None:
        # A small, seeded version of the fuzzing done while writing the
        # parser (80,000 mutations of the corpus, no failure): byte flips,
        # MIME-significant tokens inserted, spans deleted and duplicated.
        import random

        from tests.mime.conftest import assert_storable, corpus_files

        files = [p.read_bytes() for p in corpus_files() if 0 < p.stat().st_size < 60_000]
        tokens = [
            b"\r\n",
            b"--",
            b"=?",
            b"?=",
            b'"',
            b"<",
            b";",
            b"*0*=",
            b"%",
            b"\x1b$B",
            b"\xff",
            b":",
        ]
        rnd = random.Random(20240601)
        for _ in range(1500):
            raw = bytearray(rnd.choice(files))
            for _ in range(rnd.randint(1, 6)):
                pos = rnd.randrange(len(raw) + 1)
                op = rnd.random()
                if op < 0.3 and raw:
                    raw[min(pos, len(raw) - 1)] = rnd.randrange(256)
                elif op < 0.6:
                    raw[pos:pos] = rnd.choice(tokens)
                elif op < 0.8:
                    del raw[pos : pos + rnd.randrange(50)]
                else:
                    src = rnd.randrange(len(raw) + 1)
                    raw[pos:pos] = raw[src : src + rnd.randrange(200)]
            if bytes(raw).strip():
                assert_storable(
                    parse_message(bytes(raw), max_attachment_bytes=rnd.choice([None, 100]))
                )

    def test_truncated_messages(self) -> None:
        raw = typical_message(5, attachment_bytes=5000)
        for cut in range(1, len(raw), 97):
            chunk = raw[:cut]
            if chunk.strip():
                parse_message(chunk)

    def test_headers_match_parse_headers(self) -> None:
        from postroom.mail.mime import parse_headers

        raw = typical_message(9)
        assert parse_message(raw).headers == parse_headers(raw)


def _pct(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")
