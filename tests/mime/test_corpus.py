"""Every file of ../shared/corpus must parse, and known files must parse right.

The corpus holds the fixtures of two mail libraries (Ruby's mail gem and
php-mime-mail-parser): real, broken and legacy messages, plus the licence
files and an empty file that sit next to them. The expectations below come
from those libraries' own tests where they apply (subjects, addresses,
attachment names and sizes) and from reading the files where they do not.
"""

from __future__ import annotations

import hashlib
import pathlib
from datetime import UTC, datetime

import pytest

from postroom.mail.mime import (
    Address,
    MimeParseError,
    ParsedMessage,
    parse_headers,
    parse_message,
    sanitize_html,
)
from tests.mime.conftest import CORPUS, assert_storable, corpus_file, corpus_files

FILES = corpus_files()


def test_corpus_is_present() -> None:
    # A missing corpus would make the parametrised test below vanish
    # silently; fail instead.
    assert len(FILES) >= 150, f"corpus not found or incomplete at {CORPUS}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_every_corpus_file_parses(path: pathlib.Path) -> None:
    raw = path.read_bytes()
    headers = parse_headers(raw)
    if not raw.strip():
        with pytest.raises(MimeParseError):
            parse_message(raw)
        return
    parsed = parse_message(raw, max_attachment_bytes=1_000_000)
    assert parsed.headers == headers
    assert_storable(parsed)
    assert isinstance(parsed.text, str)
    for attachment in parsed.attachments:
        assert attachment.size >= 0
        assert (attachment.payload is None) == attachment.dropped
        if attachment.filename is not None:
            assert "/" not in attachment.filename and "\\" not in attachment.filename
    # What parsing produced must also survive display.
    if parsed.html is not None:
        sanitize_html(parsed.html)


def parse(relative: str, **kwargs: int) -> ParsedMessage:
    return parse_message(corpus_file(relative), **kwargs)


def names(parsed: ParsedMessage) -> list[tuple[str | None, int, str, str]]:
    return [(a.filename, a.size, a.content_type, a.disposition) for a in parsed.attachments]


# -- php-mime-mail-parser: expectations from its ParserTest -------------------


@pytest.mark.parametrize(
    ("name", "subject", "attachments"),
    [
        (
            "m0001",
            "Mail avec fichier attaché de 1ko",
            [("attach01", 2, "application/octet-stream", "attachment")],
        ),
        (
            "m0002",
            "Mail avec fichier attaché de 3ko",
            [("attach02", 2229, "application/octet-stream", "attachment")],
        ),
        ("m0003", "Mail de 14 Ko", [("attach03", 13369, "application/octet-stream", "attachment")]),
        (
            "m0004",
            "Mail de 800ko",
            [("attach04", 817938, "application/octet-stream", "attachment")],
        ),
        (
            "m0005",
            "Mail de 1500 Ko",
            [("attach05", 1635877, "application/octet-stream", "attachment")],
        ),
        (
            "m0010",
            "Mail de 800ko without filename",
            [(None, 817938, "application/octet-stream", "attachment")],
        ),
        ("m0011", "Hello World !", [("file.txt", 29, "text/plain", "attachment")]),
        (
            "m0013",
            "50032266 CAR 11_MNPA00A01_9PTX_H00 ATT N° 1467829. pdf",
            [
                (
                    "50032266 CAR 11_MNPA00A01_9PTX_H00 ATT N° 1467829.pdf",
                    10,
                    "application/pdf",
                    "attachment",
                )
            ],
        ),
        (
            "m0014",
            "Test message from Netscape Communicator 4.7",
            [("HasenundFrösche.txt", 747, "text/plain", "inline")],
        ),
        (
            "m0018",
            "[Korea] Name",
            [
                ("사진.JPG", 174, "image/jpeg", "attachment"),
                ("ATT00001.txt", 25, "text/plain", "attachment"),
            ],
        ),
        ("m0020", "1", [(None, 1432, "text/calendar", "attachment")]),
    ],
)
def test_php_fixtures_subjects_and_attachments(
    name: str, subject: str, attachments: list[tuple[str | None, int, str, str]]
) -> None:
    parsed = parse(f"php-mime-mail-parser/{name}")
    assert parsed.headers.subject == subject
    assert names(parsed) == attachments


