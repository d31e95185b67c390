"""The worker's HTTP API as an OpenAPI 3.1 document, built from the pydantic models (so it can
never drift from what the endpoints validate). Served at ``GET /openapi.json``.

>>> doc = openapi()
>>> sorted(doc["paths"])
['/clusters', '/openapi.json', '/population', '/ready', '/recall', '/stats']
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic.json_schema import models_json_schema

from schemas import RecallRequest, RecallResponse

_REF = "#/components/schemas/{model}"


def _json(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model=ref)}}},
    }


def _free(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {}}}}


def _query(name: str, description: str, required: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": {"type": "string"},
    }


@lru_cache(maxsize=1)
def openapi() -> dict[str, Any]:
    _, defs = models_json_schema(
        [(RecallRequest, "validation"), (RecallResponse, "serialization")],
        ref_template=_REF,
    )
    error = {"description": "error", "content": {"application/json": {"schema": {}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "ArgOS Memory Stream worker API", "version": "1"},
        "paths": {
            "/recall": {
                "post": {
                    "summary": "Recall an agent's memories like a query (scored, filtered). "
                    "Any worker answers: it forwards to the agent's owner.",
                    "requestBody": {
                        "required": True,
                        **_json("RecallRequest", "what the agent asks"),
                    },
                    "responses": {
                        "200": _json("RecallResponse", "ranked hits with their score parts"),
                        "400": error,
                        "503": error,
                    },
                }
            },
            "/stats": {
                "get": {
                    "summary": "This worker's stage counters and cache statistics.",
                    "parameters": [
                        _query("count", "1: also count the Milvus collections", False),
                        _query("namespace", "restrict the counts to a namespace", False),
                    ],
                    "responses": {"200": _free("counters")},
                }
            },
            "/clusters": {
                "get": {
                    "summary": "An agent's live memory clusters (size, radius, stability).",
                    "parameters": [_query("namespace", "namespace"), _query("agent_id", "agent")],
                    "responses": {"200": _free("clusters"), "400": error},
                }
            },
            "/population": {
                "get": {
                    "summary": "Namespace-wide clusters shared across agents; with x, y and "
                    "radius, the agents last seen near (x, y) and their part of each cluster "
                    "(the namespace's spatial index).",
                    "parameters": [
                        _query("namespace", "namespace"),
                        _query("x", "world x (with y and radius)", False),
                        _query("y", "world y (with x and radius)", False),
                        _query("radius", "world units, >= 0 (with x and y)", False),
                    ],
                    "responses": {"200": _free("population clusters"), "400": error},
                }
            },
            "/ready": {
                "get": {
                    "summary": "200 once partitions are assigned and not rebalancing.",
                    "responses": {"200": _free("ready"), "503": _free("not ready")},
                }
            },
            "/openapi.json": {
                "get": {"summary": "This document.", "responses": {"200": _free("OpenAPI")}}
            },
        },
        "components": {"schemas": defs["$defs"]},
    }
