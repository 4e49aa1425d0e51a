"""The pure helpers behind ImapSyncSession (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from postroom.mail.imap_sync import _internaldate, _parse_fetch, _uid_set, _uid_sets


def test_uid_sets_are_compressed() -> None:
    assert _uid_set([1, 2, 3, 7, 9, 10]) == "1:3,7,9:10"
    assert _uid_set([5]) == "5"
    assert _uid_set([]) == ""
    assert list(_uid_sets(range(1, 201))) == ["1:200"]
    assert list(_uid_sets(range(4, 5))) == ["4"]
    assert list(_uid_sets({3, 1, 2})) == ["1:3"]
    assert len(list(_uid_sets(range(1, 10_000, 2)))) == 3  # sparse sets are split


def test_fetch_responses_in_any_item_order() -> None:
    raw = [
        (b"1 (UID 7 FLAGS (\\Seen 1234) RFC822.SIZE 5 MODSEQ (12) BODY[] {5}", b"hello"),
        b")",
        b"3 (FLAGS () UID 9)",  # an unsolicited flag update
        (b"4 (BODY[HEADER.FIELDS (FROM)] {3}", b"abc"),
        (b" BODY[] {2}", b"xy"),
        b' UID 10 X "a\\"b")',
        b"5 (BODY[] NIL UID 11)",
    ]
    first, second, third, fourth = _parse_fetch(raw)
    assert first == {
        "SEQ": 1,
        "UID": b"7",
        "FLAGS": [b"\\Seen", b"1234"],
        "RFC822.SIZE": b"5",
        "MODSEQ": [b"12"],
        "BODY[]": b"hello",
    }
    assert second == {"SEQ": 3, "FLAGS": [], "UID": b"9"}
    assert third["BODY[]"] == b"xy" and third["UID"] == b"10" and third["X"] == 'a"b'
    assert fourth["BODY[]"] is None


@pytest.mark.parametrize(
    "raw",
    [
        [(b"1 (UID 1 BODY[] {6}", b"short")],  # literal size mismatch
        [b"1 (UID 1 FLAGS (\\Seen)"],  # unbalanced
        [(b"1 (UID 1 BODY[] {5}", b"hello")],  # ends inside the response
    ],
)
def test_malformed_fetch_responses(raw: list[object]) -> None:
    with pytest.raises(ValueError):
        _parse_fetch(raw)


def test_internaldate() -> None:
    assert _internaldate(" 6-Jan-2025 10:01:00 -0130") == datetime(2025, 1, 6, 11, 31, tzinfo=UTC)
    assert _internaldate("31-Dec-2024 23:59:59 +0100") == datetime(
        2024, 12, 31, 22, 59, 59, tzinfo=UTC
    )
