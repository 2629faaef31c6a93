"""Wire format: decode and validate one raw Kafka message into an Event, or a Rejection.

Validation follows contract section 1. Every failure becomes a `Rejection` value with a
fixed `reason` word (never text taken from the event), so callers can count it, send it
to the dead-letter topic and carry on.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from stream.kpi.event import MAX_FUTURE_MS, Event
from stream.kpi.types import (
    AGENT_STATUSES,
    CHANNELS,
    CONTACT_CHANNELS,
    PRIORITIES,
    SURVEY_KINDS,
    TOPIC_OF_TYPE,
)
from stream.kpi.windows import to_ms

MAX_ID_LENGTH: Final = 128
EARLIEST_MS: Final = 946_684_800_000  # 2000-01-01T00:00:00Z: anything older is a broken clock
LATEST_MS: Final = 253_402_300_800_000  # year 10000
RFC3339: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})"
)
NAIVE: Final = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?")
SCORE_RANGE: Final[dict[str, tuple[int, int]]] = {"csat": (1, 5), "nps": (0, 10)}
# The field naming an event's entity, by the first word of its `type`; the Kafka key must
# equal it. A new entity kind adds its word here.
ENTITY_ID_FIELD: Final[dict[str, str]] = {
    "ticket": "ticket_id",
    "survey": "ticket_id",
    "contact": "contact_id",
    "agent": "agent_id",
}
ID_FIELD_OF_TYPE: Final = {t: ENTITY_ID_FIELD[t.partition(".")[0]] for t in TOPIC_OF_TYPE}

# Every reason word the decoder can give; `cs_events_rejected_total{reason}` uses these.
REASONS: Final[tuple[str, ...]] = (
    "invalid_json",
    "not_object",
    "missing_field",
    "invalid_field",
    "invalid_timestamp",
    "unknown_type",
    "type_mismatch",
    "key_mismatch",
    "future_timestamp",
)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an event was refused: a fixed `reason` word and a short detail for logs."""

    reason: str
    detail: str