def test_php_m0008_inline_images_by_cid() -> None:
    parsed = parse("php-mime-mail-parser/m0008")
    assert names(parsed) == [
        ("logo.jpg", 2695, "image/gif", "inline"),
        ("background.jpg", 18255, "image/gif", "inline"),
        ("attachment.txt", 2229, "text/plain", "attachment"),
    ]
    assert parsed.text.count("Please use an HTML capable mail program to read") == 1
    assert parsed.html is not None
    assert (
        parsed.html.count("<center><h1>Testing MIME E-mail composing with cid</h1></center>") == 1
    )
    inline = parsed.inline_images
    assert set(inline) == {
        "ae0357e57f04b8347f7621662cb63855.jpg",
        "4c837ed463ad29c820668e835a270e8a.jpg",
    }
    cid_map = {cid: f"/att/{a.filename}" for cid, a in inline.items()}
    shown = sanitize_html(parsed.html, cid_map=cid_map).html
    assert 'src="/att/logo.jpg"' in shown
    assert "cid:" not in shown


def test_php_m0008_attachment_content_is_exact() -> None:
    parsed = parse("php-mime-mail-parser/m0008")
    text_file = parsed.attachments[2].payload
    assert text_file is not None
    assert text_file.count(b"Sed pulvinar") == 4


def test_php_m0002_attachment_content() -> None:
    parsed = parse("php-mime-mail-parser/m0002")
    payload = parsed.attachments[0].payload
    assert payload is not None and payload.count(b"Lorem ipsum") == 8


def test_php_addresses() -> None:
    m0009 = parse_headers(corpus_file("php-mime-mail-parser/m0009"))
    assert (
        m0009.subject == "Ogone NIEUWE order Maurits PAYID: 951597484 / orderID: 456123 / status: 5"
    )
    assert m0009.from_ == (Address("Ogone", "noreply@ogone.com"),)
    m0023 = parse_headers(corpus_file("php-mime-mail-parser/m0023"))
    assert m0023.subject == "If you can read this you understand the example."
    assert m0023.from_ == (Address("Keith Moore", "moore@cs.utk.edu"),)
    assert m0023.to == (Address("Keld Jørn Simonsen", "keld@dkuug.dk"),)
    # Mixed encoded and plain words in one display name; domain lower-cased.
    assert m0023.cc == (Address("André Pirard", "PIRARD@vm1.ulg.ac.be"),)
    m0016 = parse_headers(corpus_file("php-mime-mail-parser/m0016"))
    assert m0016.from_ == (Address("Doug Sauder", "dwsauder@example.com"),)  # first From only


def test_php_m0021_words_split_across_lines_in_windows_1251() -> None:
    subject = parse_headers(corpus_file("php-mime-mail-parser/m0021")).subject
    assert (
        subject
        == "occurs when divided into an array, and the last e of the array! Путін хуйло!!!!!!"
    )


def test_php_m0022_utf8_header_and_mislabelled_body() -> None:
    parsed = parse("php-mime-mail-parser/m0022")
    assert parsed.headers.subject == "[PRJ-OTH] asdf árvíztűrő tükörfúrógép"
    assert parsed.headers.from_ == (Address("sendeär", "sender@test.com"),)
    # The body says utf-8 but is windows-1252; the fallback reads it and says so.
    assert "Det här är ett flerdelat meddelande" in parsed.text
    assert any("decoded as cp1252" in d for d in parsed.defects)


