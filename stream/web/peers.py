"""The peer view: system-wide snapshots by fan-out to the other workers, and the rules for
what a peer may ask of this one.

A worker answering a scrape asks every other worker for the snapshot of its own
partitions at the same instant and merges them (contract section 5). What a peer sends is
data, never a command: its `now_ms` is accepted only within `CLOCK_BAND_MS` of this
worker's own clock and never moves this worker's windows past its own clock; with
`KPI_CLUSTER_TOKEN` set, a peer must present it (compared in constant time).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from time import monotonic
from typing import Final

import aiohttp

from stream.kpi.centre import CentreSnapshot
from stream.kpi.snapshot import Snapshot
from stream.kpi.windows import WINDOWS

log = logging.getLogger(__name__)

PEER_PATH: Final = "/internal/snapshot"
PEER_TIMEOUT_S: Final = 1.5
# A snapshot is reused for SNAPSHOT_FRESH_S, or SNAPSHOT_REUSE_FACTOR times as long as it
# took if that is longer, whatever happened since (so scrapes take at most ~1/5 of the time
# while a snapshot takes up to 62 ms), and never for more than SNAPSHOT_CACHE_S; up to that
# while no message was applied since.
SNAPSHOT_FRESH_S: Final = 0.05
SNAPSHOT_REUSE_FACTOR: Final = 4
SNAPSHOT_CACHE_S: Final = 0.25
# How far a peer's clock may be from ours: the fan-out's timeout plus ordinary clock skew.
CLOCK_BAND_MS: Final = 10_000


class BadPeerRequest(ValueError):
    """A peer request this worker refuses (answered with 400)."""


def wall_ms() -> int:
    """This worker's clock, epoch milliseconds."""
    return time.time_ns() // 1_000_000


def peer_instant(now_ms: str | None, own_ms: int) -> int:
    """The instant to snapshot for a peer that asked at `now_ms` (text of the query).

    It must be a whole number within `CLOCK_BAND_MS` of `own_ms`; a peer ahead of us gets
    our own instant, so a peer's clock never moves this worker's windows forward.
    """
    if now_ms is None or not (now_ms.isascii() and now_ms.isdigit()) or len(now_ms) > 16:
        raise BadPeerRequest("now_ms must be epoch milliseconds")
    asked = int(now_ms)
    if abs(asked - own_ms) > CLOCK_BAND_MS:
        raise BadPeerRequest(
            f"now_ms is more than {CLOCK_BAND_MS} ms away from this worker's clock"
        )
    return min(asked, own_ms)


def authorized(header: str | None, token: str | None) -> bool:
    """True when no cluster token is set, or the request carries it (constant-time check)."""
    if token is None:
        return True
    expected = f"Bearer {token}".encode()
    return hmac.compare_digest((header or "").encode(), expected)


def auth_headers(token: str | None) -> dict[str, str]:
    """The header a request to a peer carries."""
    return {} if token is None else {"Authorization": f"Bearer {token}"}


