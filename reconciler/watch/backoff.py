"""Capped exponential backoff with jitter, and the watch cadence's jitter (pure).

Randomness is injected (``rand`` returns a float in [0, 1)), so tests and
callers decide where it comes from.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

Rand = Callable[[], float]


@dataclass(frozen=True)
class BackoffPolicy:
    """Delay after the n-th consecutive failure: ``min(cap, base * factor**(n-1))`` ± jitter."""

    base: float = 10.0
    factor: float = 2.0
    cap: float = 600.0
    jitter: float = 0.2  # fraction: the delay is spread over [d*(1-jitter), d*(1+jitter)]

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap <= 0:
            raise ValueError("backoff base and cap must be positive")
        if self.factor < 1:
            raise ValueError("backoff factor must be >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff jitter must be in [0, 1)")


def jittered(seconds: float, fraction: float, rand: Rand = random.random) -> float:
    """``seconds`` spread uniformly over ``[seconds*(1-fraction), seconds*(1+fraction)]``."""
    if seconds < 0:
        raise ValueError("seconds must be >= 0")
    if not 0 <= fraction < 1:
        raise ValueError("jitter fraction must be in [0, 1)")
    return seconds * (1 - fraction + 2 * fraction * rand())


def backoff_delay(failures: int, policy: BackoffPolicy, rand: Rand = random.random) -> float:
    """Seconds to wait after ``failures`` consecutive failures (0 when there were none).

    The un-jittered delay never exceeds ``policy.cap``; jitter is applied after
    the cap so retries of many clusters that failed together spread out, and the
    result is clamped to ``cap * (1 + jitter)``.
    """
    if failures <= 0:
        return 0.0
    # Stop growing once the cap is reached (avoids float overflow for huge counts).
    delay = policy.base
    for _ in range(failures - 1):
        delay *= policy.factor
        if delay >= policy.cap:
            break
    return jittered(min(delay, policy.cap), policy.jitter, rand)


@dataclass(frozen=True)
class RetryState:
    """Consecutive apply failures for one spec digest.

    A different digest (a newer spec) starts from zero: an old, broken version
    is never retried forever once a newer one exists.
    """

    digest: str | None = None
    failures: int = 0
    retry_at: float = 0.0  # monotonic seconds before which no apply is attempted

    def for_digest(self, digest: str | None) -> RetryState:
        """This state if it belongs to ``digest``, else a fresh one for it."""
        if digest == self.digest:
            return self
        return RetryState(digest=digest)

    def failed(
        self, digest: str | None, now: float, policy: BackoffPolicy, rand: Rand = random.random
    ) -> RetryState:
        base = self.for_digest(digest)
        failures = base.failures + 1
        return RetryState(
            digest=digest,
            failures=failures,
            retry_at=now + backoff_delay(failures, policy, rand),
        )

    def succeeded(self, digest: str | None) -> RetryState:
        return RetryState(digest=digest)

    def waiting(self, digest: str | None, now: float) -> float:
        """Seconds still to wait before applying ``digest`` (0 = go)."""
        state = self.for_digest(digest)
        return max(0.0, state.retry_at - now)
