"""What a batch spends, measured live, and the budget (--max-cost, --max-tokens) it must keep to.

Budgets count what the back end actually reports, including the calls of articles that later
failed; an article is only started when its estimated spend fits in what is left after the
estimates of the articles in flight. Cached answers cost nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .backends.wrapper import BackendWrapper
from .errors import ConfigError
from .ratelimit import CLASSIFY_COMPLETION_TOKENS, estimate_prompt_tokens

if TYPE_CHECKING:
    from .backends.base import Completion, Message
    from .inputs import Item


@dataclass
class Spend:
    """Tokens and calls, of one article or of the whole run."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0  # real calls (cache hits never reach the meter)
    pipeline_calls: int = 0  # calls the pipeline made, hits included (known when a report is made)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class MeteredBackend(BackendWrapper):
    """Counts what real calls spend, in total and for the article the calling thread works on, so
    budgets see the spend of articles in flight and of articles that fail. It sits below the
    response cache: a cache hit never reaches it and costs nothing.

    classify() reports no usage, so for a paid back end its tokens are estimated from the prompt
    length (the OpenAI back end asks for at most CLASSIFY_COMPLETION_TOKENS back)."""

    def __init__(self, inner: Any):
        super().__init__(inner)
        self.total = Spend()
        self._lock = threading.Lock()
        self._local = threading.local()

    @contextlib.contextmanager
    def article(self, spend: Spend) -> Iterator[Spend]:
        self._local.spend = spend
        try:
            yield spend
        finally:
            self._local.spend = None

    def _add(self, prompt: int, completion: int) -> None:
        mine = getattr(self._local, "spend", None)
        with self._lock:
            for spend in (self.total, mine):
                if spend is not None:
                    spend.prompt_tokens += prompt
                    spend.completion_tokens += completion
                    spend.calls += 1

    def after_complete(self, completion: Completion) -> None:
        if not completion.cached:
            self._add(completion.prompt_tokens, completion.completion_tokens)

    def after_classify(self, messages: list[Message]) -> None:
        # A back end may report what its last classify() in this thread cost; else estimate it.
        reported = getattr(self.inner, "last_classify_usage", None)
        usage = reported() if callable(reported) else None
        if usage is None:
            paid = self.inner.name != "local"
            usage = (estimate_prompt_tokens(messages), CLASSIFY_COMPLETION_TOKENS) if paid else (0, 0)
        self._add(int(usage[0]), int(usage[1]))


class Budget:
    """Measured spend against --max-cost / --max-tokens, with estimates reserved for articles in flight."""

    PRIOR_CALLS = 6  # extraction, summary, 2-3 summary judgements, headline: each re-sends the article
    CALL_OVERHEAD = 600  # system prompt, task and schema hint, in tokens
    MARGIN = 1.25

    def __init__(self, backend_name: str, model: str, max_cost: float | None, max_tokens: int | None):
        from . import costs

        self.max_cost, self.max_tokens = max_cost, max_tokens
        self._price = costs.price(backend_name, model)
        if max_cost is not None and self._price is None:
            raise ConfigError(
                f"--max-cost needs a price for {model}: set FACTCHECK_PRICES to a price file, or use --max-tokens"
            )
        self._seen_units = 0.0
        self._seen_prompt = 0
        self._seen_completion = 0

    @property
    def active(self) -> bool:
        return self.max_cost is not None or self.max_tokens is not None

    def cost(self, prompt: int, completion: int) -> float:
        if self._price is None:
            return 0.0
        return (prompt * self._price.input + completion * self._price.output) / 1_000_000

    def learn(self, item: Item, spend: Spend) -> None:
        """Calibrate on finished articles that made every call for real (no cache hits)."""
        if spend.tokens and spend.pipeline_calls and spend.calls >= spend.pipeline_calls:
            self._seen_units += self._units(item)
            self._seen_prompt += spend.prompt_tokens
            self._seen_completion += spend.completion_tokens

    def _units(self, item: Item) -> float:
        size = item.size or 4000  # an unknown size (a URL): assume a long-ish article
        return size / 4 + self.CALL_OVERHEAD

    def estimate(self, item: Item) -> tuple[int, int]:
        """(prompt, completion) tokens this article is likely to take, on the safe side."""
        units = self._units(item)
        if self._seen_units:
            prompt = units * self._seen_prompt / self._seen_units
            completion = units * self._seen_completion / self._seen_units
        else:
            prompt = units * self.PRIOR_CALLS
            completion = (item.size or 4000) / 4 * 0.6 + 400
        return int(prompt * self.MARGIN), int(completion * self.MARGIN)

    def left(self, spent: Spend, reserved: tuple[int, int]) -> tuple[float | None, int | None]:
        cost_left = tokens_left = None
        if self.max_cost is not None:
            cost_left = self.max_cost - self.cost(spent.prompt_tokens, spent.completion_tokens) - self.cost(*reserved)
        if self.max_tokens is not None:
            tokens_left = self.max_tokens - spent.tokens - sum(reserved)
        return cost_left, tokens_left

    def exhausted(self, spent: Spend) -> bool:
        if self.max_cost is not None and self.cost(spent.prompt_tokens, spent.completion_tokens) >= self.max_cost:
            return True
        return self.max_tokens is not None and spent.tokens >= self.max_tokens

    def fits(self, item: Item, spent: Spend, reserved: tuple[int, int]) -> bool:
        prompt, completion = self.estimate(item)
        cost_left, tokens_left = self.left(spent, reserved)
        if cost_left is not None and self.cost(prompt, completion) > cost_left:
            return False
        return tokens_left is None or prompt + completion <= tokens_left

    def describe(self, spent: Spend) -> str:
        """What has been spent of each limit set, e.g. "$0.4210 of $0.5, 91000 of 100000 tokens"."""
        parts = []
        if self.max_cost is not None:
            parts.append(f"${self.cost(spent.prompt_tokens, spent.completion_tokens):.4f} of ${self.max_cost:g}")
        if self.max_tokens is not None:
            parts.append(f"{spent.tokens} of {self.max_tokens} tokens")
        return ", ".join(parts)
