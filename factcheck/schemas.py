"""The report contract: what `factcheck summarize` produces (`factcheck schema` prints it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SourceType = Literal["person", "organization", "government", "media", "document", "unattributed"]
Level = Literal["low", "medium", "high"]
Relation = Literal["denies", "contradicts", "qualifies"]
Verdict = Literal["supported", "contradicted", "not_enough_info"]
WarningKind = Literal[
    "unsupported_headline",
    "unattributed_quote",
    "boilerplate",
    "truncated_input",
    "prompt_injection",
    "summary_revised",
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Sentence(Strict):
    n: int = Field(description="1-based sentence number, as shown to the model")
    start: int
    end: int


class Evidence(Strict):
    """A verbatim quote: `article[start:end] == quote`, computed in Python, never by the model."""

    sentence: int
    quote: str
    start: int
    end: int


class Source(Strict):
    name: str | None
    type: SourceType
    cue: str | None = Field(description='attribution cue such as "said", "denied", "according to"')


class CheckWorthiness(Strict):
    value: bool
    reason: str


class Uncertainty(Strict):
    level: Level
    signals: list[str] = Field(description="why: hedging, disputed, anonymous source, ...")


class SourceVerdict(Strict):
    """A judgement of a claim against a passage of another document (`--sources`)."""

    document: str
    verdict: Verdict
    confidence: float = Field(ge=0, le=1)
    evidence: list[Evidence]


class Claim(Strict):
    id: str
    text: str
    evidence: list[Evidence]
    source: Source
    check_worthy: CheckWorthiness
    uncertainty: Uncertainty
    verdicts: list[SourceVerdict] = []


class CounterClaim(Strict):
    """`counter` denies, contradicts or qualifies `claim`."""

    claim: str
    counter: str
    relation: Relation
    sentences: list[int]


class KeyPoint(Strict):
    text: str
    claims: list[str]


class SummaryRevision(Strict):
    """The self-check of one summary sentence against the article."""

    sentence: str
    verdict: Verdict
    action: Literal["dropped", "kept"]
    reason: str


class Summary(Strict):
    text: str
    key_points: list[KeyPoint]
    revisions: list[SummaryRevision] = []


class Warning(Strict):
    kind: WarningKind
    message: str
    sentences: list[int] = []


class Usage(Strict):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    reasks: int = 0

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.calls += other.calls
        self.reasks += other.reasks


class Meta(Strict):
    version: str
    backend: str
    model: str
    prompts: dict[str, str] = Field(description="template name -> content hash")
    usage: Usage
    stages: dict[str, Usage]
    cost_usd: float = 0.0
    wall_time_s: float


class Article(Strict):
    origin: str = Field(description="path, URL or '-' for stdin")
    title: str | None
    text: str = Field(description="the normalised article text all offsets refer to")
    sentences: list[Sentence]


class Report(Strict):
    article: Article
    summary: Summary
    claims: list[Claim]
    counter_claims: list[CounterClaim]
    warnings: list[Warning]
    meta: Meta

    @model_validator(mode="after")
    def _quotes_are_verbatim(self) -> Report:
        # The one rule the whole product rests on: every quote shown exists in the article.
        text = self.article.text
        for claim in self.claims:
            for ev in claim.evidence:
                if text[ev.start : ev.end] != ev.quote:
                    raise ValueError(f"claim {claim.id}: quote not found at {ev.start}:{ev.end}")
        ids = {c.id for c in self.claims}
        for link in self.counter_claims:
            if link.claim not in ids or link.counter not in ids:
                raise ValueError(f"counter-claim refers to unknown claim {link.claim}/{link.counter}")
        return self
