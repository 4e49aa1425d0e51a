"""Deterministic generator of a realistic mailbox for the sync benchmark.

Every message is built from a seeded :class:`random.Random`, so the same (count, seed) gives
the same bytes on every machine and every run. The mix aims at what a business mailbox
holds (figures of the whole mailbox, wire sizes with CRLF):

* sizes from a log-normal distribution, sampled stratified so every mailbox has the
  intended shape: median about 13 KB, mean about 50 KB, 99th percentile about 700 KB,
  capped at 1.6 MB; plus one message in 10,000 of 5-15 MB (a scanned document);
* plain text, ``multipart/alternative`` text + HTML (newsletters with remote images and
  tables), ``multipart/mixed`` with base64 attachments (PDF, JPEG, ZIP, CSV, calendar
  invitations), forwarded messages (``message/rfc822``);
* threads: about a third of the messages answer an earlier one (``In-Reply-To`` and
  ``References``, ``Re:`` subjects);
* languages and charsets: English in US-ASCII / UTF-8, Polish in ISO-8859-2
  (quoted-printable, RFC 2047 ``Q`` headers, RFC 2231 file names), Japanese in ISO-2022-JP
  (7bit, RFC 2047 ``B`` headers);
* about 0.3 % broken messages: raw 8-bit header bytes, unknown charsets, a missing closing
  boundary, invalid base64, a multipart without boundary, a garbage date, no Message-ID,
  Shift_JIS bytes labelled ISO-2022-JP, an unfolded 2,000-character header line.

Messages are produced with LF line endings, as they are stored in a Maildir; the sizes
reported are the wire sizes (CRLF), as IMAP clients download them.
"""

from __future__ import annotations

import base64
import binascii
import math
import random
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime
from statistics import NormalDist
from urllib.parse import quote

# Bump when the output changes, so cached mailboxes of an older generator are not reused.
GENERATOR_VERSION = 5

# Log-normal size model (wire bytes): median e^MU, sigma chosen for mean ~50 KB, p99 ~700 KB.
SIZE_MU = math.log(12_200)
SIZE_SIGMA = 1.74
SIZE_MIN = 1_200
SIZE_MAX = 1_600_000
# Above the log-normal body, a very few big scans (5-15 MB), as real mailboxes have.
HUGE_RATE = 0.0001
HUGE_MIN, HUGE_MAX = 5_000_000, 15_000_000

BROKEN_RATE = 0.003
REPLY_RATE = 0.34
POLISH_RATE = 0.08
JAPANESE_RATE = 0.05
UNSEEN_TAIL = 0.03  # the newest 3 % are unread and sit in new/

ENGLISH_WORDS = (
    "the of and to in is for on that with as this by be are from at it or an was have we "
    "will your our you not can all has more about which their one been they there would "
    "invoice order delivery payment meeting schedule report quarter budget contract review "
    "attached please find below regards thanks update project customer account shipment "
    "warehouse pallet tracking number reference agreement proposal draft final version "
    "approval deadline friday monday tomorrow next week office team manager support ticket "
    "issue resolved pending confirm receipt balance due amount total tax vat net gross "
    "reminder overdue statement renewal subscription license server backup migration "
    "release notes feedback question answer follow up call agenda minutes action items "
    "price quote discount catalogue sample product supplier logistics customs declaration"
).split()

POLISH_WORDS = (
    "zażółć gęślą jaźń faktura zamówienie dostawa płatność spotkanie termin proszę "
    "dziękuję pozdrawiam uprzejmie informuję że w załączniku przesyłam umowę księgowość "
    "wiadomość odpowiedź środa piątek poniedziałek jutro następny tydzień kwota należność "
    "przelew rachunek źdźbło łódź ćma żółw gęś źródło więcej mniej będzie został została "
    "również jeżeli ponieważ chciałbym chciałabym potwierdzić odbiór przesyłki magazyn "
    "kierownik dział sprzedaży oferta cennik rabat próbka dostawca spedycja celna"
).split()

