"""Time hints: the period a query names (parsing, fuzz), the request's time preference
(validation, resolution, cache key) and the recall service reporting it."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pipelines.embed import load_embedder
from pipelines.hot_index import time_bonus_for
from pipelines.lifecycle import LifecycleParams
from pipelines.memory_state import MemoryParams
from pipelines.recall import RecallService
from pipelines.recall_cache import RecallCache, request_key
from pipelines.scoring import TIME_SLACK_S, TIME_WEIGHT, ScoreWeights, TimeBonus, time_part
from pipelines.store import InMemoryStore, StoredMemory
from pipelines.time_hints import MAX_SCAN_CHARS, TimePeriod, find_periods, named_period
from schemas.recall import RecallRequest

AUG_2023 = datetime(2023, 8, 15, 12, 0, tzinfo=UTC)
FULL = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def day(y: int, m: int, d: int, tz: timezone = UTC) -> datetime:
    return datetime(y, m, d, tzinfo=tz)


def span(p: TimePeriod | None) -> tuple[date, date] | None:
    return None if p is None else (p.since.date(), p.until.date())


# -- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "kind", "first", "last"),
    [
        ("What did Jon find on 1 February, 2023?", "day", date(2023, 2, 1), date(2023, 2, 1)),
        ("What book did Tim finish on 8th December, 2023?", "day", date(2023, 12, 8), None),
        ("the 7th of May 2023", "day", date(2023, 5, 7), None),
        ("What was Tim's issue, as mentioned on November 6, 2023?", "day", date(2023, 11, 6), None),
        ("Aug. 15th, 2023 at the lake", "day", date(2023, 8, 15), None),
        ("what happened on 2026-01-03T10:00?", "day", date(2026, 1, 3), None),
        ("What did Maria donate in December 2023?", "month", date(2023, 12, 1), date(2023, 12, 31)),
        ("the first half of September 2022", "month", date(2022, 9, 1), date(2022, 9, 30)),
        ("back in Sept. 2022", "month", date(2022, 9, 1), date(2022, 9, 30)),
        ("in Feb 2024", "month", date(2024, 2, 1), date(2024, 2, 29)),
        ("What did they see in 2022?", "year", date(2022, 1, 1), date(2022, 12, 31)),
        ("during 1999", "year", date(1999, 1, 1), date(1999, 12, 31)),
        ("When did she go camping in June?", "month", date(2023, 6, 1), date(2023, 6, 30)),
        ("in August", "month", date(2023, 8, 1), date(2023, 8, 31)),  # the reference's month
        ("in September", "month", date(2022, 9, 1), date(2022, 9, 30)),  # not begun: last year's
        ("what happened since May?", "month", date(2023, 5, 1), date(2023, 5, 31)),
        ("mid-July at the beach", "month", date(2023, 7, 1), date(2023, 7, 31)),
    ],
)
def test_named_periods(query: str, kind: str, first: date, last: date | None) -> None:
    """``last`` None: a day (it ends the day it starts)."""
    p = named_period(query, AUG_2023)
    assert p is not None and p.kind == kind
    assert (p.since.date(), p.until.date()) == (first, last or first)
    assert p.since.time() == datetime.min.time()
    assert p.until.time() == datetime.max.time()  # the last microsecond
    assert p.text in query


@pytest.mark.parametrize(
    "query",
    [
        "what do I remember about wolves?",
        "May I ask what you ate?",
        "the march to the sea",  # a month name only after in/during/of/...: not "march"
        "I scored 2023 points",
        "room 12 May",  # no year, no preposition
        "in 1500",  # not a year this recognises
        "",
        "   ",
    ],
)
def test_no_period(query: str) -> None:
    assert named_period(query, AUG_2023) is None
    assert find_periods(query, AUG_2023) == []


def test_month_without_year_needs_a_reference() -> None:
    assert named_period("in June") is None
    assert named_period("in June 2021") is not None  # a year needs none
    assert span(named_period("in June", AUG_2023.timestamp())) == (
        date(2023, 6, 1),
        date(2023, 6, 30),
    )
    assert named_period("in June", math.nan) is None
    assert span(named_period("in June", datetime(2023, 8, 15))) == (  # naive: UTC
        date(2023, 6, 1),
        date(2023, 6, 30),
    )


def test_the_reference_offset_sets_the_calendar() -> None:
    tz = timezone(timedelta(hours=10))
    p = named_period("on 7 May 2023", datetime(2023, 8, 1, tzinfo=tz))
    assert p is not None and p.since == day(2023, 5, 7, tz)
    assert p.since_ts == day(2023, 5, 7).timestamp() - 10 * 3600
    assert p.until_ts - p.since_ts == pytest.approx(86400.0 - 1e-6, abs=1e-5)


def test_most_specific_mention_wins_and_several_make_a_hull() -> None:
    (p,) = find_periods("in July 2023", AUG_2023)  # not also "in July" nor a year
    assert p.kind == "month" and p.text == "July 2023"
    (p,) = find_periods("on 7 May 2023", AUG_2023)
    assert p.kind == "day"
    h = named_period("between May 2023 and July 2023")
    assert h is not None and h.kind == "range" and span(h) == (date(2023, 5, 1), date(2023, 7, 31))
    assert h.text == "May 2023; July 2023"
    h = named_period("in 2022, or on 3 March 2023")
    assert h is not None and span(h) == (date(2022, 1, 1), date(2023, 3, 3))


def test_impossible_dates_leave_what_is_valid() -> None:
    assert [p.kind for p in find_periods("on 31 February 2023")] == ["month"]
    assert find_periods("2023-02-30 and 2023-13-01") == []
    assert find_periods("in 9999 or 0000 AD") == []
    assert [p.kind for p in find_periods("December 9999")] == []  # no end in UTC


def test_locomo_questions_name_the_periods_a_reader_would() -> None:
    """Questions from LoCoMo dev, read at the end of an ~8-month conversation (what the bench's
    first prototype parser found, kept as a regression table now the parser is the project's)."""
    end = day(2024, 1, 20).timestamp()
    D = timedelta(days=1)
    cases: list[tuple[str, tuple[datetime, datetime] | None]] = [
        (
            "What did Mel and her kids paint in their latest project in July 2023?",
            (day(2023, 7, 1), day(2023, 8, 1)),
        ),
        (
            "What did Gina find for her clothing store on 1 February, 2023?",
            (day(2023, 2, 1), day(2023, 2, 1) + D),
        ),
        (
            "What did Tim say about his injury on 16 November, 2023?",
            (day(2023, 11, 16), day(2023, 11, 16) + D),
        ),
        ("Which team did John sign with on 21 May, 2023?", (day(2023, 5, 21), day(2023, 5, 22))),
        ("What movie did Joanna watch on 1 May, 2022?", (day(2022, 5, 1), day(2022, 5, 2))),
        (
            "Was the first half of September 2022 a good month career-wise?",
            (day(2022, 9, 1), day(2022, 10, 1)),
        ),
        (
            "What was Tim's huge writing issue last week,as mentioned on November 6, 2023?",
            (day(2023, 11, 6), day(2023, 11, 7)),
        ),
        ("When did she go camping in June?", (day(2023, 6, 1), day(2023, 7, 1))),
        ("What did they do in 2023?", (day(2023, 1, 1), day(2024, 1, 1))),
        ("What did John's teammates give him when they met on Aug 15th?", None),
        ("What is Caroline's identity?", None),
    ]
    for q, want in cases:
        got = named_period(q, end)
        if want is None:
            assert got is None, q
        else:
            assert got is not None, q
            assert got.since_ts == want[0].timestamp(), q
            assert got.until_ts == pytest.approx(want[1].timestamp() - 1e-6), q


# -- fuzz ----------------------------------------------------------------------------------------

refs = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**20), 10**20),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-12))])),
    st.datetimes(),  # naive
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()
    ),
)
periodish = st.sampled_from(
    [*FULL, "in", "on", "of", "during", "mid-", "2023", "12", "1st", ",", " ", "-", "0", "Sept."]
)
noisy = st.one_of(
    st.text(max_size=300),
    st.lists(periodish, max_size=30).map(" ".join),
    st.lists(periodish | st.text(max_size=3), max_size=30).map("".join),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(noisy, refs)
def test_arbitrary_text_never_raises_and_periods_are_sane(text: str, ref: Any) -> None:
    periods = find_periods(text, ref)
    for p in periods:
        assert p.kind in ("day", "month", "year")
        assert p.since.tzinfo is not None and p.since <= p.until
        assert math.isfinite(p.since_ts) and math.isfinite(p.until_ts)
        assert p.text in text
    h = named_period(text, ref)
    assert (h is None) == (not periods)
    if h is not None:
        assert h.since_ts == min(p.since_ts for p in periods)
        assert h.until_ts == max(p.until_ts for p in periods)


@settings(max_examples=50, deadline=None)
@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text())), refs)
def test_non_text_names_no_period(value: Any, ref: Any) -> None:
    assert find_periods(value, ref) == [] and named_period(value, ref) is None


