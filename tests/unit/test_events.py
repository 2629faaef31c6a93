"""Contract section 1: decoding and validating one event into an Event or a Rejection."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from kpi_helpers import (
    NOW,
    SECOND,
    abandoned,
    answered,
    ended,
    first_reply,
    line,
    opened,
    payload,
    queued,
    reopened,
    replied,
    resolved,
    status,
    survey,
    utc_ms,
    wrapped,
)

from stream.events import ENTITY_ID_FIELD, REASONS, Rejection, decode
from stream.kpi.event import Event
from stream.kpi.types import DLQ_TOPIC, INPUT_TOPICS, TICKET_TOPICS, TOPIC_OF_TYPE

T = "2026-11-22T09:00:00Z"
T_MS = utc_ms(T)


def decoded(
    raw: bytes | dict[str, Any], topic: str | None = None, key: bytes | None = None
) -> Event | Rejection:
    return decode(raw if isinstance(raw, bytes) else line(raw), NOW, topic=topic, key=key)


def without(event: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != field}


def test_topics_and_types_are_the_contract_table() -> None:
    assert TOPIC_OF_TYPE == {
        "ticket.opened": "cs.ticket.opened",
        "ticket.first_reply": "cs.ticket.first_reply",
        "ticket.resolved": "cs.ticket.resolved",
        "survey.responded": "cs.survey.responded",
        "contact.queued": "cs.contact.queued",
        "contact.answered": "cs.contact.answered",
        "contact.abandoned": "cs.contact.abandoned",
        "contact.ended": "cs.contact.ended",
        "contact.wrapped": "cs.contact.wrapped",
        "agent.status": "cs.agent.status",
        "ticket.replied": "cs.ticket.replied",
        "ticket.reopened": "cs.ticket.reopened",
    }
    assert tuple(TOPIC_OF_TYPE.values()) == INPUT_TOPICS
    assert TICKET_TOPICS == (
        "cs.ticket.opened",
        "cs.ticket.first_reply",
        "cs.ticket.resolved",
        "cs.survey.responded",
        "cs.ticket.replied",
        "cs.ticket.reopened",
    )
    assert DLQ_TOPIC == "cs.events.dlq"


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(
            opened("t1", T, queue="billing", channel="chat", priority="urgent", event_id="e1"),
            Event("e1", "ticket.opened", "t1", T_MS, "billing", "chat", "urgent"),
            id="opened",
        ),
        pytest.param(
            first_reply("t1", T, event_id="e2"),
            Event("e2", "ticket.first_reply", "t1", T_MS),
            id="first_reply-without-agent",
        ),
        pytest.param(
            first_reply("t1", T, event_id="e2", agent_id="agent-7"),
            Event("e2", "ticket.first_reply", "t1", T_MS, agent_id="agent-7"),
            id="first_reply-with-agent",
        ),
        pytest.param(
            replied("t1", T, event_id="e7", agent_id="agent-2"),
            Event("e7", "ticket.replied", "t1", T_MS, agent_id="agent-2"),
            id="replied-with-agent",
        ),
        pytest.param(
            replied("t1", T, event_id="e7"),
            Event("e7", "ticket.replied", "t1", T_MS),
            id="replied-without-agent",
        ),
        pytest.param(
            reopened("t1", T, event_id="e8", agent_id=5),
            Event("e8", "ticket.reopened", "t1", T_MS),
            id="reopened-ignores-extra-agent_id",
        ),
        pytest.param(
            resolved("t1", T, event_id="e3", agent_id=None),
            Event("e3", "ticket.resolved", "t1", T_MS),
            id="resolved-with-null-agent",
        ),
        pytest.param(
            survey("t1", T, "csat", 4, event_id="e4"),
            Event("e4", "survey.responded", "t1", T_MS, survey="csat", score=4),
            id="survey-csat",
        ),
        pytest.param(
            survey("t1", T, "nps", 0, event_id="e5"),
            Event("e5", "survey.responded", "t1", T_MS, survey="nps", score=0),
            id="survey-nps",
        ),
        pytest.param(
            opened("t1", T, event_id="e6", priority="low", channel="other", note="x", v=2),
            Event("e6", "ticket.opened", "t1", T_MS, "billing", "other", "low"),
            id="unknown-extra-fields-ignored",
        ),
        pytest.param(
            survey("t1", T_MS, "csat", 5, event_id="e7", comment={"nested": [1, 2]}),
            Event("e7", "survey.responded", "t1", T_MS, survey="csat", score=5),
            id="epoch-ms-and-nested-extra",
        ),
    ],
)
def test_valid_event_decodes_to_its_fields(event: dict[str, Any], expected: Event) -> None:
    assert decoded(event) == expected


@pytest.mark.parametrize(
    ("occurred_at", "expected"),
    [
        pytest.param("2026-11-22T10:00:00.250Z", "2026-11-22T10:00:00.250+00:00", id="Z-millis"),
        pytest.param("2026-11-22T10:00:00+01:00", "2026-11-22T09:00:00+00:00", id="plus-offset"),
        pytest.param("2026-11-22T04:00:00-05:30", "2026-11-22T09:30:00+00:00", id="minus-offset"),
        pytest.param("2026-11-22t10:00:00+01:00", "2026-11-22T09:00:00+00:00", id="lowercase-t"),
        pytest.param("2026-11-22T10:00:00+00:00", "2026-11-22T10:00:00+00:00", id="zero-offset"),
        pytest.param("2026-11-22T10:00:00-00:00", "2026-11-22T10:00:00+00:00", id="unknown-local"),
        pytest.param("2026-11-22 10:00:00Z", "2026-11-22T10:00:00+00:00", id="space-separator"),
        pytest.param(
            "2026-11-22T10:00:00.123456Z", "2026-11-22T10:00:00.123+00:00", id="micros-floored"
        ),
        pytest.param(
            "2026-03-29T02:30:00+02:00", "2026-03-29T00:30:00+00:00", id="offset-not-zone-rules"
        ),
        pytest.param(1_795_341_600_000, "2026-11-22T10:00:00+00:00", id="epoch-ms"),
        pytest.param(1_795_341_600_999, "2026-11-22T10:00:00.999+00:00", id="epoch-ms-fraction"),
        pytest.param(946_684_800_000, "2000-01-01T00:00:00+00:00", id="epoch-ms-2000"),
        pytest.param("2000-01-01T01:00:00+01:00", "2000-01-01T00:00:00+00:00", id="text-2000"),
    ],
)
def test_occurred_at_accepts_rfc3339_with_offset_and_epoch_ms(
    occurred_at: str | int, expected: str
) -> None:
    event = decoded(first_reply("t1", occurred_at))
    assert isinstance(event, Event), event
    assert event.occurred_at == utc_ms(expected)


def test_rfc3339_and_epoch_ms_of_the_same_instant_decode_equal() -> None:
    as_text = decoded(first_reply("t1", "2026-11-22T11:00:00.250+01:00", event_id="e"))
    as_ms = decoded(first_reply("t1", 1_795_341_600_250, event_id="e"))
    assert as_text == as_ms


LONG = "x" * 129
FULL = "x" * 128

REJECTIONS: list[Any] = [
    # (raw event or bytes, reason)
    pytest.param(b"not json", "invalid_json", id="not-json"),
    pytest.param(b"", "invalid_json", id="empty"),
    pytest.param(b'{"event_id": "e1"', "invalid_json", id="truncated-json"),
    pytest.param(b'{"event_id": "\xff"}', "invalid_json", id="invalid-utf8"),
    pytest.param(b"[1, 2]", "not_object", id="array"),
    pytest.param(b"42", "not_object", id="number"),
    pytest.param(b'"ticket.opened"', "not_object", id="string"),
    pytest.param(b"null", "not_object", id="null"),
    pytest.param(without(first_reply("t", T), "type"), "missing_field", id="missing-type"),
    pytest.param(without(first_reply("t", T), "event_id"), "missing_field", id="no-event_id"),
    pytest.param(without(first_reply("t", T), "ticket_id"), "missing_field", id="no-ticket_id"),
    pytest.param(without(first_reply("t", T), "occurred_at"), "missing_field", id="no-time"),
    pytest.param(first_reply("t", None), "missing_field", id="null-occurred_at"),
    pytest.param(first_reply("t", T, event_id=None), "missing_field", id="null-event_id"),
    pytest.param(without(opened("t", T), "queue"), "missing_field", id="opened-no-queue"),
    pytest.param(without(opened("t", T), "channel"), "missing_field", id="opened-no-channel"),
    pytest.param(without(opened("t", T), "priority"), "missing_field", id="opened-no-priority"),
    pytest.param(without(survey("t", T, "csat", 4), "survey"), "missing_field", id="no-survey"),
    pytest.param(without(survey("t", T, "csat", 4), "score"), "missing_field", id="no-score"),
    pytest.param(first_reply("t", T, type=7), "invalid_field", id="type-not-string"),
    pytest.param(first_reply("t", T, event_id=17), "invalid_field", id="event_id-number"),
    pytest.param(first_reply("t", T, event_id=""), "invalid_field", id="event_id-empty"),
    pytest.param(first_reply("t", T, event_id=LONG), "invalid_field", id="event_id-129"),
    pytest.param(first_reply(LONG, T), "invalid_field", id="ticket_id-129"),
    pytest.param(first_reply("", T), "invalid_field", id="ticket_id-empty"),
    pytest.param(first_reply(["t"], T), "invalid_field", id="ticket_id-list"),
    pytest.param(opened("t", T, queue=LONG), "invalid_field", id="queue-129"),
    pytest.param(opened("t", T, queue=5), "invalid_field", id="queue-number"),
    pytest.param(opened("t", T, channel="fax"), "invalid_field", id="channel-outside-set"),
    pytest.param(opened("t", T, channel="Phone"), "invalid_field", id="channel-case"),
    pytest.param(opened("t", T, priority="critical"), "invalid_field", id="priority-outside"),
    pytest.param(survey("t", T, "ces", 4), "invalid_field", id="survey-kind-outside-set"),
    pytest.param(survey("t", T, "csat", 0), "invalid_field", id="csat-below-1"),
    pytest.param(survey("t", T, "csat", 6), "invalid_field", id="csat-above-5"),
    pytest.param(survey("t", T, "nps", -1), "invalid_field", id="nps-below-0"),
    pytest.param(survey("t", T, "nps", 11), "invalid_field", id="nps-above-10"),
    pytest.param(survey("t", T, "csat", 4.0), "invalid_field", id="score-float"),
    pytest.param(survey("t", T, "csat", "4"), "invalid_field", id="score-string"),
    pytest.param(survey("t", T, "nps", True), "invalid_field", id="score-bool"),
    pytest.param(resolved("t", T, agent_id=12), "invalid_field", id="agent_id-number"),
    pytest.param(payload("ticket.closed", "t", T), "unknown_type", id="unknown-type"),
    pytest.param(payload("TICKET.OPENED", "t", T), "unknown_type", id="type-case"),
    pytest.param(first_reply("t", "2026-11-22T09:00:00"), "invalid_timestamp", id="naive"),
    pytest.param(first_reply("t", "2026-11-22T09:00:00.250"), "invalid_timestamp", id="naive-ms"),
    pytest.param(first_reply("t", "2026-11-22"), "invalid_timestamp", id="date-only"),
    pytest.param(first_reply("t", "2026-11-22T09Z"), "invalid_timestamp", id="hour-only"),
    pytest.param(first_reply("t", "yesterday"), "invalid_timestamp", id="words"),
    pytest.param(first_reply("t", "2026-13-01T00:00:00Z"), "invalid_timestamp", id="month-13"),
    pytest.param(first_reply("t", "1795341600000"), "invalid_timestamp", id="epoch-as-string"),
    pytest.param(first_reply("t", 1.7953416e12), "invalid_timestamp", id="epoch-float"),
    pytest.param(first_reply("t", -1), "invalid_timestamp", id="epoch-negative"),
    pytest.param(first_reply("t", 0), "invalid_timestamp", id="epoch-zero"),
    pytest.param(first_reply("t", 946_684_799_999), "invalid_timestamp", id="epoch-1999"),
    pytest.param(first_reply("t", "1999-12-31T23:59:59.999Z"), "invalid_timestamp", id="1999"),
    pytest.param(
        first_reply("t", "2000-01-01T00:30:00+01:00"), "invalid_timestamp", id="1999-by-offset"
    ),
    pytest.param(first_reply("t", "0001-01-01T00:00:00Z"), "invalid_timestamp", id="year-1"),
    pytest.param(
        first_reply("t", "0001-01-01T00:00:00+23:59"), "invalid_timestamp", id="year-1-offset"
    ),
    pytest.param(first_reply("t", True), "invalid_timestamp", id="epoch-bool"),
    pytest.param(first_reply("t", 253_402_300_800_000), "invalid_timestamp", id="year-10000"),
    pytest.param(first_reply("t", {"ms": 1}), "invalid_timestamp", id="object"),
    pytest.param(first_reply("t", NOW + 300 * SECOND + 1), "future_timestamp", id="301s-ahead"),
    pytest.param(first_reply("t", "2026-11-22T10:05:31Z"), "future_timestamp", id="text-ahead"),
    pytest.param(first_reply("t", "2030-01-01T00:00:00Z"), "future_timestamp", id="years-ahead"),
]


@pytest.mark.parametrize(("raw", "reason"), REJECTIONS)
def test_invalid_event_is_rejected_with_its_reason(
    raw: bytes | dict[str, Any], reason: str
) -> None:
    rejection = decoded(raw)
    assert isinstance(rejection, Rejection), rejection
    assert rejection.reason == reason
    assert rejection.reason in REASONS


@pytest.mark.parametrize(
    "occurred_at",
    [
        pytest.param(NOW + 300 * SECOND, id="exactly-300s-ahead"),
        pytest.param(NOW + 299 * SECOND, id="299s-ahead"),
        pytest.param(NOW - 400 * 86_400_000, id="400-days-late"),
        pytest.param("2026-11-22T10:05:30Z", id="text-exactly-300s-ahead"),
    ],
)
def test_occurred_at_up_to_300s_ahead_or_late_is_accepted(occurred_at: int | str) -> None:
    assert isinstance(decoded(first_reply("t", occurred_at)), Event)


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(first_reply("t", T, event_id=FULL), id="event_id-128"),
        pytest.param(first_reply(FULL, T), id="ticket_id-128"),
        pytest.param(first_reply("t", T, event_id="é" * 128), id="event_id-128-non-ascii"),
        pytest.param(first_reply("t", T, event_id="😀" * 128), id="event_id-128-emoji"),
        pytest.param(opened("t", T, queue=FULL), id="queue-128"),
        pytest.param(opened("t", T, queue="x"), id="queue-1"),
        pytest.param(first_reply("x", T, event_id="y"), id="ids-1"),
        pytest.param(survey("t", T, "csat", 1), id="csat-1"),
        pytest.param(survey("t", T, "csat", 5), id="csat-5"),
        pytest.param(survey("t", T, "nps", 10), id="nps-10"),
    ],
)
def test_field_at_the_edge_of_its_range_is_accepted(event: dict[str, Any]) -> None:
    assert isinstance(decoded(event), Event)


@pytest.mark.parametrize("channel", ["phone", "email", "chat", "social", "web", "other"])
@pytest.mark.parametrize("priority", ["low", "normal", "high", "urgent"])
def test_every_channel_and_priority_is_accepted(channel: str, priority: str) -> None:
    event = decoded(opened("t", T, channel=channel, priority=priority))
    assert isinstance(event, Event)
    assert (event.channel, event.priority) == (channel, priority)


@pytest.mark.parametrize("event_type", list(TOPIC_OF_TYPE))
@pytest.mark.parametrize("topic", list(TOPIC_OF_TYPE.values()))
def test_type_must_match_the_topic_it_came_from(event_type: str, topic: str) -> None:
    event = {
        "ticket.opened": opened("t", T),
        "ticket.first_reply": first_reply("t", T),
        "ticket.resolved": resolved("t", T),
        "survey.responded": survey("t", T, "nps", 9),
        "ticket.replied": replied("t", T),
        "ticket.reopened": reopened("t", T),
        "contact.queued": queued("t", T),
        "contact.answered": answered("t", T),
        "contact.abandoned": abandoned("t", T),
        "contact.ended": ended("t", T),
        "contact.wrapped": wrapped("t", T),
        "agent.status": status("t", T, "busy"),
    }[event_type]
    result = decoded(event, topic=topic, key=b"t")
    if TOPIC_OF_TYPE[event_type] == topic:
        assert isinstance(result, Event)
    else:
        assert isinstance(result, Rejection)
        assert result.reason == "type_mismatch"


@pytest.mark.parametrize(
    ("key", "accepted"),
    [
        pytest.param("tïcket-1".encode(), True, id="utf8-key-equal"),
        pytest.param(b"ticket-2", False, id="other-ticket"),
        pytest.param(b"", False, id="empty-key"),
        pytest.param("tïcket-1".encode("latin-1"), False, id="same-text-other-encoding"),
        pytest.param(None, False, id="null-key"),
    ],
)
def test_message_key_must_equal_ticket_id(key: bytes | None, accepted: bool) -> None:
    result = decoded(first_reply("tïcket-1", T), topic="cs.ticket.first_reply", key=key)
    if accepted:
        assert isinstance(result, Event)
    else:
        assert isinstance(result, Rejection)
        assert result.reason == "key_mismatch"


def test_a_file_line_has_no_key_to_check() -> None:
    assert isinstance(decoded(first_reply("t1", T)), Event)


@pytest.mark.parametrize(
    ("type_word", "id_field"),
    [
        ("ticket", "ticket_id"),
        ("survey", "ticket_id"),
        ("contact", "contact_id"),
        ("agent", "agent_id"),
    ],
)
def test_each_entity_kind_names_the_field_its_key_must_equal(type_word: str, id_field: str) -> None:
    assert ENTITY_ID_FIELD[type_word] == id_field
    for event_type in TOPIC_OF_TYPE:
        assert event_type.partition(".")[0] in ENTITY_ID_FIELD, event_type


HOSTILE = '<img src=x onerror=alert(1)>"\\\n😀'


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(payload(HOSTILE, "t", T), id="hostile-type"),
        pytest.param(opened("t", T, channel=HOSTILE), id="hostile-channel"),
        pytest.param(opened("t", T, queue=HOSTILE * 30), id="hostile-long-queue"),
        pytest.param(survey("t", T, HOSTILE, 3), id="hostile-survey-kind"),
        pytest.param(first_reply("t", HOSTILE), id="hostile-timestamp"),
        pytest.param(first_reply(HOSTILE * 30, T), id="hostile-long-ticket_id"),
    ],
)
def test_rejection_reason_and_detail_never_carry_event_text(event: dict[str, Any]) -> None:
    rejection = decoded(event)
    assert isinstance(rejection, Rejection)
    assert rejection.reason in REASONS
    assert rejection.reason.isidentifier()
    for fragment in ("<img", "onerror", "😀", "\n"):
        assert fragment not in rejection.detail


def test_every_reason_is_a_short_fixed_word() -> None:
    assert len(set(REASONS)) == len(REASONS)
    for reason in REASONS:
        assert reason.isidentifier() and reason.islower() and len(reason) <= 32
    assert {"invalid_json", "missing_field", "invalid_field"} <= set(REASONS)
    assert {"type_mismatch", "future_timestamp"} <= set(REASONS)


def test_duplicate_keys_in_json_do_not_crash_the_decoder() -> None:
    raw = b'{"type": "x", "type": "ticket.first_reply", "event_id": "e", "ticket_id": "t", '
    raw += orjson.dumps("occurred_at") + b": " + orjson.dumps(T) + b"}"
    assert isinstance(decoded(raw), Event | Rejection)


# --- Deviations from contract section 1 (these tests fail until the decoder is fixed) ---


@pytest.mark.parametrize(
    "occurred_at",
    [
        pytest.param("2026-11-22T10:00Z", id="no-seconds"),
        pytest.param("2026-W47-7T10:00:00Z", id="iso-week-date"),
        pytest.param("2026-11-22T10:00:00,250Z", id="comma-fraction"),
        pytest.param("2026-11-22T10:00:00+0100", id="offset-without-colon"),
        pytest.param("2026-11-22T10:00:00+01", id="offset-hours-only"),
        pytest.param("2026-11-22T10:00:00+01:00:30", id="offset-with-seconds"),
        pytest.param("2026-11-22T10:00:00.Z", id="empty-fraction"),
    ],
)
def test_timestamp_that_is_not_rfc3339_is_rejected(occurred_at: str) -> None:
    """Contract: occurred_at is "an RFC 3339 string with an offset"; ISO 8601 extras are not."""
    rejection = decoded(first_reply("t", occurred_at))
    assert isinstance(rejection, Rejection), f"{occurred_at!r} was accepted"
    assert rejection.reason == "invalid_timestamp"


@pytest.mark.parametrize(
    ("occurred_at", "expected"),
    [
        pytest.param("2026-11-22t09:00:00z", "2026-11-22T09:00:00Z", id="lowercase-t-and-z"),
        pytest.param("2026-11-22T09:00:00z", "2026-11-22T09:00:00Z", id="lowercase-z"),
    ],
)
def test_rfc3339_lowercase_z_is_accepted(occurred_at: str, expected: str) -> None:
    """RFC 3339 section 5.6 allows a lower-case "z"; the decoder rejects it (but takes "t")."""
    event = decoded(first_reply("t", occurred_at))
    assert isinstance(event, Event), event
    assert event.occurred_at == utc_ms(expected)


@pytest.mark.parametrize(
    "agent_id",
    [pytest.param("", id="empty"), pytest.param("a" * 129, id="129-chars")],
)
def test_any_string_agent_id_is_accepted(agent_id: str) -> None:
    """The contract gives agent_id as "string, optional" with no length rule (only event_id
    and ticket_id are 1..128), and no KPI uses it; rejecting the event loses its FRT."""
    event = decoded(first_reply("t", T, agent_id=agent_id))
    assert isinstance(event, Event), event
    assert event.occurred_at == T_MS


CONTACT_AND_AGENT_VALID = [
    pytest.param(
        queued("c1", T, queue="sales", channel="chat", customer_id="cust-9", event_id="q1"),
        Event("q1", "contact.queued", "c1", T_MS, queue="sales", channel="chat"),
        id="queued",
    ),
    pytest.param(
        queued("c1", T, channel="video", event_id="q2"),
        Event("q2", "contact.queued", "c1", T_MS, queue="sales", channel="video"),
        id="queued-video-no-customer",
    ),
    pytest.param(
        answered("c1", T, agent_id="a7", event_id="a1"),
        Event("a1", "contact.answered", "c1", T_MS, agent_id="a7"),
        id="answered",
    ),
    pytest.param(
        answered("c1", T, event_id="a2"),
        Event("a2", "contact.answered", "c1", T_MS),
        id="answered-no-agent",
    ),
    pytest.param(abandoned("c1", T, event_id="x"), Event("x", "contact.abandoned", "c1", T_MS)),
    pytest.param(ended("c1", T, event_id="x"), Event("x", "contact.ended", "c1", T_MS)),
    pytest.param(wrapped("c1", T, event_id="x"), Event("x", "contact.wrapped", "c1", T_MS)),
    pytest.param(
        status("a7", T, "after_contact_work", team="blue", event_id="s1"),
        Event(
            "s1",
            "agent.status",
            "a7",
            T_MS,
            agent_id="a7",
            status="after_contact_work",
            team="blue",
        ),
        id="status",
    ),
    pytest.param(
        status("a7", T, "offline", event_id="s2"),
        Event("s2", "agent.status", "a7", T_MS, agent_id="a7", status="offline", team="default"),
        id="status-default-team",
    ),
]


@pytest.mark.parametrize(("event", "expected"), CONTACT_AND_AGENT_VALID)
def test_contact_and_agent_events_decode(event: dict[str, Any], expected: Event) -> None:
    id_field = "agent_id" if event["type"] == "agent.status" else "contact_id"
    assert decoded(event, key=event[id_field].encode()) == expected


CONTACT_AND_AGENT_INVALID = [
    pytest.param(queued("c", T, channel="email"), "invalid_field", id="contact-channel-email"),
    pytest.param(queued("c", T, queue=""), "invalid_field", id="queue-empty"),
    pytest.param(without(queued("c", T), "queue"), "missing_field", id="queue-missing"),
    pytest.param(queued("c", T, customer_id="x" * 129), "invalid_field", id="customer-129"),
    pytest.param(queued("c", T, customer_id=7), "invalid_field", id="customer-number"),
    pytest.param(queued("x" * 129, T), "invalid_field", id="contact_id-129"),
    pytest.param(without(answered("c", T), "contact_id"), "missing_field", id="contact_id-gone"),
    pytest.param(
        {**without(answered("c", T), "contact_id"), "ticket_id": "c"},
        "missing_field",
        id="ticket_id-instead-of-contact_id",
    ),
    pytest.param(answered("c", T, agent_id=5), "invalid_field", id="answered-agent-number"),
    pytest.param(status("a", T, "lunch"), "invalid_field", id="status-unknown"),
    pytest.param(without(status("a", T, "busy"), "status"), "missing_field", id="status-missing"),
    pytest.param(without(status("a", T, "busy"), "agent_id"), "missing_field", id="agent-missing"),
    pytest.param(status("", T, "busy"), "invalid_field", id="agent-empty"),
    pytest.param(status("a", T, "busy", team=""), "invalid_field", id="team-empty"),
    pytest.param(status("a", T, "busy", team="t" * 129), "invalid_field", id="team-129"),
    pytest.param(status("a", "2026-11-22T09:00:00", "busy"), "invalid_timestamp", id="naive"),
]


@pytest.mark.parametrize(("event", "reason"), CONTACT_AND_AGENT_INVALID)
def test_contact_and_agent_events_are_rejected(event: dict[str, Any], reason: str) -> None:
    result = decoded(event)
    assert isinstance(result, Rejection)
    assert result.reason == reason


@pytest.mark.parametrize(
    ("event", "key", "reason"),
    [
        (queued("c1", T), b"c2", "key_mismatch"),
        (status("a1", T, "busy"), b"a2", "key_mismatch"),
        (queued("c1", T), b"c1", None),
        (status("a1", T, "busy"), b"a1", None),
    ],
)
def test_contact_and_agent_key_is_their_id(
    event: dict[str, Any], key: bytes, reason: str | None
) -> None:
    result = decoded(event, topic=TOPIC_OF_TYPE[event["type"]], key=key)
    assert getattr(result, "reason", None) == reason