JAPANESE_WORDS = (
    "お世話になっております 会議 請求書 見積書 添付 資料 確認 明日 来週 予定 "
    "ありがとうございます よろしくお願いします 本日 担当 営業部 経理 発注 納品 "
    "支払い 期限 契約 更新 修正 送付 返信 打ち合わせ 議事録 報告 進捗 問題 対応 "
    "商品 在庫 出荷 配送 倉庫 価格 割引 提案 承認 完了 ご査収ください 株式会社 "
    "東京 大阪 名古屋 月曜日 金曜日 午前 午後 時間 連絡 以上"
).split()

ENGLISH_NAMES = (
    "Alice Johnson",
    "Bob Smith",
    "Carol White",
    "David Brown",
    "Eve Davis",
    "Frank Miller",
    "Grace Wilson",
    "Henry Moore",
    "Irene Taylor",
    "Jack Anderson",
    "Karen Thomas",
    "Leo Martin",
    "Mia Thompson",
    "Noah Garcia",
    "Olivia Martinez",
    "Paul Robinson",
)
POLISH_NAMES = (
    "Łukasz Wróbel",
    "Małgorzata Żak",
    "Paweł Kościuszko",
    "Agnieszka Gęsiarz",
    "Bartłomiej Świątek",
    "Żaneta Łęcka",
    "Michał Wójcik",
    "Zofia Kowalczyk",
)
JAPANESE_NAMES = ("山田 太郎", "佐藤 花子", "鈴木 一郎", "高橋 美咲", "田中 健", "伊藤 由美")
DOMAINS = (
    "example.com",
    "example.org",
    "example.net",
    "firma.example.pl",
    "kaisha.example.jp",
    "supplier.example",
    "logistics.example",
    "bank.example",
    "newsletter.example",
)
MAILERS = (
    "Microsoft Outlook 16.0",
    "Mozilla Thunderbird 115.6",
    "Apple Mail (2.3774)",
    "Roundcube Webmail/1.6.5",
    "Postfix-generated",
    "Evolution 3.46.4",
)

ATTACHMENT_TYPES = (
    # (content type, extension, magic prefix, weight)
    ("application/pdf", "pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", 45),
    ("image/jpeg", "jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", 25),
    ("image/png", "png", b"\x89PNG\r\n\x1a\n", 10),
    ("application/zip", "zip", b"PK\x03\x04\x14\x00\x00\x00", 8),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xlsx",
        b"PK\x03\x04\x14\x00\x06\x00",
        12,
    ),
)

BROKEN_KINDS = (
    "raw_8bit_headers",
    "unknown_charset",
    "missing_close_boundary",
    "bad_base64",
    "multipart_without_boundary",
    "garbage_date",
    "sjis_labelled_iso2022jp",
    "long_unfolded_header",
)


@dataclass(frozen=True)
class GeneratedMessage:
    """One message as a Maildir file holds it (LF line endings)."""

    index: int
    raw: bytes
    date: datetime
    flags: str  # Maildir info flags, e.g. "S" or "FS"; empty for unread
    kind: str

    @property
    def wire_size(self) -> int:
        """Size with CRLF line endings, as IMAP serves it (RFC822.SIZE)."""
        return len(self.raw) + self.raw.count(b"\n")


@dataclass
class _ThreadNode:
    message_id: str
    references: list[str]
    subject: str
    language: str


