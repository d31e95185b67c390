"""Fuzzing of the two untrusted inputs: memory events at ingest, recall requests over HTTP.

Whatever the bytes, ``pipelines.ingest.validate`` returns a ``MemoryEvent`` or raises a
``PoisonEventError`` with a reason (which a dead letter can carry), and
``RecallRequest.model_validate_json`` returns a request or raises ``ValidationError``: never any
other exception. Valid inputs always pass.
"""

from __future__ import annotations

import json
import math
import re
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pipelines.errors import PoisonEventError
from pipelines.ingest import RawRecord, dead_letter, validate
from schemas import MemoryEvent, RecallRequest
from schemas.memory_event import MAX_EVENT_BYTES

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- generic inputs ---------------------------------------------------------------------------

surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
controls = st.sampled_from([chr(c) for c in [*range(0x20), 0x7F, 0x85, 0x9F]])
any_text = st.text(st.characters(codec=None) | surrogates | controls, max_size=40)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and infinities included
    | any_text
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=25,
)
json_alphabet = st.sampled_from(list('{}[]",:0123456789.eE+-\\ntrufalsNIiy \x00\xff'))


def deep(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "1" + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def dumps(value: Any, *, ascii_only: bool = True) -> bytes:
    """JSON bytes of any value, even one with lone surrogates (then not valid UTF-8)."""
    text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


# --- memory events ----------------------------------------------------------------------------

letters = string.ascii_letters + string.digits
ident = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(letters),
    st.text(st.sampled_from(letters + "._:@/-"), max_size=30),
)
# printable text plus \t \n \r, and at least one letter (content must not be blank)
clean_chars = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")) | st.sampled_from(
    "\t\n\r"
)
text = st.builds(
    lambda head, tail: head + tail,
    st.text(st.sampled_from(letters), min_size=1),
    st.text(clean_chars, max_size=80),
)
tag = st.text(st.sampled_from(letters + "-_ "), max_size=20).map(lambda t: "t" + t.strip())
offsets = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11))]
)
times = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=offsets
)
unit = st.floats(0.0, 1.0)
coordinate = st.floats(-1e12, 1e12)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["episodic", "semantic", "procedural"]))
    event: dict[str, Any] = {
        "schema_version": 1,
        "memory_id": draw(ident),
        "agent_id": draw(ident),
        "namespace": draw(ident),
        "type": kind,
        "content": draw(text),
        "event_time": draw(times).isoformat(),
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "importance": unit,
        "emotion": st.fixed_dictionaries(
            {}, optional={"valence": st.floats(-1.0, 1.0), "arousal": unit}
        ),
        "position": st.fixed_dictionaries(
            {"x": coordinate, "y": coordinate}, optional={"z": coordinate}
        ),
        "tags": st.lists(tag, max_size=5),
        "derived_from": st.lists(ident, min_size=1, max_size=5),
        "embedding": st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=16),
    }
    if kind == "procedural":
        optional["steps"] = st.lists(text, max_size=5)
    for name in draw(st.lists(st.sampled_from(sorted(optional)), unique=True)):
        event[name] = draw(optional[name])
    return event


def mutate(data: st.DataObject, event: dict[str, Any], text_fields: list[str]) -> Any:
    """One kind of damage to a valid event or request (``text_fields``: where to put control
    characters and lone surrogates)."""
    fields = sorted(event) + ["extra", "emotion.valence", "position.x"]
    how = data.draw(
        st.sampled_from(
            ["drop", "any", "huge", "control", "deep", "nan", "type", "surrogate", "bytes"]
        )
    )
    out = dict(event)
    name = data.draw(st.sampled_from(fields))
    if how == "drop":
        out.pop(name, None)
    elif how == "any":
        out[name] = data.draw(json_values)
    elif how == "huge":
        out[name] = "x" * data.draw(st.sampled_from([129, 8193, 70_000]))
    elif how == "control":
        ch = data.draw(controls)
        target = data.draw(st.sampled_from(text_fields))
        out[target] = [f"a{ch}b"] if target == "tags" else f"a{ch}b"
    elif how == "deep":
        out[name] = json.loads(
            deep(data.draw(st.integers(20, 600)), data.draw(st.sampled_from(["list", "dict"])))
        )
    elif how == "nan":
        bad = data.draw(st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e300]))
        target = data.draw(st.sampled_from(["importance", "emotion", "position", "embedding"]))
        out[target] = {
            "importance": bad,
            "emotion": {"valence": bad},
            "position": {"x": 0.0, "y": bad},
            "embedding": [0.5, bad],
        }[target]
    elif how == "type":
        out[name] = data.draw(
            st.sampled_from([None, True, 0, -1, 1.5, "", [], {}, ["x"], {"a": 1}])
        )
    elif how == "surrogate":
        out[data.draw(st.sampled_from([*text_fields, "extra\ud800"]))] = "a\udc00b"
    raw = dumps(out, ascii_only=data.draw(st.booleans()))
    if how == "bytes":  # damage the serialized bytes themselves
        at = data.draw(st.integers(0, len(raw)))
        raw = raw[:at] + data.draw(st.binary(max_size=4)) + raw[at + data.draw(st.integers(0, 3)) :]
    return raw


