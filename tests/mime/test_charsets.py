"""Legacy and broken charsets: every one decodes, with a defect when it had to guess."""

from __future__ import annotations

import pytest

from postroom.mail.mime import parse_message
from postroom.mail.mime.charsets import (
    clean_label,
    decode_body,
    decode_header_bytes,
    resolve,
)


def message(body: bytes, content_type: str, cte: str = "8bit") -> bytes:
    return (
        b"From: a@example.com\r\nSubject: charset test\r\nMIME-Version: 1.0\r\n"
        + f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n".encode()
        + body
    )


@pytest.mark.parametrize(
    ("label", "text", "encode_as"),
    [
        # Thai under the Windows name Python does not know.
        ("windows-874", "สวัสดีครับ ราคา 100€", "cp874"),
        ("tis-620", "สวัสดีครับ", "cp874"),
        # Hebrew, logical order: "-i" only states the direction.
        ("iso-8859-8-i", "שלום עולם", "iso8859_8"),
        ("ISO-8859-8-E", "שלום", "iso8859_8"),
        # GB2312 label on text with GBK-only characters (镕, 喆, 堃).
        ("gb2312", "朱镕基 张喆 王堃 你好", "gbk"),
        ("GB_2312-80", "中文邮件", "gb2312"),
        ("x-gbk", "中文邮件 镕", "gbk"),
        # Outlook's Korean label means cp949 (UHC): 똠 and 햏 are not in EUC-KR.
        ("ks_c_5601-1987", "안녕하세요 똠방각하 햏", "cp949"),
        ("euc-kr", "감사합니다 똠", "cp949"),
        # Shift_JIS label on cp932 text (NEC ①, IBM 髙).
        ("Shift_JIS", "①髙橋さん", "cp932"),
        ("big5", "中文測試", "big5"),
        ("windows-1251", "Привет", "cp1251"),
        ("koi8-r", "Привет", "koi8_r"),
        ("x-mac-cyrillic", "Привет", "mac_cyrillic"),
        ("iso-8859-2", "Zażółć gęślą jaźń", "iso8859_2"),
        ("cp-1250", "Zażółć gęślą jaźń", "cp1250"),
        ("Windows1252", "naïve café “quoted”", "cp1252"),
        ("iso-8859-15", "prix 10€", "iso8859_15"),
        ("utf-7", "Hi Mom -☺-!", "utf-7"),
    ],
)
def test_legacy_labels_decode_exactly(label: str, text: str, encode_as: str) -> None:
    got = decode_body(text.encode(encode_as), label)
    assert got.text == text
    assert got.defect is None


@pytest.mark.parametrize(
    "label",
    [
        '"utf-8"',
        "'UTF-8'",
        " utf-8 ",
        "utf-8;",
        "UTF-8 format=flowed",
        "charset=utf-8",
        "utf8",
        "utf-8*en",
    ],
)
def test_quoted_and_garbage_labels(label: str) -> None:
    assert resolve(label) == ("utf-8",)
    assert decode_body("Grüße".encode(), label).text == "Grüße"


def test_clean_label() -> None:
    assert clean_label('"ISO-8859-1"') == "iso-8859-1"
    assert clean_label("us-ascii (7bit)") == "us-ascii"
    assert clean_label(None) == ""


@pytest.mark.parametrize("label", ["unknown-8bit", "x-unknown", "X-UNKNOWN", "unknown", "", None])
def test_unknown_labels_use_the_fallbacks(label: str | None) -> None:
    assert resolve(label) is None
    utf8 = decode_body("Grüße aus Köln".encode(), label)
    assert utf8.text == "Grüße aus Köln" and utf8.codec == "utf-8"
    assert utf8.defect is not None
    legacy = decode_body("Grüße aus Köln".encode("cp1252"), label)
    assert legacy.text == "Grüße aus Köln" and legacy.codec == "cp1252"
    assert legacy.defect is not None


def test_unknown_label_with_hint_from_the_message() -> None:
    # KOI8-R bytes are also valid cp1252; the message's own charset wins.
    data = "Привет".encode("koi8_r")
    got = decode_body(data, "x-unknown", hint="koi8-r")
    assert got.text == "Привет"
    assert got.defect is not None and "koi8" in got.defect


def test_pure_ascii_needs_no_label() -> None:
    got = decode_body(b"plain old text", "x-unknown")
    assert got.text == "plain old text" and got.defect is None


def test_non_text_codec_names_are_not_charsets() -> None:
    # Python knows these codec names; a mail label naming them is garbage.
    for label in ("base64", "rot13", "zlib", "hex", "unicode_escape", "idna", "undefined"):
        assert resolve(label) is None, label
    got = decode_body(b"caf\xe9", "rot13")
    assert got.text == "café"


