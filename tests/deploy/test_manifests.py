"""Deployment files, validated without Docker or a cluster.

Kubernetes manifests against the Kubernetes JSON schemas (kubernetes-validate, offline),
docker-compose.yml against the compose-spec schema (check-jsonschema), the Dockerfile
with hadolint and our own rules, the Grafana files for structure, and the references
between all of them (names, ports, labels, env vars the worker really reads).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import dashboard
import kubernetes_validate
import pytest
import yaml
from prom_harness import REPO, RULE_FILES

from stream.config import settings_from_env
from stream.kpi.types import DLQ_TOPIC, INPUT_TOPICS
from tests.infra import require_infra

K8S = REPO / "deploy" / "k8s"
GRAFANA = REPO / "deploy" / "grafana"
GRAFANA_ALERTS = GRAFANA / "provisioning" / "alerting" / "kpi-stream.yml"
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")  # oldest and newest we promise to fit
KAFKA_VERSION = "3.9.1"  # kpi_devtools/broker/pom.xml, the broker the tests run
# Contract section 5 plus the extras the workers export, and Prometheus' own `up`.
KPI_GAUGES = (
    "first_response_time_average_seconds",
    "first_response_sla_attainment_ratio",
    "resolution_time_average_seconds",
    "resolution_sla_attainment_ratio",
    "csat_ratio",
    "nps_score",
)
EXPORTED_METRICS = {
    *(f"cs_{kpi}" for kpi in KPI_GAUGES),
    *(f"cs_queue_{kpi}" for kpi in KPI_GAUGES),
    *(
        f"cs_{name}"
        for name in [
            "first_responses",
            "first_response_seconds_sum",
            "first_response_seconds_bucket",
            "first_response_sla_breaches",
            "resolutions",
            "resolution_seconds_sum",
            "resolution_seconds_bucket",
            "resolution_sla_breaches",
            "csat_responses",
            "csat_satisfied",
            "nps_responses",
            "tickets_open",
            "tickets_awaiting_first_response",
            "oldest_awaiting_first_response_opened_timestamp_seconds",
            "events_total",
            "events_rejected_total",
            "last_event_occurred_timestamp_seconds",
            "tickets_opened",
            "consumer_lag_messages",
            "partitions_assigned",
            "last_event_processed_timestamp_seconds",
            "kpi_partitions_covered",
            "kpi_partitions_expected",
        ]
    ),
    "up",
}
METRIC_NAME = re.compile(r"\b(?:[a-z_]+:[a-z0-9_]+:[a-z0-9_]+|cs_[a-z0-9_]+|up)\b")


def ci_tool(name: str) -> str:
    """A linter installed next to this Python (dev extras); missing fails under CI=true."""
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        message = f"{name} not installed (pip install -e '.[dev]')"
        require_infra(message)
    return path


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_manifests() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for path in k8s_manifests() for doc in load_all(path) if doc["kind"] == kind]


def recorded_names() -> set[str]:
    return {
        rule["record"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


class ReadRecorder(dict[str, str]):
    """An environment that remembers which variables were looked up."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env)
        self.looked_up: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.looked_up.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.looked_up.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.looked_up.add(str(key))
        return super().__contains__(key)


def worker_env_is_valid(env: dict[str, str], sla_file: Path) -> None:
    """The worker's own settings reader accepts `env` and reads every variable in it.

    The SLA file is replaced by `sla_file`; the Kafka TLS files (mounted from a Secret
    in a real deployment) by a throw-away self-signed certificate and its key next to it.
    """
    files = {"KPI_SLA_CONFIG": str(sla_file)}
    cert, key = sla_file.parent / "tls.crt", sla_file.parent / "tls.key"
    if any(n.startswith("KPI_KAFKA_SSL_") for n in env) and not cert.exists():
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=kpi-stream-test", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    for name in env:
        if name.startswith("KPI_KAFKA_SSL_") and name.endswith("FILE"):
            files[name] = str(key if name.endswith("KEYFILE") else cert)
    recorder = ReadRecorder({**env, **files})
    settings_from_env(recorder)
    assert set(env) - recorder.looked_up == set(), "env vars the worker does not read"


# --- Kubernetes ---------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", k8s_manifests(), ids=lambda p: p.name)
def test_kubernetes_manifest_matches_the_schemas_strictly(path: Path, version: str) -> None:
    for doc in load_all(path):
        kubernetes_validate.validate(doc, version, strict=True)


def test_kustomization_applies_every_manifest_but_the_examples() -> None:
    listed = load(K8S / "kustomization.yaml")["resources"]
    expected = [p.name for p in k8s_manifests() if not p.name.endswith(".example.yaml")]
    assert sorted(listed) == expected


