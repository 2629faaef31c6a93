"""Broker harness parts that need no JVM: config, ids, ports, cache, error messages."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from kpi_devtools.broker.cli import default_data_dir, read_state
from kpi_devtools.broker.harness import (
    COMPLETE_MARKER,
    KAFKA_VERSION,
    BrokerError,
    cache_root,
    fetch_kafka,
    free_ports,
    is_broker_process,
    kafka_libs_dir,
    log4j_properties,
    new_cluster_id,
    pid_alive,
    port_is_free,
    require_java,
    server_properties,
)


def parse_properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_server_properties_describe_a_single_node_kraft_broker_on_loopback() -> None:
    props = parse_properties(server_properties(Path("/data/logs"), 19092, 19093, partitions=4))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == f"{props['node.id']}@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["log.dirs"] == "/data/logs"
    assert props["num.partitions"] == "4"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "true"


@pytest.mark.parametrize(
    "key",
    [
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "default.replication.factor",
        "min.insync.replicas",
    ],
)
def test_internal_topics_need_only_the_one_broker(key: str) -> None:
    assert parse_properties(server_properties(Path("/d"), 1, 2))[key] == "1"


def test_log4j_sends_every_line_to_the_given_file() -> None:
    props = parse_properties(log4j_properties(Path("/data/server.log")))
    assert props["log4j.rootLogger"] == "INFO, file"
    assert props["log4j.appender.file"] == "org.apache.log4j.RollingFileAppender"
    assert props["log4j.appender.file.File"] == "/data/server.log"


def test_cluster_ids_are_random_16_byte_uuids_in_url_safe_base64() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cluster_id in ids:
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(2)
    assert len(set(ports)) == 2
    assert all(port_is_free(port) for port in ports)


def test_a_listening_port_is_not_free() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert not port_is_free(listener.getsockname()[1])


def test_cache_lives_under_kpi_cache_dir_when_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KPI_CACHE_DIR", str(tmp_path))
    assert kafka_libs_dir() == tmp_path / f"kafka-{KAFKA_VERSION}" / "libs"
    monkeypatch.delenv("KPI_CACHE_DIR")
    assert cache_root() == Path.home() / ".cache" / "kpi-stream"


def test_missing_java_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError, match=r"Java was not found on PATH.*apt-get install"):
        require_java()


def test_missing_maven_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError, match=r"Maven \(mvn\) was not found on PATH") as raised:
        fetch_kafka(tmp_path / "cache")
    assert str(kafka_libs_dir(tmp_path / "cache")) in str(raised.value)


def test_a_complete_cache_is_reused_without_maven(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    libs = kafka_libs_dir(tmp_path)
    libs.mkdir(parents=True)
    (libs / COMPLETE_MARKER).write_text(KAFKA_VERSION)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert fetch_kafka(tmp_path) == libs


def test_a_failed_download_reports_mavens_output_and_leaves_no_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"  # a Maven that fails the way an unreachable repository does
    mvn.write_text("#!/bin/sh\necho '[ERROR] Could not transfer artifact kafka_2.13'\nexit 1\n")
    mvn.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(BrokerError, match=r"failed \(mvn exit code 1\)") as raised:
        fetch_kafka(tmp_path / "cache")
    assert "Could not transfer artifact kafka_2.13" in str(raised.value)
    assert list((tmp_path / "cache" / f"kafka-{KAFKA_VERSION}").iterdir()) == []


def test_only_a_live_kafka_jvm_counts_as_the_broker(tmp_path: Path) -> None:
    assert pid_alive(os.getpid())
    assert not is_broker_process(os.getpid(), tmp_path / "server.properties")
    finished = subprocess.Popen(["true"])
    finished.wait()
    assert not pid_alive(finished.pid)


def test_cli_data_dir_follows_kpi_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KPI_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path / "broker"
    monkeypatch.delenv("KPI_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    assert default_data_dir() == tmp_path / ".kpi-data" / "broker"


def test_a_state_file_of_a_dead_broker_means_not_running(tmp_path: Path) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    state = {"pid": finished.pid, "bootstrap": "127.0.0.1:9", "partitions": 8}
    (tmp_path / "broker.json").write_text(json.dumps(state))
    assert read_state(tmp_path) is None
