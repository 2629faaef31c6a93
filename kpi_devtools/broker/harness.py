"""A real single-node Kafka (KRaft broker + controller) on loopback, run from Maven jars."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Final

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError

from kpi_devtools.supervisor import ChildFailed, Supervised, stop_process
from stream.errors import KpiStreamError

KAFKA_VERSION = "3.9.1"
COMPLETE_MARKER = ".complete"
STOP_TIMEOUT_S = 15.0
FETCH_TIMEOUT_S = 900.0
_PR_SET_PDEATHSIG = 1
SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
SCRAM_MECHANISMS: Final = ("SCRAM-SHA-256", "SCRAM-SHA-512")
_SIMPLE_CREDENTIAL = re.compile(r"[A-Za-z0-9._-]+")

log = logging.getLogger(__name__)


class BrokerError(KpiStreamError):
    """The local broker could not be fetched, started, reached or stopped."""


def cache_root() -> Path:
    """`$KPI_CACHE_DIR`, else `~/.cache/kpi-stream`."""
    configured = os.environ.get("KPI_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "kpi-stream"


def kafka_libs_dir(root: Path | None = None) -> Path:
    """Where the Kafka classpath (one directory of jars) is cached."""
    return (root or cache_root()) / f"kafka-{KAFKA_VERSION}" / "libs"


def require_java() -> str:
    """Path of `java`, or a BrokerError that says how to install it."""
    java = shutil.which("java")
    if java is None:
        raise BrokerError(
            "Java was not found on PATH: the local Kafka broker needs a Java 11+ runtime "
            "(Debian/Ubuntu: apt-get install openjdk-17-jre-headless)."
        )
    return java


def fetch_kafka(root: Path | None = None) -> Path:
    """Download Kafka's jars from Maven Central once; return the cached libs directory.

    Maven copies into a temporary directory next to the cache, which is renamed into
    place only when complete, so an interrupted download never looks finished.
    """
    libs = kafka_libs_dir(root)
    if (libs / COMPLETE_MARKER).is_file():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            f"Maven (mvn) was not found on PATH: it is needed once to fetch Kafka "
            f"{KAFKA_VERSION} from Maven Central into {libs} "
            "(Debian/Ubuntu: apt-get install maven)."
        )
    libs.parent.mkdir(parents=True, exist_ok=True)
    log.info("Fetching Kafka %s from Maven Central into %s (once)", KAFKA_VERSION, libs)
    with tempfile.TemporaryDirectory(dir=libs.parent, prefix=".fetch-") as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_bytes(resources.files("kpi_devtools.broker").joinpath("pom.xml").read_bytes())
        staged = Path(tmp) / "libs"
        command = [
            mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={staged}",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(
                f"Fetching Kafka {KAFKA_VERSION} from Maven Central timed out after "
                f"{FETCH_TIMEOUT_S:.0f} s."
            ) from exc
        if done.returncode != 0 or not any(staged.glob("kafka_2.13-*.jar")):
            output = _last_lines(done.stdout + done.stderr, 30)
            raise BrokerError(
                f"Fetching Kafka {KAFKA_VERSION} from Maven Central failed "
                f"(mvn exit code {done.returncode}). Is Maven Central reachable?\n{output}"
            )
        (staged / COMPLETE_MARKER).write_text(KAFKA_VERSION + "\n")
        if libs.exists() and not (libs / COMPLETE_MARKER).is_file():
            shutil.rmtree(libs)  # left over from a fetch that predates the marker
        with contextlib.suppress(FileExistsError, OSError):
            staged.rename(libs)  # loses harmlessly to a concurrent fetch that finished first
    if not (libs / COMPLETE_MARKER).is_file():
        raise BrokerError(f"Kafka jars could not be moved into {libs}.")
    return libs


def free_ports(count: int) -> list[int]:
    """Distinct loopback TCP ports that are free right now."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_is_free(port: int) -> bool:
    """True when nothing listens on (or holds) this loopback TCP port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the JVM's listener does
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64, not starting with '-'."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def server_properties(
    log_dir: Path,
    port: int,
    controller_port: int,
    partitions: int = 8,
    *,
    secure_ports: Mapping[str, int] | None = None,
) -> str:
    """`server.properties` of a single-node KRaft broker + controller on 127.0.0.1.

    `secure_ports` adds a listener per security protocol (SASL_PLAINTEXT, SSL, SASL_SSL),
    each named after its protocol; see `security_properties` for their settings.
    """
    client_listeners = {"PLAINTEXT": port, **(secure_ports or {})}
    advertised = ",".join(f"{name}://127.0.0.1:{p}" for name, p in client_listeners.items())
    protocol_map = ",".join(f"{name}:{name}" for name in client_listeners)
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners={advertised},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners={advertised}",
            f"listener.security.protocol.map={protocol_map},CONTROLLER:PLAINTEXT",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={log_dir}",
            f"num.partitions={partitions}",
            "auto.create.topics.enable=true",
            "default.replication.factor=1",
            "min.insync.replicas=1",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "",
        ]
    )


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a throwaway PKI: a CA, the broker's key + certificate, a client's."""

    ca: Path
    server_keystore: Path  # the broker's unencrypted PKCS#8 key, then its certificate
    client_cert: Path
    client_key: Path


