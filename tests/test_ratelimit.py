"""Rate limits (factcheck/ratelimit.py): the token bucket, and the limiter sitting below the cache."""

from __future__ import annotations

from pathlib import Path

import batch_helpers
import pytest
from batch_helpers import FakeBackend

from factcheck.backends.cache import CachedBackend
from factcheck.batch import run_batch
from factcheck.ratelimit import TokenBucket

articles = batch_helpers.articles  # the shared fixture; a plain import would look unused to ruff


def test_token_bucket_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    bucket = TokenBucket(60, burst_seconds=2, clock=lambda: now[0], sleep=sleep)  # 1/s, burst 2
    assert bucket.acquire() == 0 and bucket.acquire() == 0
    assert bucket.acquire() == pytest.approx(1.0)  # empty: wait for one to drip in
    big = TokenBucket(600, burst_seconds=1, clock=lambda: now[0], sleep=sleep)  # 10/s, burst 10
    assert big.acquire(50) == 0  # larger than the burst: allowed when full, leaves debt
    assert big.acquire(1) == pytest.approx(4.1)  # 41 short at 10/s


def test_rate_limiter_sits_below_the_cache(tmp_path: Path, articles: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from factcheck.ratelimit import RateLimiter

    acquired: list[int] = []
    monkeypatch.setattr(RateLimiter, "acquire", lambda self, tokens: acquired.append(tokens))
    inner = FakeBackend()
    cache = CachedBackend(inner, tmp_path / "cache.sqlite")
    summary = run_batch(
        [str(articles)],
        tmp_path / "out.jsonl",
        backend_factory=lambda: cache,
        rpm=6000,
        tpm=10_000_000,
        progress=False,
    )
    assert summary.done == 6 and len(acquired) == inner.calls == summary.calls > 0
    assert all(t > 100 for t in acquired)  # prompt estimate + max_tokens
    assert cache.inner is inner  # the caller's back end is given back as it was
    again = run_batch(
        [str(articles)], tmp_path / "again.jsonl", backend_factory=lambda: cache, rpm=6000, progress=False
    )
    assert again.cached_calls == again.calls > 0 and again.tokens == 0 and again.cost_usd == 0
    assert len(acquired) == inner.calls  # a cache hit does not wait for the rate limit