BAD_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
BAD_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def assert_clean_event(ev: MemoryEvent) -> None:
    """What every accepted event guarantees to the stages after ingest."""
    for t in [ev.content, *(ev.steps or [])]:
        assert not BAD_TEXT.search(t)
    for line in [ev.memory_id, ev.agent_id, ev.namespace, *ev.tags, *(ev.derived_from or [])]:
        assert not BAD_LINE.search(line)
    ev.event_time.astimezone(UTC)
    assert math.isfinite(ev.event_ts)
    assert 0.0 <= ev.importance <= 1.0
    assert -1.0 <= ev.emotion.valence <= 1.0 and 0.0 <= ev.emotion.arousal <= 1.0
    if ev.position is not None:
        coords = [ev.position.x, ev.position.y, ev.position.z or 0.0]
        assert math.isfinite(sum(c * c for c in coords))
    if ev.embedding is not None:
        norm = np.linalg.norm(np.asarray(ev.embedding, dtype=np.float32))
        assert np.isfinite(norm)


def check_ingest(raw: bytes) -> MemoryEvent | None:
    """The contract of validate: a MemoryEvent, or a PoisonEventError with a usable reason."""
    try:
        ev = validate(raw)
    except PoisonEventError as exc:
        assert isinstance(exc.reason, str) and exc.reason.strip()
        exc.reason.encode("utf-8")  # a reason is always valid text...
        dead_letter(RawRecord(raw), exc, "ingest", 0.0)  # ...so a dead letter can carry it
        return None
    assert isinstance(ev, MemoryEvent)
    assert_clean_event(ev)
    # an accepted event can be sent on, and reads back the same
    assert validate(ev.to_json_bytes()) == ev
    return ev


@FUZZ
@given(st.binary(max_size=2000))
def test_ingest_arbitrary_bytes(raw: bytes) -> None:
    check_ingest(raw)


@FUZZ
@given(st.text(json_alphabet, max_size=400))
def test_ingest_json_like_noise(noise: str) -> None:
    check_ingest(noise.encode("utf-8"))


@FUZZ
@given(json_values, st.booleans())
def test_ingest_arbitrary_json_values(value: Any, ascii_only: bool) -> None:
    check_ingest(dumps(value, ascii_only=ascii_only))


@FUZZ
@given(st.integers(1, 20_000), st.sampled_from(["", "-", "0.", "1e", "1e-", "9" * 10]))
def test_ingest_long_numbers(digits: int, head: str) -> None:
    check_ingest(('{"schema_version": 1, "importance": ' + head + "7" * digits + "}").encode())


@FUZZ
@given(st.integers(1, 30_000), st.sampled_from(["list", "dict"]), st.booleans())
def test_ingest_deep_nesting(depth: int, kind: str, in_event: bool) -> None:
    raw = deep(depth, kind)
    if in_event:
        raw = '{"schema_version": 1, "content": ' + raw + "}"
    check_ingest(raw.encode()[: MAX_EVENT_BYTES + 10])


@FUZZ
@given(valid_events())
def test_valid_events_always_pass(event: dict[str, Any]) -> None:
    ev = check_ingest(dumps(event, ascii_only=False))
    assert ev is not None
    assert ev.agent_id == event["agent_id"] and ev.content == event["content"]