def secure_protocols(sasl: bool, tls: bool) -> list[str]:
    """The listeners that SASL users and/or TLS files add besides PLAINTEXT."""
    wanted = {"SASL_PLAINTEXT": sasl, "SSL": tls, "SASL_SSL": sasl and tls}
    return [protocol for protocol, on in wanted.items() if on]


def security_properties(sasl_users: Mapping[str, str], tls: TlsFiles | None) -> str:
    """Settings of the secured listeners.

    SASL listeners accept PLAIN (users listed here) and SCRAM-SHA-256/512 (users stored
    in the metadata log when the storage is formatted). TLS listeners present the server
    certificate; the SSL listener also requires a client certificate signed by the CA.
    """
    lines = []
    if sasl_users:
        plain_users = " ".join(f'user_{name}="{password}"' for name, password in sasl_users.items())
        lines.append(f"sasl.enabled.mechanisms={','.join(SASL_MECHANISMS)}")
        for listener in secure_protocols(True, tls is not None):
            if not listener.startswith("SASL_"):
                continue
            prefix = f"listener.name.{listener.lower()}"
            lines.append(
                f"{prefix}.plain.sasl.jaas.config="
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
            )
            lines.extend(
                f"{prefix}.{mechanism.lower()}.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                for mechanism in SCRAM_MECHANISMS
            )
    if tls is not None:
        lines += [
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={tls.server_keystore}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={tls.ca}",
            "listener.name.ssl.ssl.client.auth=required",
        ]
    return "".join(line + "\n" for line in lines)


def scram_arguments(sasl_users: Mapping[str, str]) -> list[str]:
    """`kafka-storage format` arguments that store each user for both SCRAM mechanisms."""
    return [
        argument
        for name, password in sasl_users.items()
        for mechanism in SCRAM_MECHANISMS
        for argument in ("--add-scram", f"{mechanism}=[name={name},password={password}]")
    ]


