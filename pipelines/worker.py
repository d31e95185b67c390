"""Run one worker process: the Faust app with its stages and web API."""

from __future__ import annotations

import logging
from pathlib import Path

from pipelines.errors import ConfigurationError
from pipelines.settings import Settings


def resolve_bootstrap(settings: Settings) -> Settings:
    """Fill in the local broker's address when ``KAFKA_BOOTSTRAP_SERVERS`` is not set."""
    if settings.kafka_bootstrap_servers:
        return settings
    from infra.local_kafka import DEFAULT_DATA_DIR, status

    found = status(DEFAULT_DATA_DIR)
    if not found:
        raise ConfigurationError(
            "no Kafka broker: set KAFKA_BOOTSTRAP_SERVERS, or start the local one with "
            "`argos broker start`"
        )
    return settings.model_copy(update={"kafka_bootstrap_servers": found})


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Start the worker and block until it is stopped (SIGINT/SIGTERM stop it cleanly)."""

    import faust

    from pipelines.app import create_app
    from pipelines.runtime import FreezeSurvivors, freeze_start_up, tune_process
    from pipelines.stats import GcPauses
    from pipelines.topics_admin import ensure_topics

    settings = resolve_bootstrap(settings)
    tune_process(settings)
    milvus = None
    if settings.milvus_lite_process and not settings.milvus_uri:
        from pipelines.milvus_server import MilvusLiteServer

        milvus = MilvusLiteServer(Path(settings.milvus_target)).start(supervise=True)
        settings = settings.model_copy(update={"milvus_uri": milvus.uri})
    ensure_topics(settings)
    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    pipe = create_app(settings)
    if milvus is not None:  # a restarted child may have lost its last writes: send them again
        milvus.on_restart = pipe.milvus_restarted
    pipe.gc_pauses = GcPauses().install()  # /stats system: gc_seconds, gc_max_pause_ms, ...
    pipe.embedder.embed_many(["warm up the model before the first event arrives"] * 8)
    if settings.recall_process:  # recalls served by a process of their own
        from pipelines.recall_mirror import RecallMirror

        pipe.recall_mirror = RecallMirror(
            pipe.recall,
            pipe.hot_values,
            pipe.owned_partitions,
            settings.topic_partitions,
            lambda: pipe.store_down_since,
            pipe.partition_owners,
        ).start()
    pipe.gc_pauses.frozen = freeze_start_up(settings)
    pipe.gc_pauses.refreeze = FreezeSurvivors.installed()
    worker = faust.Worker(pipe.app, loglevel=loglevel, quiet=True, override_logging=False)
    try:
        worker.execute_from_commandline()
    finally:
        if pipe.recall_mirror is not None:
            pipe.recall_mirror.stop()
        pipe.store.close()
        if milvus is not None:
            milvus.stop()
