from __future__ import annotations

import re
import time

import pytest

from pipelines.errors import ConfigurationError, RateLimitedError
from pipelines.rate_limit import RateLimits, identifiers
from pipelines.settings import Settings

OFF = "unlimited"


def admitted(check: object, namespace: str, agent_id: str, n: int) -> int:
    """How many of ``n`` calls were admitted."""
    ok = 0
    for _ in range(n):
        try:
            check(namespace, agent_id)  # type: ignore[operator]
        except RateLimitedError:
            pass
        else:
            ok += 1
    return ok


def test_n_allowed_then_refused_with_a_reason() -> None:
    rl = RateLimits("5/minute", OFF, OFF, OFF)
    for _ in range(5):
        rl.check_ingest("world", "a-1")
    with pytest.raises(RateLimitedError) as exc:
        rl.check_ingest("world", "a-1")
    err = exc.value
    assert err.http_status == 429
    assert "ingest rate limit" in err.reason
    assert "agent 'a-1' in namespace 'world'" in err.reason
    assert "over 5 per minute" in err.reason
    assert "ARGOS_RATE_INGEST_AGENT" in err.reason
    wait = float(re.search(r"retry in ([0-9.]+) s", err.reason).group(1))  # type: ignore[union-attr]
    assert 55 < wait <= 60
    assert 55 < rl.retry_after("ingest", "world", "a-1") <= 60
    assert rl.retry_after("ingest", "world", "a-2") == 0.0


def test_agent_limit_is_per_agent() -> None:
    rl = RateLimits("3/minute", OFF, OFF, OFF)
    assert admitted(rl.check_ingest, "world", "a-1", 10) == 3
    assert admitted(rl.check_ingest, "world", "a-2", 10) == 3
    # the same agent id in another namespace is another agent
    assert admitted(rl.check_ingest, "lab", "a-1", 10) == 3


def test_namespace_limit_is_shared_by_its_agents() -> None:
    rl = RateLimits(OFF, "4/minute", OFF, OFF)
    assert admitted(rl.check_ingest, "world", "a-1", 3) == 3
    assert admitted(rl.check_ingest, "world", "a-2", 3) == 1
    with pytest.raises(RateLimitedError, match=r"namespace 'world' is over 4 per minute") as exc:
        rl.check_ingest("world", "a-3")
    assert "ARGOS_RATE_INGEST_NAMESPACE" in exc.value.reason
    assert "agent" not in exc.value.reason
    assert admitted(rl.check_ingest, "lab", "a-1", 5) == 4  # another namespace, its own budget


def test_agent_and_namespace_limits_are_independent() -> None:
    rl = RateLimits("3/minute", "5/minute", OFF, OFF)
    # a-1 is stopped by its own limit...
    assert admitted(rl.check_ingest, "world", "a-1", 10) == 3
    # ...and its refused calls did not use the namespace's budget: 2 are left, for a-2
    assert admitted(rl.check_ingest, "world", "a-2", 10) == 2
    with pytest.raises(RateLimitedError, match="namespace 'world'"):
        rl.check_ingest("world", "a-3")


def test_a_call_refused_by_the_namespace_does_not_use_the_agents_budget() -> None:
    rl = RateLimits("3/minute", "2/minute", OFF, OFF)
    assert admitted(rl.check_ingest, "world", "a-1", 2) == 2
    assert admitted(rl.check_ingest, "world", "a-2", 5) == 0  # all refused by the namespace
    stats = rl._limiter.get_window_stats(
        rl._checks["ingest"][1].item, *identifiers("ingest", "agent", "world", "a-2")
    )
    assert stats.remaining == 3  # a-2's own budget is untouched


