"""Shared vocabulary of the domain: event types, enums and label dimensions."""

from __future__ import annotations

from typing import Final, Literal

Channel = Literal["phone", "email", "chat", "social", "web", "other"]
Priority = Literal["low", "normal", "high", "urgent"]
SurveyKind = Literal["csat", "nps"]

TOPIC_OF_TYPE: Final[dict[str, str]] = {
    "ticket.opened": "cs.ticket.opened",
    "ticket.first_reply": "cs.ticket.first_reply",
    "ticket.resolved": "cs.ticket.resolved",
    "survey.responded": "cs.survey.responded",
    "ticket.replied": "cs.ticket.replied",
    "ticket.reopened": "cs.ticket.reopened",
    "contact.queued": "cs.contact.queued",
    "contact.answered": "cs.contact.answered",
    "contact.abandoned": "cs.contact.abandoned",
    "contact.ended": "cs.contact.ended",
    "contact.wrapped": "cs.contact.wrapped",
    "agent.status": "cs.agent.status",
}
# Every input topic (co-partitioned), and those of each entity kind.
INPUT_TOPICS: Final[tuple[str, ...]] = tuple(TOPIC_OF_TYPE.values())
TICKET_TOPICS: Final[tuple[str, ...]] = tuple(
    topic for topic in INPUT_TOPICS if topic.startswith(("cs.ticket.", "cs.survey."))
)
CONTACT_TOPICS: Final[tuple[str, ...]] = tuple(
    topic for topic in TOPIC_OF_TYPE.values() if topic.startswith("cs.contact.")
)
AGENT_TOPICS: Final[tuple[str, ...]] = ("cs.agent.status",)
DLQ_TOPIC: Final = "cs.events.dlq"

CHANNELS: Final[frozenset[str]] = frozenset({"phone", "email", "chat", "social", "web", "other"})
PRIORITIES: Final[tuple[str, ...]] = ("low", "normal", "high", "urgent")
CONTACT_CHANNELS: Final[tuple[str, ...]] = ("phone", "chat", "video", "other")
AGENT_STATUSES: Final[tuple[str, ...]] = (
    "available",
    "busy",
    "after_contact_work",
    "away",
    "offline",
)
SURVEY_KINDS: Final[frozenset[str]] = frozenset({"csat", "nps"})
NPS_CATEGORIES: Final[tuple[str, ...]] = ("promoter", "passive", "detractor")

# (queue, channel, priority): the label dimensions of every additive component.
Dims = tuple[str, str, str]
UNKNOWN_DIMS: Final[Dims] = ("unknown", "other", "normal")
OTHER_QUEUE: Final = "other"
UNASSIGNED: Final = "unassigned"  # the agent label of work no agent is named for
