"""Claim extraction: the model names sources and check-worthiness; Python does the rest.

Two styles. `sentence`: one claim per article sentence, its text the sentence itself, so a small
model spends its few tokens a second on attribution instead of copying text. `written`: the model
words decomposed, self-contained claims (for stronger models, where it pays).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from . import attribution, signals
from .answers import SentenceClaims, WrittenClaim, WrittenClaims
from .backends.base import Backend
from .documents import Document, Sentence
from .prompts import render
from .schemas import CheckWorthiness, Claim, Evidence, Source, SourceType, Uncertainty
from .structured import Ledger, generate
from .verify import article_messages

Style = Literal["sentence", "written"]


@dataclass
class DraftClaim:
    text: str
    sentences: list[int]
    source: str | None
    type: SourceType
    worthy: bool
    unworthy_reason: str | None = None


def min_claims(n_sentences: int) -> int:
    # The small model stops after one or two claims unless asked for more; most news sentences
    # carry at least one claim.
    return max(1, min(40, math.ceil(0.8 * n_sentences)))


def extract(backend: Backend, ledger: Ledger, doc: Document, part: list[Sentence], style: Style) -> list[DraftClaim]:
    written = style == "written"
    wanted = min_claims(len(part)) if written else len(part)
    task = render("extract.j2", min_claims=wanted, written=written)
    ledger.prompts[task.name] = task.hash
    answer_type: type[SentenceClaims] | type[WrittenClaims] = WrittenClaims if written else SentenceClaims
    answer = generate(
        backend,
        article_messages(part, task.text, ledger),
        answer_type,
        usage=ledger.stage("extract"),
        max_tokens=min(6000, (60 if written else 30) * wanted + 200),
        context={"sentences": {s.n for s in part}},
        constraints={"claims": {"minItems": wanted}, "claims.n": {"enum": [s.n for s in part]}},
    )
    unattributed = {s.n for s in signals.unattributed_quotes(doc)}
    drafts = []
    for c in answer.claims:
        text = c.text.strip() if isinstance(c, WrittenClaim) else doc.sentence(c.n).text
        source = _checked_source(doc, c.n, c.source.strip() or None, unattributed)
        # The model's flag can only take check-worthiness away: it says "worthy" to nearly anything.
        not_worthy = signals.not_checkable(text) if c.worthy else "judged opinion, prediction or background"
        drafts.append(
            DraftClaim(
                text=text,
                sentences=[c.n],
                source=source,
                type=attribution.source_type(source, getattr(c, "type", None), doc.sentence(c.n).text),  # type: ignore[arg-type]
                worthy=not_worthy is None,
                unworthy_reason=not_worthy,
            )
        )
    return drafts


def _checked_source(doc: Document, n: int, named: str | None, unattributed: set[int]) -> str | None:
    """Keep the model's source only if the article names it there; else read it off the cue."""
    if n in unattributed:
        return None  # a quote with no speaker: whatever the model guessed, the article names no one
    sentence = doc.sentence(n).text
    previous = doc.sentence(n - 1).text if n > 1 else ""
    if named and attribution.grounded_source(named, sentence, previous):
        return named
    return attribution.speaker_in_context(sentence, previous)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _similar(a: DraftClaim, b: DraftClaim) -> bool:
    wa, wb = _words(a.text), _words(b.text)
    overlap = len(wa & wb) / max(1, len(wa | wb))
    return overlap >= 0.8 or (bool(set(a.sentences) & set(b.sentences)) and overlap >= 0.5)


def merge(drafts: list[DraftClaim]) -> list[DraftClaim]:
    """Drop repeats: the same claim found twice in a chunk overlap, or restated by the model."""
    kept: list[DraftClaim] = []
    for d in drafts:
        twin = next((k for k in kept if _similar(k, d)), None)
        if twin is None:
            kept.append(d)
        else:
            twin.sentences = sorted(set(twin.sentences) | set(d.sentences))
    return sorted(kept, key=lambda d: d.sentences[0])


def evidence(doc: Document, numbers: list[int]) -> list[Evidence]:
    out = []
    for n in numbers:
        s = doc.sentence(n)
        quote = doc.text[s.start : s.end]
        if quote != s.text:  # cannot happen with our own splitter; never show an unverified quote
            raise AssertionError(f"sentence {n} offsets do not match the article")
        out.append(Evidence(sentence=n, quote=quote, start=s.start, end=s.end))
    return out


def build(doc: Document, cid: str, d: DraftClaim, opponents: list[str], unattributed: set[int]) -> Claim:
    """The report's claim: verified evidence, the attribution cue, check-worthiness and the
    uncertainty signals, all derived in Python from the draft and the article."""
    ev = evidence(doc, d.sentences)
    text = " ".join(e.quote for e in ev)
    found: list[str] = []
    level = 0
    if opponents:
        found.append(f"disputed inside the article ({', '.join(opponents)})")
        level = 2
    if signals.is_anonymous_source(d.source, text):
        found.append("anonymous source")
        level = 2
    quote_without_speaker = d.source is None and bool(set(d.sentences) & unattributed)
    if quote_without_speaker:
        found.append("quote with no speaker")
        level = 2
    hedges = signals.hedges_in(text)
    if hedges:
        found.append("hedged: " + ", ".join(hedges))
        level = max(level, 1)
    if level == 0 and d.source and d.type in ("person", "organization"):
        found.append(f"single source: {d.source}")
        level = 1
    if not found:
        found.append("uncontested in the article" if d.source else "stated by the article, uncontested")
    return Claim(
        id=cid,
        text=d.text,
        evidence=ev,
        source=Source(name=d.source, type=d.type, cue=signals.cue_in(text) if d.source else None),
        check_worthy=CheckWorthiness(value=d.worthy, reason=_worthy_reason(d)),
        uncertainty=Uncertainty(level=("low", "medium", "high")[level], signals=found),
    )


def _worthy_reason(d: DraftClaim) -> str:
    if not d.worthy:
        return d.unworthy_reason or "judged opinion, prediction or background"
    parts = []
    if re.search(r"\d", d.text):
        parts.append("states a specific figure")
    parts.append(f"factual assertion attributed to {d.source}" if d.source else "factual assertion")
    return "; ".join(parts)
