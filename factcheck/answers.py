"""What the model must return for each task: small, flat, cheap to write.

Field names are short because every token the model writes costs time on a small local model;
the model cites sentence numbers and Python turns them into verified quotes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from .schemas import SourceType


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _allowed(info: ValidationInfo) -> set[int] | None:
    return (info.context or {}).get("sentences")


class SentenceClaim(Answer):
    """One claim per sentence; the claim's text is the sentence itself (no tokens spent copying)
    and the source type is read off the name in Python (no tokens spent on a guess)."""

    n: int = Field(description="the sentence number")
    source: str = Field(description='who makes the claim, as named in the article; "" if no one')
    worthy: bool = Field(description="a checkable factual claim, not opinion or background")

    @field_validator("n")
    @classmethod
    def _known(cls, n: int, info: ValidationInfo) -> int:
        # The prompt says which sentence numbers exist; anything else is fed back to the model.
        allowed = _allowed(info)
        if allowed is not None and n not in allowed:
            raise ValueError(f"sentence {n} is not in the article shown")
        return n


class WrittenClaim(SentenceClaim):
    """A claim the model words itself: decomposed and self-contained (for stronger models)."""

    text: str = Field(min_length=8, description="the claim, short, names resolved")
    type: SourceType


class SentenceClaims(Answer):
    claims: list[SentenceClaim]


class WrittenClaims(Answer):
    claims: list[WrittenClaim]


class Target(Answer):
    """Which sentence a denial or rebuttal answers; 0 when none does."""

    target: int


class SummaryAnswer(Answer):
    sentences: list[str] = Field(description="the summary, one short sentence per item")
    key: list[int] = Field(min_length=1, description="numbers of the most important sentences")


JudgeVerdict = Literal["supported", "contradicted", "not_mentioned"]


class Judgement(Answer):
    verdict: JudgeVerdict
    sents: list[int]

    @field_validator("sents")
    @classmethod
    def _known_only(cls, numbers: list[int], info: ValidationInfo) -> list[int]:
        # A stray citation does not change the verdict: drop it rather than pay for a re-ask.
        allowed = _allowed(info)
        return [n for n in numbers if allowed is None or n in allowed]


class ReasonedJudgement(Judgement):
    reason: str


__all__ = [
    "Answer",
    "Judgement",
    "JudgeVerdict",
    "ReasonedJudgement",
    "SentenceClaim",
    "SentenceClaims",
    "SummaryAnswer",
    "Target",
    "WrittenClaim",
    "WrittenClaims",
]