def test_ingest_and_recall_are_counted_apart() -> None:
    rl = RateLimits("2/minute", OFF, "1/minute", "10/minute")
    assert admitted(rl.check_ingest, "world", "a-1", 5) == 2
    assert admitted(rl.check_recall, "world", "a-1", 5) == 1
    with pytest.raises(RateLimitedError, match="recall rate limit: agent 'a-1'") as exc:
        rl.check_recall("world", "a-1")
    assert "ARGOS_RATE_RECALL_AGENT" in exc.value.reason


def test_window_moves_on() -> None:
    rl = RateLimits("5/second", OFF, OFF, OFF)
    assert admitted(rl.check_ingest, "world", "a-1", 8) == 5
    assert 0 < rl.retry_after("ingest", "world", "a-1") <= 1.0
    time.sleep(1.05)  # the window is 1 s: every hit above has left it
    assert admitted(rl.check_ingest, "world", "a-1", 8) == 5


def test_several_limits_in_one_setting() -> None:
    rl = RateLimits("3/minute;5/hour", OFF, OFF, OFF)
    assert admitted(rl.check_ingest, "world", "a-1", 10) == 3
    with pytest.raises(RateLimitedError, match="over 3 per minute"):
        rl.check_ingest("world", "a-1")


def test_unlimited_turns_a_limit_off() -> None:
    rl = RateLimits(OFF, "none", "Unlimited", "off")
    assert admitted(rl.check_ingest, "world", "a-1", 2000) == 2000
    assert admitted(rl.check_recall, "world", "a-1", 100) == 100


def test_reset_forgets_counts() -> None:
    rl = RateLimits("1/minute", OFF, OFF, OFF)
    rl.check_ingest("world", "a-1")
    with pytest.raises(RateLimitedError):
        rl.check_ingest("world", "a-1")
    rl.reset()
    rl.check_ingest("world", "a-1")


def test_identifiers_with_slashes_do_not_collide() -> None:
    rl = RateLimits("1/minute", "1/minute", OFF, OFF)
    rl.check_ingest("x", "a/b")
    rl.check_ingest("x/a", "b")  # neither its namespace nor agent key is x's or a/b's


def test_precomputed_keys_match_the_library() -> None:
    rl = RateLimits("7/second;2/minute", "20 per 10 seconds", "1/hour", "3/day")
    for kind, checks in rl._checks.items():
        assert checks
        for check in checks:
            for ns, agent in [("world", "a-1"), ("x/y", "p:q@r"), ("n", "a/b")]:
                ids = identifiers(kind, check.scope, ns, agent)
                assert check.key(ns, agent) == check.item.key_for(*ids)


@pytest.mark.parametrize("value", ["", "lots", "10/fortnight", "0/second", "-1/second"])
def test_bad_settings_are_configuration_errors(value: str) -> None:
    with pytest.raises(ConfigurationError, match="ARGOS_RATE_RECALL_NAMESPACE"):
        RateLimits("1/second", "1/second", "1/second", value)


def test_from_settings_defaults() -> None:
    rl = RateLimits.from_settings(Settings())
    assert admitted(rl.check_recall, "world", "a-1", 250) == 200
    assert admitted(rl.check_ingest, "world", "a-1", 1100) == 1000


def test_the_swept_storage_starts_no_thread_per_check_and_still_expires() -> None:
    """limits' MemoryStorage starts a Timer thread on almost every call; ours sweeps from
    one thread, and expired entries still leave (memory stays bounded)."""
    import threading
    import time

    from pipelines.rate_limit import RateLimits, SweptMemoryStorage

    limits = RateLimits("unlimited", "unlimited", "1000/second", "unlimited")
    limits.check_recall("w", "a")
    before = threading.active_count()
    for i in range(200):
        limits.check_recall("w", f"a{i % 7}")
        time.sleep(0.0002)
    assert threading.active_count() <= before  # the constructor's one Timer may end
    storage = SweptMemoryStorage()
    assert storage.acquire_entry("k", 10, 1)
    assert storage.events["k"]
    time.sleep(1.05)
    storage.expire()
    assert not storage.events.get("k")