def test_long_text_is_read_only_up_to_the_scan_limit() -> None:
    assert named_period("x " * MAX_SCAN_CHARS + "in May 2023") is None
    assert named_period("in May 2023 " + "x " * MAX_SCAN_CHARS) is not None


FORMATS = {
    "day": ["{d} {M} {y}", "{d}th of {M}, {y}", "{M} {d}, {y}", "{y}-{m:02d}-{d:02d}"],
    "month": ["{M} {y}", "{M}, {y}", "{m3} {y}"],
    "year": ["in {y}", "during {y}"],
}


@settings(max_examples=200, deadline=None)
@given(
    st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)),
    st.sampled_from(sorted(FORMATS)),
    st.data(),
    st.text(st.sampled_from("abc xyz?!"), max_size=20),
    st.text(st.sampled_from("abc xyz?!"), max_size=20),
)
def test_every_written_period_is_found(
    d: date, kind: str, data: st.DataObject, before: str, after: str
) -> None:
    fmt = data.draw(st.sampled_from(FORMATS[kind]))
    m = FULL[d.month - 1]
    words = fmt.format(d=d.day, m=d.month, y=d.year, M=m, m3=m[:3])
    p = named_period(f"{before} {words} {after}", AUG_2023)
    assert p is not None and p.kind == kind and p.text == words.strip()
    first = {"day": d, "month": d.replace(day=1), "year": date(d.year, 1, 1)}[kind]
    assert p.since == day(first.year, first.month, first.day)


