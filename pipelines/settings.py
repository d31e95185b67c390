"""The one settings object. Every field reads an environment variable (named beside it)."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipelines.errors import ConfigurationError

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

    from pipelines.memory_state import MemoryParams

KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
#: How :func:`kafka_security_options` names its inputs in errors: the Settings' env vars.
KAFKA_ENV_NAMES = {
    "security_protocol": "ARGOS_KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "ARGOS_KAFKA_SASL_MECHANISM",
    "username": "ARGOS_KAFKA_USERNAME",
    "password": "ARGOS_KAFKA_PASSWORD",  # noqa: S105 (an env var's name, not a secret)
    "ssl_cafile": "ARGOS_KAFKA_SSL_CAFILE",
    "ssl_certfile": "ARGOS_KAFKA_SSL_CERTFILE",
    "ssl_keyfile": "ARGOS_KAFKA_SSL_KEYFILE",
}


def kafka_security_options(
    security_protocol: str = "PLAINTEXT",
    sasl_mechanism: str | None = "PLAIN",
    username: str | None = None,
    password: str | None = None,
    ssl_cafile: str | Path | None = None,
    ssl_certfile: str | Path | None = None,
    ssl_keyfile: str | Path | None = None,
    *,
    names: Mapping[str, str] = KAFKA_ENV_NAMES,
) -> dict[str, Any]:
    """Check one Kafka security configuration and return it as kafka-python client kwargs
    (``security_protocol``, ``sasl_mechanism``, ``sasl_plain_username``,
    ``sasl_plain_password``, ``ssl_cafile``, ``ssl_certfile``, ``ssl_keyfile``; only those that
    apply). The certificate and key files are the client's own (brokers that require client
    certificates, mutual TLS): both or neither, PEM.

    The single place that decides what a valid combination is, for the worker's settings and
    for :class:`~pipelines.publisher.MemoryPublisher` alike; ``names`` says how errors call
    the inputs (env vars by default). Raises :class:`ConfigurationError`.
    """
    protocol = (security_protocol or "PLAINTEXT").strip().upper()
    if protocol not in KAFKA_SECURITY_PROTOCOLS:
        raise ConfigurationError(
            f"{names['security_protocol']}={security_protocol!r} is not a Kafka security "
            f"protocol: use one of {', '.join(KAFKA_SECURITY_PROTOCOLS)}"
        )
    mechanism = (sasl_mechanism or "PLAIN").strip().upper()
    sasl = protocol.startswith("SASL_")
    tls = protocol in ("SSL", "SASL_SSL")
    options: dict[str, Any] = {"security_protocol": protocol}
    if sasl:
        if mechanism not in KAFKA_SASL_MECHANISMS:
            raise ConfigurationError(
                f"{names['sasl_mechanism']}={sasl_mechanism!r} is not supported: use one of "
                f"{', '.join(KAFKA_SASL_MECHANISMS)}"
            )
        missing = [names[k] for k, v in (("username", username), ("password", password)) if not v]
        if missing:
            raise ConfigurationError(
                f"{names['security_protocol']}={protocol} needs SASL credentials: set "
                f"{' and '.join(missing)}"
            )
        options.update(
            sasl_mechanism=mechanism, sasl_plain_username=username, sasl_plain_password=password
        )
    elif username or password:
        raise ConfigurationError(
            f"{names['username']}/{names['password']} are set but "
            f"{names['security_protocol']} is {protocol}, which does not authenticate: set it "
            "to SASL_PLAINTEXT or SASL_SSL (or unset the credentials)"
        )
    if ssl_cafile:
        if not tls:
            raise ConfigurationError(
                f"{names['ssl_cafile']} is set but {names['security_protocol']} is {protocol}, "
                "which does not use TLS: set it to SSL or SASL_SSL (or unset the CA file)"
            )
        if not Path(ssl_cafile).is_file():
            raise ConfigurationError(f"{names['ssl_cafile']}={str(ssl_cafile)!r} is not a file")
        options["ssl_cafile"] = str(ssl_cafile)
    if ssl_certfile or ssl_keyfile:
        cert, key = names["ssl_certfile"], names["ssl_keyfile"]
        if not (ssl_certfile and ssl_keyfile):
            raise ConfigurationError(
                f"a client certificate needs both {cert} and {key}: set "
                f"{key if ssl_certfile else cert} too"
            )
        if not tls:
            raise ConfigurationError(
                f"{cert}/{key} are set but {names['security_protocol']} is {protocol}, which "
                "does not use TLS: set it to SSL or SASL_SSL (or unset them)"
            )
        for name, path in ((cert, ssl_certfile), (key, ssl_keyfile)):
            if not Path(path).is_file():
                raise ConfigurationError(f"{name}={str(path)!r} is not a file")
        options.update(ssl_certfile=str(ssl_certfile), ssl_keyfile=str(ssl_keyfile))
    return options


class Settings(BaseSettings):
    """Configuration of a worker, the publisher, the CLI and the demo.

    Environment variables use the ``ARGOS_`` prefix (``ARGOS_EMBEDDER=onnx``), except the two
    that the ecosystem already names: ``KAFKA_BOOTSTRAP_SERVERS`` and ``MILVUS_URI``.
    """

    model_config = SettingsConfigDict(env_prefix="ARGOS_", frozen=True, extra="ignore")

    # Kafka
    kafka_bootstrap_servers: str | None = Field(
        None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "ARGOS_KAFKA_BOOTSTRAP_SERVERS"),
        description="KAFKA_BOOTSTRAP_SERVERS: an existing cluster; unset = the local broker.",
    )
    topic_prefix: str = Field(
        "argos", pattern=r"^[A-Za-z0-9._-]+$", description="ARGOS_TOPIC_PREFIX: topic namespace."
    )
    topic_partitions: int = Field(4, ge=1, description="ARGOS_TOPIC_PARTITIONS")
    standby_replicas: int = Field(
        0,
        ge=0,
        description="ARGOS_STANDBY_REPLICAS: standby copies of each state table partition on "
        "other workers (a faster takeover). Faust's assignor balances partitions over the "
        "workers only without them: with standbys it leaves every worker up to ceil(partitions "
        "/ workers), so with 4 partitions a third worker gets none.",
    )
    events_topic: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="ARGOS_EVENTS_TOPIC: the topic the ingest stage reads; unset = "
        "<prefix>.memory.events. Set it, with a new ARGOS_TOPIC_PREFIX and an empty store, to "
        "replay an existing events topic from offset 0 into a fresh deployment.",
    )
    app_id: str = Field("argos-memory", description="ARGOS_APP_ID: Faust app / consumer group.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="ARGOS_KAFKA_SECURITY_PROTOCOL: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT "
        "(authenticated) or SASL_SSL (authenticated, over TLS); for every Kafka client the "
        "worker, the CLI and the publisher create.",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN",
        description="ARGOS_KAFKA_SASL_MECHANISM: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL "
        "protocols only).",
    )
    kafka_username: str | None = Field(
        None, description="ARGOS_KAFKA_USERNAME: SASL user (needed by the SASL protocols)."
    )
    kafka_password: SecretStr | None = Field(
        None, description="ARGOS_KAFKA_PASSWORD: SASL password (needed by the SASL protocols)."
    )
    kafka_ssl_cafile: Path | None = Field(
        None,
        description="ARGOS_KAFKA_SSL_CAFILE: PEM CA bundle that signs the brokers' TLS "
        "certificates (SSL, SASL_SSL); unset = the system's trusted CAs.",
    )
    kafka_ssl_certfile: Path | None = Field(
        None,
        description="ARGOS_KAFKA_SSL_CERTFILE: the client's own PEM certificate, for brokers "
        "that require client certificates (mutual TLS; with ARGOS_KAFKA_SSL_KEYFILE).",
    )
    kafka_ssl_keyfile: Path | None = Field(
        None,
        description="ARGOS_KAFKA_SSL_KEYFILE: the PEM private key of ARGOS_KAFKA_SSL_CERTFILE "
        "(unencrypted: keep it in a secret).",
    )
    # Milvus
    milvus_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("MILVUS_URI", "ARGOS_MILVUS_URI"),
        description="MILVUS_URI: a Milvus server; unset = Milvus Lite in data_dir.",
    )
    milvus_lite_process: bool = Field(
        True,
        description="ARGOS_MILVUS_LITE_PROCESS: without MILVUS_URI, run Milvus Lite (pure "
        "Python) as a supervised child process on the same data folder (the default since "
        "2026-11-27: recall p99 1.3x lower at 10k; no difference measured at 100k) instead "
        "of as threads inside the worker, where it takes the worker's GIL "
        "(pipelines/milvus_server.py); false: in the worker.",
    )
    store_resend_rows: int = Field(
        4096,
        ge=0,
        description="ARGOS_STORE_RESEND_ROWS: with ARGOS_MILVUS_LITE_PROCESS, how many of the "
        "rows written last the store stage keeps and writes again (skipping those forgotten "
        "since) each time the Milvus Lite process is started again: one killed mid-stream may "
        "lose its last acknowledged writes.",
    )
    collection: str = Field("argos_memories", description="ARGOS_COLLECTION: the hot collection.")
    archive_collection: str = Field(
        "argos_archive",
        description="ARGOS_ARCHIVE_COLLECTION: archived memories (recalled on request).",
    )
    # Embedding
    embedder: Literal["onnx", "torch", "hashing"] = Field(
        "onnx",
        description="ARGOS_EMBEDDER: onnx (int8, no torch; fastest end to end here), torch "
        "(needs the torch extra) or hashing (not semantic: tests and benchmarks only).",
    )
    embed_threads: int = Field(0, ge=0, description="ARGOS_EMBED_THREADS: 0 = all cores.")
    embed_batch: int = Field(
        32, ge=1, le=1024, description="ARGOS_EMBED_BATCH: texts per model forward pass."
    )
    embed_chunk: int = Field(
        256,
        ge=1,
        description="ARGOS_EMBED_CHUNK: events per model call; a call sorts its texts by length "
        "before cutting forward passes, so larger chunks pad less.",
    )
    # Clustering (per agent, cosine)
    cluster_join: float = Field(
        0.55, ge=-1, le=1, description="ARGOS_CLUSTER_JOIN: min similarity to join a cluster."
    )
    cluster_merge: float = Field(
        0.88, ge=-1, le=1, description="ARGOS_CLUSTER_MERGE: centroid similarity that merges."
    )
    cluster_split_radius: float = Field(
        0.45, gt=0, le=2, description="ARGOS_CLUSTER_SPLIT_RADIUS: mean distance that splits."
    )
    cluster_min_split: int = Field(
        8, ge=2, description="ARGOS_CLUSTER_MIN_SPLIT: smallest cluster that may split."
    )
    # Lifecycle (event time)
    base_stability_s: float = Field(
        6 * 3600.0,
        gt=0,
        description="ARGOS_BASE_STABILITY_S: stability S of a plain episodic memory (s); "
        "raised by type, importance, arousal and each recall.",
    )
    decay_threshold: float = Field(
        0.05, gt=0, lt=1, description="ARGOS_DECAY_THRESHOLD: retention R below which it decays."
    )
    consolidate_recalls: int = Field(
        3, ge=1, description="ARGOS_CONSOLIDATE_RECALLS: recalls that consolidate a memory."
    )
    archive_idle_s: float = Field(
        30 * 24 * 3600.0,
        gt=0,
        description="ARGOS_ARCHIVE_IDLE_S: a consolidated memory idle this long is archived.",
    )
    duplicate_threshold: float = Field(
        0.97,
        gt=0,
        le=1,
        description="ARGOS_DUPLICATE_THRESHOLD: cosine to a live memory of the same agent above "
        "which a new memory strengthens it instead of being stored.",
    )
    stable_size: int = Field(
        6, ge=2, description="ARGOS_STABLE_SIZE: members a cluster needs to consolidate."
    )
    stable_min: float = Field(
        0.5, ge=0, le=1, description="ARGOS_STABLE_MIN: cluster stability needed to consolidate."
    )
    stable_age_s: float = Field(
        6 * 3600.0, ge=0, description="ARGOS_STABLE_AGE_S: cluster age (event time) needed."
    )
    rederive_growth: float = Field(
        2.0, gt=1, description="ARGOS_REDERIVE_GROWTH: re-distil a cluster once it grew this much."
    )
    watermark_lateness_s: float = Field(
        3600.0,
        ge=0,
        description="ARGOS_WATERMARK_LATENESS_S: how far a namespace's watermark trails the "
        "least of its partitions' latest event times; silent agents are settled up to it.",
    )
    partition_idle_s: float = Field(
        5.0,
        gt=0,
        description="ARGOS_PARTITION_IDLE_S: wall-clock seconds without records after which a "
        "partition no longer holds its namespace's watermark back.",
    )
    stall_s: float = Field(
        30.0,
        gt=0,
        description="ARGOS_STALL_S: wall-clock seconds a partition with records to read may go "
        "without progress before the worker reports it stalled and puts it back into the fetcher.",
    )
    partition_target_rate: float = Field(
        200.0,
        gt=0,
        description="ARGOS_PARTITION_TARGET_RATE: events/s one partition should carry (about "
        "one worker's embedding rate); sizes the suggested partition count in /stats.",
    )
    hot_partition_ratio: float = Field(
        2.0,
        gt=1,
        description="ARGOS_HOT_PARTITION_RATIO: a partition this many times the mean rate of "
        "the worker's partitions is reported hot.",
    )
    sweep_every_s: float = Field(
        600.0, gt=0, description="ARGOS_SWEEP_EVERY_S: watermark advance (event time) per sweep."
    )
    memory_cache_agents: int = Field(
        4096,
        ge=1,
        description="ARGOS_MEMORY_CACHE_AGENTS: agents whose live memory state (with member "
        "vectors) the memory stage keeps between batches.",
    )
    state_deltas: bool = Field(
        True,
        description="ARGOS_STATE_DELTAS: the memory stage writes per agent a delta of what a "
        "batch changed and a snapshot once the deltas outgrow it (false: the whole state every "
        "batch, the layout before deltas; for comparison).",
    )
    population_join: float = Field(
        0.75, ge=-1, le=1, description="ARGOS_POPULATION_JOIN: centroid similarity to join."
    )
    population_merge: float = Field(
        0.9, ge=-1, le=1, description="ARGOS_POPULATION_MERGE: population centroids that merge."
    )
    population_cell: float = Field(
        10.0,
        gt=0,
        allow_inf_nan=False,
        description="ARGOS_POPULATION_CELL: side of the grid cells (world units) of the "
        "namespace-wide index of where agents were last seen (``/population?x=&y=&radius=``).",
    )
    # Recall
    recall_w_relevance: float = Field(
        1.0, ge=0, description="ARGOS_RECALL_W_RELEVANCE: weight of cosine similarity."
    )
    recall_w_recency: float = Field(
        0.5, ge=0, description="ARGOS_RECALL_W_RECENCY: weight of retention R at recall time."
    )
    recall_w_importance: float = Field(
        0.3, ge=0, description="ARGOS_RECALL_W_IMPORTANCE: weight of the memory's importance."
    )
    recall_w_lexical: float = Field(
        0.4,
        ge=0,
        description="ARGOS_RECALL_W_LEXICAL: weight of the query's BM25 over the agent's "
        "memories, scaled to the best candidate's (0 turns the lexical part off).",
    )
    recall_inline_rows: int = Field(
        20_000,
        ge=0,
        description="ARGOS_RECALL_INLINE_ROWS: a recall of a warm agent holding at most this "
        "many rows runs on the event loop (well under a millisecond) instead of a worker "
        "thread, saving two GIL hand-offs that each wait behind the stages' threads under "
        "load; larger agents, and the first recall of an agent, run in the thread (0: always).",
    )
    l1_results_mb: float = Field(
        32.0, gt=0, description="ARGOS_L1_RESULTS_MB: bytes of cached recall results."
    )
    l1_records_mb: float = Field(
        16.0,
        gt=0,
        description="ARGOS_L1_RECORDS_MB: bytes of cached memory rows (the memory stage's "
        "reads of its members' vectors).",
    )
    l1_embeddings_mb: float = Field(
        8.0, gt=0, description="ARGOS_L1_EMBEDDINGS_MB: bytes of cached query embeddings."
    )
    hot_index_mb: float = Field(
        2048.0,
        gt=0,
        description="ARGOS_HOT_INDEX_MB: memory bound of the hot recall index; past it the "
        "least recently used agents leave it (their rows stay in the L2 table and Milvus; the "
        "next recall for one warms it again).",
    )
    # Analytics
    analytics: bool = Field(
        True, description="ARGOS_ANALYTICS: run the analytics stage (River models, metrics)."
    )
    analytics_checkpoint_s: float = Field(
        30.0,
        gt=0,
        description="ARGOS_ANALYTICS_CHECKPOINT_S: wall seconds between checkpoints of the "
        "analytics models (into the changelog-recovered table <prefix>-analytics).",
    )
    spatial_cell: float = Field(
        10.0,
        ge=0,
        description="ARGOS_SPATIAL_CELL: side of the grid cells (world units) over each agent's "
        "memory positions that radius recalls look up instead of scanning every row (0: off).",
    )
    prefetch_s: float = Field(
        5.0,
        ge=0,
        description="ARGOS_PREFETCH_S: wall seconds between prefetches: the agents the "
        "recall-probability model expects to be recalled most are warmed into the hot index and "
        "kept there first when it must evict, and sent to the recall process when there is one "
        "(0: off; needs ARGOS_ANALYTICS).",
    )
    prefetch_agents: int = Field(
        8, ge=1, description="ARGOS_PREFETCH_AGENTS: agents warmed at most per prefetch."
    )
    # Stream batching
    # Security (issue 6)
    tokens: str | None = Field(
        None,
        description="ARGOS_TOKENS: JSON list of access tokens, each {token, subject, namespaces "
        "(list, '*' = all), agents (list or null = all in them), publish (bool), admin (bool)}; "
        "unset and no tokens_file = the API is open (local development only).",
    )
    tokens_file: Path | None = Field(
        None, description="ARGOS_TOKENS_FILE: the same JSON in a file (a mounted secret)."
    )
    encryption_keys: str | None = Field(
        None,
        description="ARGOS_ENCRYPTION_KEYS: 'kid:base64-of-32-bytes,...' AES-256-GCM keys; "
        "memory content is encrypted at rest (Milvus, tables) when set.",
    )
    encryption_keys_file: Path | None = Field(
        None, description="ARGOS_ENCRYPTION_KEYS_FILE: the same list in a file (a mounted secret)."
    )
    encryption_key_id: str | None = Field(
        None,
        description="ARGOS_ENCRYPTION_KEY_ID: the key that encrypts new data (default: the "
        "first listed); the others still decrypt, so keys rotate without downtime.",
    )
    rate_ingest_agent: str = Field(
        "1000/second", description="ARGOS_RATE_INGEST_AGENT: events per agent ('limits' syntax)."
    )
    rate_ingest_namespace: str = Field(
        "20000/second", description="ARGOS_RATE_INGEST_NAMESPACE: events per namespace."
    )
    rate_recall_agent: str = Field(
        "200/second", description="ARGOS_RATE_RECALL_AGENT: recalls per agent."
    )
    rate_recall_namespace: str = Field(
        "2000/second", description="ARGOS_RATE_RECALL_NAMESPACE: recalls per namespace."
    )
    # OpenTelemetry
    otel_exporter: Literal["console", "otlp", "none"] = Field(
        "console",
        description="ARGOS_OTEL_EXPORTER: console (default), otlp (also chosen whenever "
        "OTEL_EXPORTER_OTLP_ENDPOINT is set), or none.",
    )
    otel_console_file: Path | None = Field(
        None,
        description="ARGOS_OTEL_CONSOLE_FILE: where the console exporter writes (default stdout).",
    )
    take_max: int = Field(1024, ge=1, description="ARGOS_TAKE_MAX: events per store batch.")
    take_within: float = Field(0.2, gt=0, description="ARGOS_TAKE_WITHIN: seconds to fill one.")
    recallable_take_within: float = Field(
        0.1,
        gt=0,
        description="ARGOS_RECALLABLE_TAKE_WITHIN: seconds the ingest+embed and store stages (the "
        "publish -> recallable path) wait to fill a batch (0.2, ARGOS_TAKE_WITHIN, before "
        "2026-11-27: bench/freshness.py measured p99 1.8x lower for ~7% less burst throughput "
        "with the model). The memory, population and analytics stages keep ARGOS_TAKE_WITHIN.",
    )
    # Worker
    switch_interval_ms: float = Field(
        1.0,
        gt=0,
        le=100,
        description="ARGOS_SWITCH_INTERVAL_MS: how long a thread holds the GIL before another "
        "may run (Python's default is 5 ms). The event loop releases it at every socket call "
        "and waits up to this long to get it back while a stage thread computes, so shorter "
        "= shorter recall tails (10k p99 1.35x lower at 1 ms); it costs about a sixth of the "
        "pipeline's own rate with the hashing embedder (5 ms: 1.21x events/s) and ~2% with the "
        "model (README).",
    )
    recall_switch_interval_ms: float = Field(
        0.1,
        ge=0,
        le=100,
        description="ARGOS_RECALL_SWITCH_INTERVAL_MS: the GIL switch interval while the worker "
        "answers a recall (from the request to the response; ARGOS_SWITCH_INTERVAL_MS the rest "
        "of the time). Each numpy call of a search releases the GIL, and a busy stage thread "
        "then keeps it for up to an interval: beside one, a search took 5.2 ms at 1 ms and "
        "1.3 ms at 0.1 ms (bench/gil_convoy.py). 0 or >= ARGOS_SWITCH_INTERVAL_MS: off.",
    )
    blas_threads: int = Field(
        1,
        ge=0,
        description="ARGOS_BLAS_THREADS: threads numpy's BLAS may use in the worker (0: its "
        "default, one per core). The worker's matrix products are small (one agent's rows); "
        "split over threads they wait for every busy core, which shows as recall tail latency.",
    )
    gc_freeze: bool = Field(
        True,
        description="ARGOS_GC_FREEZE: once the worker has loaded (modules, model, app), move "
        "every object it holds to Python's permanent generation (gc.freeze) so full garbage "
        "collections, which stop every thread, no longer scan them.",
    )
    gc_refreeze: int = Field(
        8,
        ge=0,
        description="ARGOS_GC_REFREEZE: with ARGOS_GC_FREEZE, freeze the survivors of each "
        "full garbage collection too, so the next one scans only what is newer (their pauses "
        "grew with the heap: median 1.9 s at 500k memories); after N of them, and at least 5 "
        "minutes after the last time, the frozen objects are handed back so one full "
        "collection frees reference cycles that died frozen. "
        "0: off (only the start-up freeze).",
    )
    gc_threshold: str = Field(
        "5000,50,10",
        pattern=r"^\s*\d+\s*,\s*\d+\s*,\s*\d+\s*$",
        description="ARGOS_GC_THRESHOLD: gc.set_threshold for the worker, 'gen0,gen1,gen2' "
        "(Python's default: 700,10,10). Above Python's gen0 short-lived objects (records, "
        "batches, responses) die before a collection promotes them, so full collections (which "
        "stop every thread for ~0.1-2.5 s) become rare; 5000 rather than 50000 (the default "
        "until 2026-11-27) keeps each young collection short: at 100k memories its median "
        "pause was 3.9 vs 84 ms and the recall p99 29 vs 58 ms (bench.recall_http --variant).",
    )

    def gc_thresholds(self) -> tuple[int, int, int]:
        a, b, c = (int(x) for x in self.gc_threshold.split(","))
        return a, b, c

    stage_thread_nice: int = Field(
        0,
        ge=0,
        le=19,
        description="ARGOS_STAGE_THREAD_NICE: niceness added to the stages' worker threads "
        "(embed, store, memory, analytics; Linux, per thread) so the OS runs the event loop "
        "thread (recall, Kafka I/O) first when the cores are busy. 0 leaves them as they are.",
    )
    data_dir: Path = Field(Path(".data"), description="ARGOS_DATA_DIR: tables, Milvus Lite file.")
    web_host: str = Field(
        "127.0.0.1",
        description="ARGOS_WEB_HOST: the address the other workers reach this one at (Faust's "
        "canonical URL, where recalls of its agents are routed).",
    )
    web_bind: str | None = Field(
        None,
        description="ARGOS_WEB_BIND: the address the HTTP servers listen on (default: "
        "ARGOS_WEB_HOST); 0.0.0.0 in a pod, so `kubectl port-forward` (which connects to "
        "localhost inside it) reaches them too.",
    )
    web_port: int = Field(6066, ge=0, le=65535, description="ARGOS_WEB_PORT")
    recall_process: bool = Field(
        True,
        description="ARGOS_RECALL_PROCESS: serve POST /recall from a process of its own too "
        "(its own GIL: the stages' work does not delay a recall; pipelines.recall_server), fed "
        "by the worker; its GET /ready names it (recall_url) and the Python client finds it "
        "there. false: only the worker's own /recall.",
    )
    recall_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="ARGOS_RECALL_PORT: the recall process's port; 0: one the OS picks (kept "
        "when the process is started again), named by the worker's GET /ready.",
    )
    session_timeout: float = Field(
        10.0, gt=0, description="ARGOS_SESSION_TIMEOUT: Kafka consumer session timeout (s)."
    )

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_kafka_security(self) -> Settings:
        self.kafka_client_options()  # raises ConfigurationError naming the env vars
        return self

    def kafka_client_options(self) -> dict[str, Any]:
        """Security kwargs for every kafka-python client (``KafkaProducer``, ``KafkaConsumer``,
        ``KafkaAdminClient``) and for :class:`~pipelines.publisher.MemoryPublisher`."""
        return kafka_security_options(
            self.kafka_security_protocol,
            self.kafka_sasl_mechanism,
            self.kafka_username,
            self.kafka_password.get_secret_value() if self.kafka_password else None,
            self.kafka_ssl_cafile,
            self.kafka_ssl_certfile,
            self.kafka_ssl_keyfile,
        )

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of the SSL protocols (CA file or system CAs), else None."""
        if self.kafka_security_protocol not in ("SSL", "SASL_SSL"):
            return None
        cafile = str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
        if self.kafka_ssl_certfile and self.kafka_ssl_keyfile:
            context.load_cert_chain(self.kafka_ssl_certfile, self.kafka_ssl_keyfile)
        return context

    def faust_broker_credentials(self) -> CredentialsT | None:
        """The same security settings as Faust's ``broker_credentials`` (None: PLAINTEXT)."""
        from faust.auth import SASLCredentials, SSLCredentials

        options = self.kafka_client_options()
        context = self.kafka_ssl_context()
        if "sasl_mechanism" in options:
            return SASLCredentials(
                username=options["sasl_plain_username"],
                password=options["sasl_plain_password"],
                mechanism=options["sasl_mechanism"],
                ssl_context=context,
            )
        if context is not None:
            return SSLCredentials(context)
        return None

    def topic(self, suffix: str) -> str:
        """Full topic name, e.g. ``topic("memory.events")`` -> ``argos.memory.events``."""
        return f"{self.topic_prefix}.{suffix}"

    def source_topic(self) -> str:
        """The events topic the ingest stage reads (``ARGOS_EVENTS_TOPIC`` or the prefix's)."""
        return self.events_topic or self.topic("memory.events")

    def memory_params(self) -> MemoryParams:
        """The memory stage's parameters, from these settings."""
        from pipelines.clustering import ClusterParams
        from pipelines.lifecycle import LifecycleParams
        from pipelines.memory_state import MemoryParams

        return MemoryParams(
            lifecycle=LifecycleParams(
                base_stability=self.base_stability_s,
                decay_threshold=self.decay_threshold,
                consolidate_recalls=self.consolidate_recalls,
                archive_idle=self.archive_idle_s,
            ),
            clusters=ClusterParams(
                join_threshold=self.cluster_join,
                merge_threshold=self.cluster_merge,
                split_radius=self.cluster_split_radius,
                min_split_size=self.cluster_min_split,
            ),
            duplicate_threshold=self.duplicate_threshold,
            stable_size=self.stable_size,
            stable_min=self.stable_min,
            stable_age_s=self.stable_age_s,
            rederive_growth=self.rederive_growth,
        )

    @property
    def milvus_target(self) -> str:
        return self.milvus_uri or str(self.data_dir / "milvus.db")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
