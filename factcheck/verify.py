"""Claim-vs-evidence and summary-vs-article checks (MiniCheck / SummaC style).

The judge reads the evidence as numbered sentences and answers supported / contradicted /
not mentioned. Where the back end exposes probabilities, the verdict comes from P(supported)
against a threshold calibrated on development data (a 1.5B model says "supported" too readily:
its probability separates far better than its words). A long document is judged chunk by chunk
and the best-supporting chunk decides, so it never has to fit one prompt.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from . import signals
from .answers import Judgement, ReasonedJudgement
from .backends.base import Backend, Message
from .documents import Document, Sentence, chunk
from .errors import InputError
from .prompts import Rendered, render
from .schemas import Evidence, Usage, Verdict
from .structured import Ledger, generate

# P(supported) at or above this counts as supported. Chosen on the development splits of
# ../shared/evaldata (benchmarks/grounded.py, README "Grounded checking"): claims against evidence
# do best at 0.60-0.75 (pooled balanced accuracy 0.68 at 0.75), summary sentences against their
# article need more (0.674 at 0.75, 0.720 at 0.90; a threshold picked on either half of the
# summary items gained 0.02 on the other half), so consistency has its own.
SUPPORT_THRESHOLD = 0.75
CONSISTENCY_THRESHOLD = 0.90
OPTIONS = ["supported", "contradicted", "not_mentioned"]


@dataclass
class Judged:
    verdict: Verdict
    p_supported: float | None  # None when the back end gives no probabilities
    sentences: list[int]
    chunk: int = 0  # 0-based index of the chunk that decided
    chunks: int = 1
    reason: str | None = None
    missing: list[str] | None = None  # numbers and names the evidence never mentions
    read: list[Sentence] = field(default_factory=list)  # the evidence sentences the judge was shown

    @property
    def confidence(self) -> float | None:
        if self.p_supported is None:
            return None
        p = self.p_supported
        return round(p if self.verdict == "supported" else 1 - p, 3)


def article_messages(sentences: list[Sentence], task: str, ledger: Ledger) -> list[Message]:
    """The shared prompt prefix (numbered article) plus one task. The prefix is identical across
    tasks on the same text, so a local model evaluates it once and reuses its cache."""
    system = _article_prompt(tuple(sentences))
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
    threshold: float | None = None,
) -> Judged:
    threshold = SUPPORT_THRESHOLD if threshold is None else threshold
    missing = signals.missing_details(statement, " ".join(s.text for s in sentences))
    task = render("judge.j2", statement=statement, reason=reason)
    ledger.prompts[task.name] = task.hash
    messages = article_messages(sentences, task.text, ledger)
    allowed = {s.n for s in sentences}
    probs = None if reason else backend.classify(messages, prefix='{"verdict": "', options=OPTIONS)
    if probs is not None:
        usage.calls += 1
        spent = getattr(backend, "last_classify_usage", lambda: None)()
        if spent:
            usage.prompt_tokens += spent[0]
            usage.completion_tokens += spent[1]
        p = probs["supported"]
        verdict: Verdict = (
            "supported"
            if p >= threshold and not missing
            else ("contradicted" if probs["contradicted"] > probs["not_mentioned"] else "not_enough_info")
        )
        return Judged(verdict, round(p, 4), [], missing=missing, read=sentences)
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
    if verdict == "supported" and missing:
        verdict = "not_enough_info"
    return Judged(
        verdict=verdict,
        p_supported=None,
        sentences=sorted(set(answer.sents)) if verdict != "not_enough_info" else [],
        reason=getattr(answer, "reason", None),
        missing=missing,
        read=sentences,
    )


@functools.lru_cache(maxsize=32)
def _article_prompt(sentences: tuple[Sentence, ...]) -> Rendered:
    """Rendered once per text: every stage of an article sends the same prefix."""
    return render("article.j2", sentences=sentences)


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
    max_chunks: int = 4,
    threshold: float | None = None,
) -> Judged:
    """Judge against the chunks most related to the statement (all of them when there are at
    most `max_chunks`); the best-supporting chunk decides."""
    return judge_statements(
        backend,
        ledger,
        usage,
        [statement],
        doc,
        reason=reason,
        max_chunk_tokens=max_chunk_tokens,
        max_chunks=max_chunks,
        threshold=threshold,
    )[0]


def judge_statements(
    backend: Backend,
    ledger: Ledger,
    usage: Usage,
    statements: list[str],
    doc: Document,
    *,
    reason: bool = False,
    max_chunk_tokens: int = 1400,
    max_chunks: int = 4,
    threshold: float | None = None,
) -> list[Judged]:
    """`judge_document` for several statements against one document. The loop runs chunk by chunk,
    not statement by statement, so a local model evaluates each chunk's prompt prefix once for all
    statements instead of once per statement and chunk."""
    chunks = chunk(doc.body or doc.sentences, max_tokens=max_chunk_tokens, overlap=1)
    plans = [_chunks_to_read(statement, chunks, max_chunks) for statement in statements]
    results: list[list[Judged]] = [[] for _ in statements]
    for index, part in enumerate(chunks):
        for i, statement in enumerate(statements):
            if index not in plans[i] or any(j.verdict == "supported" for j in results[i]):
                continue  # not a chunk for this statement, or already supported: nothing can beat it
            judged = judge(backend, ledger, usage, statement, part, reason=reason, threshold=threshold)
            judged.chunk, judged.chunks = index, len(chunks)
            results[i].append(judged)
    return [max(r, key=lambda j: (_RANK[j.verdict], j.p_supported or 0.0)) for r in results]


def _chunks_to_read(statement: str, chunks: list[list[Sentence]], max_chunks: int) -> set[int]:
    """All chunks, or on a long page the `max_chunks` sharing most content words with the statement."""
    if len(chunks) <= max_chunks:
        return set(range(len(chunks)))
    words = signals.content_words(statement)
    overlap = [len(words & signals.content_words(" ".join(s.text for s in part))) for part in chunks]
    return set(sorted(range(len(chunks)), key=lambda i: -overlap[i])[:max_chunks])


# ---------------------------------------------------------------- the check and consistency commands


@dataclass
class ClaimCheck:
    verdict: Verdict
    confidence: float | None
    p_supported: float | None
    document: str
    chunk: int
    chunks: int
    evidence: list[Evidence]
    rationale: str
    missing: list[str]


def _closest(statement: str, sentences: list[Sentence], k: int = 2) -> list[Sentence]:
    """The sentences sharing the most content words with the statement (shown as the evidence
    for a verdict that came from probabilities rather than from cited sentence numbers)."""
    words = signals.content_words(statement)
    scored = [(len(words & signals.content_words(s.text)), s) for s in sentences]
    best = sorted((x for x in scored if x[0] > 0), key=lambda x: -x[0])[:k]
    return sorted((s for _, s in best), key=lambda s: s.n)


def check_claim(
    backend: Backend, ledger: Ledger, claim: str, docs: list[Document], *, explain: bool = False
) -> ClaimCheck:
    """A claim against one or more evidence documents; the best-supporting document decides."""
    usage = ledger.stage("check")
    results = []
    for doc in docs:
        judged = judge_document(backend, ledger, usage, claim, doc, reason=explain)
        results.append((judged, doc))
        if judged.verdict == "supported":
            break
    judged, doc = max(results, key=lambda r: (_RANK[r[0].verdict], r[0].p_supported or 0.0))
    cited = [doc.sentence(n) for n in judged.sentences] or _closest(claim, judged.read)
    rationale = judged.reason or ""
    if judged.missing:
        rationale += f"; the evidence never mentions: {', '.join(judged.missing)}"
    if judged.p_supported is not None and not judged.reason:
        rationale = (
            f"P(supported) = {judged.p_supported:.2f} against threshold {SUPPORT_THRESHOLD} "
            f"(chunk {judged.chunk + 1} of {judged.chunks})" + rationale
        )
    rationale = rationale.lstrip("; ") or f"model verdict on chunk {judged.chunk + 1} of {judged.chunks}"
    return ClaimCheck(
        verdict=judged.verdict,
        confidence=judged.confidence,
        p_supported=judged.p_supported,
        document=doc.origin,
        chunk=judged.chunk,
        chunks=judged.chunks,
        evidence=[
            Evidence(sentence=s.n, quote=doc.text[s.start : s.end], start=s.start, end=s.end)
            for s in cited
            if verbatim(doc, s)
        ],
        rationale=rationale,
        missing=judged.missing or [],
    )


def verbatim(doc: Document, s: Sentence) -> bool:
    return doc.text[s.start : s.end] == s.text


@dataclass
class SentenceCheck:
    sentence: str
    verdict: Verdict
    p_supported: float | None
    missing: list[str]


@dataclass
class ConsistencyCheck:
    consistent: bool
    score: float | None  # the lowest P(supported) of any summary sentence (SummaC-style min)
    sentences: list[SentenceCheck]


def check_consistency(backend: Backend, ledger: Ledger, article: Document, summary: str) -> ConsistencyCheck:
    """Every summary sentence against the article: the summary is consistent when all are supported."""
    from .documents import split_sentences

    usage = ledger.stage("consistency")
    texts = [s.text for s in split_sentences(summary)]
    if not texts:
        raise InputError("the summary is empty: there is nothing to check")
    judged = judge_statements(backend, ledger, usage, texts, article, threshold=CONSISTENCY_THRESHOLD)
    checks = [
        SentenceCheck(text, j.verdict, j.p_supported, j.missing or []) for text, j in zip(texts, judged, strict=True)
    ]
    probs = [c.p_supported for c in checks if c.p_supported is not None]
    return ConsistencyCheck(
        consistent=all(c.verdict == "supported" for c in checks),
        score=round(min(probs), 4) if probs and len(probs) == len(checks) else None,
        sentences=checks,
    )
