"""A real single-node Apache Kafka 4.x broker (KRaft, broker+controller in one JVM).

Used by the integration tests, the demo and CI; needs only Java 17+ and Maven (no Docker).
The broker jars are fetched once from Maven Central with ``infra/kafka/pom.xml`` into the
git-ignored ``.cache/`` folder of the repository; every broker keeps all of its state
(config, KRaft metadata, topic data, logs, pid file) in its own ``data_dir``.

In-process use (tests)::

    with LocalKafka(tmp_path / "kafka") as kafka:
        produce(kafka.bootstrap_servers)

With ``sasl_users={"alice": "secret"}`` the broker also has a SASL_PLAINTEXT listener (PLAIN
mechanism, those users) on its own port, ``kafka.sasl_bootstrap_servers``; the PLAINTEXT
listener stays as it is (the broker itself and the readiness probe use it). With ``tls=True``
it also has an SSL listener (``kafka.tls_bootstrap_servers``) whose certificate a throwaway CA
signs (``infra/tls.py``); clients trust ``kafka.tls_ca_file``. It then also has a mutual-TLS
listener (``kafka.mtls_bootstrap_servers``: a client certificate that CA signed is required;
``kafka.client_tls(name)`` makes one) and, with ``sasl_users`` too, a SASL_SSL listener
(``kafka.sasl_ssl_bootstrap_servers``: PLAIN over TLS).

Across processes (demo, CI), keyed by data dir::

    python -m infra.local_kafka start  [--data-dir .data/kafka]   # prints 127.0.0.1:PORT
    python -m infra.local_kafka status [--data-dir .data/kafka]
    python -m infra.local_kafka stop   [--data-dir .data/kafka]

Files written into ``data_dir``: ``server.properties``, ``cluster.id``, ``kafka.pid``,
``bootstrap`` (``127.0.0.1:PORT``), ``kafka.out`` (JVM stdout/stderr: WARN+ log lines and the
"Kafka Server started" line), ``logs/server.log`` (full INFO log) and ``kraft-logs/`` (data).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType

from infra.ports import free_ports

__all__ = [
    "KAFKA_VERSION",
    "KafkaStartError",
    "LocalKafka",
    "ensure_jars",
    "find_java",
    "start_detached",
    "status",
    "stop_detached",
]

log = logging.getLogger(__name__)

#: Keep in sync with ``kafka.version`` in infra/kafka/pom.xml (the marker also hashes the pom).
KAFKA_VERSION = "4.4.0"

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_INFRA_DIR = Path(__file__).resolve().parent / "kafka"
POM_FILE = KAFKA_INFRA_DIR / "pom.xml"
LOG4J_CONFIG = KAFKA_INFRA_DIR / "log4j2.properties"
DEFAULT_CACHE_DIR = REPO_ROOT / ".cache" / "kafka"
DEFAULT_MAVEN_REPO = REPO_ROOT / ".cache" / "m2"
DEFAULT_DATA_DIR = REPO_ROOT / ".data" / "kafka"

HOST = "127.0.0.1"
NODE_ID = 1
MAVEN_TIMEOUT_S = 900.0

PID_FILE = "kafka.pid"
BOOTSTRAP_FILE = "bootstrap"
CLUSTER_ID_FILE = "cluster.id"
PROPERTIES_FILE = "server.properties"
STDOUT_FILE = "kafka.out"
LOCK_FILE = ".lock"
JAR_MARKER = ".complete"
MAIN_CLASS = "kafka.Kafka"
SASL_LISTENER = "SASL_PLAINTEXT"
TLS_LISTENER = "SSL"
MTLS_LISTENER = "MTLS"  # SSL with ssl.client.auth=required
SASL_SSL_LISTENER = "SASL_SSL"
#: SASL user names become JAAS option keys (``user_<name>``): keep them to plain characters.
_SASL_USER = re.compile(r"^[A-Za-z0-9._-]+$")


#: Brokers started by start_detached() in this process, kept so that the Popen objects are
#: never garbage-collected while the JVM runs (no "still running" ResourceWarning) and so that
#: stop_detached() from the same process can reap them.
_DETACHED: dict[int, subprocess.Popen[bytes]] = {}


class KafkaStartError(RuntimeError):
    """The broker could not be prepared, started or reached in time."""


# --------------------------------------------------------------------------------------------
# Java and jars
# --------------------------------------------------------------------------------------------


def find_java() -> str:
    """``$JAVA_HOME/bin/java`` if JAVA_HOME is set, else ``java`` on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        java = Path(java_home) / "bin" / "java"
        if java.is_file() and os.access(java, os.X_OK):
            return str(java)
        raise KafkaStartError(
            f"JAVA_HOME is set to {java_home!r} but {java} is not an executable file; "
            "point JAVA_HOME at a Java 17+ JDK/JRE or unset it to use `java` from PATH"
        )
    found = shutil.which("java")
    if found is None:
        raise KafkaStartError(
            "Java not found: the local Kafka broker needs Java 17+. Set JAVA_HOME or put `java` "
            "on PATH (Debian/Ubuntu: apt-get install openjdk-17-jre-headless)"
        )
    return found


