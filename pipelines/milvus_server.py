"""Milvus Lite in its own process (``python -m milvus_lite server``), supervised by the worker.

Milvus Lite 3.x is pure Python: opened through a ``.db`` path it runs its storage engine and a
gRPC server as threads *inside* the worker, so every insert, delete, count and search (client
and server side, protobuf both ways) takes the worker's GIL from its event loop and stages.
With ``ARGOS_MILVUS_LITE_PROCESS`` the worker starts the same engine on the same data folder as a
child process instead, reached through its URI: it has its own GIL and, on a machine with a
spare core, runs beside the worker rather than between its threads.

The child dies with the worker (Linux ``PR_SET_PDEATHSIG``, so a SIGKILLed worker leaves no
server holding the folder's lock), and a supervisor thread starts it again on the same port if
it exits; meanwhile store calls fail, and the stages retry them with backoff as for any store
outage (``ARGOS_STORE_*`` retries; recalls answer from the caches, marked degraded).

A child killed mid-stream may lose its last acknowledged writes (5 of 244 once, in a
clean-clone CI run; not reproduced since, in 3 + 1 local runs): after each restart the
supervisor calls ``on_restart``, and the worker's store stage writes its last
``ARGOS_STORE_RESEND_ROWS`` rows again (those forgotten since are skipped; upserts are
idempotent). Rows written before those would stay lost if Milvus Lite ever lost more.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pipelines.errors import StoreUnavailableError
from pipelines.processes import free_port

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class MilvusLiteServer:
    """``python -m milvus_lite server --data-dir DIR`` on a local port; ``uri`` reaches it."""

    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port()
        self.uri = f"http://{host}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        # called on the supervisor's thread after each restart, once the server answers
        self.on_restart: Callable[[], None] | None = None

    def _spawn(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and an installed module
            [
                sys.executable,
                "-m",
                "milvus_lite",
                "server",
                "--data-dir",
                str(self.data_dir),
                "--host",
                self.host,
                "--port",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - a signal setting, no threads touched
        )

    def _wait_ready(self, timeout: float) -> None:
        from pymilvus import MilvusClient

        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None  # noqa: S101 - spawned just before
            if self.proc.poll() is not None:
                raise StoreUnavailableError(
                    f"milvus-lite server on {self.data_dir} exited with {self.proc.returncode}"
                )
            try:
                client = MilvusClient(uri=self.uri, timeout=2.0)
                client.list_collections()
                client.close()
                return
            except Exception as exc:  # noqa: BLE001 - not listening yet
                if time.monotonic() > deadline:
                    self._end(self.proc)  # this try only: a supervisor goes on trying
                    raise StoreUnavailableError(
                        f"milvus-lite server on {self.data_dir} did not answer in {timeout:.0f} s"
                    ) from exc
                time.sleep(0.2)

    def start(self, timeout: float = 60.0, supervise: bool = False) -> MilvusLiteServer:
        """Start the server and wait until it answers; ``supervise``: restart it whenever it
        exits, until :meth:`stop`."""
        self._stopping.clear()
        self._spawn()
        self._wait_ready(timeout)
        if supervise:
            threading.Thread(
                target=self._supervise, name="milvus-lite-supervisor", daemon=True
            ).start()
        return self

    def _supervise(self) -> None:
        while not self._stopping.wait(1.0):
            proc = self.proc
            if proc is None or proc.poll() is None:
                continue
            log.warning(
                "milvus-lite server on %s exited with %s: starting it again",
                self.data_dir,
                proc.returncode,
            )
            try:
                self._spawn()
                self._wait_ready(60.0)
            except StoreUnavailableError as exc:
                log.error("%s; trying again", exc)
                continue
            if self.on_restart is not None:
                try:
                    self.on_restart()
                except Exception:  # noqa: BLE001 - a failing hook must not end supervision
                    log.exception("milvus-lite restart hook failed")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (the server flushes), SIGKILL after ``timeout``; no restart after this."""
        self._stopping.set()
        self._end(self.proc, timeout)

    @staticmethod
    def _end(proc: subprocess.Popen[bytes] | None, timeout: float = 20.0) -> None:
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