class PeerView:
    """Snapshots of this worker's partitions and of the whole system, at one instant."""

    def __init__(
        self,
        local: Callable[[int, bool], Awaitable[Snapshot]],
        peers: Callable[[], Iterable[str]],
        own_url: str,
        partitions: int,
        token: str | None,
        cell_size: int,
        applied: Callable[[], int],
    ) -> None:
        """`local(now_ms, per_agent)`: this worker's snapshot. `applied`: how many messages
        this worker applied so far (any that changes when its state does)."""
        self.local, self.peers, self.applied = local, peers, applied
        self.own_url = own_url.rstrip("/")
        self.partitions, self.token, self.cell_size = partitions, token, cell_size
        self.session: aiohttp.ClientSession | None = None
        self._cached: tuple[float, float, int, Snapshot, Snapshot] | None = (
            None  # at, fresh_s, applied
        )
        self._lock = asyncio.Lock()

    async def current(self, per_agent: bool) -> tuple[Snapshot, Snapshot]:
        """(local, system) snapshots now, with the per-agent cells when `per_agent`, reusing
        one taken in the last 50 ms (or 4 times as long as it took, at most 250 ms), or in
        the last 250 ms if no message was applied since (one with per-agent cells serves
        either kind)."""
        async with self._lock:
            applied = self.applied()
            if self._cached is not None:
                at, fresh_s, applied_then, local, system = self._cached
                age = monotonic() - at
                fits = local.centre.per_agent or not per_agent
                if fits and (age < fresh_s or (age < SNAPSHOT_CACHE_S and applied == applied_then)):
                    return local, system
            started = monotonic()
            local = await self.local(wall_ms(), per_agent)
            system = await self.system(local)
            done = monotonic()
            took = done - started
            fresh_s = min(SNAPSHOT_CACHE_S, max(SNAPSHOT_FRESH_S, SNAPSHOT_REUSE_FACTOR * took))
            self._cached = (done, fresh_s, applied, local, system)
            return local, system

    async def system(self, local: Snapshot) -> Snapshot:
        """`local` merged with every peer's snapshot at the same instant; `local` itself
        when no peer's is merged (a copy of thousands of agents' cells would hold up the
        batch loop for nothing).

        A peer's snapshot is merged only when its partitions are real partition numbers
        that no one else reported; anything else is logged and left out (incomplete).
        """
        urls = sorted({u.rstrip("/") for u in self.peers()} - {self.own_url})
        per_agent = local.centre.per_agent
        parts = await asyncio.gather(*(self._ask(url, local.now_ms, per_agent) for url in urls))
        reported = local.partitions
        fitting: list[Snapshot] = []
        for url, part in zip(urls, parts, strict=True):
            if part is None:
                continue
            if not part.partitions <= set(range(self.partitions)):
                log.warning("peer %s reported partitions outside 0..%d", url, self.partitions - 1)
            elif part.partitions & reported:
                log.warning("partitions %s reported twice; skipped", sorted(part.partitions))
            elif not self._fits(part) or (per_agent and not part.centre.per_agent):
                log.warning("peer %s sent a snapshot of another shape; skipped", url)
            else:
                reported = reported | part.partitions
                fitting.append(part)
        if not fitting:
            return local
        system = Snapshot(local.now_ms, centre=CentreSnapshot(per_agent=per_agent))
        for part in (local, *fitting):
            system.merge(part)
        return system

    def _fits(self, part: Snapshot) -> bool:
        """Known windows, cells of this worker's layout, whole numbers in both."""
        return (
            part.windows.keys() <= set(WINDOWS)
            and all(
                len(cell) == self.cell_size and all(type(n) is int for n in cell)
                for cells in part.windows.values()
                for cell in cells.values()
            )
            and all(
                type(n) is int
                for live in part.live.values()
                for n in (live.open, live.ok, live.at_risk, live.breached)
            )
        )

    async def _ask(self, url: str, now_ms: int, per_agent: bool) -> Snapshot | None:
        if self.session is None:
            self.session = aiohttp.ClientSession()
        try:
            async with self.session.get(
                f"{url}{PEER_PATH}",
                params={"now_ms": str(now_ms), "per_agent": "1" if per_agent else "0"},
                headers=auth_headers(self.token),
                timeout=aiohttp.ClientTimeout(total=PEER_TIMEOUT_S),
            ) as response:
                response.raise_for_status()
                return Snapshot.from_json(await response.read())
        except (
            aiohttp.ClientError,
            TimeoutError,
            ValueError,
            LookupError,
            TypeError,
            AttributeError,
        ) as exc:
            log.warning("peer %s did not answer: %r", url, exc)
            return None

    async def close(self) -> None:
        """Close the HTTP session to the peers."""
        if self.session is not None:
            await self.session.close()