def _jar_fingerprint() -> str:
    digest = hashlib.sha256(POM_FILE.read_bytes()).hexdigest()[:16]
    return f"kafka={KAFKA_VERSION} pom-sha256={digest}\n"


def ensure_jars(cache_dir: Path, *, maven_repo: Path | None = None) -> Path:
    """Make sure the broker jars are in ``cache_dir/libs`` and return that folder.

    Idempotent and safe to call from several processes at once: when the marker file
    ``libs/.complete`` matches the Kafka version and the pom, Maven is not run at all.
    Otherwise ``mvn dependency:copy-dependencies`` fills a temporary folder that is then
    renamed into place, with the local Maven repository in ``maven_repo``
    (default: ``<repo>/.cache/m2``).
    """
    cache_dir = Path(cache_dir).resolve()
    libs = cache_dir / "libs"
    marker = libs / JAR_MARKER
    fingerprint = _jar_fingerprint()
    if _read_text(marker) == fingerprint:
        return libs

    cache_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(cache_dir / LOCK_FILE):
        if _read_text(marker) == fingerprint:  # another process fetched them meanwhile
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaStartError(
                f"Kafka jars are not cached in {libs} and Maven (`mvn`) is not on PATH to "
                "fetch them (Debian/Ubuntu: apt-get install maven)"
            )
        repo = Path(maven_repo).resolve() if maven_repo is not None else DEFAULT_MAVEN_REPO
        staging = cache_dir / "libs.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(POM_FILE),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            f"-Dmaven.repo.local={repo}",
        ]
        log.info("fetching Kafka %s jars into %s", KAFKA_VERSION, libs)
        started = time.monotonic()
        try:
            # Fixed argv built from our own paths, no shell.
            result = subprocess.run(  # noqa: S603
                cmd,
                capture_output=True,
                text=True,
                timeout=MAVEN_TIMEOUT_S,
                check=False,
                env=_java_env(),
            )
        except subprocess.TimeoutExpired as exc:
            raise KafkaStartError(
                f"Maven did not fetch the Kafka jars within {MAVEN_TIMEOUT_S:.0f}s"
            ) from exc
        if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            output = _tail_text(result.stdout + result.stderr, 40)
            raise KafkaStartError(
                f"fetching the Kafka jars failed (exit {result.returncode}): "
                f"{' '.join(cmd)}\n{output}"
            )
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        marker.write_text(fingerprint)
        log.info("Kafka jars ready in %.1fs", time.monotonic() - started)
    return libs


def _java_env() -> dict[str, str]:
    """Environment for the JVM tools: drop options that would change their behaviour."""
    env = dict(os.environ)
    for name in ("KAFKA_OPTS", "KAFKA_HEAP_OPTS", "KAFKA_LOG4J_OPTS", "CLASSPATH"):
        env.pop(name, None)
    return env


# --------------------------------------------------------------------------------------------
# The broker
# --------------------------------------------------------------------------------------------