# -- the request's time preference ---------------------------------------------------------------

BASE = {"namespace": "w", "agent_id": "ann", "query": "what did I do in May 2023?"}


def req(**kw: Any) -> RecallRequest:
    return RecallRequest.model_validate({**BASE, **kw})


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        (
            {"prefer": {"since": "2023-06-01T00:00:00Z", "until": "2023-05-01T00:00:00Z"}},
            "prefer.since .* must not be after prefer.until",
        ),
        ({"prefer": {"since": "2023-06-01T00:00:00Z", "weight": 1.5}}, "prefer.weight"),
        ({"prefer": {"since": "2023-06-01T00:00:00Z", "weight": -0.1}}, "prefer.weight"),
        ({"prefer": {"since": "2023-06-01T00:00:00Z", "weight": "nan"}}, "prefer.weight"),
        ({"prefer": {"until": "2023-06-01T00:00:00Z", "slack_s": -1}}, "prefer.slack_s"),
        ({"prefer": {"until": "2023-06-01T00:00:00Z", "slack_s": 1e12}}, "prefer.slack_s"),
        ({"prefer": {"since": "2023-06-01T00:00:00"}}, "prefer.since"),  # naive
        ({"prefer": {"since": "2023-06-01T00:00:00Z", "other": 1}}, "prefer.other"),
        ({"prefer": {"weight": 0.2}, "time_hints": False}, "nothing to prefer"),
        ({"time_hints": "maybe"}, "time_hints"),
    ],
)
def test_bad_time_preferences_name_the_problem(patch: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        req(**patch)


def test_defaults_and_round_trip() -> None:
    r = req()
    assert r.time_hints is True and r.prefer is None
    r = req(prefer={"since": "2023-05-01T00:00:00Z"})
    assert r.prefer is not None and r.prefer.weight == TIME_WEIGHT == 0.1
    assert r.prefer.slack_s == TIME_SLACK_S == 14 * 86400
    assert RecallRequest.model_validate_json(r.model_dump_json()) == r


def test_time_bonus_resolution() -> None:
    may = day(2023, 5, 1).timestamp()
    # the query's period, default weight and slack
    b = time_bonus_for(req())
    assert b == TimeBonus(may, day(2023, 6, 1).timestamp() - 1e-6, source="query", text="May 2023")
    # prefer's weight/slack apply to the query's period
    b = time_bonus_for(req(prefer={"weight": 0.3, "slack_s": 0}))
    assert b is not None and (b.weight, b.slack_s, b.source) == (0.3, 0.0, "query")
    # an explicit period wins over the query's
    b = time_bonus_for(req(prefer={"since": "2020-01-01T00:00:00Z"}))
    assert b is not None and b.source == "request" and b.text is None
    assert (b.since_ts, b.until_ts) == (day(2020, 1, 1).timestamp(), math.inf)
    b = time_bonus_for(req(prefer={"until": "2020-01-01T00:00:00Z"}, time_hints=False))
    assert b is not None and b.since_ts == -math.inf
    # off, or nothing named
    assert time_bonus_for(req(time_hints=False)) is None
    assert time_bonus_for(req(query="wolves by the river")) is None
    # a month without a year: at the request's event time, else at the agent's clock
    june = req(query="in June", event_time="2024-03-01T00:00:00Z")
    b = time_bonus_for(june, clock_ts=day(2030, 1, 1).timestamp())
    assert b is not None and b.since_ts == day(2023, 6, 1).timestamp()
    b = time_bonus_for(req(query="in June"), clock_ts=day(2030, 7, 1).timestamp())
    assert b is not None and b.since_ts == day(2030, 6, 1).timestamp()
    assert time_bonus_for(req(query="in June")) is None  # no clock: an empty agent
    # the event time's offset sets the calendar
    tz = timezone(timedelta(hours=-5))
    b = time_bonus_for(req(event_time="2023-08-01T00:00:00-05:00"))
    assert b is not None and b.since_ts == day(2023, 5, 1, tz).timestamp()


def test_time_bonus_validates_and_its_window_includes_both_ends() -> None:
    b = TimeBonus(10.0, 20.0, 0.1, 5.0)
    assert b.window == (10.0, 25.0)
    ts = np.array([9.999, 10.0, 20.0, 25.0, 25.001, np.nan])
    assert time_part(ts, b).tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    assert time_part(ts, TimeBonus(-math.inf, math.inf)).tolist() == [1.0] * 5 + [0.0]
    for bad, match in [
        ((20.0, 10.0), "after"),
        ((math.nan, 10.0), "NaN"),
        ((math.inf, math.inf), r"\+inf"),
        ((0.0, 1.0, -1.0), "weight"),
        ((0.0, 1.0, math.inf), "weight"),
        ((0.0, 1.0, 0.1, math.nan), "slack_s"),
    ]:
        with pytest.raises(ValueError, match=match):
            TimeBonus(*bad)


def test_the_cache_key_holds_the_time_preference() -> None:
    keys = {
        request_key(r)
        for r in [
            req(),
            req(time_hints=False),
            req(prefer={"weight": 0.2}),
            req(prefer={"slack_s": 0}),
            req(prefer={"since": "2023-05-01T00:00:00Z"}),
            req(prefer={"until": "2023-05-01T00:00:00Z"}),
            req(event_time="2023-08-01T00:00:00Z"),
            req(event_time="2023-08-01T02:00:00+02:00"),  # the same instant, another calendar
        ]
    }
    assert len(keys) == 8
    assert request_key(req(prefer={"weight": 0.1})) == request_key(req(prefer={}))


# -- the recall service reports the period ------------------------------------------------------


def test_recall_service_favours_the_named_period_and_reports_it() -> None:
    emb = load_embedder("hashing")
    svc = RecallService(
        emb,
        InMemoryStore(),
        InMemoryStore(),
        MemoryParams(LifecycleParams(base_stability=365 * 86400.0)),  # months: nothing fades
        ScoreWeights(1.0, 0.0, 0.0, 0.0),  # relevance only: equal texts tie but for the period
        RecallCache(results_bytes=1 << 20, records_bytes=1 << 20, embeddings_bytes=1 << 20),
        state_of=lambda key: None,
    )
    text = "ann went to the fair with her sister"
    vec = np.asarray(emb.embed_many([text])[0], dtype=np.float32)
    rows = [
        StoredMemory(mid, "ann", "w", "episodic", text, 0.5, ts, "", vec, {})
        for mid, ts in [
            ("a-april", day(2023, 4, 20).timestamp()),
            ("b-may", day(2023, 5, 20).timestamp()),
            ("c-july", day(2023, 7, 20).timestamp()),
        ]
    ]
    svc.stored(rows)
    plain = svc.recall(req(query="the fair with her sister", time_hints=False, k=3))
    assert [h.memory_id for h in plain.hits] == ["a-april", "b-may", "c-july"]  # ties by id
    assert plain.preferred is None and all(h.parts and h.parts.time is None for h in plain.hits)
    ask = req(query="the fair with her sister in May", k=3)  # May of the agent's clock (July)
    resp = svc.recall(ask)
    assert resp.hits[0].memory_id == "b-may"
    assert resp.hits[0].parts is not None and resp.hits[0].parts.time == 1.0
    assert resp.hits[0].score == pytest.approx(resp.hits[0].parts.relevance + 0.1)
    assert [h.parts.time for h in resp.hits[1:] if h.parts] == [0.0, 0.0]
    assert resp.preferred is not None
    assert resp.preferred.model_dump() == {
        "source": "query",
        "since": "2023-05-01T00:00:00+00:00",
        "until": "2023-05-31T23:59:59.999999+00:00",
        "weight": 0.1,
        "slack_s": TIME_SLACK_S,
        "text": "in May",
    }
    again = svc.recall(ask)  # from L1
    assert svc.hits == 1 and not resp.cached and again.cached
    assert again.model_copy(update={"took_ms": 0, "cached": False}) == resp.model_copy(
        update={"took_ms": 0}
    )
    explicit = svc.recall(
        req(
            query="the fair with her sister",
            k=3,
            prefer={"since": "2023-07-01T00:00:00+02:00", "weight": 0.5, "slack_s": 0},
        )
    )
    assert explicit.hits[0].memory_id == "c-july"
    assert explicit.preferred is not None and explicit.preferred.source == "request"
    assert explicit.preferred.since == "2023-06-30T22:00:00+00:00"
    assert explicit.preferred.until is None and explicit.preferred.text is None


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
times = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
).map(datetime.isoformat)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "since": times | json_scalars,
            "until": times | json_scalars,
            "weight": st.floats(-1, 2) | json_scalars,
            "slack_s": st.floats(-1, 2 * 366 * 86400) | json_scalars,
        },
    )
    | json_scalars,
    st.booleans() | json_scalars,
    st.text(max_size=80),
)
def test_any_time_preference_validates_or_names_the_problem(
    prefer: Any, time_hints: Any, query: str
) -> None:
    """A request either validates (and resolves to a sane bonus) or is refused cleanly."""
    body = {**BASE, "query": query or "q", "prefer": prefer, "time_hints": time_hints}
    try:
        r = RecallRequest.model_validate(body)
    except ValidationError as exc:
        assert str(exc)
        return
    assert RecallRequest.model_validate_json(r.model_dump_json()) == r
    b = time_bonus_for(r, clock_ts=AUG_2023.timestamp())
    if b is not None:
        lo, hi = b.window
        assert lo <= hi and 0 <= b.weight <= 1 and 0 <= b.slack_s <= 366 * 86400
    request_key(r)  # hashable
    hash(request_key(r))
