"""Messages built in code for the MIME tests and the speed script."""

from __future__ import annotations

import base64
import quopri
import random

CORPUS_LINES = [
    "Thanks for the update on the shipment, we will check the pallets on arrival.",
    "Die Lieferung wurde heute verschickt; die Rechnung folgt separat per Post.",
    "Merci pour votre message, nous revenons vers vous dès que possible.",
    "Please find the revised quotation attached, valid until the end of the month.",
    "Zamówienie zostało przyjęte do realizacji, termin dostawy to 14 dni.",
]


def typical_message(seed: int = 1, *, attachment_bytes: int = 0) -> bytes:
    """A realistic ~13 KB multipart/alternative message (headers of a big
    provider, quoted-printable text and HTML), optionally with a PDF."""
    rnd = random.Random(seed)
    text_lines = [rnd.choice(CORPUS_LINES) for _ in range(48)]
    text = "\n".join(text_lines) + "\n\n-- \nJane Example | Example Logistics GmbH\n"
    html = (
        "<html><head><style>p{margin:0}</style></head><body>"
        + "".join(f'<p style="font-family:Arial;color:#333">{line}</p>' for line in text_lines)
        + '<table width="100%"><tr><td><a href="https://example.com/track?id=42">Track</a>'
        + '</td><td><img src="https://cdn.example.com/logo.png" alt="logo"></td></tr></table>'
        + "</body></html>"
    )
    boundary = f"----=_Part_{seed}_1234567.1700000000000"
    received = "".join(
        f"Received: from mx{i}.example.net (mx{i}.example.net [192.0.2.{i}])\r\n"
        f"\tby mail.example.org (Postfix) with ESMTPS id 4Sx{i}Kq2z3x\r\n"
        f"\tfor <inbox@example.org>; Tue, 14 Nov 2023 10:0{i}:12 +0100 (CET)\r\n"
        for i in range(5)
    )
    dkim = (
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.net; s=s2023;\r\n"
        "\th=from:to:subject:date:message-id:mime-version:content-type;\r\n"
        "\tbh=" + base64.b64encode(rnd.randbytes(32)).decode() + ";\r\n"
        "\tb=" + base64.b64encode(rnd.randbytes(256)).decode() + "\r\n"
    )
    arc = "".join(
        f"ARC-Seal: i={i}; a=rsa-sha256; t=1700000000; cv=pass; d=example.net; s=arc;\r\n"
        f"\tb={base64.b64encode(rnd.randbytes(180)).decode()}\r\n"
        for i in (1, 2)
    )
    headers = (
        "Return-Path: <jane@example.net>\r\n"
        "Delivered-To: inbox@example.org\r\n"
        + received
        + dkim
        + arc
        + "Authentication-Results: mail.example.org; dkim=pass header.d=example.net;\r\n"
        "\tspf=pass smtp.mailfrom=jane@example.net; dmarc=pass header.from=example.net\r\n"
        "MIME-Version: 1.0\r\n"
        "From: =?UTF-8?Q?Jane_Exampl=C3=A9?= <Jane@Example.NET>\r\n"
        "To: Inbox <inbox@example.org>, =?ISO-8859-2?Q?Pawe=B3_Nowak?= <pawel@example.pl>\r\n"
        "Cc: ops@example.org\r\n"
        "Subject: =?UTF-8?Q?Re:_Lieferung_Nr._4711_=E2=80=93_Best=C3=A4tigung?=\r\n"
        f"Message-ID: <CAF{seed}xyz.{seed * 7}@mail.example.net>\r\n"
        "In-Reply-To: <CAF0parent.1@mail.example.org>\r\n"
        "References: <CAF0root.0@mail.example.org>\r\n <CAF0parent.1@mail.example.org>\r\n"
        "Date: Tue, 14 Nov 2023 10:04:12 +0100\r\n"
        "X-Mailer: Example Webmail 9.1\r\n"
        "List-Unsubscribe: <mailto:unsub@example.net>, <https://example.net/unsub?u=1>\r\n"
    )
    outer = "multipart/mixed" if attachment_bytes else "multipart/alternative"
    alt_boundary = boundary + "_alt"

    def qp(s: str) -> str:
        return quopri.encodestring(s.replace("\n", "\r\n").encode("utf-8")).decode("ascii")

    alternative = (
        f"--{alt_boundary}\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        f"{qp(text)}\r\n"
        f"--{alt_boundary}\r\n"
        "Content-Type: text/html; charset=UTF-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        f"{qp(html)}\r\n"
        f"--{alt_boundary}--\r\n"
    )
    if not attachment_bytes:
        return (
            headers
            + f'Content-Type: multipart/alternative; boundary="{alt_boundary}"\r\n\r\n'
            + alternative
        ).encode("ascii")
    pdf = base64.encodebytes(rnd.randbytes(attachment_bytes)).decode().replace("\n", "\r\n")
    return (
        headers
        + f'Content-Type: {outer}; boundary="{boundary}"\r\n\r\n'
        + f"--{boundary}\r\n"
        + f'Content-Type: multipart/alternative; boundary="{alt_boundary}"\r\n\r\n'
        + alternative
        + f"\r\n--{boundary}\r\n"
        + 'Content-Type: application/pdf; name="Rechnung 4711.pdf"\r\n'
        + "Content-Transfer-Encoding: base64\r\n"
        + "Content-Disposition: attachment;\r\n"
        + " filename*=UTF-8''Rechnung%204711%20%E2%80%93%20Kopie.pdf\r\n\r\n"
        + pdf
        + f"\r\n--{boundary}--\r\n"
    ).encode("ascii")