class LocalKafka:
    """One single-node KRaft broker whose whole state lives in ``data_dir``.

    ``port`` is the PLAINTEXT client port (a free local port when None; a restart in the same
    ``data_dir`` reuses the previous ports when they are still free); the controller listener
    always gets its own free port. ``heap`` is the JVM ``-Xmx`` value.

    ``sasl_users`` (user name -> password) adds a SASL_PLAINTEXT listener with the PLAIN
    mechanism that accepts exactly those users, on its own free port
    (:attr:`sasl_bootstrap_servers`). Without it the broker is PLAINTEXT only, as before.

    ``tls`` adds an SSL listener on its own free port (:attr:`tls_bootstrap_servers`), with a
    certificate for ``127.0.0.1`` signed by a CA made for this data dir
    (:attr:`tls_ca_file`: what clients trust), and a second SSL listener that requires a client
    certificate signed by that CA (:attr:`mtls_bootstrap_servers`, :meth:`client_tls`). With
    ``sasl_users`` as well, a SASL_SSL listener (PLAIN over TLS,
    :attr:`sasl_ssl_bootstrap_servers`).

    ``acls`` turns the broker's authorizer on (``StandardAuthorizer``): a principal may do only
    what an ACL allows (``pipelines.kafka_acls``), but ``User:ANONYMOUS`` (the PLAINTEXT
    listener, the broker's own and the controller's traffic) is a super user, so an admin
    client there can create the ACLs.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        heap: str = "512m",
        *,
        cache_dir: Path | None = None,
        sasl_users: Mapping[str, str] | None = None,
        tls: bool = False,
        acls: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.requested_port = port
        self.heap = heap
        self.cache_dir = Path(cache_dir).resolve() if cache_dir is not None else DEFAULT_CACHE_DIR
        self.sasl_users = _check_sasl_users(sasl_users) if sasl_users is not None else None
        self.port: int | None = None
        self.controller_port: int | None = None
        self.sasl_port: int | None = None
        self.tls = tls
        self.acls = acls
        self.tls_port: int | None = None
        self.mtls_port: int | None = None
        self.sasl_ssl_port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._atexit_registered = False

    # -- paths --------------------------------------------------------------------------------

    @property
    def properties_file(self) -> Path:
        return self.data_dir / PROPERTIES_FILE

    @property
    def pid_file(self) -> Path:
        return self.data_dir / PID_FILE

    @property
    def bootstrap_file(self) -> Path:
        return self.data_dir / BOOTSTRAP_FILE

    @property
    def stdout_file(self) -> Path:
        """JVM stdout/stderr: WARN+ log lines, the startup line, JVM crashes."""
        return self.data_dir / STDOUT_FILE

    @property
    def server_log(self) -> Path:
        """Full INFO-level broker log."""
        return self.data_dir / "logs" / "server.log"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "kraft-logs"

    # -- state --------------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """``"127.0.0.1:PORT"``; only valid after :meth:`start`."""
        if self.port is None:
            raise RuntimeError("LocalKafka is not started")
        return f"{HOST}:{self.port}"

    @property
    def sasl_bootstrap_servers(self) -> str:
        """``"127.0.0.1:PORT"`` of the SASL_PLAINTEXT (PLAIN) listener; only valid after
        :meth:`start` of a broker made with ``sasl_users``."""
        return self._address(self.sasl_port, "SASL", self.sasl_users is not None, "sasl_users")

    @property
    def tls_bootstrap_servers(self) -> str:
        """``"127.0.0.1:PORT"`` of the SSL listener; only valid after :meth:`start` of a broker
        made with ``tls=True``."""
        return self._address(self.tls_port, "TLS", self.tls, "tls=True")

    @property
    def tls_ca_file(self) -> Path:
        """The PEM CA certificate that signed the SSL listener's certificate."""
        return self.data_dir / "tls" / "ca.pem"

    @property
    def mtls_bootstrap_servers(self) -> str:
        """``"127.0.0.1:PORT"`` of the SSL listener that requires a client certificate signed
        by :attr:`tls_ca_file`'s CA (see :meth:`client_tls`); after :meth:`start`, ``tls=True``."""
        return self._address(self.mtls_port, "mutual-TLS", self.tls, "tls=True")

    @property
    def sasl_ssl_bootstrap_servers(self) -> str:
        """``"127.0.0.1:PORT"`` of the SASL_SSL listener (PLAIN over TLS, ``sasl_users``); after
        :meth:`start` of a broker made with both ``sasl_users`` and ``tls=True``."""
        both = self.tls and self.sasl_users is not None
        return self._address(self.sasl_ssl_port, "SASL_SSL", both, "sasl_users and tls=True")

    def client_tls(self, name: str) -> dict[str, Path]:
        """A client certificate and key for ``name``, signed by this broker's CA (what the
        mutual-TLS listener accepts): {"cert": path, "key": path}; after :meth:`start`."""
        from infra.tls import write_client_tls

        self._address(self.mtls_port, "mutual-TLS", self.tls, "tls=True")
        return write_client_tls(self.tls_ca_file.parent, name)

    def _address(self, port: int | None, what: str, configured: bool, how: str) -> str:
        if not configured:
            raise RuntimeError(f"this LocalKafka has no {what} listener (pass {how})")
        if port is None:
            raise RuntimeError("LocalKafka is not started")
        return f"{HOST}:{port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        """Whether the broker process started by this object is still alive."""
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 90) -> str:
        """Format (first time only), launch and wait until the broker answers a metadata request.

        Returns the bootstrap address ``"127.0.0.1:PORT"``. ``timeout`` covers the JVM start
        and readiness wait; the one-time jar download (see :func:`ensure_jars`) is not counted.
        The broker is stopped when this Python process exits, if :meth:`stop` was not called.
        """
        if self.is_running():
            return self.bootstrap_servers
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.data_dir / LOCK_FILE):
            other = _live_pid(self.data_dir)
            if other is not None:
                raise KafkaStartError(
                    f"a Kafka broker (pid {other}) already runs in {self.data_dir}; reuse it "
                    "with start_detached() or stop it with "
                    f"`python -m infra.local_kafka stop --data-dir {self.data_dir}`"
                )
            self._start_locked(timeout, stop_at_exit=True)
        return self.bootstrap_servers

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the broker's process group, SIGKILL it after ``timeout`` seconds."""
        proc = self._proc
        if proc is not None:
            _terminate(proc.pid, timeout, proc)
            self._proc = None
            _remove_runtime_files(self.data_dir, proc.pid)
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running on {HOST}:{self.port}" if self.is_running() else "stopped"
        return f"LocalKafka({str(self.data_dir)!r}, {state})"

    # -- internals ----------------------------------------------------------------------------

    def _start_locked(self, timeout: float, *, stop_at_exit: bool) -> None:
        """Start while holding the data-dir lock (a single retry if an auto-picked port got
        taken between picking it and the JVM binding it)."""
        java = find_java()  # before the jar fetch: fail fast without Java
        libs = ensure_jars(self.cache_dir)
        _remove_runtime_files(self.data_dir, None)
        attempts = 1 if self.requested_port is not None else 2
        for attempt in range(1, attempts + 1):
            self._choose_ports(fresh=attempt > 1)
            self._write_properties()
            self._format(java, libs)
            self._launch(java, libs)
            if stop_at_exit and not self._atexit_registered:
                atexit.register(self.stop)
                self._atexit_registered = True
            try:
                self._wait_ready(timeout)
            except KafkaStartError as exc:
                port_clash = "Address already in use" in _read_text(self.stdout_file)
                self.stop(timeout=10)
                if attempt < attempts and port_clash:
                    log.warning("Kafka port clash, retrying with fresh ports: %s", exc)
                    continue
                raise
            break
        self.bootstrap_file.write_text(self.bootstrap_servers + "\n")

    def _choose_ports(self, *, fresh: bool) -> None:
        self._choose_main_ports(fresh=fresh)
        assert self.port is not None and self.controller_port is not None  # noqa: S101
        taken = {self.port, self.controller_port}
        before = {} if fresh else _listener_ports(self.properties_file)

        def extra_port(listener: str) -> int:
            previous = before.get(listener)
            if previous is not None and previous not in taken and _port_is_free(previous):
                port = previous
            else:
                port = free_ports(1, exclude=taken)[0]
            taken.add(port)
            return port

        self.sasl_port = extra_port(SASL_LISTENER) if self.sasl_users is not None else None
        self.tls_port = extra_port(TLS_LISTENER) if self.tls else None
        self.mtls_port = extra_port(MTLS_LISTENER) if self.tls else None
        both = self.tls and self.sasl_users is not None
        self.sasl_ssl_port = extra_port(SASL_SSL_LISTENER) if both else None

    def _choose_main_ports(self, *, fresh: bool) -> None:
        if self.requested_port is not None:
            if not _port_is_free(self.requested_port):
                raise KafkaStartError(
                    f"cannot start local Kafka in {self.data_dir}: port {self.requested_port} "
                    f"on {HOST} is already in use"
                )
            self.port = self.requested_port
            self.controller_port = free_ports(1, exclude={self.port})[0]
            return
        previous = None if fresh else _ports_from_properties(self.properties_file)
        if previous is not None and all(_port_is_free(p) for p in previous):
            self.port, self.controller_port = previous
            return
        self.port, self.controller_port = free_ports(2)

    def _write_properties(self) -> None:
        assert self.port is not None and self.controller_port is not None  # noqa: S101
        props = {
            "process.roles": "broker,controller",
            "node.id": str(NODE_ID),
            # Static quorum: no --standalone / dynamic voter bootstrap needed when formatting.
            "controller.quorum.voters": f"{NODE_ID}@{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "num.partitions": "4",
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "min.insync.replicas": "1",
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Small footprint: the 128 MiB default dedupe buffer is a quarter of a 512m heap.
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "2",
        }
        if self.sasl_users is not None:
            props.update(self._sasl_properties(props))
        if self.tls:
            props.update(self._tls_properties(props))
        if self.acls:
            props |= {
                "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "super.users": "User:ANONYMOUS",
                "allow.everyone.if.no.acl.found": "false",
            }
        lines = ["# Written by infra/local_kafka.py on every start; edits are overwritten."]
        lines += [f"{key}={value}" for key, value in props.items()]
        self.properties_file.write_text("\n".join(lines) + "\n")

    def _plain_jaas(self) -> str:
        """The PLAIN login module's JAAS line accepting exactly ``sasl_users``."""
        assert self.sasl_users is not None  # noqa: S101
        users = "".join(f' user_{name}="{pw}"' for name, pw in self.sasl_users.items())
        # The PLAIN login module wants a username/password of its own (used only if the broker
        # itself connects through this listener, which it does not): the first user's.
        own_name, own_password = next(iter(self.sasl_users.items()))
        return (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{own_name}" password="{own_password}"{users};'
        )

    def _sasl_properties(self, props: dict[str, str]) -> dict[str, str]:
        """A SASL_PLAINTEXT listener (PLAIN, ``sasl_users``) beside the PLAINTEXT one; the
        broker's own traffic and the controller stay on PLAINTEXT."""
        assert self.sasl_users is not None and self.sasl_port is not None  # noqa: S101
        return _add_listener(props, SASL_LISTENER, "SASL_PLAINTEXT", self.sasl_port) | {
            "sasl.enabled.mechanisms": "PLAIN",
            f"listener.name.{SASL_LISTENER.lower()}.plain.sasl.jaas.config": self._plain_jaas(),
        }

    def _tls_properties(self, props: dict[str, str]) -> dict[str, str]:
        """An SSL listener beside the others (a new CA and server certificate on every start,
        as PEM files in ``data_dir/tls``); the broker's own traffic stays on PLAINTEXT."""
        from infra.tls import write_server_tls

        assert self.tls_port is not None and self.mtls_port is not None  # noqa: S101
        files = write_server_tls(self.data_dir / "tls", HOST)

        def keystore(listener: str, client_auth: str) -> dict[str, str]:
            prefix = f"listener.name.{listener.lower()}."
            out = {
                prefix + "ssl.keystore.type": "PEM",
                prefix + "ssl.keystore.location": str(files["keystore"]),
                prefix + "ssl.client.auth": client_auth,
            }
            if client_auth == "required":  # client certificates are checked against the CA
                out[prefix + "ssl.truststore.type"] = "PEM"
                out[prefix + "ssl.truststore.location"] = str(files["ca"])
            return out

        out = _add_listener(props, TLS_LISTENER, "SSL", self.tls_port)
        out |= keystore(TLS_LISTENER, "none")
        out |= _add_listener(props | out, MTLS_LISTENER, "SSL", self.mtls_port)
        out |= keystore(MTLS_LISTENER, "required")
        if self.sasl_ssl_port is not None:
            out |= _add_listener(props | out, SASL_SSL_LISTENER, "SASL_SSL", self.sasl_ssl_port)
            out |= keystore(SASL_SSL_LISTENER, "none")
            jaas_key = f"listener.name.{SASL_SSL_LISTENER.lower()}.plain.sasl.jaas.config"
            out[jaas_key] = self._plain_jaas()
        return out

    def _cluster_id(self) -> str:
        path = self.data_dir / CLUSTER_ID_FILE
        cluster_id = _read_text(path).strip()
        if not cluster_id:
            cluster_id = _random_cluster_id()
            path.write_text(cluster_id + "\n")
        return cluster_id

    def _format(self, java: str, libs: Path) -> None:
        """``kafka-storage format`` that is a no-op when the log dir is already formatted."""
        if "cluster.id=" in _read_text(self.log_dir / "meta.properties"):
            return  # formatted by an earlier start: skip a ~1 s JVM run
        cmd = [
            *self._java_cmd(java, libs, heap="256m"),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            self._cluster_id(),
            "-c",
            str(self.properties_file),
            "-g",  # --ignore-formatted: reruns on an existing data dir are fine
        ]
        try:
            # Fixed argv built from our own paths, no shell.
            result = subprocess.run(  # noqa: S603
                cmd,
                cwd=self.data_dir,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                env=_java_env(),
            )
        except subprocess.TimeoutExpired as exc:
            raise KafkaStartError(f"formatting the KRaft storage in {self.log_dir} hung") from exc
        if result.returncode != 0:
            raise KafkaStartError(
                f"formatting the KRaft storage in {self.log_dir} failed "
                f"(exit {result.returncode}):\n{_tail_text(result.stdout + result.stderr, 40)}"
            )

    def _java_cmd(self, java: str, libs: Path, *, heap: str) -> list[str]:
        logs = self.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        return [
            java,
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={logs}",
            "-cp",
            str(libs / "*"),
        ]

    def _launch(self, java: str, libs: Path) -> None:
        cmd = [*self._java_cmd(java, libs, heap=self.heap), MAIN_CLASS, str(self.properties_file)]
        with open(self.stdout_file, "wb") as out:
            # Fixed argv built from our own paths, no shell. Own session/process group so a
            # Ctrl-C in the terminal does not hit the broker and stop() can signal the group.
            self._proc = subprocess.Popen(  # noqa: S603
                cmd,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=_java_env(),
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        log.info("started Kafka broker pid %d on %s:%s", self._proc.pid, HOST, self.port)

    def _wait_ready(self, timeout: float) -> None:
        """Poll the TCP port, then a real metadata request; fail fast if the JVM exits."""
        assert self.port is not None  # noqa: S101
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            if _port_accepts(HOST, self.port):
                break
            if time.monotonic() >= deadline:
                raise self._start_error(f"port {self.port} did not open within {timeout:.0f}s")
            time.sleep(0.1)
        while True:
            self._check_alive()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._start_error(
                    f"broker on {self.bootstrap_servers} did not answer a metadata request "
                    f"within {timeout:.0f}s"
                )
            # Short probes so that a JVM that dies meanwhile is noticed within seconds.
            probe = min(remaining, 5.0)
            if (
                _answers(self.bootstrap_servers, probe)
                and self._sasl_answers(probe)
                and self._tls_answers(probe)
            ):
                return
            time.sleep(0.2)

    def _sasl_answers(self, timeout: float) -> bool:
        """The SASL listener (if any) authenticates its first user and answers metadata."""
        if self.sasl_users is None:
            return True
        name, password = next(iter(self.sasl_users.items()))
        return _answers(
            self.sasl_bootstrap_servers,
            timeout,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            sasl_plain_username=name,
            sasl_plain_password=password,
        )

    def _tls_answers(self, timeout: float) -> bool:
        """The SSL listener (if any) completes a handshake trusting the CA and answers."""
        if not self.tls:
            return True
        return _answers(
            self.tls_bootstrap_servers,
            timeout,
            security_protocol="SSL",
            ssl_cafile=str(self.tls_ca_file),
        )

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise self._start_error(f"the broker JVM exited with code {self._proc.returncode}")

    def _start_error(self, reason: str) -> KafkaStartError:
        errors = _error_summary(_tail_file(self.stdout_file, 400))
        return KafkaStartError(
            f"local Kafka in {self.data_dir} failed to start: {reason}\n"
            + (f"--- errors reported by the broker ---\n{errors}\n" if errors else "")
            + f"--- last lines of {self.stdout_file} ---\n{_tail_file(self.stdout_file, 40)}\n"
            f"--- last lines of {self.server_log} ---\n{_tail_file(self.server_log, 25)}"
        )


# --------------------------------------------------------------------------------------------
# Cross-process management by data dir
# --------------------------------------------------------------------------------------------


def start_detached(
    data_dir: Path,
    *,
    port: int | None = None,
    heap: str = "512m",
    timeout: float = 90,
    cache_dir: Path | None = None,
) -> str:
    """Start a broker that outlives this process, or reuse the one already running there.

    Returns the bootstrap address. A broker is reused when the pid file's process is alive
    (and is our ``kafka.Kafka`` for this data dir) and answers a metadata request; one that is
    still starting is waited for.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(data_dir / LOCK_FILE):
        pid = _live_pid(data_dir)
        bootstrap = _read_text(data_dir / BOOTSTRAP_FILE).strip() or _bootstrap_from_properties(
            data_dir
        )
        if pid is not None and bootstrap:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _pid_alive(pid):
                if _answers(bootstrap, min(5.0, max(deadline - time.monotonic(), 0.5))):
                    (data_dir / BOOTSTRAP_FILE).write_text(bootstrap + "\n")
                    return bootstrap
                time.sleep(0.5)
            raise KafkaStartError(
                f"a Kafka broker (pid {pid}) runs in {data_dir} but does not answer on "
                f"{bootstrap}; stop it with `python -m infra.local_kafka stop --data-dir "
                f"{data_dir}`\n--- last lines of {data_dir / STDOUT_FILE} ---\n"
                f"{_tail_file(data_dir / STDOUT_FILE, 40)}"
            )
        if pid is not None:  # alive, but we cannot tell its address: replace it
            _terminate(pid, 30, _DETACHED.pop(pid, None))
        kafka = LocalKafka(data_dir, port=port, heap=heap, cache_dir=cache_dir)
        kafka._start_locked(timeout, stop_at_exit=False)
        if kafka._proc is not None:
            _DETACHED[kafka._proc.pid] = kafka._proc
        return kafka.bootstrap_servers


def stop_detached(data_dir: Path, timeout: float = 30) -> bool:
    """Stop the broker running in ``data_dir``; False when none was running."""
    data_dir = Path(data_dir).resolve()
    if not data_dir.is_dir():
        return False
    with _file_lock(data_dir / LOCK_FILE):
        pid = _live_pid(data_dir)
        if pid is not None:
            _terminate(pid, timeout, _DETACHED.pop(pid, None))
        _remove_runtime_files(data_dir, None)
        return pid is not None


def status(data_dir: Path) -> str | None:
    """Bootstrap address of the broker running in ``data_dir`` if it answers, else None."""
    data_dir = Path(data_dir).resolve()
    if _live_pid(data_dir) is None:
        return None
    bootstrap = _read_text(data_dir / BOOTSTRAP_FILE).strip()
    if not bootstrap or not _answers(bootstrap, 5.0):
        return None
    return bootstrap


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _random_cluster_id() -> str:
    """Kafka-style cluster id: a random UUID as 22 url-safe base64 chars, not starting with
    '-' (it would be read as a command line option), like ``Uuid.randomUuid()``."""
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not value.startswith("-"):
            return value


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _tail_text(text: str, lines: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _error_summary(log_text: str, limit: int = 12) -> str:
    """The ERROR lines and the ``Caused by:`` chain of a JVM log, without the stack frames."""
    picked: list[str] = []
    for line in log_text.splitlines():
        line = line.strip()
        if (" ERROR " in line or line.startswith("Caused by:")) and line not in picked:
            picked.append(line)
    return "\n".join(picked[-limit:])


def _tail_file(path: Path, lines: int) -> str:
    if not path.exists():
        return "(missing)"
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(fh.tell() - 64 * 1024, 0))
        text = fh.read().decode(errors="replace")
    return _tail_text(text, lines) or "(empty)"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Java's server sockets use SO_REUSEADDR, so TIME_WAIT leftovers do not block them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _add_listener(props: dict[str, str], name: str, protocol: str, port: int) -> dict[str, str]:
    """The three properties that add listener ``name`` (``protocol``) on ``port``."""
    address = f"{name}://{HOST}:{port}"
    return {
        "listeners": f"{props['listeners']},{address}",
        "advertised.listeners": f"{props['advertised.listeners']},{address}",
        "listener.security.protocol.map": (
            f"{props['listener.security.protocol.map']},{name}:{protocol}"
        ),
    }


def _listener_ports(properties: Path) -> dict[str, int]:
    for line in _read_text(properties).splitlines():
        if line.startswith("listeners="):
            ports: dict[str, int] = {}
            for listener in line.split("=", 1)[1].split(","):
                name, _, address = listener.partition("://")
                with contextlib.suppress(ValueError):
                    ports[name.strip()] = int(address.rsplit(":", 1)[1])
            return ports
    return {}


def _ports_from_properties(properties: Path) -> tuple[int, int] | None:
    ports = _listener_ports(properties)
    if "PLAINTEXT" in ports and "CONTROLLER" in ports:
        return ports["PLAINTEXT"], ports["CONTROLLER"]
    return None


def _bootstrap_from_properties(data_dir: Path) -> str:
    port = _listener_ports(data_dir / PROPERTIES_FILE).get("PLAINTEXT")
    return f"{HOST}:{port}" if port else ""


def _port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _check_sasl_users(users: Mapping[str, str]) -> dict[str, str]:
    """At least one user; names and passwords that fit the JAAS line unescaped."""
    checked = dict(users)
    if not checked:
        raise ValueError("sasl_users needs at least one user (name -> password)")
    for name, password in checked.items():
        if not _SASL_USER.match(name):
            raise ValueError(f"SASL user name {name!r}: use letters, digits, '.', '_', '-'")
        plain = password.isascii() and password.isprintable()
        if not password or not plain or any(c in password for c in '"\\;'):
            raise ValueError(
                f"SASL password of {name!r}: must be non-empty printable ASCII, without quotes, "
                "backslashes or ';'"
            )
    return checked


def _answers(bootstrap: str, timeout: float, **security: str) -> bool:
    """A real Kafka round trip: bootstrap (ApiVersions) + a Metadata request via kafka-python
    (``security``: extra client settings, e.g. SASL credentials)."""
    host, _, port = bootstrap.rpartition(":")
    if not port.isdigit() or not _port_accepts(host, int(port)):
        return False
    from kafka import KafkaAdminClient  # lazy: importing this module stays cheap

    timeout_ms = max(int(timeout * 1000), 500)
    config: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "client_id": "argos-local-kafka-probe",
        "request_timeout_ms": timeout_ms,
        **security,
    }
    # kafka-python 3.x calls it bootstrap_timeout_ms, 2.x api_version_auto_timeout_ms; unknown
    # keys are rejected, so only pass the one this version knows.
    for key in ("bootstrap_timeout_ms", "api_version_auto_timeout_ms"):
        if key in KafkaAdminClient.DEFAULT_CONFIG:
            config[key] = timeout_ms
            break
    try:
        admin = KafkaAdminClient(**config)
    except Exception as exc:  # any failure means "not ready yet"
        log.debug("Kafka probe on %s: %s", bootstrap, exc)
        return False
    try:
        admin.list_topics()
    except Exception as exc:  # any failure means "not ready yet"
        log.debug("Kafka probe on %s: %s", bootstrap, exc)
        return False
    finally:
        with contextlib.suppress(Exception):
            admin.close()
    return True


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is an exited child of this process (else it stays a zombie)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _pid_alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _read_text(Path(f"/proc/{pid}/stat"))
    if stat and stat.rpartition(")")[2].split()[:1] == ["Z"]:
        _reap(pid)  # Linux: a zombie still answers kill(0); it may have exited just now
        return False
    return True


def _is_our_broker(pid: int, data_dir: Path) -> bool:
    """Guard against a recycled pid: the process must be kafka.Kafka with this data dir."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.parent.exists():  # no procfs (macOS): trust the pid file
        return True
    args = _read_text(cmdline).split("\0")
    return MAIN_CLASS in args and str(data_dir / PROPERTIES_FILE) in args


def _live_pid(data_dir: Path) -> int | None:
    """The pid from the data dir's pid file if that process is alive and is its broker."""
    text = _read_text(data_dir / PID_FILE).strip()
    if not text.isdigit():
        return None
    pid = int(text)
    if _pid_alive(pid) and _is_our_broker(pid, data_dir):
        return pid
    return None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the broker's whole process group (it leads its own session), else just it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _terminate(pid: int, timeout: float, proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM (Kafka's clean shutdown), then SIGKILL after ``timeout`` seconds."""

    def wait(seconds: float) -> bool:
        if proc is not None:
            try:
                proc.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + seconds
        while _pid_alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    if proc is not None and proc.poll() is not None:
        return
    _signal_group(pid, signal.SIGTERM)
    if wait(timeout):
        return
    log.warning("Kafka broker pid %d ignored SIGTERM for %.0fs, sending SIGKILL", pid, timeout)
    _signal_group(pid, signal.SIGKILL)
    if not wait(10):
        raise RuntimeError(f"Kafka broker pid {pid} survived SIGKILL")


def _remove_runtime_files(data_dir: Path, pid: int | None) -> None:
    """Drop pid/bootstrap files (only if they still name ``pid``, when given)."""
    pid_file = data_dir / PID_FILE
    if pid is not None and _read_text(pid_file).strip() not in ("", str(pid)):
        return
    for name in (PID_FILE, BOOTSTRAP_FILE):
        with contextlib.suppress(FileNotFoundError):
            (data_dir / name).unlink()


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.local_kafka",
        description="Manage a local single-node Kafka broker (KRaft) kept in a data dir.",
    )
    parser.add_argument("command", choices=("start", "stop", "status"))
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"broker state folder (default: {DEFAULT_DATA_DIR})",
    )
    parser.add_argument("--port", type=int, default=None, help="client port (default: free)")
    parser.add_argument("--heap", default="512m", help="JVM -Xmx (default: 512m)")
    parser.add_argument("--timeout", type=float, default=90.0, help="start/stop timeout (s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    try:
        if args.command == "start":
            print(
                start_detached(args.data_dir, port=args.port, heap=args.heap, timeout=args.timeout)
            )
            return 0
        if args.command == "stop":
            stopped = stop_detached(args.data_dir, timeout=args.timeout)
            print("stopped" if stopped else "not running")
            return 0
        bootstrap = status(args.data_dir)
        if bootstrap is None:
            print("not running", file=sys.stderr)
            return 1
        print(bootstrap)
        return 0
    except KafkaStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
