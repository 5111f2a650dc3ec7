"""A back end that passes every call through to another, with hooks around the calls.

The batch stacks these below the response cache (rate limiting, spend metering), so each one
only says what it adds, and the protocol's signatures are written out once, here.
"""

from __future__ import annotations

from typing import Any

from .base import Completion, Message


class BackendWrapper:
    """Forwards the protocol's calls and attributes (and anything else) to `inner`."""

    def __init__(self, inner: Any):
        self.inner = inner

    # The protocol's attributes are the inner back end's: reports and prices name the real model.
    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def model(self) -> str:
        return self.inner.model

    def __getattr__(self, attr: str) -> Any:
        # Anything else (base_url, load_seconds, ...) is the inner back end's. `inner` not set yet
        # (a copy or unpickling in progress) must fail, not recurse.
        if attr == "inner":
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    def complete(
        self,
        messages: list[Message],
        *,
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int,
        temperature: float = 0.0,
    ) -> Completion:
        self.before_complete(messages, max_tokens)
        completion = self.inner.complete(
            messages, schema=schema, schema_name=schema_name, max_tokens=max_tokens, temperature=temperature
        )
        self.after_complete(completion)
        return completion

    def classify(self, messages: list[Message], *, prefix: str, options: list[str]) -> dict[str, float] | None:
        classify = getattr(self.inner, "classify", None)
        if classify is None:
            return None
        probs = classify(messages, prefix=prefix, options=options)
        # None means no probabilities, and (after a back end's first probe) no request was made.
        if probs is not None:
            self.after_classify(messages)
        return probs

    def before_complete(self, messages: list[Message], max_tokens: int) -> None:
        """Called before each complete() is passed on."""

    def after_complete(self, completion: Completion) -> None:
        """Called with each answer complete() got back."""

    def after_classify(self, messages: list[Message]) -> None:
        """Called after each classify() that answered with probabilities."""
