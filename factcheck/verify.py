"""Claim-vs-evidence and summary-vs-article checks (MiniCheck / SummaC style).

The judge reads the evidence as numbered sentences and answers supported / contradicted /
not mentioned. Where the back end exposes probabilities, the verdict comes from P(supported)
against a threshold calibrated on development data (a 1.5B model says "supported" too readily:
its probability separates far better than its words). A long document is judged chunk by chunk
and the best-supporting chunk decides, so it never has to fit one prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

from .answers import Judgement, ReasonedJudgement
from .backends.base import Backend, Message
from .documents import Document, Sentence, chunk
from .prompts import render
from .schemas import Usage, Verdict
from .structured import Ledger, generate

# P(supported) at or above this counts as supported. Chosen on the development splits of the
# grounded-verification and summary-consistency sets (see benchmarks/grounded.py).
SUPPORT_THRESHOLD = 0.75
OPTIONS = ["supported", "contradicted", "not_mentioned"]


@dataclass
class Judged:
    verdict: Verdict
    p_supported: float | None  # None when the back end gives no probabilities
    sentences: list[int]
    chunk: int = 0  # 0-based index of the chunk that decided
    chunks: int = 1
    reason: str | None = None

    @property
    def confidence(self) -> float | None:
        if self.p_supported is None:
            return None
        p = self.p_supported
        return round(p if self.verdict == "supported" else 1 - p, 3)


def article_messages(sentences: list[Sentence], task: str, ledger: Ledger) -> list[Message]:
    """The shared prompt prefix (numbered article) plus one task. The prefix is identical across
    tasks on the same text, so a local model evaluates it once and reuses its cache."""
    system = render("article.j2", sentences=sentences)
    ledger.prompts[system.name] = system.hash
    return [{"role": "system", "content": system.text}, {"role": "user", "content": task}]


def judge(
    backend: Backend,
    ledger: Ledger,
    usage: Usage,
    statement: str,
    sentences: list[Sentence],
    *,
    reason: bool = False,
    threshold: float = SUPPORT_THRESHOLD,
) -> Judged:
    task = render("judge.j2", statement=statement, reason=reason)
    ledger.prompts[task.name] = task.hash
    messages = article_messages(sentences, task.text, ledger)
    allowed = {s.n for s in sentences}
    probs = None if reason else backend.classify(messages, prefix='{"verdict": "', options=OPTIONS)
    if probs is not None:
        usage.calls += 1
        p = probs["supported"]
        verdict: Verdict = (
            "supported"
            if p >= threshold
            else ("contradicted" if probs["contradicted"] > probs["not_mentioned"] else "not_enough_info")
        )
        return Judged(verdict, round(p, 4), [])
    answer_type = ReasonedJudgement if reason else Judgement
    answer = generate(
        backend,
        messages,
        answer_type,
        usage=usage,
        max_tokens=200 if reason else 60,
        context={"sentences": allowed},
    )
    verdict = "not_enough_info" if answer.verdict == "not_mentioned" else answer.verdict
    return Judged(
        verdict=verdict,
        p_supported=None,
        sentences=sorted(set(answer.sents)) if verdict != "not_enough_info" else [],
        reason=getattr(answer, "reason", None),
    )


_RANK = {"supported": 2, "contradicted": 1, "not_enough_info": 0}


def judge_document(
    backend: Backend,
    ledger: Ledger,
    usage: Usage,
    statement: str,
    doc: Document,
    *,
    reason: bool = False,
    max_chunk_tokens: int = 1400,
    threshold: float = SUPPORT_THRESHOLD,
) -> Judged:
    """Judge against every chunk; the best-supporting chunk decides."""
    chunks = chunk(doc.body or doc.sentences, max_tokens=max_chunk_tokens, overlap=1)
    results: list[Judged] = []
    for index, part in enumerate(chunks):
        judged = judge(backend, ledger, usage, statement, part, reason=reason, threshold=threshold)
        judged.chunk, judged.chunks = index, len(chunks)
        results.append(judged)
        if judged.verdict == "supported":
            break  # nothing can beat it
    return max(results, key=lambda j: (_RANK[j.verdict], j.p_supported or 0.0))
