"""Contract section 2: the ticket record and its idempotent, order-independent merge."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kpi_helpers import (
    DAY,
    MINUTE,
    first_reply,
    merge,
    opened,
    reopened,
    replied,
    resolved,
    survey,
    to_event,
)

from stream.kpi.entity import PACKED_SEEN_MAX, seen_count, split_seen, with_mark
from stream.kpi.ticket import SurveyAnswer, Ticket, dumps, loads

Opened = tuple[int, str, str, str, str]

T0 = 1_795_330_800_000  # 2026-11-22T07:00:00Z


def fold(*payloads: dict[str, Any]) -> Ticket:
    ticket: Ticket | None = None
    for event in payloads:
        ticket, _ = merge(ticket, to_event(event))
    assert ticket is not None
    return ticket


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param(
            [opened("t", T0, queue="a", channel="chat", priority="high", event_id="e1")],
            (T0, "e1", "a", "chat", "high"),
            id="single",
        ),
        pytest.param(
            [
                opened("t", T0 + MINUTE, queue="late", channel="web", priority="low", event_id="a"),
                opened("t", T0, queue="early", channel="chat", priority="urgent", event_id="z"),
            ],
            (T0, "z", "early", "chat", "urgent"),
            id="earliest-occurred_at-wins",
        ),
        pytest.param(
            [
                opened("t", T0, queue="b", channel="web", priority="low", event_id="e2"),
                opened("t", T0, queue="a", channel="chat", priority="high", event_id="e1"),
            ],
            (T0, "e1", "a", "chat", "high"),
            id="tie-smallest-event_id-wins",
        ),
        pytest.param(
            [
                opened("t", T0 + 2, queue="c", event_id="a"),
                opened("t", T0 + 1, queue="b", event_id="b"),
                opened("t", T0 + 1, queue="a", event_id="c"),
            ],
            (T0 + 1, "b", "b", "email", "normal"),
            id="all-fields-from-one-winner",
        ),
    ],
)
def test_opened_comes_from_smallest_occurred_at_then_event_id(
    events: list[dict[str, Any]], expected: Opened
) -> None:
    assert opened_of(fold(*events)) == expected


def opened_of(ticket: Ticket) -> tuple[object, ...]:
    return (
        ticket.opened_at,
        ticket.opened_event_id,
        ticket.queue,
        ticket.channel,
        ticket.priority,
    )


@pytest.mark.parametrize(
    ("reply_offsets", "expected_offset"),
    [
        pytest.param([10], 10, id="one"),
        pytest.param([30, 10, 20], 10, id="smallest-of-several"),
        pytest.param([5, -3], -3, id="before-opened-kept-raw"),
    ],
)
def test_first_reply_is_the_smallest_occurred_at(
    reply_offsets: list[int], expected_offset: int
) -> None:
    events = [opened("t", T0)] + [first_reply("t", T0 + o * MINUTE) for o in reply_offsets]
    assert fold(*events).first_reply_at == T0 + expected_offset * MINUTE


@pytest.mark.parametrize(
    ("resolve_offsets", "expected_offset"),
    [
        pytest.param([60], 60, id="one"),
        pytest.param([60, 600, 120], 600, id="re-solve-moves-to-largest"),
        pytest.param([600, 60], 600, id="earlier-resolve-after-later-changes-nothing"),
    ],
)
def test_resolved_is_the_largest_occurred_at(
    resolve_offsets: list[int], expected_offset: int
) -> None:
    events = [opened("t", T0)] + [resolved("t", T0 + o * MINUTE) for o in resolve_offsets]
    assert fold(*events).resolved_at == T0 + expected_offset * MINUTE


@pytest.mark.parametrize(
    ("answers", "expected_csat", "expected_nps"),
    [
        pytest.param(
            [("csat", 2, 10, "a"), ("csat", 5, 20, "b")],
            SurveyAnswer(T0 + 20 * MINUTE, "b", 5),
            None,
            id="changed-answer-latest-counts",
        ),
        pytest.param(
            [("csat", 5, 20, "b"), ("csat", 2, 10, "a")],
            SurveyAnswer(T0 + 20 * MINUTE, "b", 5),
            None,
            id="older-answer-arriving-late-changes-nothing",
        ),
        pytest.param(
            [("nps", 9, 10, "b"), ("nps", 3, 10, "a")],
            None,
            SurveyAnswer(T0 + 10 * MINUTE, "b", 9),
            id="tie-largest-event_id-wins",
        ),
        pytest.param(
            [("csat", 1, 10, "a"), ("nps", 10, 5, "b"), ("nps", 0, 30, "c")],
            SurveyAnswer(T0 + 10 * MINUTE, "a", 1),
            SurveyAnswer(T0 + 30 * MINUTE, "c", 0),
            id="kinds-independent",
        ),
    ],
)
def test_survey_answer_with_largest_occurred_at_then_event_id_counts(
    answers: list[tuple[str, int, int, str]],
    expected_csat: SurveyAnswer | None,
    expected_nps: SurveyAnswer | None,
) -> None:
    events = [
        survey("t", T0 + m * MINUTE, kind, score, event_id=e) for kind, score, m, e in answers
    ]
    ticket = fold(*events)
    assert (ticket.csat, ticket.nps) == (expected_csat, expected_nps)


TICKET_EVENTS = [
    opened("t", T0 + 2 * MINUTE, queue="b", priority="low", event_id="o2"),
    opened("t", T0, queue="a", priority="urgent", event_id="o1"),
    first_reply("t", T0 + 9 * MINUTE),
    first_reply("t", T0 + 5 * MINUTE),
    resolved("t", T0 + 60 * MINUTE),
    resolved("t", T0 + 300 * MINUTE),
    survey("t", T0 + 61 * MINUTE, "csat", 2),
    survey("t", T0 + 400 * MINUTE, "csat", 5),
]


def test_every_arrival_order_gives_the_same_ticket() -> None:
    expected = fold(*TICKET_EVENTS)
    for order in itertools.permutations(TICKET_EVENTS[:7]):
        assert dumps(fold(*order, TICKET_EVENTS[7])) == dumps(expected)


def test_merged_ticket_has_every_rule_applied() -> None:
    ticket = fold(*TICKET_EVENTS)
    assert opened_of(ticket) == (T0, "o1", "a", "email", "urgent")
    assert ticket.first_reply_at == T0 + 5 * MINUTE
    assert ticket.resolved_at == T0 + 300 * MINUTE
    assert ticket.csat is not None and ticket.csat.score == 5
    assert ticket.nps is None
    assert ticket.last_event_at == T0 + 400 * MINUTE
    assert seen_count(ticket.seen) == len(TICKET_EVENTS)


@pytest.mark.parametrize(
    "event", [pytest.param(e, id=f"{e['type']}-{e['event_id']}") for e in TICKET_EVENTS]
)
def test_same_event_seen_again_changes_nothing_and_is_flagged(event: dict[str, Any]) -> None:
    before = fold(*TICKET_EVENTS)
    after, duplicate = merge(before, to_event(event))
    assert duplicate
    assert after == before


def test_first_sighting_is_not_flagged_duplicate() -> None:
    ticket, duplicate = merge(None, to_event(opened("t", T0)))
    assert not duplicate
    _, duplicate = merge(ticket, to_event(first_reply("t", T0)))
    assert not duplicate


def test_redelivery_with_other_timestamp_notation_is_a_duplicate() -> None:
    as_ms = to_event(first_reply("t", T0, event_id="e"))
    as_text = to_event(first_reply("t", "2026-11-22T08:00:00+01:00", event_id="e"))
    ticket, _ = merge(None, as_ms)
    again, duplicate = merge(ticket, as_text)
    assert duplicate and again == ticket


@pytest.mark.parametrize(
    ("age_ms", "expired"),
    [
        pytest.param(0, False, id="fresh"),
        pytest.param(35 * DAY, False, id="exactly-35-days"),
        pytest.param(35 * DAY + 1, True, id="35-days-and-1ms"),
        pytest.param(400 * DAY, True, id="a-year"),
    ],
)
def test_ticket_is_kept_35_days_after_its_last_event(age_ms: int, expired: bool) -> None:
    ticket = fold(opened("t", T0), survey("t", T0 + DAY, "nps", 9))
    assert ticket.is_expired(T0 + DAY + age_ms, 35 * DAY) is expired


def test_last_event_is_the_latest_event_time_whatever_the_type() -> None:
    ticket = fold(survey("t", T0 + 3 * DAY, "nps", 9), opened("t", T0), resolved("t", T0 + DAY))
    assert ticket.last_event_at == T0 + 3 * DAY


@pytest.mark.parametrize(
    "events",
    [
        pytest.param(TICKET_EVENTS, id="full"),
        pytest.param([first_reply("t", T0)], id="reply-only"),
        pytest.param([survey("t", T0, "nps", 7)], id="survey-of-never-opened"),
        pytest.param(
            [opened("tïcket-😀", T0, queue='q"\\\n<b>', event_id="é")], id="non-ascii-strings"
        ),
    ],
)
def test_dumps_and_loads_round_trip(events: list[dict[str, Any]]) -> None:
    ticket = fold(*events)
    assert loads(dumps(ticket)) == ticket


def test_round_tripped_ticket_still_recognises_duplicates() -> None:
    ticket = loads(dumps(fold(*TICKET_EVENTS)))
    again, duplicate = merge(ticket, to_event(TICKET_EVENTS[3]))
    assert duplicate and again == ticket


@pytest.mark.parametrize("events", [1, PACKED_SEEN_MAX, PACKED_SEEN_MAX + 1, 300])
def test_seen_ids_survive_the_codec_packed_or_as_a_set(events: int) -> None:
    replies = [first_reply("t", T0 + n, event_id=f"r{n}") for n in range(events)]
    ticket = loads(dumps(fold(opened("t", T0), *replies)))
    assert seen_count(ticket.seen) == events + 1
    assert isinstance(ticket.seen, bytes) is (events + 1 <= PACKED_SEEN_MAX)
    for reply in replies[:: max(1, events // 7)]:
        assert merge(ticket, to_event(reply))[1], reply["event_id"]
    assert not merge(ticket, to_event(first_reply("t", T0, event_id="new")))[1]


def test_a_fingerprint_straddling_two_packed_ones_is_not_seen() -> None:
    ticket = Ticket(seen=bytes(range(16)))
    assert with_mark(ticket.seen, bytes(range(8))) is None
    assert with_mark(ticket.seen, bytes(range(8, 16))) is None
    assert with_mark(ticket.seen, bytes(range(4, 12))) is not None


# --- Section 9: replies, reopens, and the agents the work is credited to -------------

LIFE_EVENTS = [
    opened("t", T0),
    first_reply("t", T0 + 5 * MINUTE, event_id="r-late", agent_id="a2"),
    replied("t", T0 + 2 * MINUTE, event_id="r-b", agent_id="a1"),
    replied("t", T0 + 2 * MINUTE, event_id="r-a", agent_id="a3"),  # same time: smaller id
    replied("t", T0 + 9 * MINUTE, event_id="r-after"),
    resolved("t", T0 + DAY, event_id="s-b", agent_id="a4"),
    resolved("t", T0 + DAY, event_id="s-a", agent_id="a5"),  # same time: larger id wins
    resolved("t", T0 + 2 * MINUTE, event_id="s-early", agent_id="a6"),
    reopened("t", T0 + 3 * MINUTE, event_id="o1"),
    reopened("t", T0 + 4 * MINUTE, event_id="o2"),
]


@pytest.mark.parametrize("order", list(itertools.permutations(range(4)))[::5])
def test_ticket_life_fields_for_any_order_and_duplicates(order: tuple[int, ...]) -> None:
    # Shuffle the tail in blocks, and send every event twice.
    blocks = [LIFE_EVENTS[1:4], LIFE_EVENTS[4:6], LIFE_EVENTS[6:8], LIFE_EVENTS[8:]]
    events = [LIFE_EVENTS[0], *(e for n in order for e in blocks[n])]
    ticket = fold(*events, *reversed(events))
    assert ticket.first_reply_at == T0 + 2 * MINUTE
    assert (ticket.first_reply_event_id, ticket.first_reply_agent) == ("r-a", "a3")
    assert ticket.replies == 4
    assert ticket.resolved_at == T0 + DAY
    assert (ticket.resolved_event_id, ticket.resolved_agent) == ("s-b", "a4")
    assert (ticket.reopened_at, ticket.reopens) == (T0 + 4 * MINUTE, 2)
    assert ticket.is_resolved
    assert loads(dumps(ticket)) == ticket


def test_a_reopen_after_the_last_resolve_reopens_the_ticket() -> None:
    ticket = fold(opened("t", T0), resolved("t", T0 + MINUTE), reopened("t", T0 + 2 * MINUTE))
    assert not ticket.is_resolved
    assert fold(opened("t", T0), resolved("t", T0 + MINUTE), reopened("t", T0 + MINUTE)).is_resolved


def test_a_record_written_before_section_9_loads_with_no_replies_or_reopens() -> None:
    ticket = fold(opened("t", T0), resolved("t", T0 + MINUTE))
    old_format = orjson.dumps(orjson.loads(dumps(ticket))[:11])
    loaded = loads(old_format)
    assert (loaded.replies, loaded.reopens, loaded.reopened_at) == (0, 0, None)
    assert loaded.resolved_at == T0 + MINUTE


@given(st.lists(st.binary(min_size=8, max_size=8), max_size=60))
def test_with_mark_keeps_the_marks_sorted_and_distinct(marks: list[bytes]) -> None:
    packed = b""
    for mark in marks:
        added = with_mark(packed, mark)
        assert (added is None) == (mark in split_seen(packed))
        packed = packed if added is None else added
    assert packed == b"".join(sorted(set(marks)))