def create_tls_files(directory: Path) -> TlsFiles:
    """A fresh CA, a server certificate for 127.0.0.1/localhost and a client certificate.

    Made with the `openssl` command (EC P-256 keys, valid for two days); for tests only.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise BrokerError("openssl was not found on PATH (Debian/Ubuntu: apt-get install openssl).")
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(
        ca=directory / "ca.pem",
        server_keystore=directory / "server-keystore.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
    ca_key = directory / "ca.key"
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl(openssl, "req", "-x509", *new_key, "-keyout", str(ca_key), "-out", str(files.ca),
             "-days", "2", "-subj", "/CN=kpi-stream test CA")  # fmt: skip
    for name, subject, extensions in (
        ("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ("client", "/CN=kpi-stream-worker", "extendedKeyUsage=clientAuth"),
    ):
        key, request, cert = (directory / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
        _openssl(openssl, "req", "-new", *new_key, "-keyout", str(key), "-out", str(request),
                 "-subj", subject, "-addext", extensions)  # fmt: skip
        _openssl(openssl, "x509", "-req", "-in", str(request), "-CA", str(files.ca),
                 "-CAkey", str(ca_key), "-set_serial", str(uuid.uuid4().int >> 64),
                 "-days", "2", "-copy_extensions", "copyall", "-out", str(cert))  # fmt: skip
    server_key, server_cert = directory / "server.key", directory / "server.pem"
    files.server_keystore.write_text(server_key.read_text() + server_cert.read_text())
    return files


def _openssl(openssl: str, *arguments: str) -> None:
    done = subprocess.run(
        [openssl, *arguments], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise BrokerError(
            f"openssl {arguments[0]} failed (exit code {done.returncode}):\n"
            f"{_last_lines(done.stdout + done.stderr, 20)}"
        )


def log4j_properties(log_file: Path) -> str:
    """reload4j configuration that sends every broker log line to one file (rolled at 20 MB)."""
    return "\n".join(
        [
            "log4j.rootLogger=INFO, file",
            "log4j.appender.file=org.apache.log4j.RollingFileAppender",
            f"log4j.appender.file.File={log_file}",
            "log4j.appender.file.MaxFileSize=20MB",
            "log4j.appender.file.MaxBackupIndex=2",
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout",
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n",
            "",
        ]
    )


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the parent dies (Linux prctl)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalBroker:
    """One Kafka broker JVM on loopback ports, with its own data directory.

    Without `data_dir` it runs in a fresh temporary directory that `stop()` removes;
    with one, the directory (topics, offsets) survives restarts. With
    `die_with_parent` the JVM gets SIGTERM when the thread that started it exits,
    so call `start()` from the main thread (from async code:
    `await asyncio.to_thread(broker.start)` keeps its worker thread until the loop ends).

    `sasl_users` ({name: password}) adds a SASL_PLAINTEXT listener (PLAIN, SCRAM-SHA-256,
    SCRAM-SHA-512), `tls` an SSL listener (client certificate required), both together
    also a SASL_SSL one, each on its own free port (`bootstrap_for`). PLAINTEXT stays, for
    admin and test clients. SCRAM users are stored when new storage is formatted.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        partitions: int = 8,
        heap: str = "512m",
        ready_timeout_s: float = 60.0,
        die_with_parent: bool = True,
        cache: Path | None = None,
        sasl_users: Mapping[str, str] | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        for credential in (sasl_users or {}).items():
            if not all(_SIMPLE_CREDENTIAL.fullmatch(part) for part in credential):
                raise BrokerError("SASL user names and passwords may use only A-Z a-z 0-9 . _ -")
        self._data_dir = data_dir
        self._wanted_port = port
        self._wanted_controller_port = controller_port
        self._port: int | None = None
        self._controller_port: int | None = None
        self._partitions = partitions
        self._heap = heap
        self._ready_timeout_s = ready_timeout_s
        self._die_with_parent = die_with_parent
        self._cache = cache
        self._temporary = data_dir is None
        self._child: Supervised | None = None
        self._sasl_users = dict(sasl_users or {})
        self._tls = tls
        self._secure_ports: dict[str, int] = {}

    @property
    def bootstrap(self) -> str:
        """`127.0.0.1:PORT` of the PLAINTEXT listener."""
        if self._port is None:
            raise BrokerError("The broker has not been started.")
        return f"127.0.0.1:{self._port}"

    def bootstrap_for(self, protocol: str) -> str:
        """`127.0.0.1:PORT` of the listener for this security protocol."""
        if protocol == "PLAINTEXT":
            return self.bootstrap
        if protocol not in self._secure_ports:
            raise BrokerError(f"The broker has no running {protocol} listener.")
        return f"127.0.0.1:{self._secure_ports[protocol]}"

    @property
    def pid(self) -> int | None:
        """Process id of the running JVM."""
        return self._child.pid if self._child else None

    @property
    def data_dir(self) -> Path:
        """The data directory (logs, config, server.log)."""
        if self._data_dir is None:
            raise BrokerError("The broker has not been started.")
        return self._data_dir

    @property
    def server_log(self) -> Path:
        """The broker's log file."""
        return self.data_dir / "server.log"

    def start(self) -> str:
        """Fetch, format if new, launch and wait until it answers; return the bootstrap."""
        if self._child is not None:
            raise BrokerError(f"The broker is already running at {self.bootstrap}.")
        java = require_java()
        libs = fetch_kafka(self._cache)
        started = time.monotonic()
        try:
            self._launch(java, libs)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        log.info(
            "Kafka %s ready at %s in %.1f s (pid %s, log %s)",
            KAFKA_VERSION, self.bootstrap, time.monotonic() - started, self.pid, self.server_log,
        )  # fmt: skip
        return self.bootstrap

    def is_running(self) -> bool:
        """True while the JVM this object started is alive."""
        return self._child is not None and self._child.running()

    def stop(self) -> None:
        """SIGTERM, wait up to 15 s, then SIGKILL; remove a temporary data directory."""
        child, self._child = self._child, None
        if child is not None:
            _stopped(child.pid, child.stop)
        self._port = self._controller_port = None
        self._secure_ports = {}
        if self._temporary and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the JVM's own output and of the broker's log."""
        parts = []
        for name in ("jvm.out", "server.log"):
            path = self.data_dir / name
            if path.is_file():
                text = path.read_text(errors="replace")
                parts.append(f"--- {path} (last {lines} lines) ---\n{_last_lines(text, lines)}")
        return "\n".join(parts) or "(the broker wrote no log)"

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _launch(self, java: str, libs: Path) -> None:
        """Pick ports, write the config, format new storage and start the JVM."""
        for wanted in (self._wanted_port, self._wanted_controller_port):
            if wanted is not None and not port_is_free(wanted):
                raise BrokerError(f"Port {wanted} on 127.0.0.1 is already in use.")
        protocols = secure_protocols(bool(self._sasl_users), self._tls is not None)
        any_port, any_controller_port, *secure_ports = free_ports(2 + len(protocols))
        self._port = self._wanted_port or any_port
        self._controller_port = self._wanted_controller_port or any_controller_port
        self._secure_ports = dict(zip(protocols, secure_ports, strict=True))
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="kpi-kafka-"))
        self._data_dir.mkdir(parents=True, exist_ok=True)
        config = self._data_dir / "server.properties"
        config.write_text(
            server_properties(
                self._data_dir / "kraft-logs",
                self._port,
                self._controller_port,
                self._partitions,
                secure_ports=self._secure_ports,
            )
            + security_properties(self._sasl_users, self._tls)
        )
        log_config = self._data_dir / "log4j.properties"
        log_config.write_text(log4j_properties(self.server_log))
        jvm_options = [f"-Dlog4j.configuration=file:{log_config}", "-cp", f"{libs}/*"]
        self._format_storage([java, *jvm_options], config)
        self._child = Supervised(
            "Kafka broker",
            [java, f"-Xmx{self._heap}", *jvm_options, "kafka.Kafka", str(config)],
            log=self._data_dir / "jvm.out",
            cwd=self._data_dir,
            stop_grace_s=STOP_TIMEOUT_S,
            own_process_group=True,
            preexec=_die_with_parent if self._die_with_parent else None,
        ).start()

    def _format_storage(self, java_command: list[str], config: Path) -> None:
        if (self.data_dir / "kraft-logs" / "meta.properties").is_file():
            return  # formatted on an earlier start: keep its topics and offsets
        command = [*java_command, "kafka.tools.StorageTool", "format",
                   "-t", new_cluster_id(), "-c", str(config),
                   *scram_arguments(self._sasl_users)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise BrokerError(
                f"Formatting the broker storage in {self.data_dir} failed "
                f"(exit code {done.returncode}):\n{_last_lines(done.stdout + done.stderr, 30)}"
            )

    def _wait_ready(self) -> None:
        child = self._child
        assert child is not None
        try:
            child.wait_until(
                lambda: asyncio.run(self._answers()), self._ready_timeout_s, interval_s=0.25
            )
        except ChildFailed:
            if child.running():
                raise BrokerError(
                    f"The Kafka broker did not answer a metadata request at {self.bootstrap} "
                    f"within {self._ready_timeout_s:.0f} s.\n{self.log_tail()}"
                ) from None
            assert child.process is not None
            raise BrokerError(
                f"The Kafka broker exited with code {child.process.returncode} "
                f"during start-up.\n{self.log_tail()}"
            ) from None

    async def _answers(self) -> bool:
        """Metadata on the PLAINTEXT listener, connections on every secured one."""
        return await answers_metadata(self.bootstrap) and all(
            [await accepts_connections(self.bootstrap_for(p)) for p in self._secure_ports]
        )


async def accepts_connections(address: str, timeout_s: float = 5.0) -> bool:
    """True when something accepts TCP connections at `host:port`."""
    host, port = address.rsplit(":", 1)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def answers_metadata(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """True when a broker at `bootstrap` answers a metadata request listing a live broker."""
    if not await accepts_connections(bootstrap, timeout_s):
        return False  # checking TCP first keeps aiokafka from logging refused connections
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        return bool(client.cluster.brokers())
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await client.close()


def stop_broker(pid: int) -> None:
    """Stop a broker JVM that another process started (`kpi-stream broker stop`): SIGTERM
    to its process group, SIGKILL if it is still there after 15 s."""
    _stopped(
        pid,
        lambda: stop_process(
            pid, signal.SIGTERM, STOP_TIMEOUT_S, has_exited=lambda: not pid_alive(pid), group=True
        ),
    )


def _stopped(pid: int, stop: Callable[[], bool]) -> None:
    """Run `stop` (False: it had to kill); a broker that outlives SIGKILL is a BrokerError."""
    try:
        if not stop():
            log.warning(
                "Kafka broker pid %d ignored SIGTERM for %.0f s; killed it", pid, STOP_TIMEOUT_S
            )
    except ChildFailed as exc:
        raise BrokerError(f"Kafka broker pid {pid} did not exit even after SIGKILL.") from exc


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def is_broker_process(pid: int, config: Path) -> bool:
    """True when `pid` is a live Kafka broker JVM started with this `server.properties`."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return pid_alive(pid) and b"kafka.Kafka" in args and str(config).encode() in args


def _last_lines(text: str, count: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-count:])
