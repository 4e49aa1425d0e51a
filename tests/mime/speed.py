"""Throughput of the MIME layer on one core (a measurement, not a test).

Run: ``.venv/bin/python -m tests.mime.speed`` from the repository root.
Prints messages per second for parse_headers and parse_message on a typical
~13 KB message and on every file of ../shared/corpus.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable

from postroom.mail.mime import MimeParseError, parse_headers, parse_message, sanitize_html
from tests.mime.samples import typical_message

CORPUS = pathlib.Path(__file__).resolve().parents[3] / "shared" / "corpus"


def rate(fn: Callable[[bytes], object], messages: list[bytes], min_seconds: float = 2.0) -> float:
    # CPU time of this process, so that other work on a shared machine does
    # not count against us; the figure is "messages per second of one core".
    done = 0
    start = time.process_time()
    while True:
        for raw in messages:
            try:
                fn(raw)
            except MimeParseError:
                pass
        done += len(messages)
        elapsed = time.process_time() - start
        if elapsed >= min_seconds:
            return done / elapsed


def main() -> None:
    typical = [typical_message(seed) for seed in range(50)]
    size = sum(map(len, typical)) / len(typical)
    print(f"typical message: {size / 1024:.1f} KB")
    print(f"  parse_headers  {rate(parse_headers, typical):8.0f} msg/s")
    print(f"  parse_message  {rate(parse_message, typical):8.0f} msg/s")
    html = parse_message(typical[0]).html or ""
    print(f"  sanitize_html  {rate(lambda _: sanitize_html(html), typical):8.0f} msg/s")
    with_pdf = [typical_message(seed, attachment_bytes=60_000) for seed in range(20)]
    size = sum(map(len, with_pdf)) / len(with_pdf)
    print(f"with a PDF attachment: {size / 1024:.1f} KB")
    print(f"  parse_headers  {rate(parse_headers, with_pdf):8.0f} msg/s")
    print(f"  parse_message  {rate(parse_message, with_pdf):8.0f} msg/s")
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file())
    corpus = [p.read_bytes() for p in files]
    total = sum(map(len, corpus))
    print(f"corpus: {len(corpus)} files, {total / 1024 / 1024:.1f} MB")
    for name, fn in (("parse_headers", parse_headers), ("parse_message", parse_message)):
        r = rate(fn, corpus)
        print(f"  {name}  {r:8.0f} msg/s  {r * total / len(corpus) / 1024 / 1024:6.1f} MB/s")


if __name__ == "__main__":
    main()
