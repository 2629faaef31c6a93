"""The README's screenshots, from the real demo: `kpi-stream demo` (broker, worker,
simulator) and headless Chromium at 1920x1080.

Usage: .venv/bin/python scripts/screenshots.py [--port 6077] [--out docs]

Starts the demo on its own data directory, waits until the worker is ready, has applied
the simulator's backfill (consumer lag 0 on every partition) and shows agents, then saves
the ticket board, the contact-centre board and the agents view as PNGs and stops the demo.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import urllib.request
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families

from kpi_devtools.supervisor import ChildFailed, Supervised

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("KPI_CHROMIUM", "/usr/bin/chromium")
WIDTH, HEIGHT = 1920, 1080
# (file in --out, path and fragment of the board)
BOARDS = [
    ("wallboard.png", "/"),
    ("wallboard-contacts.png", "/#board=contacts"),
    ("agents.png", "/agents"),
]
READY_TIMEOUT_S = 300.0


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body


def caught_up(base: str) -> bool:
    """Ready, every partition's backlog applied, and agents on the floor."""
    try:
        get(base + "/readyz")
        metrics = get(base + "/metrics").decode()
        agents = orjson.loads(get(base + "/api/agents"))["agents"]
    except OSError:
        return False
    lags = [
        sample.value
        for family in text_string_to_metric_families(metrics)
        if family.name == "cs_consumer_lag_messages"
        for sample in family.samples
    ]
    return bool(lags) and max(lags) == 0 and any(agent["status"] for agent in agents)


def capture(base: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}).new_page()
        for name, path in BOARDS:
            page.goto(base + path)
            page.wait_for_function("() => document.body.dataset.state === 'live'", timeout=15000)
            page.wait_for_function("() => document.fonts.status === 'loaded'", timeout=5000)
            page.wait_for_timeout(1500)  # a few more answers: every value drawn and fitted
            page.screenshot(path=str(out / name))
            print(f"{out / name}: written")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=6077)
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    with tempfile.TemporaryDirectory(prefix="kpi-screenshots-") as data_dir:
        command = ["-m", "stream", "demo", "--port", str(args.port),
                   "--data-dir", str(Path(data_dir) / "demo")]  # fmt: skip
        # Ctrl-C: the demo stops simulator, worker and broker.
        demo = Supervised("demo", command, cwd=REPO, stop_signal=signal.SIGINT, stop_grace_s=120)
        try:
            demo.start().wait_until(lambda: caught_up(base), READY_TIMEOUT_S, interval_s=1)
            capture(base, args.out)
        except ChildFailed as exc:
            sys.exit(f"the demo had no complete data: {exc}")
        finally:
            demo.stop()


if __name__ == "__main__":
    main()
