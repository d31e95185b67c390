"""Creating topics on a busy broker: retriable Kafka errors are tried again, others are not."""

from __future__ import annotations

import pytest
from kafka.errors import RequestTimedOutError, TopicAuthorizationFailedError

from pipelines import topics_admin
from pipelines.settings import Settings


def test_a_timed_out_request_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def flaky(settings: Settings, replication_factor: int) -> list[str]:
        calls.append(1)
        if len(calls) < 3:
            raise RequestTimedOutError("Request timed out after 9999 ms")
        return ["argos.memory.events"]

    monkeypatch.setattr(topics_admin, "_ensure_topics", flaky)
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1")
    assert topics_admin.ensure_topics(settings) == ["argos.memory.events"]
    assert len(calls) == 3


def test_an_error_that_retrying_cannot_fix_is_raised_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    def denied(settings: Settings, replication_factor: int) -> list[str]:
        calls.append(1)
        raise TopicAuthorizationFailedError("not allowed")

    monkeypatch.setattr(topics_admin, "_ensure_topics", denied)
    with pytest.raises(TopicAuthorizationFailedError):
        topics_admin.ensure_topics(Settings(kafka_bootstrap_servers="127.0.0.1:1"))
    assert len(calls) == 1
