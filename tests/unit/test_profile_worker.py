"""``bench.profile_worker``'s reading of py-spy samples: each stack to the part it belongs to."""

from __future__ import annotations

from bench.profile_worker import classify, parts_of

LOOP = "<module> (pipelines/cli.py:340);BaseEventLoop.run_forever (asyncio/base_events.py:607)"
THREAD = "Thread._bootstrap (threading.py:1002);_worker (concurrent/futures/thread.py:83)"


def test_stage_threads_and_the_loops_parts_are_told_apart() -> None:
    raw = "\n".join(
        [
            f"{THREAD};create_app.<locals>.memory_work (pipelines/app.py:926);x (a.py:1) 7",
            f"{THREAD};analytics_batch (pipelines/analytics.py:1231) 5",
            f"{THREAD};Thread.run (threading.py:982);RecallMirror.read (m.py:3) 2",
            f"{LOOP};Agent._execute_actor (faust/agents/agent.py:698);produce (p.py:1);"
            "send_records (pipelines/app.py:480) 3",
            f"{LOOP};Agent._execute_actor (faust/agents/agent.py:698);store_stage (a.py:9) 4",
            f"{LOOP};on_message (faust/transport/conductor.py:307) 6",
            f"{LOOP};Handle._run (asyncio/events.py:80) 1",
            "not a sample line",
        ]
    )
    parts, leaves = parts_of(raw)
    assert parts == {
        "memory stage": 7,
        "analytics": 5,
        "other threads": 2,
        "loop: producer": 3,  # inside a stage's code on the loop, the producer's part wins
        "loop: stages' code": 4,
        "loop: Faust deliveries": 6,
        "loop: the rest (asyncio, aiokafka I/O, timers)": 1,
    }
    assert leaves["Handle._run"] == 1 and leaves["x"] == 7


def test_a_stage_on_its_thread_is_that_stage_whatever_it_calls() -> None:
    stack = [*THREAD.split(";"), "population_batch (pipelines/population.py:491)", "dumps (j:1)"]
    assert classify(stack) == "population"
