"""Capped exponential backoff, jitter and per-digest retry state."""

from __future__ import annotations

import pytest

from reconciler.watch.backoff import BackoffPolicy, RetryState, backoff_delay, jittered

NO_JITTER = BackoffPolicy(base=10, factor=2, cap=100, jitter=0)


def test_no_failures_no_delay() -> None:
    assert backoff_delay(0, NO_JITTER) == 0


def test_doubles_then_caps() -> None:
    delays = [backoff_delay(n, NO_JITTER) for n in range(1, 8)]
    assert delays == [10, 20, 40, 80, 100, 100, 100]


def test_huge_failure_count_does_not_overflow() -> None:
    assert backoff_delay(10_000, NO_JITTER) == 100


def test_jitter_bounds_use_the_injected_random() -> None:
    policy = BackoffPolicy(base=10, factor=2, cap=100, jitter=0.5)
    assert backoff_delay(2, policy, rand=lambda: 0.0) == pytest.approx(10)
    assert backoff_delay(2, policy, rand=lambda: 0.5) == pytest.approx(20)
    assert backoff_delay(2, policy, rand=lambda: 0.999999) == pytest.approx(30, rel=1e-5)
    # After the cap, jitter still spreads the delay.
    assert backoff_delay(50, policy, rand=lambda: 0.0) == pytest.approx(50)


def test_jittered_interval() -> None:
    assert jittered(60, 0.1, rand=lambda: 0.0) == pytest.approx(54)
    assert jittered(60, 0.1, rand=lambda: 0.5) == pytest.approx(60)
    assert jittered(60, 0, rand=lambda: 0.9) == 60
    with pytest.raises(ValueError):
        jittered(60, 1.0)
    with pytest.raises(ValueError):
        jittered(-1, 0.1)


@pytest.mark.parametrize(
    "kwargs", [{"base": 0}, {"cap": -1}, {"factor": 0.5}, {"jitter": 1.0}, {"jitter": -0.1}]
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)


def test_retry_state_grows_for_the_same_digest() -> None:
    state = RetryState()
    state = state.failed("d1", now=1000, policy=NO_JITTER)
    assert (state.failures, state.retry_at) == (1, 1010)
    assert state.waiting("d1", now=1005) == 5
    state = state.failed("d1", now=1010, policy=NO_JITTER)
    assert (state.failures, state.retry_at) == (2, 1030)
    assert state.waiting("d1", now=1030) == 0


def test_newer_digest_resets_backoff() -> None:
    state = RetryState().failed("old", 0, NO_JITTER).failed("old", 10, NO_JITTER)
    assert state.waiting("old", now=11) > 0
    # A newer spec is applied at once ...
    assert state.waiting("new", now=11) == 0
    # ... and its first failure starts from the base delay again.
    state = state.failed("new", now=11, policy=NO_JITTER)
    assert (state.digest, state.failures, state.retry_at) == ("new", 1, 21)


def test_success_clears_failures() -> None:
    state = RetryState().failed("d", 0, NO_JITTER).succeeded("d")
    assert state.failures == 0
    assert state.waiting("d", now=0) == 0