class MailGenerator:
    """Generates ``count`` messages for ``seed``, oldest first."""

    def __init__(self, count: int, seed: int) -> None:
        self.count = count
        self.seed = seed
        self.rng = random.Random(seed)
        self._recent: list[_ThreadNode] = []
        pool_rng = random.Random(seed ^ 0x5EED)
        self._paragraphs = {
            "en": [self._paragraph(pool_rng, ENGLISH_WORDS, " ", 72) for _ in range(400)],
            "pl": [self._paragraph(pool_rng, POLISH_WORDS, " ", 72) for _ in range(200)],
            "ja": [self._paragraph(pool_rng, JAPANESE_WORDS, "", 34) for _ in range(200)],
        }
        # Stratified sizes: one draw from each of ``count`` equal slices of the distribution,
        # shuffled. The mailbox then has the intended median, mean and p99 for any count and
        # seed, instead of whatever a few heavy-tailed draws make of them.
        size_rng = random.Random(seed ^ 0x512E)
        self._sizes = [size_at((i + size_rng.random()) / count) for i in range(count)]
        size_rng.shuffle(self._sizes)
        self._start = datetime(2022, 1, 3, 8, 0, tzinfo=UTC)
        # Spread the mailbox over about three years, whatever its size.
        self._mean_gap = 3 * 365 * 86_400 / max(count, 1)

    # ------------------------------------------------------------------ text material

    @staticmethod
    def _paragraph(
        rng: random.Random, words: tuple[str, ...] | list[str], sep: str, width: int
    ) -> str:
        sentences = []
        for _ in range(rng.randint(2, 6)):
            chosen = [rng.choice(words) for _ in range(rng.randint(5, 18))]
            sentence = sep.join(chosen)
            sentences.append(sentence[:1].upper() + sentence[1:] + ("。" if sep == "" else "."))
        text = sep.join(sentences)
        if sep:
            return textwrap.fill(text, width=width)
        # Japanese has no spaces: break every ``width`` characters.
        return "\n".join(text[i : i + width] for i in range(0, len(text), width))

    def _body_text(self, language: str, approx_chars: int) -> str:
        pool = self._paragraphs[language]
        parts: list[str] = []
        total = 0
        while total < approx_chars:
            paragraph = self.rng.choice(pool)
            parts.append(paragraph)
            total += len(paragraph) + 2
        return "\n\n".join(parts)

    def _subject_words(self, language: str) -> str:
        words = {"en": ENGLISH_WORDS, "pl": POLISH_WORDS, "ja": JAPANESE_WORDS}[language]
        sep = "" if language == "ja" else " "
        chosen = sep.join(self.rng.choice(words) for _ in range(self.rng.randint(2, 7)))
        return chosen[:1].upper() + chosen[1:] + f" #{self.rng.randint(100, 99999)}"

    # ------------------------------------------------------------------ headers

    @staticmethod
    def _encode_words(text: str, charset: str) -> str:
        if text.isascii():
            return text
        return Header(text, charset).encode(maxlinelen=76, linesep="\n")

    def _address(self, language: str, charset: str) -> str:
        names = {"en": ENGLISH_NAMES, "pl": POLISH_NAMES, "ja": JAPANESE_NAMES}[language]
        name = self.rng.choice(names)
        local = f"user{self.rng.randint(1, 400)}"
        domain = self.rng.choice(DOMAINS)
        if name.isascii():
            return f'"{name}" <{local}@{domain}>'
        return f"{self._encode_words(name, charset)} <{local}@{domain}>"

    def _received(self, when: datetime) -> list[str]:
        lines = []
        hop = when
        for _ in range(self.rng.randint(1, 3)):
            hop -= timedelta(seconds=self.rng.randint(1, 30))
            ip = f"192.0.2.{self.rng.randint(1, 254)}"
            lines.append(
                f"Received: from mx{self.rng.randint(1, 9)}.{self.rng.choice(DOMAINS)} "
                f"(mx.{self.rng.choice(DOMAINS)} [{ip}])\n\tby mail.example.test (Postfix) "
                f"with ESMTPS id {self.rng.getrandbits(40):010X}\n\tfor "
                f"<bench@example.test>; {format_datetime(hop)}"
            )
        return lines

    def _dkim(self) -> str:
        b = base64.b64encode(self.rng.randbytes(256)).decode()
        bh = base64.b64encode(self.rng.randbytes(32)).decode()
        folded = "\n\t ".join(b[i : i + 70] for i in range(0, len(b), 70))
        return (
            f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={self.rng.choice(DOMAINS)};\n"
            f"\ts=selector1; t={self.rng.getrandbits(31)};\n\th=from:to:subject:date:message-id;\n"
            f"\tbh={bh};\n\tb={folded}"
        )

    # ------------------------------------------------------------------ parts

    def _text_part(self, language: str, chars: int) -> tuple[str, bytes]:
        """(content-type header block, encoded body) of a text/plain part."""
        text = self._body_text(language, chars)
        if language == "pl":
            body = binascii.b2a_qp(text.replace("\n", "\r\n").encode("iso-8859-2"))
            body = body.replace(b"=0D\n", b"\n").replace(b"\r\n", b"\n")
            return (
                'Content-Type: text/plain; charset="iso-8859-2"\n'
                "Content-Transfer-Encoding: quoted-printable",
                body,
            )
        if language == "ja":
            return (
                'Content-Type: text/plain; charset="ISO-2022-JP"\nContent-Transfer-Encoding: 7bit',
                text.encode("iso2022_jp"),
            )
        if self.rng.random() < 0.3:
            text = text.replace("regards", "regards — ✓").replace("thanks", "thanks ☺")
            return (
                'Content-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: 8bit',
                text.encode("utf-8"),
            )
        return (
            'Content-Type: text/plain; charset="us-ascii"\nContent-Transfer-Encoding: 7bit',
            text.encode("ascii"),
        )

    def _html_part(self, language: str, chars: int) -> tuple[str, bytes]:
        text = self._body_text(language, max(200, chars // 2))
        rows = []
        for paragraph in text.split("\n\n"):
            rows.append(
                '<tr><td style="padding:12px 24px;font-family:Arial,Helvetica,sans-serif;'
                f'font-size:14px;line-height:20px;color:#333333">{paragraph}</td></tr>'
            )
            if self.rng.random() < 0.15:
                rows.append(
                    f'<tr><td><img src="https://cdn.{self.rng.choice(DOMAINS)}/img/'
                    f'{self.rng.getrandbits(64):016x}.png" width="600" height="200" alt=""></td></tr>'
                )
        html = (
            '<!DOCTYPE html><html><head><meta charset="utf-8"><style>body{margin:0}'
            ".btn{background:#0a66c2;color:#fff}</style></head><body>\n"
            '<table role="presentation" width="100%" cellpadding="0" cellspacing="0">\n'
            + "\n".join(rows)
            + '\n<tr><td><a class="btn" href="https://track.example/click?u='
            + f'{self.rng.getrandbits(96):024x}">Open</a>'
            + f'<img src="https://track.example/open/{self.rng.getrandbits(64):016x}.gif" width="1" height="1">'
            + "</td></tr>\n</table></body></html>"
        )
        # Pad newsletter-like HTML towards the size asked for with repeated table rows.
        padding: list[str] = []
        missing = chars - len(html)
        while missing > 0:
            row = rows[self.rng.randrange(len(rows))]
            padding.append(row)
            missing -= len(row) + 1
        if padding:
            html = html.replace("</table>", "\n".join(padding) + "\n</table>", 1)
        charset = {"pl": "iso-8859-2", "ja": "utf-8"}.get(language, "utf-8")
        body = binascii.b2a_qp(html.encode(charset)).replace(b"\r\n", b"\n")
        return (
            f'Content-Type: text/html; charset="{charset}"\n'
            "Content-Transfer-Encoding: quoted-printable",
            body,
        )

    def _attachment(self, language: str, raw_size: int) -> tuple[str, bytes]:
        content_type, ext, magic, _w = self.rng.choices(
            ATTACHMENT_TYPES, weights=[t[3] for t in ATTACHMENT_TYPES]
        )[0]
        payload = magic + self.rng.randbytes(max(0, raw_size - len(magic)))
        stem = {
            "en": f"{self.rng.choice(('invoice', 'report', 'photo', 'scan', 'contract'))}-"
            f"{self.rng.randint(1000, 9999)}",
            "pl": f"Faktura_zażółć_{self.rng.randint(1, 999)}",
            "ja": f"見積書_{self.rng.randint(1, 99)}",
        }[language]
        filename = f"{stem}.{ext}"
        if filename.isascii():
            name_params = f'; name="{filename}"', f'; filename="{filename}"'
        elif language == "ja" and self.rng.random() < 0.5:
            # Common in the wild though not standard: RFC 2047 inside a parameter.
            encoded = Header(filename, "iso-2022-jp").encode(maxlinelen=998)
            name_params = f'; name="{encoded}"', f'; filename="{encoded}"'
        else:
            encoded = quote(filename, safe="")
            name_params = "", f";\n filename*=utf-8''{encoded}"
        headers = (
            f"Content-Type: {content_type}{name_params[0]}\n"
            "Content-Transfer-Encoding: base64\n"
            f"Content-Disposition: attachment{name_params[1]}"
        )
        return headers, _base64_lines(payload)

    def _calendar(self) -> tuple[str, bytes]:
        start = self._start + timedelta(days=self.rng.randint(0, 900))
        ics = (
            "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Bench//EN\nMETHOD:REQUEST\nBEGIN:VEVENT\n"
            f"UID:{self.rng.getrandbits(64):016x}@example.test\n"
            f"DTSTART:{start:%Y%m%dT%H%M%SZ}\nDURATION:PT1H\nSUMMARY:Weekly sync\n"
            "END:VEVENT\nEND:VCALENDAR\n"
        )
        return (
            'Content-Type: text/calendar; charset="utf-8"; method=REQUEST\n'
            "Content-Transfer-Encoding: 7bit",
            ics.encode(),
        )

    def _boundary(self) -> str:
        return f"----=_Part_{self.rng.getrandbits(64):016x}"

    @staticmethod
    def _multipart(
        subtype: str, boundary: str, parts: list[tuple[str, bytes]]
    ) -> tuple[str, bytes]:
        chunks: list[bytes] = [b"This is a multi-part message in MIME format.\n"]
        for headers, body in parts:
            chunks.append(f"\n--{boundary}\n{headers}\n\n".encode())
            chunks.append(body.rstrip(b"\n") + b"\n")
        chunks.append(f"\n--{boundary}--\n".encode())
        return f'Content-Type: multipart/{subtype};\n boundary="{boundary}"', b"".join(chunks)

    # ------------------------------------------------------------------ messages

    def _target_size(self, index: int) -> int:
        return self._sizes[index]

    def _body(self, language: str, target: int) -> tuple[str, bytes, str]:
        """(content headers, body, kind) of a message whose whole size should be ~target."""
        budget = max(300, target - 1_800)  # room for the header block
        roll = self.rng.random()
        if budget < 5_000:
            if roll < 0.65:
                return (*self._text_part(language, budget), "text")
            return (*self._alternative(language, budget), "alternative")
        if budget < 28_000:
            if roll < 0.55:
                return (*self._alternative(language, budget), "alternative")
            if roll < 0.80:
                return (*self._text_part(language, budget), "text")
            return (*self._mixed(language, budget), "attachment")
        if budget < 200_000 and roll < 0.12:
            return (*self._alternative(language, budget), "newsletter")
        if roll < 0.04:
            return (*self._forward(language, budget), "forward")
        return (*self._mixed(language, budget), "attachment")

    def _alternative(self, language: str, budget: int) -> tuple[str, bytes]:
        text_chars = max(200, budget // 4)
        parts = [
            self._text_part(language, text_chars),
            self._html_part(language, budget - text_chars),
        ]
        return self._multipart("alternative", self._boundary(), parts)

    def _mixed(self, language: str, budget: int) -> tuple[str, bytes]:
        text_chars = min(budget // 3, self.rng.randint(400, 6_000))
        if self.rng.random() < 0.4:
            first = self._alternative(language, text_chars * 2)
            text_bytes = len(first[1])
        else:
            first = self._text_part(language, text_chars)
            text_bytes = len(first[1])
        parts = [first]
        if self.rng.random() < 0.05:
            parts.append(self._calendar())
        remaining = max(200, budget - text_bytes - 400)
        count = 1 if remaining < 60_000 else self.rng.choice((1, 1, 2, 3))
        for share in self._split(remaining, count):
            # base64 of 57 bytes is a 76-character line plus CRLF: 78 wire bytes.
            parts.append(self._attachment(language, share * 57 // 78))
        return self._multipart("mixed", self._boundary(), parts)

    def _forward(self, language: str, budget: int) -> tuple[str, bytes]:
        inner_headers, inner_body, _kind = self._body(language, max(2_000, budget - 3_000))
        inner = (
            f"From: {self._address(language, 'utf-8')}\nTo: bench@example.test\n"
            f"Subject: {self._encode_words(self._subject_words(language), 'utf-8')}\n"
            f"Date: {format_datetime(self._start)}\nMessage-ID: <fwd.{self.rng.getrandbits(64):x}@example.test>\n"
            f"MIME-Version: 1.0\n{inner_headers}\n\n"
        ).encode() + inner_body
        parts = [
            self._text_part(language, 300),
            ("Content-Type: message/rfc822\nContent-Disposition: attachment", inner),
        ]
        return self._multipart("mixed", self._boundary(), parts)

    def _split(self, total: int, count: int) -> list[int]:
        if count == 1:
            return [total]
        weights = [self.rng.random() + 0.2 for _ in range(count)]
        scale = total / sum(weights)
        return [int(w * scale) for w in weights]

    def _language(self) -> str:
        roll = self.rng.random()
        if roll < POLISH_RATE:
            return "pl"
        if roll < POLISH_RATE + JAPANESE_RATE:
            return "ja"
        return "en"

    def _thread_parent(self) -> _ThreadNode | None:
        if self._recent and self.rng.random() < REPLY_RATE:
            # Most replies answer something recent; some revive an old thread.
            window = self._recent[-200:] if self.rng.random() < 0.9 else self._recent
            return self.rng.choice(window)
        return None

    def messages(self) -> Iterator[GeneratedMessage]:
        when = self._start
        for index in range(self.count):
            when += timedelta(seconds=self.rng.expovariate(1 / self._mean_gap))
            yield self._message(index, when)

    def _message(self, index: int, when: datetime) -> GeneratedMessage:
        parent = self._thread_parent()
        language = parent.language if parent else self._language()
        charset = {"pl": "iso-8859-2", "ja": "iso-2022-jp"}.get(language, "utf-8")
        subject = (
            (parent.subject if parent.subject.startswith("Re: ") else f"Re: {parent.subject}")
            if parent
            else self._subject_words(language)
        )
        message_id = f"<{index}.{self.rng.getrandbits(48):012x}.{self.seed}@bench.example.test>"
        references = [*parent.references, parent.message_id][-12:] if parent else []
        offset = timezone(timedelta(hours=self.rng.choice((-8, -5, 0, 1, 2, 9))))
        target = self._target_size(index)
        content_headers, body, kind = self._body(language, target)

        headers = [
            *self._received(when),
            *([self._dkim()] if self.rng.random() < 0.6 else []),
            f"From: {self._address(language, charset)}",
            f'To: {self._address("en", charset)}, "Bench" <bench@example.test>',
        ]
        if self.rng.random() < 0.25:
            headers.append(f"Cc: {self._address(language, charset)}")
        headers += [
            f"Subject: {self._encode_words(subject, charset)}",
            f"Date: {format_datetime(when.astimezone(offset))}",
            f"Message-ID: {message_id}",
        ]
        if parent:
            headers.append(f"In-Reply-To: {parent.message_id}")
            headers.append("References: " + "\n ".join(references))
        headers += [
            f"X-Mailer: {self.rng.choice(MAILERS)}",
            "MIME-Version: 1.0",
            content_headers,
        ]

        broken = ""
        if self.rng.random() < BROKEN_RATE:
            broken = self.rng.choice(BROKEN_KINDS)
            headers, body = self._break(broken, headers, body)
        raw = ("\n".join(headers) + "\n\n").encode("utf-8", "surrogateescape") + body
        if not raw.endswith(b"\n"):
            raw += b"\n"

        node = _ThreadNode(message_id, references, subject, language)
        self._recent.append(node)
        if len(self._recent) > 5_000:
            del self._recent[:1_000]

        if index >= self.count * (1 - UNSEEN_TAIL):
            flags = ""
        else:
            flags = "FS" if self.rng.random() < 0.03 else ("RS" if parent else "S")
        return GeneratedMessage(index, raw, when, flags, f"broken:{broken}" if broken else kind)

    def _break(self, kind: str, headers: list[str], body: bytes) -> tuple[list[str], bytes]:
        """Damage a message the way real mail is damaged."""
        if kind == "raw_8bit_headers":
            # Latin-1 bytes straight in the header, no RFC 2047 (decoded as surrogates above).
            raw_subject = "Subject: Zam\udcf3wienie nr 5 \udce4\udcf6\udcfc"
            headers = [h for h in headers if not h.startswith("Subject:")] + [raw_subject]
            headers.append("From: M\udcfcller <mueller@example.com>")
        elif kind == "unknown_charset":
            headers = [h.replace('charset="us-ascii"', 'charset="x-unknown-8bit"') for h in headers]
            body = body.replace(b"the", b"th\xe9\xff", 40)
        elif kind == "missing_close_boundary":
            cut = body.rfind(b"\n--")
            body = body[:cut] if cut > 0 else body
            body = body[: max(200, len(body) * 3 // 4)]
        elif kind == "bad_base64":
            body = body.replace(b"A", b"!", 50).replace(b"=\n", b"\n")
        elif kind == "multipart_without_boundary":
            headers = [*headers[:-1], "Content-Type: multipart/mixed"]
        elif kind == "garbage_date":
            headers = [
                ("Date: Thirty-first of Smarch, 20XX 25:61" if h.startswith("Date:") else h)
                for h in headers
                if not h.startswith("Message-ID:")
            ]
        elif kind == "sjis_labelled_iso2022jp":
            headers = [
                *headers[:-1],
                'Content-Type: text/plain; charset="ISO-2022-JP"',
                "Content-Transfer-Encoding: 8bit",
            ]
            body = "お世話になっております。請求書を添付します。\n".encode("shift_jis") * 20
        elif kind == "long_unfolded_header":
            headers.append("X-Long: " + "a" * 2_000)
        return headers, body


def size_at(quantile: float) -> int:
    """The message size (wire bytes) at ``quantile`` (0..1) of the size distribution."""
    if quantile > 1 - HUGE_RATE:
        share = (quantile - (1 - HUGE_RATE)) / HUGE_RATE
        return int(HUGE_MIN + (HUGE_MAX - HUGE_MIN) * share)
    size = int(math.exp(SIZE_MU + SIZE_SIGMA * NormalDist().inv_cdf(quantile)))
    return max(SIZE_MIN, min(SIZE_MAX, size))


def _base64_lines(payload: bytes) -> bytes:
    """base64 in 76-character lines (as ``base64.encodebytes``, a little faster)."""
    encoded = base64.b64encode(payload)
    return b"\n".join([encoded[i : i + 76] for i in range(0, len(encoded), 76)]) + b"\n"


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Linear-interpolated percentile of already sorted values."""
    if not sorted_values:
        return 0.0
    position = (len(sorted_values) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)
