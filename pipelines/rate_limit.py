"""Per-agent and per-namespace rate limits at ingest and recall.

Each kind of call (``ingest``, ``recall``) has two limits: one per agent (keyed by namespace and
agent) and one per namespace, in the syntax of the ``limits`` package (``"1000/second"``,
``"50 per 10 seconds"``, ``"10/second;300/minute"``); ``"unlimited"`` turns one off. Windows are
*moving* (``MovingWindowRateLimiter``: at most N in any window of that length, so no double
burst at a window edge), held in memory per process.

A call is admitted only if every limit has room, and only an admitted call is counted: a refused
call never uses up budget, so an agent over its own limit does not eat its namespace's.

>>> limits = RateLimits("2/minute", "3/minute", "unlimited", "unlimited")
>>> limits.check_ingest("world", "a-1"); limits.check_ingest("world", "a-1")
>>> def refusal(agent_id):
...     try:
...         limits.check_ingest("world", agent_id)
...     except RateLimitedError as exc:
...         return exc.reason.split(";")[0]
>>> refusal("a-1")
"ingest rate limit: agent 'a-1' in namespace 'world' is over 2 per minute (ARGOS_RATE_INGEST_AGENT)"
>>> limits.check_ingest("world", "a-2")
>>> refusal("a-3")
"ingest rate limit: namespace 'world' is over 3 per minute (ARGOS_RATE_INGEST_NAMESPACE)"
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NoReturn

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from pipelines.errors import ConfigurationError, RateLimitedError

if TYPE_CHECKING:
    from pipelines.settings import Settings

Kind = Literal["ingest", "recall"]
Scope = Literal["agent", "namespace"]
UNLIMITED = frozenset({"unlimited", "none", "off"})


class SweptMemoryStorage(MemoryStorage):
    """``limits``' in-memory storage, with its expired entries dropped by one sweeper thread
    per process, once a second, instead of by a ``threading.Timer`` it starts on almost
    every call (whenever the last one, 10 ms long, has finished: at recall rates one new
    thread per check). ``Thread.start`` waits until the new thread has run, which on a busy
    machine means waiting for a core and the GIL: in a py-spy profile of the recall process
    under load, starting those threads took 7% of its event loop's time. Expiry only frees
    memory (a moving window's count reads the entries' times), so a coarser sweep changes no
    decision.

    >>> s = SweptMemoryStorage()
    >>> before = threading.active_count()
    >>> all(s.acquire_entry("k", 1000, 60) for _ in range(100))
    True
    >>> threading.active_count() <= before  # (the constructor's own Timer may end)
    True
    """

    _schedule = "_MemoryStorage__schedule_expiry"  # the private hook this class replaces

    def __init__(self) -> None:
        super().__init__()
        if hasattr(MemoryStorage, self._schedule):  # else a newer limits: keep its own way
            setattr(self, self._schedule, _no_schedule)
            _SWEPT.add(self)
            _start_sweeper()

    def expire(self) -> None:
        """Drop expired entries now (the sweeper calls this every ``SWEEP_S``)."""
        self._MemoryStorage__expire_events()


def _no_schedule() -> None:
    """The sweeper expires entries (see ``SweptMemoryStorage``)."""


SWEEP_S = 1.0
_SWEPT: weakref.WeakSet[SweptMemoryStorage] = weakref.WeakSet()
_sweeper: list[threading.Thread] = []
_sweeper_lock = threading.Lock()


def _start_sweeper() -> None:
    with _sweeper_lock:
        if not _sweeper:
            t = threading.Thread(target=_sweep_forever, name="rate-limit-expiry", daemon=True)
            t.start()
            _sweeper.append(t)


def _sweep_forever() -> None:
    while True:
        time.sleep(SWEEP_S)
        for storage in list(_SWEPT):
            try:
                storage.expire()
            except Exception:  # noqa: BLE001 - a sweep must not end the sweeper
                logging.getLogger(__name__).exception("rate-limit expiry failed")


@dataclass(frozen=True)
class _Check:
    """One limit item of one kind and scope, with what the hot path needs precomputed."""

    item: RateLimitItem
    scope: Scope
    setting: str
    """The setting it came from, named in refusals."""
    amount: int
    expiry: int
    prefix: str
    suffix: str

    def key(self, namespace: str, agent_id: str) -> str:
        """The storage key; equal to ``item.key_for(*identifiers(...))`` (a test holds it)."""
        if self.scope == "namespace":
            return f"{self.prefix}{namespace}{self.suffix}"
        return f"{self.prefix}{len(namespace)}:{namespace}/{agent_id}{self.suffix}"


def _parse(value: str, setting: str) -> tuple[RateLimitItem, ...]:
    if value.strip().lower() in UNLIMITED:
        return ()
    try:
        items = tuple(parse_many(value))
    except ValueError:
        raise ConfigurationError(
            f"{setting}={value!r} is not a rate limit: write e.g. '1000/second', "
            "'50 per 10 seconds', '10/second;300/minute', or 'unlimited'"
        ) from None
    for item in items:
        if item.amount < 1:
            raise ConfigurationError(
                f"{setting}={value!r} allows nothing: use at least 1, or 'unlimited' to turn the "
                "limit off"
            )
    return items


def _checks(kind: Kind, scope: Scope, value: str, setting: str) -> list[_Check]:
    tag = "ns" if scope == "namespace" else "agent"
    return [
        _Check(
            item=item,
            scope=scope,
            setting=setting,
            amount=item.amount,
            expiry=item.get_expiry(),
            # limits' key layout: "<item namespace>/<identifiers>/<amount>/<multiples>/<unit>"
            prefix=f"{item.namespace}/{kind}/{tag}/",
            suffix=f"/{item.amount}/{item.multiples}/{item.GRANULARITY.name}",
        )
        for item in _parse(value, setting)
    ]


class RateLimits:
    """The ingest and recall limits of one process (a worker, or the web front)."""

    def __init__(
        self,
        ingest_agent: str,
        ingest_namespace: str,
        recall_agent: str,
        recall_namespace: str,
    ) -> None:
        # Per kind: the namespace limit's items first, then the agent limit's.
        self._checks: dict[Kind, tuple[_Check, ...]] = {
            "ingest": (
                *_checks("ingest", "namespace", ingest_namespace, "ARGOS_RATE_INGEST_NAMESPACE"),
                *_checks("ingest", "agent", ingest_agent, "ARGOS_RATE_INGEST_AGENT"),
            ),
            "recall": (
                *_checks("recall", "namespace", recall_namespace, "ARGOS_RATE_RECALL_NAMESPACE"),
                *_checks("recall", "agent", recall_agent, "ARGOS_RATE_RECALL_AGENT"),
            ),
        }
        self._storage = SweptMemoryStorage()
        self._limiter = MovingWindowRateLimiter(self._storage)
        # test-then-hit must not interleave with another thread's (the storage is this
        # instance's own, so this lock is all that guards it).
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        return cls(
            ingest_agent=settings.rate_ingest_agent,
            ingest_namespace=settings.rate_ingest_namespace,
            recall_agent=settings.rate_recall_agent,
            recall_namespace=settings.rate_recall_namespace,
        )

    def check_ingest(self, namespace: str, agent_id: str) -> None:
        """Admit (and count) one event of ``agent_id``, or raise ``RateLimitedError``."""
        self._check(self._checks["ingest"], "ingest", namespace, agent_id)

    def check_recall(self, namespace: str, agent_id: str) -> None:
        """Admit (and count) one recall of ``agent_id``, or raise ``RateLimitedError``."""
        self._check(self._checks["recall"], "recall", namespace, agent_id)

    def retry_after(self, kind: Kind, namespace: str, agent_id: str) -> float:
        """Seconds until a ``kind`` call of ``agent_id`` would be admitted (0.0: now); for a
        ``Retry-After`` header."""
        now = time.time()
        wait = 0.0
        for check in self._checks[kind]:
            stats = self._limiter.get_window_stats(
                check.item, *identifiers(kind, check.scope, namespace, agent_id)
            )
            if stats.remaining < 1:
                wait = max(wait, stats.reset_time - now)
        return max(0.0, wait)

    def reset(self) -> None:
        """Forget every count (tests, or an operator's reset)."""
        with self._lock:
            self._storage.reset()

    def _check(self, checks: tuple[_Check, ...], kind: Kind, namespace: str, agent_id: str) -> None:
        if not checks:
            return
        # The hot path calls the storage's moving-window primitives with precomputed keys: the
        # same calls as MovingWindowRateLimiter.test/hit, without building each key from its
        # parts on every call (that halves the cost). Refusals go through the limiter.
        storage = self._storage
        *first, last = checks
        with self._lock:
            # Test every limit but the last, then *hit* the last: a moving window's hit admits
            # and counts in one step, and counts nothing when it refuses. Then count the others,
            # tested under the same lock, so they still have room. Same outcome as testing all
            # then hitting all, one storage call fewer.
            keys = [c.key(namespace, agent_id) for c in first]
            for check, key in zip(first, keys, strict=True):
                if storage.get_moving_window(key, check.amount, check.expiry)[1] >= check.amount:
                    self._refuse(kind, check, namespace, agent_id)
            if not storage.acquire_entry(last.key(namespace, agent_id), last.amount, last.expiry):
                self._refuse(kind, last, namespace, agent_id)
            for check, key in zip(first, keys, strict=True):
                storage.acquire_entry(key, check.amount, check.expiry)

    def _refuse(self, kind: Kind, check: _Check, namespace: str, agent_id: str) -> NoReturn:
        stats = self._limiter.get_window_stats(
            check.item, *identifiers(kind, check.scope, namespace, agent_id)
        )
        wait = max(0.0, stats.reset_time - time.time())
        who = (
            f"agent {agent_id!r} in namespace {namespace!r}"
            if check.scope == "agent"
            else f"namespace {namespace!r}"
        )
        raise RateLimitedError(
            f"{kind} rate limit: {who} is over {describe(check.item)} ({check.setting}); "
            f"retry in {wait:.2f} s"
        )


def identifiers(kind: Kind, scope: Scope, namespace: str, agent_id: str) -> tuple[str, ...]:
    """The identifiers of one limit's key (``limits`` joins them with '/').

    Identifiers may contain '/', so an agent key carries its namespace's length ('x/a' + 'b'
    and 'x' + 'a/b' cannot meet), and the scope tags differ, so a namespace key never equals an
    agent key.
    """
    if scope == "namespace":
        return (kind, "ns", namespace)
    return (kind, "agent", f"{len(namespace)}:{namespace}", agent_id)


def describe(item: RateLimitItem) -> str:
    """``'1000 per second'``, ``'50 per 10 seconds'``."""
    unit = item.GRANULARITY.name
    if item.multiples == 1:
        return f"{item.amount} per {unit}"
    return f"{item.amount} per {item.multiples} {unit}s"
