from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.lifecycle import (
    LEGAL,
    IllegalTransitionError,
    LifecycleParams,
    MemoryState,
    advance,
    check_transition,
    on_created,
    on_recalled,
    retention,
    stability,
)

P = LifecycleParams()
kinds = st.sampled_from(["episodic", "semantic", "procedural"])
unit = st.floats(0.0, 1.0)


def test_only_the_seed_transitions_are_legal() -> None:
    for src in MemoryState:
        for dst in MemoryState:
            if dst in LEGAL[src]:
                assert check_transition(src, dst) is dst
            else:
                with pytest.raises(IllegalTransitionError):
                    check_transition(src, dst)


@given(kinds, unit, unit, st.integers(0, 20), st.floats(0, 1e8), st.floats(0, 1e8))
def test_retention_never_rises_without_a_recall(
    kind: str, imp: float, ar: float, recalls: int, t1: float, dt: float
) -> None:
    s = stability(P, kind, imp, ar, recalls)
    assert 0.0 <= retention(t1 + dt, s) <= retention(t1, s) <= 1.0


@given(kinds, unit, unit, unit, unit, st.integers(0, 10), st.integers(0, 10), st.floats(1, 1e8))
def test_a_more_stable_memory_never_forgets_faster(
    kind: str, i1: float, i2: float, a1: float, a2: float, r1: int, r2: int, dt: float
) -> None:
    weak = (min(i1, i2), min(a1, a2), min(r1, r2))
    strong = (max(i1, i2), max(a1, a2), max(r1, r2))
    s_weak, s_strong = stability(P, kind, *weak), stability(P, kind, *strong)
    assert s_strong >= s_weak
    assert retention(dt, s_strong) >= retention(dt, s_weak)


steps = st.lists(
    st.tuples(st.sampled_from(["tick", "recall"]), st.floats(0, 5e6), st.booleans()), max_size=40
)


@given(kinds, unit, unit, steps)
def test_any_sequence_leaves_a_legal_state(kind: str, imp: float, ar: float, seq: list) -> None:
    life = on_created("m", kind, imp, ar, 0.0)
    now = 0.0
    seen = [life.state]
    for op, dt, stable in seq:
        now += dt
        life = on_recalled(life, now) if op == "recall" else advance(life, P, now, stable)
        if life.state != seen[-1]:
            assert life.state in LEGAL[seen[-1]]
            seen.append(life.state)
    assert life.state in MemoryState


def test_unrecalled_memory_decays_and_a_recalled_one_consolidates() -> None:
    life = on_created("m", "episodic", 0.2, 0.1, 0.0)
    assert advance(life, P, 3600.0).state is MemoryState.active
    assert advance(life, P, 30 * 24 * 3600.0).state is MemoryState.decayed
    for t in (600.0, 1200.0, 1800.0):
        life = on_recalled(life, t)
    life = advance(life, P, 2000.0)
    assert life.state is MemoryState.consolidated
    assert advance(life, P, 2000.0 + P.archive_idle).state is MemoryState.archived


def test_replay_gives_the_same_states() -> None:
    def run() -> list[MemoryState]:
        life, out = on_created("m", "semantic", 0.7, 0.4, 100.0), []
        for t in range(0, 10**7, 250_000):
            life = advance(life, P, float(t))
            out.append(life.state)
        return out

    assert run() == run()
