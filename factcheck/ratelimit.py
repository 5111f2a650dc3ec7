"""Client-side rate limits (--rpm, --tpm): token buckets shared by all the threads of a batch.

They sit below the response cache, so a cache hit never waits. Server-side 429s are a separate
matter, retried by the openai SDK itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .backends.wrapper import BackendWrapper
from .errors import ConfigError

if TYPE_CHECKING:
    from .backends.base import Message

# Tokens a classify() call asks back for (the OpenAI back end's max_tokens for it).
CLASSIFY_COMPLETION_TOKENS = 12


class TokenBucket:
    """`per_minute` units a minute, bursts of up to `burst_seconds` worth; thread-safe.

    A request larger than the burst is let through when the bucket is full and leaves it in debt,
    so the long-run rate still holds.
    """

    def __init__(
        self,
        per_minute: float,
        *,
        burst_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if per_minute <= 0:
            raise ConfigError("rate limits must be positive")
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, per_minute * burst_seconds / 60.0)
        self.level = self.capacity
        self._clock, self._sleep = clock, sleep
        self._stamp = clock()
        self._lock = threading.Lock()

    def acquire(self, amount: float = 1.0) -> float:
        """Take `amount`, waiting as needed; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
                self._stamp = now
                need = min(amount, self.capacity)
                if self.level >= need - 1e-9:  # a float hair short is not worth a sleep
                    self.level -= amount
                    return waited
                pause = (need - self.level) / self.rate
            pause = min(max(pause, 0.001), 1.0)
            self._sleep(pause)
            waited += pause


class RateLimiter:
    """Requests per minute and tokens per minute, either or both."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None):
        self.requests = TokenBucket(rpm) if rpm else None
        self.tokens = TokenBucket(tpm) if tpm else None

    def acquire(self, tokens: int) -> None:
        if self.requests:
            self.requests.acquire(1)
        if self.tokens:
            self.tokens.acquire(tokens)


def estimate_prompt_tokens(messages: list[Message]) -> int:
    """About 4 characters a token, plus a few tokens of framing per message."""
    return sum(len(m.get("content") or "") for m in messages) // 4 + 4 * len(messages)


class RateLimitedBackend(BackendWrapper):
    """Waits for the limiter before every request, charging the prompt estimate plus max_tokens."""

    def __init__(self, inner: Any, limiter: RateLimiter):
        super().__init__(inner)
        self.limiter = limiter

    def before_complete(self, messages: list[Message], max_tokens: int) -> None:
        self.limiter.acquire(estimate_prompt_tokens(messages) + max_tokens)

    def after_classify(self, messages: list[Message]) -> None:
        # Charged afterwards: a back end that has no probabilities answers None without a request,
        # and must not use up the rate. The debt makes the next calls wait instead.
        self.limiter.acquire(estimate_prompt_tokens(messages) + CLASSIFY_COMPLETION_TOKENS)
