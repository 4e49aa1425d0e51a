"""Generated test messages of a chosen size."""

from __future__ import annotations

import base64
import random


def make_message(
    index: int, size: int = 13_000, *, subject: str | None = None, line_length: int = 72
) -> bytes:
    """An RFC 5322 message of about ``size`` bytes (CRLF), text lines of ``line_length``."""
    rng = random.Random(index)
    header = (
        f"From: Sender {index} <sender{index}@example.test>\r\n"
        f"To: recipient@example.test\r\n"
        f"Subject: {subject or f'Message {index}'}\r\n"
        f"Date: Mon, 06 Jan 2025 10:{index % 60:02d}:00 +0000\r\n"
        f"Message-ID: <msg{index}@example.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
    ).encode()
    body_size = max(0, size - len(header))
    # base64 of random bytes: fast to make, 7-bit, and incompressible.
    text = base64.b64encode(rng.randbytes(body_size * 3 // 4 + line_length))
    step = line_length
    lines = [text[i : i + step] + b"\r\n" for i in range(0, body_size, step + 2)]
    return header + b"".join(lines)