@FUZZ
@given(valid_events(), st.data())
def test_mutated_events_never_crash(event: dict[str, Any], data: st.DataObject) -> None:
    check_ingest(mutate(data, event, ["content", "memory_id", "agent_id", "namespace", "tags"]))


# --- recall requests --------------------------------------------------------------------------


@st.composite
def valid_requests(draw: st.DrawFn) -> dict[str, Any]:
    req: dict[str, Any] = {"namespace": draw(ident), "agent_id": draw(ident), "query": draw(text)}
    states = draw(
        st.lists(st.sampled_from(["active", "consolidated", "archived"]), min_size=1, unique=True)
    )
    optional: dict[str, st.SearchStrategy[Any]] = {
        "k": st.integers(1, 100),
        "types": st.lists(st.sampled_from(["episodic", "semantic", "procedural"]), max_size=3),
        "event_time": times.map(datetime.isoformat),
        "states": st.just(states),
        "cluster_id": st.text(st.sampled_from(letters + "-:"), min_size=1, max_size=40),
        "tags": st.lists(tag, min_size=1, max_size=4),
        "near": st.fixed_dictionaries(
            {"x": coordinate, "y": coordinate, "radius": st.floats(1e-9, 1e9)},
            optional={"z": coordinate},
        ),
        "weights": st.fixed_dictionaries(
            {}, optional={k: st.floats(0, 100) for k in ("relevance", "recency", "importance")}
        ),
    }
    for name in draw(st.lists(st.sampled_from(sorted(optional)), unique=True)):
        req[name] = draw(optional[name])
    if "archived" in req.get("states", []):
        req["include_archived"] = True
    else:
        req["include_archived"] = draw(st.booleans())
    if draw(st.booleans()):
        a, b = sorted([draw(times), draw(times)])
        req["since"], req["until"] = a.isoformat(), b.isoformat()
    return req


def check_recall(raw: bytes | str) -> RecallRequest | None:
    try:
        req = RecallRequest.model_validate_json(raw)
    except ValidationError as exc:
        assert str(exc)
        return None
    assert isinstance(req, RecallRequest)
    assert not BAD_TEXT.search(req.query)
    for line in [req.namespace, req.agent_id, req.cluster_id or "", *(req.tags or [])]:
        assert not BAD_LINE.search(line)
    for t in (req.event_time, req.since, req.until):
        if t is not None:
            t.astimezone(UTC)
    if req.near is not None:
        assert math.isfinite(req.near.x**2 + req.near.y**2 + (req.near.z or 0.0) ** 2)
    assert RecallRequest.model_validate_json(req.model_dump_json()) == req
    return req


@FUZZ
@given(st.binary(max_size=1000) | st.text(json_alphabet, max_size=300))
def test_recall_arbitrary_input(raw: bytes | str) -> None:
    check_recall(raw)


@FUZZ
@given(json_values, st.booleans())
def test_recall_arbitrary_json_values(value: Any, ascii_only: bool) -> None:
    check_recall(dumps(value, ascii_only=ascii_only))


@FUZZ
@given(valid_requests())
def test_valid_requests_always_pass(req: dict[str, Any]) -> None:
    got = check_recall(json.dumps(req))
    assert got is not None and got.query == req["query"]


@FUZZ
@given(valid_requests(), st.data())
def test_mutated_requests_never_crash(req: dict[str, Any], data: st.DataObject) -> None:
    check_recall(mutate(data, req, ["query", "agent_id", "namespace", "cluster_id", "tags"]))


def test_recall_rejects_the_obvious_attacks() -> None:
    base = {"namespace": "world", "agent_id": "a-1", "query": "fox"}
    for patch in [
        {"query": "fox\x00"},
        {"query": "fox\x1b[2J"},
        {"cluster_id": "c\n1"},
        {"tags": ["t\x07"]},
        {"agent_id": "a\n"},
        {"near": {"x": 1e300, "y": 0, "radius": 1}},
        {"since": "0001-01-01T00:00:00+05:00"},
        {"k": 10**400},
    ]:
        assert check_recall(json.dumps({**base, **patch})) is None, patch
    assert check_recall(json.dumps({**base, "query": "two\nlines\tok\r"})) is not None
