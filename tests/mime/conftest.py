"""Shared helpers for the MIME tests (pure Python: no Django, no servers)."""

from __future__ import annotations

import os
import pathlib

# ../shared/corpus next to the checkout, as the issue describes it;
# POSTROOM_CORPUS points elsewhere when the layout differs.
CORPUS = pathlib.Path(
    os.environ.get(
        "POSTROOM_CORPUS", pathlib.Path(__file__).resolve().parents[3] / "shared" / "corpus"
    )
)


def corpus_files() -> list[pathlib.Path]:
    return sorted(p for p in CORPUS.rglob("*") if p.is_file())


def corpus_file(relative: str) -> bytes:
    return (CORPUS / relative).read_bytes()


def assert_storable(parsed: object) -> None:
    """Every string a parse result carries can go into a UTF-8 text column:
    no NUL (PostgreSQL refuses it) and no lone surrogates (not encodable)."""
    from dataclasses import fields, is_dataclass

    def check(value: object) -> None:
        if isinstance(value, str):
            assert "\x00" not in value, value
            value.encode("utf-8")  # raises on lone surrogates
        elif isinstance(value, tuple | list):
            for item in value:
                check(item)
        elif is_dataclass(value) and not isinstance(value, type):
            for f in fields(value):
                check(getattr(value, f.name))

    check(parsed)
