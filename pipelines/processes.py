"""Start and stop worker processes (used by the demo, the tests and the benchmarks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType

from infra.ports import free_port
from pipelines.client import MemoryClient


class WorkerProcess:
    """``argos worker`` in a child process, with its own data folder, port and log file.
    Its recall process (on by default; ``ARGOS_RECALL_PROCESS=false`` in ``extra_env``: none)
    listens on the port its ``/ready`` names (``recall_url`` once started; the client
    ``start`` returns sends recalls there); ``ARGOS_RECALL_PORT=free`` picks one up front."""

    def __init__(
        self,
        bootstrap: str,
        data_dir: Path,
        *,
        topic_prefix: str = "argos",
        app_id: str = "argos-memory",
        port: int | None = None,
        embedder: str = "onnx",
        extra_env: dict[str, str] | None = None,
        checkout: Path | None = None,
    ) -> None:
        """``checkout``: run the worker from another copy of this repository (its folder is
        the worker's working directory, so ``python -m`` imports its ``pipelines``; the
        benchmarks compare code changes side by side so)."""
        self.bootstrap = bootstrap
        self.checkout = checkout
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.data_dir / "worker.log"
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "ARGOS_DATA_DIR": str(self.data_dir),
            "ARGOS_TOPIC_PREFIX": topic_prefix,
            "ARGOS_APP_ID": app_id,
            "ARGOS_WEB_PORT": str(self.port),
            "ARGOS_EMBEDDER": embedder,
            **(extra_env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        # the recall process (ARGOS_RECALL_PORT, "free": any free port, chosen now; else the
        # worker's /ready names it once it serves)
        if self.env.get("ARGOS_RECALL_PORT") == "free":
            self.env["ARGOS_RECALL_PORT"] = str(free_port())
        self.recall_url: str | None = None

    @classmethod
    def fresh(
        cls,
        bootstrap: str,
        parent: Path,
        name: str,
        *,
        embedder: str = "onnx",
        extra_env: dict[str, str] | None = None,
        checkout: Path | None = None,
    ) -> WorkerProcess:
        """A worker with topics, consumer group and data folder of its own, all named
        ``<name>-<8 hex digits>`` (its ``prefix``), under ``parent``; ``checkout``: run from
        that copy of the repository."""
        prefix = f"{name}-{uuid.uuid4().hex[:8]}"
        return cls(
            bootstrap,
            Path(parent) / prefix,
            topic_prefix=prefix,
            app_id=f"{prefix}-app",
            embedder=embedder,
            extra_env=extra_env,
            checkout=checkout,
        )

    @property
    def prefix(self) -> str:
        """The worker's topic prefix (``ARGOS_TOPIC_PREFIX``)."""
        return self.env["ARGOS_TOPIC_PREFIX"]

    def start(self, timeout: float = 120.0) -> MemoryClient:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "pipelines.cli", "worker"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.checkout,
        )
        log.close()
        probe = MemoryClient(self.url, recall_url=None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                probe.close()
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            if probe.ready():
                self.recall_url = probe.recall_url_named()
                probe.close()
                return MemoryClient(self.url, recall_url=self.recall_url)
            time.sleep(0.25)
        probe.close()
        self.stop()
        raise TimeoutError(f"worker not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (Faust stops cleanly and commits), then SIGKILL after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def __enter__(self) -> WorkerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