def test_php_issue116_outlook_iso_2022_jp_with_nec_symbols() -> None:
    # ISO-2022-JP carrying Cyrillic and the NEC "№" (row 13), which Python's
    # strict iso2022_jp codecs reject.
    subject = parse_headers(corpus_file("php-mime-mail-parser/issue116")).subject
    assert subject == "ЖД№41 от 28.09.2016"


def test_php_issue212_windows_1250_subject() -> None:
    subject = parse_headers(corpus_file("php-mime-mail-parser/issue212")).subject
    assert (
        subject == "Automatyczna odpowiedź: Piotrze, test z 6 miesięcy nauki ciągle na Ciebie czeka"
    )


def test_php_m0028_base64_label_on_plain_text() -> None:
    parsed = parse("php-mime-mail-parser/m0028")
    assert len(parsed.attachments) == 10
    assert all(a.payload == b"This is an attachment" for a in parsed.attachments)
    assert parsed.text == "This is the plain text content of the email"


def test_php_path_traversal_in_filename_is_neutralised() -> None:
    parsed = parse("php-mime-mail-parser/m0027")
    assert [a.filename for a in parsed.attachments] == ["1234.txt"]


def test_php_issue158a_forwarded_message_kept_byte_for_byte() -> None:
    raw = corpus_file("php-mime-mail-parser/issue158a")
    parsed = parse_message(raw)
    (forwarded,) = [a for a in parsed.attachments if a.content_type == "message/rfc822"]
    assert forwarded.filename == "Test 5.eml"
    assert forwarded.payload is not None and forwarded.payload in raw
    inner = parse_message(forwarded.payload)
    assert inner.headers.subject == "Test 5"


def test_php_issue408_hundreds_of_attachments() -> None:
    parsed = parse("php-mime-mail-parser/issue408.eml")
    assert parsed.headers.subject == "test mail with more than 300 attachments"
    assert len(parsed.attachments) > 300
    assert all(a.filename and a.filename.endswith(".txt") for a in parsed.attachments)


def test_php_large_attachment_dropped_over_limit() -> None:
    parsed = parse("php-mime-mail-parser/m0004", max_attachment_bytes=100_000)
    (attachment,) = parsed.attachments
    assert attachment.dropped and attachment.payload is None
    assert attachment.size == 817938 and attachment.filename == "attach04"
    assert parsed.dropped_attachments == (attachment,)


# -- Ruby mail gem fixtures ---------------------------------------------------


def test_mail_rfc6532_utf8_headers() -> None:
    headers = parse_headers(corpus_file("mikel-mail/rfc6532/utf8_headers.eml"))
    assert headers.subject == "Säying Hello"
    assert headers.from_ == (Address("Jöhn Doe", "jdöe@mächine.example"),)
    assert headers.to == (Address("Märy Smith", "märy@exämple.net"),)
    assert headers.defects == ()


@pytest.mark.parametrize(
    ("relative", "text"),
    [
        ("mikel-mail/multi_charset/japanese_iso_2022.eml", "すみません。\n\n"),
        ("mikel-mail/multi_charset/ks_c_5601-1987.eml", "스티해\n"),
        (
            "mikel-mail/multi_charset/japanese_shift_jis.eml",
            "あいうえお\n\nこのメールはテスト用のメールです。\n\n今後ともよろしくお願い申し上げます！\n",
        ),
        (
            "mikel-mail/multi_charset/japanese.eml",
            "かきくえこ\n\n-- \nhttp://lindsaar.net/\nRails, RSpec and Life blog....\n",
        ),
    ],
)
def test_mail_legacy_charset_bodies(relative: str, text: str) -> None:
    parsed = parse(relative)
    assert parsed.text == text
    assert parsed.defects == ()