class _Invalid(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.rejection = Rejection(reason, detail)


def decode(
    raw: bytes, now_ms: int, topic: str | None = None, key: bytes | None = None
) -> Event | Rejection:
    """Decode one message value.

    With `topic` (a message from Kafka) the type must belong to the topic and `key` must
    equal the entity id: a null key is a `key_mismatch` too. Without `topic` (a line of a
    file) neither is checked.
    """
    try:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _Invalid("invalid_json", "value is not valid UTF-8 JSON") from exc
        return _validate(obj, now_ms, topic, key)
    except _Invalid as invalid:
        return invalid.rejection


def _validate(obj: Any, now_ms: int, topic: str | None, key: bytes | None) -> Event:
    """The checks of contract section 1 in a fixed order (the first failing one names the
    reason), each a direct test on the fields with the generic error path only on failure."""
    if not isinstance(obj, dict):
        raise _Invalid("not_object", "value is not a JSON object")
    event_type: Any = obj.get("type")  # a str once it names a topic
    event_topic = TOPIC_OF_TYPE.get(event_type) if type(event_type) is str else None
    if event_topic is None:
        _field(obj, "type", str)
        raise _Invalid("unknown_type", "unknown event type")
    if topic is not None and event_topic != topic:
        raise _Invalid("type_mismatch", f"type {event_type} does not belong on this topic")
    event_id = _identifier(obj, "event_id")
    id_field = ID_FIELD_OF_TYPE[event_type]
    entity_id = _identifier(obj, id_field)
    if topic is not None and key != entity_id.encode():
        detail = "message has no key" if key is None else f"message key differs from {id_field}"
        raise _Invalid("key_mismatch", detail)
    occurred_at = parse_occurred_at(obj.get("occurred_at", _MISSING))
    if occurred_at > now_ms + MAX_FUTURE_MS:
        raise _Invalid("future_timestamp", "occurred_at is more than 300 s ahead of the clock")
    if event_type == "ticket.opened":
        return Event(
            event_id,
            event_type,
            entity_id,
            occurred_at,
            # Interned: a million tickets share a handful of label strings.
            sys.intern(_identifier(obj, "queue")),
            _choice(obj, "channel", CHANNELS),
            _choice(obj, "priority", PRIORITIES),
        )
    if event_type == "survey.responded":
        survey = _choice(obj, "survey", SURVEY_KINDS)
        score = _field(obj, "score", int)
        low, high = SCORE_RANGE[survey]
        if isinstance(score, bool) or not low <= score <= high:
            raise _Invalid("invalid_field", f"score out of range {low}..{high} for {survey}")
        return Event(event_id, event_type, entity_id, occurred_at, survey=survey, score=score)
    if event_type == "contact.queued":
        if obj.get("customer_id") is not None:
            _identifier(obj, "customer_id")
        return Event(
            event_id,
            event_type,
            entity_id,
            occurred_at,
            queue=sys.intern(_identifier(obj, "queue")),
            channel=_choice(obj, "channel", CONTACT_CHANNELS),
        )
    if event_type == "agent.status":
        team = obj.get("team")
        return Event(
            event_id,
            event_type,
            entity_id,
            occurred_at,
            agent_id=entity_id,
            status=_choice(obj, "status", AGENT_STATUSES),
            team=sys.intern("default" if team is None else _identifier(obj, "team")),
        )
    if event_type == "ticket.reopened":  # no extra fields: an agent_id is ignored
        return Event(event_id, event_type, entity_id, occurred_at)
    agent_id = obj.get("agent_id")
    if agent_id is not None and type(agent_id) is not str:
        raise _Invalid("invalid_field", "field agent_id must be a str")
    return Event(event_id, event_type, entity_id, occurred_at, None, None, None, agent_id)


_MISSING: Final = object()


def _field(obj: dict[str, Any], name: str, kind: type) -> Any:
    value = obj.get(name, _MISSING)
    if value is _MISSING or value is None:
        raise _Invalid("missing_field", f"missing field {name}")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Invalid("invalid_field", f"field {name} must be a {kind.__name__}")
    return value


def _identifier(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if type(value) is str and 0 < len(value) <= MAX_ID_LENGTH:  # orjson gives exact str
        return value
    _field(obj, name, str)
    raise _Invalid("invalid_field", f"field {name} must be 1..{MAX_ID_LENGTH} characters")


def _choice(obj: dict[str, Any], name: str, allowed: Collection[str]) -> str:
    """The allowed word the field holds, as the interned constant (labels share it)."""
    value = obj.get(name)
    if type(value) is str:
        word = _WORDS.get(value)
        if word is not None and word in allowed:
            return word
    _field(obj, name, str)
    raise _Invalid("invalid_field", f"field {name} is not one of {sorted(allowed)}")


# Every allowed word by itself: its constant, interned like every string literal.
_WORDS: Final[dict[str, str]] = {
    word: word
    for words in (CHANNELS, PRIORITIES, SURVEY_KINDS, CONTACT_CHANNELS, AGENT_STATUSES)
    for word in words
}


def parse_occurred_at(value: object) -> int:
    """Epoch ms from an RFC 3339 string with an offset, or from an integer of epoch ms."""
    if value is _MISSING or value is None:
        raise _Invalid("missing_field", "missing field occurred_at")
    if isinstance(value, int) and not isinstance(value, bool):
        return _in_range(value)
    if not isinstance(value, str) or len(value) > 64:
        raise _Invalid("invalid_timestamp", "occurred_at must be RFC 3339 or epoch ms")
    if not RFC3339.fullmatch(value):
        detail = "has no UTC offset" if NAIVE.fullmatch(value) else "is not RFC 3339"
        raise _Invalid("invalid_timestamp", f"occurred_at {detail}")
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError as exc:  # a well-formed but impossible date, such as 02-30
        raise _Invalid("invalid_timestamp", "occurred_at is not a valid date and time") from exc
    return _in_range(to_ms(moment))


def _in_range(ms: int) -> int:
    if not EARLIEST_MS <= ms < LATEST_MS:
        raise _Invalid("invalid_timestamp", "occurred_at is before 2000-01-01 or after 9999")
    return ms
