"""The one protocol every back end implements: messages + a JSON schema in, text + usage out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

Message = dict[str, str]


@dataclass
class Completion:
    text: str | None
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    refusal: str | None = None
    cached: bool = False


class Backend(Protocol):
    name: str  # "openai", "local", ... shown in reports and part of cache keys
    model: str

    def complete(
        self,
        messages: list[Message],
        *,
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int,
        temperature: float = 0.0,
    ) -> Completion:
        """Return the model's answer, constrained to `schema` as far as the back end allows."""
        ...

    def classify(self, messages: list[Message], *, prefix: str, options: list[str]) -> dict[str, float] | None:
        """Probability of each option as the model's next words after `prefix` in its answer,
        normalised over the options; None when the back end cannot expose probabilities."""
        ...
