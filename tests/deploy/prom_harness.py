"""Real Prometheus and Alertmanager on loopback for tests, plus a webhook receiver.

Prometheus loads the rule files of deploy/prometheus/rules, scrapes the targets a test
gives it every second, evaluates rules every second and sends alerts to Alertmanager.
Alertmanager runs the repo's deploy/alertmanager/alertmanager.yml (routes, group_wait,
inhibitions) with every receiver pointed at a webhook receiver inside the test process.

Fixtures (module scope: one stack per test module):
    webhook_receiver    -> WebhookReceiver
    alertmanager        -> Alertmanager, delivering to webhook_receiver
    prometheus_factory  -> start(targets, interval_s=1) -> Prometheus, sending to alertmanager
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from kpi_devtools.broker.harness import free_ports
from kpi_devtools.supervisor import Supervised
from tests.infra import require_infra

REPO = Path(__file__).resolve().parents[2]
RULES_GENERATOR = REPO / "deploy" / "prometheus" / "generate.py"
RULE_FILES = sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml"))
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
SCRAPE_JOB = "kpi-stream"
START_TIMEOUT_S = 30.0
INTERVAL_S = 1  # default scrape and rule evaluation interval of the test Prometheus


def load_rules_generator() -> Any:
    """deploy/prometheus/generate.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("rules_generator", RULES_GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def find_binary(*names: str) -> str | None:
    """First of `names` on PATH (Debian calls Alertmanager `prometheus-alertmanager`)."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def require_binary(*names: str) -> str:
    """Path of the binary; missing means fail under CI=true, skip elsewhere."""
    path = find_binary(*names)
    if path is None:
        message = f"{names[0]} not installed (Debian packages prometheus, prometheus-alertmanager)"
        require_infra(message)
    return path


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    """Call `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def http_get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


class WebhookReceiver:
    """Collects Alertmanager webhook notifications (JSON bodies) on a loopback port."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.notifications.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/alerts"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every notification received so far."""
        with self._lock:
            return [alert for note in self.notifications for alert in note["alerts"]]

    def wait_for_alert(
        self, alertname: str, timeout: float, status: str = "firing", **labels: str
    ) -> dict[str, Any]:
        """The first delivered alert with this name, status and labels."""

        def find() -> dict[str, Any] | None:
            for alert in self.alerts():
                got = alert["labels"]
                if (
                    got.get("alertname") == alertname
                    and alert["status"] == status
                    and all(got.get(k) == v for k, v in labels.items())
                ):
                    return alert
            return None

        found: dict[str, Any] = wait_until(find, timeout, f"{status} {alertname} {labels}")
        return found


def repo_alertmanager_config(webhook_url: str) -> dict[str, Any]:
    """The repo's Alertmanager config with every receiver delivering to `webhook_url`."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    for receiver in config["receivers"]:
        receiver["webhook_configs"] = [{"url": webhook_url, "send_resolved": True}]
    return config


def group_wait_seconds(labels: dict[str, str]) -> int:
    """group_wait of the route of the repo's Alertmanager config that takes an alert
    with `labels` (first matching child route, one level deep, as the config has)."""

    def matches(matcher: str) -> bool:
        found = re.fullmatch(r'(\w+)(=~|=)"(.*)"', matcher)
        assert found, f"unsupported matcher {matcher}"
        name, operator, value = found.groups()
        got = labels.get(name, "")
        return got == value if operator == "=" else re.fullmatch(value, got) is not None

    route: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())["route"]
    child: dict[str, Any] = next(
        (r for r in route.get("routes", []) if all(map(matches, r["matchers"]))), {}
    )
    seconds: int = load_rules_generator().seconds({**route, **child}["group_wait"])
    return seconds


class Alertmanager:
    """Alertmanager with the repo's routes, every receiver delivering to one webhook."""

    def __init__(self, binary: str, workdir: Path, webhook_url: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        config = repo_alertmanager_config(webhook_url)
        config_path = workdir / "alertmanager.yml"
        config_path.write_text(json.dumps(config, indent=2))  # JSON is valid YAML
        self._daemon = Supervised(
            "Alertmanager",
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # no HA gossip port
            ],
            log=workdir / "alertmanager.log",
            stop_grace_s=15,
        ).start()
        try:
            self._daemon.wait_ready(f"{self.url}/-/ready", START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self._daemon.stop()


class Prometheus:
    """Prometheus scraping `targets` (host:port) as job kpi-stream with the project's rules.

    Scrapes and rule evaluations every `interval_s`; a scrape may take as long.
    """

    def __init__(
        self,
        binary: str,
        workdir: Path,
        targets: list[str],
        alertmanager_url: str | None,
        rule_files: list[Path] = RULE_FILES,
        interval_s: int = INTERVAL_S,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.interval_s = interval_s
        interval = f"{interval_s}s"
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "evaluation_interval": interval,
            },
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [{"job_name": SCRAPE_JOB, "static_configs": [{"targets": targets}]}],
        }
        if alertmanager_url:
            target = urllib.parse.urlsplit(alertmanager_url).netloc
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]}
        config_path = workdir / "prometheus.yml"
        config_path.write_text(json.dumps(config, indent=2))
        self._daemon = Supervised(
            "Prometheus",
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--rules.alert.resend-delay=1s",
            ],
            log=workdir / "prometheus.log",
            stop_grace_s=15,
        ).start()
        try:
            self._daemon.wait_ready(f"{self.url}/-/ready", START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self._daemon.stop()

    def log_tail(self) -> str:
        return self._daemon.log_tail()

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET /api/v1/<path>; the parsed JSON answer, also when Prometheus rejects it."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            answer: dict[str, Any] = http_get_json(url)
        except urllib.error.HTTPError as error:  # 400/422 carry a JSON error body
            answer = json.load(error)
        return answer

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query (now, or at epoch seconds `at`); the result list.

        Raises AssertionError if Prometheus rejects it.
        """
        params = {"query": expr} if at is None else {"query": expr, "time": repr(at)}
        answer = self.api("query", **params)
        assert answer["status"] == "success", f"{expr!r}: {answer.get('error')}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def wait_for_targets_up(self, count: int, timeout: float = START_TIMEOUT_S) -> None:
        wait_until(
            lambda: len(self.query(f'up{{job="{SCRAPE_JOB}"}} == 1')) >= count,
            timeout,
            f"{count} scrape targets up",
        )

    def firing_alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.api("alerts")["data"]["alerts"]
        return [alert for alert in alerts if alert["state"] == "firing"]


@pytest.fixture(scope="session")
def prometheus_binaries() -> dict[str, str]:
    return {
        "prometheus": require_binary("prometheus"),
        "alertmanager": require_binary("prometheus-alertmanager", "alertmanager"),
    }


@pytest.fixture(scope="module")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def alertmanager(
    prometheus_binaries: dict[str, str],
    webhook_receiver: WebhookReceiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Alertmanager]:
    manager = Alertmanager(
        prometheus_binaries["alertmanager"],
        tmp_path_factory.mktemp("alertmanager"),
        webhook_receiver.url,
    )
    yield manager
    manager.stop()


@pytest.fixture(scope="module")
def prometheus_factory(
    prometheus_binaries: dict[str, str],
    alertmanager: Alertmanager,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Prometheus]]:
    """start(targets, interval_s=1) -> a running Prometheus; stopped at the end of the module."""
    started: list[Prometheus] = []

    def start(targets: list[str], interval_s: int = INTERVAL_S) -> Prometheus:
        prometheus = Prometheus(
            prometheus_binaries["prometheus"],
            tmp_path_factory.mktemp("prometheus"),
            targets,
            alertmanager.url,
            interval_s=interval_s,
        )
        started.append(prometheus)
        return prometheus

    yield start
    for prometheus in started:
        prometheus.stop()
