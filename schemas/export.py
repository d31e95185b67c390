"""Export the JSON Schema files in ``schemas/json/`` from the pydantic models.

Run ``python -m schemas.export`` after changing a model; a test fails while the committed files
and the models disagree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from schemas.analytics import MetricEvent, PredictionEvent
from schemas.audit import AuditRecord
from schemas.clusters import ClusterEvent
from schemas.deadletter import DeadLetter
from schemas.embedded import EmbeddedMemory
from schemas.lifecycle import AccessEvent, LifecycleEvent
from schemas.memory_event import MemoryEvent
from schemas.recall import RecallRequest, RecallResponse

JSON_DIR = Path(__file__).parent / "json"

EXPORTS: dict[str, type[BaseModel]] = {
    "memory_event.v1.json": MemoryEvent,
    "embedded_memory.v1.json": EmbeddedMemory,
    "deadletter.v1.json": DeadLetter,
    "cluster_event.v1.json": ClusterEvent,
    "access_event.v1.json": AccessEvent,
    "lifecycle_event.v1.json": LifecycleEvent,
    "recall_request.v1.json": RecallRequest,
    "recall_response.v1.json": RecallResponse,
    "prediction_event.v1.json": PredictionEvent,
    "metric_event.v1.json": MetricEvent,
    "audit_record.v1.json": AuditRecord,
}


def render(model: type[BaseModel]) -> str:
    schema = model.model_json_schema(mode="validation")
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    JSON_DIR.mkdir(exist_ok=True)
    for name, model in EXPORTS.items():
        (JSON_DIR / name).write_text(render(model))
        print(f"wrote {JSON_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