def test_mail_japanese_filenames_rfc2231_continuations_and_encoded_words() -> None:
    long_name = parse("mikel-mail/multi_charset/japanese_attachment_long_name.eml")
    assert long_name.headers.subject == "まみむめも" * 10
    assert [a.filename for a in long_name.attachments] == ["かきくけこ" * 5 + ".txt"]
    short = parse("mikel-mail/multi_charset/japanese_attachment.eml")
    assert [a.filename for a in short.attachments] == ["てすと.txt"]
    assert short.attachments[0].payload == "this is a test\nこれわてすと".encode()


def test_mail_attachment_names() -> None:
    cases = {
        "attachment_emails/attachment_nonascii_filename.eml": "ciële.txt",
        "attachment_emails/attachment_with_base64_encoded_name.eml": "This is a test.pdf",
        "attachment_emails/attachment_with_quoted_filename.eml": "Eelanalüüsi päring.jpg",
        "attachment_emails/attachment_with_unquoted_name.eml": "This is a test.txt",
        "attachment_emails/attachment_content_disposition.eml": "api.rb",
        "attachment_emails/attachment_pdf.eml": "broken.pdf",
    }
    for relative, expected in cases.items():
        parsed = parse(f"mikel-mail/{relative}")
        assert [a.filename for a in parsed.attachments] == [expected], relative


def test_mail_pdf_with_emoji_subject_and_utf8_under_latin1_label() -> None:
    parsed = parse("mikel-mail/attachment_emails/attachment_pdf.eml")
    assert parsed.headers.subject == "Another PDF with 🎉 Unicode chars in it 🍿"
    (pdf,) = parsed.attachments
    assert pdf.payload is not None and pdf.payload.startswith(b"%PDF")
    assert pdf.size == 1026


def test_mail_uuencoded_and_odd_transfer_encodings_do_not_break() -> None:
    for relative in (
        "error_emails/content_transfer_encoding_x_uuencode.eml",
        "error_emails/content_transfer_encoding_with_semi_colon.eml",
        "error_emails/content_transfer_encoding_qp_with_space.eml",
        "error_emails/content_transfer_encoding_7-bit.eml",
    ):
        parsed = parse(f"mikel-mail/{relative}")
        assert parsed.text.strip(), relative
    semi = parse("mikel-mail/error_emails/content_transfer_encoding_with_semi_colon.eml")
    assert "=3D" not in (semi.html or "")  # "quoted-printable;" was still decoded
    seven = parse("mikel-mail/error_emails/content_transfer_encoding_7-bit.eml")
    assert seven.text.startswith("DISCOVERÆ CARD")  # UTF-8 under an iso-8859-1 label


def test_mail_broken_headers() -> None:
    bad_subject = parse_headers(corpus_file("mikel-mail/error_emails/bad_encoded_subject.eml"))
    assert bad_subject.subject == "TEST"  # charset "NONE" and missing padding
    invalid = parse_headers(corpus_file("mikel-mail/error_emails/invalid_subject_characters.eml"))
    assert (
        invalid.subject == "Formação FrenetikPolis: Mega Campanha Final Verão | Cursos de Setembro"
    )
    assert invalid.from_ == (Address("Formação Frenetikpolis", "info@formacaofrenetik.info"),)
    assert any("cp1252" in d for d in invalid.defects)
    weird_to = parse_headers(corpus_file("mikel-mail/error_emails/weird_to_header.eml"))
    assert [a.email for a in weird_to.to] == ["user-example@aol.com", "e-s-a-s-2200@app.ar.com"]
    at_name = parse_headers(
        corpus_file("mikel-mail/plain_emails/raw_email_with_at_display_name.eml")
    )
    assert [a.email for a in at_name.to] == [
        "smith@gmail.com",
        "raasdnil@gmail.com",
        "tom@gmail.com",
    ]
    madness = parse_headers(corpus_file("mikel-mail/error_emails/encoding_madness.eml"))
    assert madness.reply_to == (Address("KLAUS- HÄNSCHEL", ""),)


