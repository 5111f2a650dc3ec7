"""summarize(): chunk → claims → counter-claims → summary → self-check → report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from . import __version__, claims, links, signals
from .answers import SummaryAnswer
from .backends.base import Backend
from .claims import DraftClaim, Style
from .costs import cost
from .documents import Document, Sentence, chunk, estimate_tokens
from .prompts import render
from .schemas import (
    Article,
    CounterClaim,
    KeyPoint,
    Meta,
    Report,
    Summary,
    SummaryRevision,
    Warning,
)
from .schemas import Sentence as SentenceSpan
from .sources import attach_verdicts
from .structured import Ledger, generate
from .verify import CONSISTENCY_THRESHOLD, article_messages, judge


@dataclass
class Options:
    style: Style = "sentence"
    summary_words: int = 60
    max_chunk_tokens: int = 1400
    self_check: bool = True
    check_headline: bool = True
    sources: list[Document] = field(default_factory=list)  # other documents to check claims against


def summarize(doc: Document, backend: Backend, options: Options | None = None) -> Report:
    options = options or Options()
    started = time.perf_counter()
    ledger = Ledger()
    body = doc.body
    chunks = chunk(body, max_tokens=options.max_chunk_tokens, overlap=1) if body else []
    # Most articles are one chunk, and then every stage shares one prompt prefix (one KV cache).
    context = chunks[0] if len(chunks) == 1 else _opening(body, options.max_chunk_tokens)

    drafts = claims.merge([c for part in chunks for c in claims.extract(backend, ledger, doc, part, options.style)])
    found = links.find(backend, ledger, doc, context, drafts) if len(drafts) > 1 else []
    ids = [f"c{i}" for i in range(1, len(drafts) + 1)]

    quoted = signals.unattributed_quotes(doc)  # quotes with no speaker: warned, kept out of the summary
    warnings = _warnings(doc, quoted)
    summary = Summary(text="", key_points=[])
    if drafts:
        summary, parts = _summarise(backend, ledger, context, drafts, ids, options)
        if options.self_check:
            summary = _self_check(backend, ledger, quoted, context, summary, parts, warnings)
    if doc.title and body and options.check_headline:
        verdict = judge(backend, ledger, ledger.stage("headline"), doc.title, context).verdict
        if verdict != "supported":
            warnings.insert(
                0,
                Warning(
                    kind="unsupported_headline",
                    message=f"the article body does not support its headline ({verdict}): {doc.title}",
                    sentences=[1] if doc.sentences[0].text == doc.title else [],
                ),
            )

    unattributed = {s.n for s in quoted}
    opponents: dict[int, list[str]] = {}
    for a, b, _ in found:
        opponents.setdefault(a, []).append(ids[b])
        opponents.setdefault(b, []).append(ids[a])
    built = [claims.build(doc, ids[i], d, opponents.get(i, []), unattributed) for i, d in enumerate(drafts)]
    if options.sources:
        attach_verdicts(backend, ledger, built, options.sources)
    return Report(
        article=Article(
            origin=doc.origin,
            title=doc.title,
            text=doc.text,
            sentences=[SentenceSpan(n=s.n, start=s.start, end=s.end) for s in doc.sentences],
        ),
        summary=summary,
        claims=built,
        counter_claims=[
            CounterClaim(
                claim=ids[a],
                counter=ids[b],
                relation=rel,
                sentences=sorted(set(drafts[a].sentences + drafts[b].sentences)),
            )
            for a, b, rel in found
        ],
        warnings=warnings,
        meta=Meta(
            version=__version__,
            backend=backend.name,
            model=backend.model,
            prompts=dict(sorted(ledger.prompts.items())),
            usage=(total := ledger.total()),
            cost_usd=cost(backend.name, backend.model, total.prompt_tokens, total.completion_tokens),
            stages=ledger.stages,
            wall_time_s=round(time.perf_counter() - started, 3),
        ),
    )


def _opening(body: list[Sentence], budget: int) -> list[Sentence]:
    """For a long article, what later stages read: its opening sentences within the budget."""
    out, size = [], 0
    for s in body:
        size += estimate_tokens(s.text) + 3
        if size > budget:
            break
        out.append(s)
    return out


def _summarise(
    backend: Backend,
    ledger: Ledger,
    context: list[Sentence],
    drafts: list[DraftClaim],
    ids: list[str],
    options: Options,
) -> tuple[Summary, list[str]]:
    """The summary, and the sentences the model wrote it in (what the self-check judges)."""
    n_sentences = 2 if len(context) < 6 else 3
    task = render("summary.j2", sentences=n_sentences, words_each=max(8, options.summary_words // n_sentences))
    ledger.prompts[task.name] = task.hash
    answer = generate(
        backend,
        article_messages(context, task.text, ledger),
        SummaryAnswer,
        usage=ledger.stage("summary"),
        max_tokens=int(options.summary_words * 2.5) + 60,
        constraints={"sentences": {"minItems": n_sentences, "maxItems": n_sentences}},
    )
    claim_of = {n: i for i, d in enumerate(drafts) for n in d.sentences}
    key = [claim_of[n] for n in dict.fromkeys(answer.key) if n in claim_of]
    parts = [s.strip() for s in answer.sentences if s.strip()]
    summary = Summary(
        text=" ".join(parts),
        key_points=[KeyPoint(text=drafts[k].text, claims=[ids[k]]) for k in dict.fromkeys(key)],
    )
    return summary, parts


def _self_check(
    backend: Backend,
    ledger: Ledger,
    quoted: list[Sentence],
    context: list[Sentence],
    summary: Summary,
    parts: list[str],
    warnings: list[Warning],
) -> Summary:
    """Judge each summary sentence against the article; drop what the article does not support,
    and what merely restates a quote nobody in the article is said to have made. A summary sentence
    needs the consistency threshold, higher than a claim's (see verify.py)."""
    usage = ledger.stage("self_check")
    quotes = [s.text for s in quoted]
    kept: list[str] = []
    revisions: list[SummaryRevision] = []
    for text in parts:
        action: Literal["dropped", "kept"]
        echoed = next((q for q in quotes if signals.overlap(text, q) >= 0.6), None)
        judged = judge(backend, ledger, usage, text, context, threshold=CONSISTENCY_THRESHOLD)
        if echoed:
            action, reason = "dropped", "restates an unattributed quote as fact"
        elif judged.verdict != "supported":
            action, reason = (
                "dropped",
                f"P(supported) = {judged.p_supported}" if judged.p_supported is not None else judged.verdict,
            )
        else:
            action, reason = (
                "kept",
                f"P(supported) = {judged.p_supported}" if judged.p_supported is not None else "supported",
            )
        revisions.append(SummaryRevision(sentence=text, verdict=judged.verdict, action=action, reason=reason))
        if action == "kept":
            kept.append(text)
    dropped = len(revisions) - len(kept)
    if dropped:
        warnings.append(
            Warning(
                kind="summary_revised",
                message=f"{dropped} summary sentence(s) dropped by the self-check against the article",
            )
        )
    text = " ".join(kept)
    if not kept and summary.key_points:
        # Nothing survived: fall back to the key claims, each tied to its article sentences.
        text = " ".join(k.text for k in summary.key_points)
    return Summary(text=text, key_points=summary.key_points, revisions=revisions)


def _clip(text: str, limit: int = 140) -> str:
    """Shorten at a word boundary, marking the cut."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


def _warnings(doc: Document, quoted: list[Sentence]) -> list[Warning]:
    out: list[Warning] = []
    for s in quoted:
        out.append(
            Warning(kind="unattributed_quote", message=f"quote with no speaker: {_clip(s.text)}", sentences=[s.n])
        )
    if doc.boilerplate:
        text = " ".join(s.text for s in doc.boilerplate)
        out.append(
            Warning(
                kind="boilerplate",
                message=f"credit/boilerplate text ignored: {_clip(text, 160)}",
                sentences=[s.n for s in doc.boilerplate],
            )
        )
    for s in signals.injection_sentences(doc):
        out.append(
            Warning(
                kind="prompt_injection",
                message=f"text addressed to an AI model, treated as content: {_clip(s.text)}",
                sentences=[s.n],
            )
        )
    if doc.truncated:
        out.append(Warning(kind="truncated_input", message="the article was too long and was cut"))
    return out
