"""Run one worker: the Faust app plus its web server, until SIGINT/SIGTERM."""

from __future__ import annotations

import faust

from stream.app import KpiApp
from stream.config import Settings
from stream.web.server import WebServer


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Start a worker and block until it is stopped."""
    kpi = KpiApp(settings)
    worker = faust.Worker(
        kpi.app,
        WebServer(kpi),
        loglevel=loglevel,
        redirect_stdouts=False,
        override_logging=True,
    )
    worker.execute_from_commandline()
