"""ArgOS Memory Stream: the Python product (stages, SDK, client, worker, CLI).

Importing this package starts nothing; ``pipelines.app.create_app(settings)`` builds a worker.
"""

from pipelines.client import MemoryClient, RecallError
from pipelines.embed import Embedder, HashingEmbedder, OnnxMiniLM, TorchMiniLM, load_embedder
from pipelines.errors import (
    ArgosError,
    ConfigurationError,
    EmbedderUnavailableError,
    InvalidEventError,
    PoisonEventError,
    RetryableError,
    SchemaVersionUnsupported,
    StoreUnavailableError,
)
from pipelines.publisher import MemoryPublisher
from pipelines.settings import Settings
from pipelines.simulation import Population
from pipelines.store import InMemoryStore, MilvusStore, VectorStore

__all__ = [
    "ArgosError",
    "ConfigurationError",
    "Embedder",
    "EmbedderUnavailableError",
    "HashingEmbedder",
    "InMemoryStore",
    "InvalidEventError",
    "MemoryClient",
    "MemoryPublisher",
    "MilvusStore",
    "OnnxMiniLM",
    "PoisonEventError",
    "Population",
    "RecallError",
    "RetryableError",
    "SchemaVersionUnsupported",
    "Settings",
    "StoreUnavailableError",
    "TorchMiniLM",
    "VectorStore",
    "load_embedder",
]
