"""Generated messages for sync tests: unique, varied, deterministic."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime


def make_message(index: int, *, size: int = 2000, seed: int = 0, tag: str = "m") -> bytes:
    rng = random.Random(seed * 1_000_003 + index)
    msg = EmailMessage()
    msg["From"] = f"Sender {index % 17} <sender{index % 17}@example.org>"
    msg["To"] = "alice@example.test"
    msg["Subject"] = f"Message {tag}{index} about {rng.choice(['invoices', 'Zażółć', 'orders'])}"
    msg["Message-ID"] = f"<{tag}{index}.{seed}@example.org>"
    msg["Date"] = format_datetime(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=index))
    if index % 5 and index > 0:
        parent = f"<{tag}{index - 1}.{seed}@example.org>"
        msg["In-Reply-To"] = parent
        msg["References"] = parent
    body = "".join(rng.choice("abcdefghij klmnop\n") for _ in range(size))
    msg.set_content(body)
    if index % 7 == 0:
        msg.add_attachment(
            rng.randbytes(size),
            maintype="application",
            subtype="octet-stream",
            filename=f"file{index}.bin",
        )
    return msg.as_bytes()


def make_messages(count: int, *, seed: int = 0, size: int = 2000, tag: str = "m") -> list[bytes]:
    return [make_message(i, seed=seed, size=size, tag=tag) for i in range(count)]