class TestIso2022Jp:
    def test_plain(self) -> None:
        text = "日本語のメールです。"
        assert decode_body(text.encode("iso2022_jp"), "ISO-2022-JP").text == text

    def test_outlook_nec_and_ibm_extensions(self) -> None:
        # ① (NEC row 13) and № in JIS X 0208 mode, as Outlook writes them:
        # Python's strict iso2022_jp codecs reject these.
        data = b'\x1b$B-!-b\x1b(B 41 \x1b$B$"$$\x1b(B'
        got = decode_body(data, "iso-2022-jp")
        assert got.text == "①№ 41 あい"
        assert got.defect is None

    def test_half_width_katakana(self) -> None:
        data = "ｶﾀｶﾅ".encode("iso2022_jp_ext")
        assert decode_body(data, "ISO-2022-JP").text == "ｶﾀｶﾅ"

    def test_jis_x_0212_variant(self) -> None:
        text = "丂"  # JIS X 0212 only: needs ISO-2022-JP-2
        got = decode_body(text.encode("iso2022_jp_2"), "iso-2022-jp")
        assert got.text == text

    @pytest.mark.parametrize(
        "label", ["jis", "csISO2022JP", "ISO-2022-JP-MS", "cp50220", "iso-2022-jp-2"]
    )
    def test_variant_labels(self, label: str) -> None:
        assert decode_body("テスト".encode("iso2022_jp"), label).text == "テスト"

    def test_unlabelled(self) -> None:
        # Old Japanese mail often omits the charset; the escapes give it away.
        assert decode_body("テスト".encode("iso2022_jp"), None).text == "テスト"

    def test_shift_jis_under_iso_2022_jp_label(self) -> None:
        got = decode_body("テストです".encode("cp932"), "iso-2022-jp")
        assert got.text == "テストです"
        assert got.defect is not None and "cp932" in got.defect

    def test_line_breaks_inside_two_byte_mode(self) -> None:
        data = b'\x1b$B$"\r\n$$\x1b(B'
        assert decode_body(data, "iso-2022-jp").text == "あ\r\nい"


def test_latin1_label_on_utf8_content() -> None:
    got = decode_body("DISCOVER® Card — naïve".encode(), "iso-8859-1")
    assert got.text == "DISCOVER® Card — naïve"
    assert got.defect is not None and "UTF-8" in got.defect


def test_latin1_label_reads_windows_1252_punctuation() -> None:
    assert decode_body(b"\x93quoted\x94 \x80 5", "iso-8859-1").text == "“quoted” € 5"


def test_utf8_label_on_windows_1252_content() -> None:
    got = decode_body("Det här är".encode("cp1252"), "utf-8")
    assert got.text == "Det här är"
    assert got.defect is not None


def test_replacement_is_recorded() -> None:
    # Valid UTF-8 with one broken byte: keep the rest, mark the damage.
    data = "Grüße ".encode() + b"\xff" + " Köln".encode()
    got = decode_body(data, "utf-8")
    assert got.text == "Grüße \ufffd Köln"
    assert got.defect is not None and "U+FFFD" in got.defect


def test_missing_charset_with_undecodable_bytes_falls_back_to_replacement() -> None:
    # 0x81 is undefined in windows-1252 and the bytes are not UTF-8.
    got = decode_body(b"a\x81\xffb", None)
    assert got.text == "a\ufffd\ufffdb"
    assert got.defect is not None and "U+FFFD" in got.defect


def test_bom_is_dropped() -> None:
    assert decode_body(b"\xef\xbb\xbfhello \xc3\xa9", "utf-8").text == "hello é"


class TestHeaderBytes:
    def test_rfc6532_utf8(self) -> None:
        got = decode_header_bytes("Grüße".encode())
        assert got.text == "Grüße" and got.defect is None

    def test_hint_then_cp1252_then_latin1(self) -> None:
        assert decode_header_bytes("Привет".encode("koi8_r"), "koi8-r").text == "Привет"
        cp = decode_header_bytes("Verão ™".encode("cp1252"))
        assert cp.text == "Verão ™" and cp.codec == "cp1252"
        latin = decode_header_bytes(b"\x81\xe9")  # 0x81 is not in cp1252
        assert latin.text == "\x81é" and latin.codec == "latin-1"
        assert latin.defect is not None


def test_legacy_charsets_through_parse_message() -> None:
    cases = [
        ("text/plain; charset=windows-874", "ภาษาไทย".encode("cp874"), "ภาษาไทย"),
        ("text/plain; charset=iso-8859-8-i", "עברית".encode("iso8859_8"), "עברית"),
        ('text/plain; charset="GB2312"', "镕".encode("gbk"), "镕"),
        ("text/plain; charset=ks_c_5601-1987", "똠".encode("cp949"), "똠"),
        ("text/plain; charset=unknown-8bit", "Köln".encode(), "Köln"),
        ("text/plain; charset=x-unknown", "Köln".encode("cp1252"), "Köln"),
        ("text/plain", "Köln".encode("cp1252"), "Köln"),
        ("text/plain; charset=iso-2022-jp", b"\x1b$B-!\x1b(B", "①"),
    ]
    for content_type, body, text in cases:
        parsed = parse_message(message(body, content_type))
        assert parsed.text == text, content_type


def test_html_meta_charset_when_the_header_has_none() -> None:
    html = '<html><head><meta charset="koi8-r"></head><body>Привет</body></html>'
    parsed = parse_message(message(html.encode("koi8_r"), "text/html"))
    assert parsed.html == html
    assert parsed.text == "Привет"
