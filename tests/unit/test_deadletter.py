"""Dead-letter records: headers, and messages too large for the dead-letter topic.

Sizes are worked out by hand: the five headers below take 84 bytes (names and values:
10+12, 10+1, 9+16, 13+1, 10+2), and RECORD_OVERHEAD is 512.
"""

from __future__ import annotations

import hashlib

import pytest

from stream.deadletter import DLQ_MAX_BYTES, RECORD_OVERHEAD, DeadLetter, dead_letter
from stream.events import Rejection

REJECTION = Rejection("invalid_json", "x")
HEADERS = [
    ("kpi-reason", b"invalid_json"),
    ("kpi-detail", b"x"),
    ("kpi-topic", b"cs.ticket.opened"),
    ("kpi-partition", b"3"),
    ("kpi-offset", b"42"),
]


def letter(key: bytes | None, value: bytes | None, max_bytes: int = DLQ_MAX_BYTES) -> DeadLetter:
    return dead_letter(REJECTION, "cs.ticket.opened", 3, 42, key, value, max_bytes)


def test_defaults_fit_under_kafkas_default_message_limits() -> None:
    assert RECORD_OVERHEAD == 512
    assert DLQ_MAX_BYTES <= 1_048_576


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param(b"T-1", b"{not json", id="ordinary"),
        pytest.param(None, b"{}", id="null-key"),
        pytest.param(b"T-1", None, id="tombstone"),
        pytest.param(b"", b"", id="empty"),
    ],
)
def test_a_message_that_fits_goes_unchanged_with_five_headers(
    key: bytes | None, value: bytes | None
) -> None:
    assert letter(key, value) == DeadLetter(key, value, HEADERS)


def test_a_record_exactly_at_the_limit_is_not_cut() -> None:
    value = b"v" * 1000
    limit = 1 + 1000 + 84 + RECORD_OVERHEAD
    assert letter(b"k", value, limit) == DeadLetter(b"k", value, HEADERS)
    cut = letter(b"k", value, limit - 1)
    assert cut.value != value


def test_an_oversized_value_is_cut_to_fit_with_its_full_size_and_sha256() -> None:
    value = bytes(range(256)) * 7813  # 2,000,128 bytes
    found = letter(b"k", value)
    # Reserved: 84 + key headers (12+1, 14+64) + value headers (14+7, 16+64) = 276 bytes;
    # room 1,000,000 - 512 - 276 = 999,212; the key keeps its 1 byte, the value the rest.
    assert found.key == b"k"
    assert found.value == value[:999_211]
    assert found.headers == [
        *HEADERS,
        ("kpi-value-size", b"2000128"),
        ("kpi-value-sha256", hashlib.sha256(value).hexdigest().encode()),
    ]
    assert found.size == 1 + 999_211 + 84 + 101
    assert found.size + RECORD_OVERHEAD <= DLQ_MAX_BYTES


def test_an_oversized_key_and_value_are_both_cut_the_key_to_at_most_half() -> None:
    key, value = b"k" * 600_000, b"v" * 600_000
    found = letter(key, value)
    # Reserved: 84 + (12+6, 14+64) + (14+6, 16+64) = 280; room 999,208; half is 499,604.
    assert found.key == key[:499_604]
    assert found.value == value[:499_604]
    assert found.headers == [
        *HEADERS,
        ("kpi-key-size", b"600000"),
        ("kpi-key-sha256", hashlib.sha256(key).hexdigest().encode()),
        ("kpi-value-size", b"600000"),
        ("kpi-value-sha256", hashlib.sha256(value).hexdigest().encode()),
    ]
    assert found.size + RECORD_OVERHEAD <= DLQ_MAX_BYTES


def test_a_short_key_leaves_the_rest_to_the_value_with_a_small_limit() -> None:
    found = letter(b"key", b"v" * 5000, max_bytes=2000)
    # Reserved: 84 + (12+1, 14+64) + (14+4, 16+64) = 273; room 2000 - 512 - 273 = 1215.
    assert found.key == b"key"
    assert found.value == b"v" * 1212
    assert [name for name, _ in found.headers][5:] == ["kpi-value-size", "kpi-value-sha256"]


def test_a_limit_without_room_for_the_headers_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="max_bytes=600"):
        letter(b"k", b"v" * 1000, max_bytes=600)