def test_statefulset_services_pdb_and_servicemonitor_fit_together() -> None:
    (sts,) = by_kind("StatefulSet")
    pod = sts["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    services = {svc["metadata"]["name"]: svc for svc in by_kind("Service")}
    headless = services[sts["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    for svc in services.values():
        assert svc["spec"]["selector"].items() <= labels.items(), svc["metadata"]["name"]
    (pdb,) = by_kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()

    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(ports["web"])
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for svc in services.values():
        assert all(p["targetPort"] in ports for p in svc["spec"]["ports"])

    volumes = {v["name"] for v in pod["spec"]["volumes"]}
    claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    assert {m["name"] for m in container["volumeMounts"]} == volumes | claims
    config_maps = {cm["metadata"]["name"] for cm in by_kind("ConfigMap")}
    secrets = {s["metadata"]["name"] for s in by_kind("Secret")}
    assert {
        e["configMapRef"]["name"] for e in container["envFrom"] if "configMapRef" in e
    } <= config_maps
    assert {e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e} <= secrets
    assert {
        v["configMap"]["name"] for v in pod["spec"]["volumes"] if "configMap" in v
    } <= config_maps
    assert {v["secret"]["secretName"] for v in pod["spec"]["volumes"] if "secret" in v} <= secrets

    security = container["securityContext"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True

    (monitor,) = load_all(K8S / "prometheus-operator" / "servicemonitor.yaml")
    assert (
        monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "ServiceMonitor"
    )
    selected = [
        svc
        for svc in services.values()
        if monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    ]
    # One Service, named like the scrape job the alert rules expect (job = Service name).
    assert [svc["metadata"]["name"] for svc in selected] == ["kpi-stream"]
    service_ports = {p["name"] for p in selected[0]["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= service_ports


def container_env(container: dict[str, Any], pod_name: str) -> dict[str, str]:
    """A container's `env` as Kubernetes sets it in pod `pod_name`: `value`s with `$(NAME)`
    of earlier entries expanded, and `valueFrom` the pod's name (the only source used)."""
    env: dict[str, str] = {}
    for entry in container["env"]:
        if "valueFrom" in entry:
            assert entry["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}, entry
            env[entry["name"]] = pod_name
        else:
            env[entry["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), entry["value"]
            )
    return env


def test_worker_accepts_the_kubernetes_configuration(tmp_path: Path) -> None:
    config_maps = {cm["metadata"]["name"]: cm["data"] for cm in by_kind("ConfigMap")}
    sla_file = tmp_path / "sla.toml"
    sla_file.write_text(config_maps["kpi-stream-sla"]["sla.toml"])
    (sts,) = by_kind("StatefulSet")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    env = dict(config_maps["kpi-stream-env"])
    for secret in by_kind("Secret"):
        if secret["metadata"]["name"] == "kpi-stream-kafka":
            env.update(secret["stringData"])
    pod_env = container_env(container, pod_name="kpi-stream-1")
    env.update({name: value for name, value in pod_env.items() if name.startswith("KPI_")})
    worker_env_is_valid(env, sla_file)
    # Static group membership by pod name: a restarted pod rejoins as the same member.
    assert env["KPI_GROUP_INSTANCE_ID"] == "kpi-stream-1"
    assert env["KPI_ADVERTISED_URL"] == "http://kpi-stream-1.kpi-stream:6066"
    mounted = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert Path(env["KPI_SLA_CONFIG"]).parent == Path(mounted["sla"])
    assert Path(env["KPI_KAFKA_SSL_CAFILE"]).parent == Path(mounted["kafka-tls"])
    assert env["KPI_DATA_DIR"] == mounted["state"]


def test_prometheus_rule_resource_carries_every_rule_group() -> None:
    (resource,) = load_all(K8S / "prometheus-operator" / "prometheusrule.yaml")
    assert resource["kind"] == "PrometheusRule"
    groups = [g for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"]]
    assert sorted(resource["spec"]["groups"], key=str) == sorted(groups, key=str)


# --- docker compose and Dockerfile ---------------------------------------------


def test_compose_file_matches_the_compose_spec_schema() -> None:
    checker = ci_tool("check-jsonschema")
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_wires_kafka_workers_prometheus_and_grafana(tmp_path: Path) -> None:
    services = load(COMPOSE)["services"]
    assert services["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    pom = (REPO / "kpi_devtools" / "broker" / "pom.xml").read_text()
    assert f"<version>{KAFKA_VERSION}</version>" in pom

    script = services["kafka-init"]["command"][0]
    topics = re.search(r"for topic in ([^;]+);", script)
    assert topics and topics.group(1).split() == [*INPUT_TOPICS, DLQ_TOPIC]

    workers = [
        name
        for name, svc in services.items()
        if svc.get("command", ["worker"]) == ["worker"] and svc.get("build")
    ]
    assert workers == ["worker-1", "worker-2"]
    assert {services[w]["build"]["target"] for w in workers} == {"worker"}
    assert services["simulator"]["build"]["target"] == "tools"
    assert services["simulator"]["command"][0] == "simulate"
    sla_file = tmp_path / "sla.toml"
    sla_file.write_text("")
    for name in workers:
        env = services[name]["environment"]
        worker_env_is_valid(env, sla_file)
        assert env["KPI_ADVERTISED_URL"] == f"http://{name}:{env['KPI_WEB_PORT']}"

    prometheus_config = load(REPO / "deploy" / "prometheus" / "prometheus.yml")
    (job,) = prometheus_config["scrape_configs"]
    assert job["job_name"] == "kpi-stream"
    (static,) = job["static_configs"]
    assert static["targets"] == [
        f"{w}:{services[w]['environment']['KPI_WEB_PORT']}" for w in workers
    ]

    for svc in services.values():
        image = svc["image"]
        local = image in ("kpi-stream:local", "kpi-stream-tools:local")
        assert re.search(r":v?\d", image) or local, f"unpinned image {image}"
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), source
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{port} published beyond loopback"

    provider = load(GRAFANA / "provisioning" / "dashboards" / "kpi-stream.yml")
    dashboards_mount = next(
        v.split(":")[1] for v in services["grafana"]["volumes"] if "dashboards" in v
    )
    assert provider["providers"][0]["options"]["path"] == dashboards_mount


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_dockerfile_passes_hadolint_with_no_finding() -> None:
    hadolint = ci_tool("hadolint")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_the_worker_as_non_root_from_pinned_images() -> None:
    instructions = dockerfile_instructions()
    stages = dockerfile_stages()
    bases = [args.split()[0] for op, args in instructions if op == "FROM"]
    for base in (b for b in bases if b not in stages):
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*", base), (
            f"base image not pinned: {base}"
        )
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ("ENTRYPOINT", '["kpi-stream"]') in instructions
    worker = dockerfile_stages()["worker"]
    assert ("CMD", '["worker"]') in worker
    assert ("EXPOSE", "6066") in worker
    assert any(op == "HEALTHCHECK" and "/healthz" in args for op, args in worker)


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """The instructions of each named stage, its FROM first."""
    stages: dict[str, list[tuple[str, str]]] = {}
    for op, args in dockerfile_instructions():
        if op == "FROM":
            current = stages.setdefault(args.split()[-1], [])
        current.append((op, args))
    return stages


def test_the_worker_image_is_the_default_and_holds_no_development_tools() -> None:
    stages = dockerfile_stages()
    assert list(stages)[-1] == "worker", "a plain `docker build` must give the worker"

    def sources(stage: str) -> set[str]:
        """Everything a stage copies from the build context, through the stages it builds on."""
        first, *rest = stages[stage]
        parent = first[1].split()[0]
        copied = {s for op, a in rest if op == "COPY" and "--from" not in a for s in a.split()[:-1]}
        copied |= {
            source
            for op, a in rest
            if op == "COPY" and a.startswith("--from=")
            for source in sources(a.split()[0].removeprefix("--from="))
        }
        return copied | (sources(parent) if parent in stages else set())

    assert "stream" in sources("worker")
    assert "kpi_devtools" not in sources("worker")
    assert "kpi_devtools" in sources("tools")
    assert ("CMD", '["simulate"]') in stages["tools"]


# --- Grafana ------------------------------------------------------------------


def datasource_uid() -> str:
    provisioned = load(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    (source,) = provisioned["datasources"]
    assert source["type"] == "prometheus"
    uid: str = source["uid"]
    return uid


def test_dashboard_panels_have_datasource_queries_and_thresholds() -> None:
    board = dashboard.load()
    uid = datasource_uid()
    panels = dashboard.data_panels(board)
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    for panel in panels:
        title = panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, title
        assert panel["targets"], title
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], title
            assert target.get("datasource", panel["datasource"]) == panel["datasource"], title
        if panel["type"] == "stat":
            steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            assert steps and steps[0]["value"] is None, f"{title}: thresholds need a base step"
    kinds = {p["type"] for p in panels}
    assert {"stat", "bargauge", "timeseries"} <= kinds


def test_dashboard_and_alert_queries_use_only_exported_metrics_and_recording_rules() -> None:
    known = EXPORTED_METRICS | recorded_names()
    board = dashboard.load()
    exprs = [expr for _, expr in dashboard.panel_queries(board)]
    exprs += [selector for _, selector in dashboard.variable_queries(board)]
    alerting = load(GRAFANA_ALERTS)
    exprs += [
        data["model"]["expr"]
        for group in alerting["groups"]
        for rule in group["rules"]
        for data in rule["data"]
        if "expr" in data["model"]
    ]
    unknown = {name for expr in exprs for name in METRIC_NAME.findall(expr)} - known
    assert unknown == set()


def test_grafana_alert_rules_reference_the_datasource_and_their_condition() -> None:
    uid = datasource_uid()
    alerting = load(GRAFANA_ALERTS)
    rules = [rule for group in alerting["groups"] for rule in group["rules"]]
    assert len({r["uid"] for r in rules}) == len(rules)
    assert len({r["title"] for r in rules}) == len(rules)
    for rule in rules:
        assert len(rule["uid"]) <= 40, rule["uid"]
        refs = {d["refId"] for d in rule["data"]}
        assert rule["condition"] in refs
        assert {d["datasourceUid"] for d in rule["data"]} <= {uid, "__expr__"}
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
