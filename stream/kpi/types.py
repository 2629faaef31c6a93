"""Shared vocabulary of the domain: event types, enums and label dimensions."""

from __future__ import annotations

from typing import Final, Literal

EventType = Literal["ticket.opened", "ticket.first_reply", "ticket.resolved", "survey.responded"]
Channel = Literal["phone", "email", "chat", "social", "web", "other"]
Priority = Literal["low", "normal", "high", "urgent"]
SurveyKind = Literal["csat", "nps"]

TOPIC_OF_TYPE: Final[dict[str, str]] = {
    "ticket.opened": "cs.ticket.opened",
    "ticket.first_reply": "cs.ticket.first_reply",
    "ticket.resolved": "cs.ticket.resolved",
    "survey.responded": "cs.survey.responded",
}
INPUT_TOPICS: Final[tuple[str, ...]] = tuple(TOPIC_OF_TYPE.values())
DLQ_TOPIC: Final = "cs.events.dlq"

CHANNELS: Final[frozenset[str]] = frozenset({"phone", "email", "chat", "social", "web", "other"})
PRIORITIES: Final[tuple[str, ...]] = ("low", "normal", "high", "urgent")
SURVEY_KINDS: Final[frozenset[str]] = frozenset({"csat", "nps"})
NPS_CATEGORIES: Final[tuple[str, ...]] = ("promoter", "passive", "detractor")

# (queue, channel, priority): the label dimensions of every additive component.
Dims = tuple[str, str, str]
UNKNOWN_DIMS: Final[Dims] = ("unknown", "other", "normal")
OTHER_QUEUE: Final = "other"
