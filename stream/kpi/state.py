"""An index as `marshal`-able parts for a local snapshot, and back.

Minute cells (`dict[bucket, dict[key, list[int]]]`) go in chunks of a few buckets, each
cell without its trailing zeros (most cells use a few slots of ~40): every part is small
to write and quick to load. Other attributes go whole.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, cast

BUCKETS_PER_PART: Final = 16


def parts_of(index: object, names: tuple[str, ...], cells: tuple[str, ...]) -> list[object]:
    """(name, value) parts of the attributes `names` of `index`; those in `cells` chunked."""
    parts: list[object] = []
    for name in names:
        value: Any = getattr(index, name)
        if name not in cells:
            parts.append((name, value))
            continue
        rows = list(value.items())
        for start in range(0, len(rows), BUCKETS_PER_PART):
            chunk = rows[start : start + BUCKETS_PER_PART]
            parts.append((name, {b: {k: trimmed(c) for k, c in row.items()} for b, row in chunk}))
    return parts


def load_parts(
    index: object, parts: list[object], cells: tuple[str, ...], size: int | None
) -> None:
    """Set the attributes of `index` from `parts_of`; cells padded back to `size` slots
    (None: kept trimmed, for an index whose cells are)."""
    for part in parts:
        name, value = cast(tuple[str, Any], part)
        if name not in cells:
            setattr(index, name, value)
            continue
        into = getattr(index, name)
        for b, row in value.items():
            into[b] = (
                row if size is None else {k: c + [0] * (size - len(c)) for k, c in row.items()}
            )


def trimmed(cell: list[int]) -> list[int]:
    """`cell` without its trailing zeros."""
    end = len(cell)
    while end and not cell[end - 1]:
        end -= 1
    return cell[:end]


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside: an index build or a snapshot load allocates a
    million objects that all live on, and the collector would walk them again and again
    (a third of a build's time, half of a load's)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
