"""Summarise a py-spy raw profile (collapsed stacks) of a worker: where the CPU time goes.

    python -m bench.profile FILE [--top N]

The profile is taken with `--threads --idle` (see bench.throughput), so every thread is
sampled whether it runs or waits. The tables cover the main thread, the event loop where
the worker does all its work: shares are of its wall time, and "idle" is the loop waiting
for I/O. "Inclusive" counts a sample for every function on its stack, "self" only for the
innermost one.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::\d+)?\)$")

# Areas of the worker, each named by a function that roots its stacks (first match wins).
AREAS = (
    ("idle: the event loop waiting for I/O", "EpollSelector.select"),
    ("/metrics scrape (snapshot steps + text exposition)", "Routes.metrics"),
    ("other web requests", "RequestHandler._handle_request"),
    ("our event processing (Processor.handle)", "Processor.handle"),
    ("changelog records (Processor.record_bytes + producer batches)", "Runtime._changelog_sends"),
    ("waiting for acks of changelog and DLQ records", "Runtime._deliver"),
    ("committing offsets", "Runtime._commit"),
    ("rest of the batch loop (Runtime._apply)", "Runtime._apply"),
    ("getmany", "AIOKafkaConsumer.getmany"),
    ("aiokafka fetcher (fetch, decode records)", "Fetcher._fetch_requests_routine"),
    ("aiokafka producer: requests and their responses", "Sender._sender_routine"),
    ("aiokafka producer: requests and their responses", "Sender._send_produce_req"),
    ("aiokafka producer: requests and their responses", "SendProduceReqHandler.do"),
)


def parse(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    """(frames root→leaf as (function, file), samples) per line of a raw py-spy file."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = []
        for text in stack.split(";"):
            match = FRAME.match(text)
            frames.append((match["function"], match["file"]) if match else (text, ""))
        stacks.append((frames, int(count)))
    return stacks


WRAPPERS = ("stream/__main__.py", "stream/cli.py", "stream/worker.py")  # around everything


def is_ours(file: str) -> bool:
    """A file of this project's `stream` package, other than the start-up wrappers."""
    return "/stream/" in f"/{file}" and "site-packages" not in file and not file.endswith(WRAPPERS)


def package(file: str) -> str:
    """Top-level package of a file in site-packages, else the standard library."""
    if "site-packages/" in file:
        return file.split("site-packages/", 1)[1].split("/", 1)[0]
    return "python stdlib (asyncio, selectors, ...)"


def summarise(path: Path, top: int) -> str:
    stacks = parse(path)
    threads: Counter[str] = Counter()
    for frames, count in stacks:
        threads[frames[0][0]] += count
    stacks = [(frames[1:], count) for frames, count in stacks if "MainThread" in frames[0][0]]
    total = sum(count for _, count in stacks)
    areas: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    ours_self: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for frames, count in stacks:
        names = [function for function, _ in frames]
        area = next(
            (a for a, root in AREAS if root in names), "other (asyncio loop overhead, timers, ...)"
        )
        areas[area] += count
        function, file = frames[-1]
        packages["stream (ours)" if is_ours(file) else package(file)] += count
        leaves[f"{function} ({file.rsplit('site-packages/', 1)[-1]})"] += count
        for name in {f"{fn} ({f.rsplit('/stream/', 1)[-1]})" for fn, f in frames if is_ours(f)}:
            ours[name] += count
        innermost_ours = next(((fn, f) for fn, f in reversed(frames) if is_ours(f)), None)
        if innermost_ours is not None:
            ours_self[f"{innermost_ours[0]} ({innermost_ours[1].rsplit('/stream/', 1)[-1]})"] += (
                count
            )

    def table(title: str, counter: Counter[str], limit: int | None = None) -> list[str]:
        rows = [f"\n{title}"]
        rows += [f"  {100 * n / total:5.1f} %  {name}" for name, n in counter.most_common(limit)]
        return rows

    lines = [f"{path}: samples per thread " + ", ".join(f"{t}: {n}" for t, n in threads.items())]
    lines.append("Shares below: of the main thread's samples.")
    lines += table("Areas (by the root of each stack):", areas)
    lines += table("Self time by package (innermost frame):", packages)
    lines += table(f"Our code, inclusive (top {top}):", ours, top)
    lines += table(
        f"Our code, innermost frame of ours incl. the libraries it calls (top {top}):",
        ours_self,
        top,
    )
    lines += table(f"Self time, all functions (top {top}):", leaves, top)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    print(summarise(args.file, args.top))


if __name__ == "__main__":
    main()
