"""The domain event: one valid event as the entity kinds fold it (stream/events.py decodes it)."""

from __future__ import annotations

from typing import Final, NamedTuple

# How far ahead of the clock an event's `occurred_at` may be (contract section 1).
MAX_FUTURE_MS: Final = 300_000


class Event(NamedTuple):
    """A valid event. Times are epoch milliseconds (UTC); type-specific fields or None.

    `entity_id` is the id its type names the entity by: `ticket_id`, `contact_id` or
    `agent_id` (for `agent.status`, `agent_id` holds the same string). A named tuple, not
    a frozen dataclass: one is made per message, at a third of the cost.
    """

    event_id: str
    type: str
    entity_id: str
    occurred_at: int
    queue: str | None = None
    channel: str | None = None
    priority: str | None = None
    agent_id: str | None = None
    survey: str | None = None
    score: int | None = None
    status: str | None = None
    team: str | None = None