def test_mail_dates() -> None:
    good = parse_headers(corpus_file("mikel-mail/plain_emails/basic_email.eml"))
    assert good.date is not None
    assert good.date.astimezone(UTC) == datetime(2008, 11, 22, 4, 4, 59, tzinfo=UTC)
    for relative in ("error_emails/bad_date_header.eml", "error_emails/bad_date_header2.eml"):
        assert parse_headers(corpus_file(f"mikel-mail/{relative}")).date is None
    commented = parse_headers(
        corpus_file("mikel-mail/plain_emails/raw_email_string_in_date_field.eml")
    )
    assert commented.date == datetime.fromisoformat("2008-09-20T20:04:30+03:00")


def test_mail_threading_headers() -> None:
    refs = parse_headers(
        corpus_file("mikel-mail/error_emails/multiple_references_with_one_invalid.eml")
    )
    # Two References headers are joined; the broken third ID continues on a
    # line without leading whitespace, which ends the header block.
    assert refs.references == ("foo@bar.net", "baz@bar.net")
    empty = parse_headers(corpus_file("mikel-mail/error_emails/empty_in_reply_to.eml"))
    assert empty.in_reply_to is None
    bare = parse_headers(corpus_file("mikel-mail/error_emails/bad_date_header.eml"))
    assert bare.in_reply_to == "someone@yahoo.com"
    reply = parse_headers(corpus_file("mikel-mail/rfc2822/example14.eml"))
    assert reply.subject == "Re: TEST テストテスト"
    assert reply.normalized_subject == "TEST テストテスト"
    assert reply.thread_key_candidates() == ("rid_5582199198@msgid.example.com",)


def test_mail_mbox_from_line_and_garbage_first_line() -> None:
    mbox = parse_headers(corpus_file("mikel-mail/plain_emails/raw_email.eml"))
    assert mbox.from_ == (Address("Jamis Buck", "jamis@37signals.com"),)
    garbage = parse_message(corpus_file("mikel-mail/plain_emails/raw_email_incorrect_header.eml"))
    assert garbage.headers.subject  # headers after the broken first line still count


def test_php_issue84_continuations_without_indentation() -> None:
    # Every folded header lost its leading whitespace; the headers after the
    # orphaned lines still count, and the body is where the empty line is.
    parsed = parse("php-mime-mail-parser/issue84")
    assert parsed.headers.subject == "Re: [PHP-DEV] [RFC] Remove PHP 4 Constructors"
    assert parsed.headers.from_ == (Address("Ferenc Kovacs", "tyra3l@gmail.com"),)
    assert parsed.text.startswith("On Wed, Nov 19, 2014 at 12:11 AM, Levi Morrison")


def test_mail_bounces_keep_reports_as_attachments() -> None:
    parsed = parse("mikel-mail/multipart_report_emails/multi_address_bounce1.eml")
    assert parsed.text.startswith("This is the mail system at host lvmail01.LL.com.")
    assert [a.content_type for a in parsed.attachments] == [
        "message/delivery-status",
        "message/rfc822",
    ]


def test_mail_similar_boundaries_are_not_confused() -> None:
    parsed = parse("mikel-mail/mime_emails/email_with_similar_boundaries.eml")
    assert parsed.text == "Test\n"
    assert parsed.html is not None
    assert [a.filename for a in parsed.attachments] == ["LOGO.png"]


def test_corpus_payloads_are_stable() -> None:
    # The extraction is deterministic: the same bytes give the same parts.
    raw = corpus_file("php-mime-mail-parser/issue274.eml")
    first, second = parse_message(raw), parse_message(raw)
    digest = [hashlib.sha256(a.payload or b"").hexdigest() for a in first.attachments]
    assert digest == [hashlib.sha256(a.payload or b"").hexdigest() for a in second.attachments]
    assert [a.filename for a in first.attachments][:4] == [
        "Hello from SwiftMailer.docx",
        "Hello from SwiftMailer.pdf",
        "Hello from SwiftMailer.odt",
        "Cours-Tutoriels-Serge-Tahé-1568x268.png",
    ]
