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
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families

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


def wait_for_data(base: str, demo: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not caught_up(base):
        if demo.poll() is not None:
            sys.exit(f"kpi-stream demo exited with {demo.returncode}")
        if time.monotonic() > deadline:
            sys.exit(f"the demo had no complete data after {READY_TIMEOUT_S:.0f} s")
        time.sleep(1)


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
        command = [sys.executable, "-m", "stream", "demo", "--port", str(args.port),
                   "--data-dir", str(Path(data_dir) / "demo")]  # fmt: skip
        demo = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_for_data(base, demo)
            capture(base, args.out)
        finally:
            demo.send_signal(signal.SIGINT)  # the demo stops simulator, worker, broker
            demo.wait(120)


if __name__ == "__main__":
    main()
