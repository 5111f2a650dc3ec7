"""Scorers: compare one report with one label file. They never crash on bad model output: an
unusable report scores zero with the reason, like any other wrong answer."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .. import attribution
from ..schemas import Report

MATCH_THRESHOLD = 0.5


@dataclass
class Scores:
    """Counts per article; metrics are computed over the sum of all articles (micro averages)."""

    counts: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, value: float = 1.0) -> None:
        self.counts[name] = self.counts.get(name, 0.0) + value


def _stem(word: str) -> str:
    return word[:-1] if word.endswith("s") and len(word) > 4 else word


def _content(text: str) -> set[str]:
    return {_stem(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2} - _STOP


_STOP = set(
    [
        "the",
        "and",
        "that",
        "this",
        "with",
        "from",
        "were",
        "was",
        "has",
        "have",
        "had",
        "for",
        "its",
        "their",
        "said",
        "says",
        "not",
        "but",
        "are",
    ]
)


def similarity(a: str, b: str) -> float:
    """Content-word F1: tolerant of word order and inflection, blind to meaning (see LABELLING.md)."""
    wa, wb = _content(a), _content(b)
    if not wa or not wb:
        return 0.0
    common = len(wa & wb)
    return 2 * common / (len(wa) + len(wb))


def _quote_span(article: str, quote: str) -> tuple[int, int] | None:
    start = article.find(quote)
    return (start, start + len(quote)) if start >= 0 else None


def align(report: Report, label: dict[str, Any]) -> list[tuple[int, int, float]]:
    """One-to-one pairs (predicted index, gold index, score), greedy by score.

    A predicted claim whose evidence covers the gold claim's quote is a strong match whatever its
    wording (0.6 + 0.4 × word overlap); otherwise the word overlap of the texts alone decides.
    """
    text = report.article.text
    scored = []
    for i, claim in enumerate(report.claims):
        spans = [(e.start, e.end) for e in claim.evidence]
        for j, gold in enumerate(label["claims"]):
            lexical = similarity(claim.text, gold["text"])
            span = _quote_span(text, gold.get("quote") or "")
            covered = 0.0
            if span:
                inside = sum(max(0, min(e, span[1]) - max(s, span[0])) for s, e in spans)
                covered = inside / max(1, span[1] - span[0])
            score = 0.6 + 0.4 * lexical if covered >= 0.5 else lexical
            if score >= MATCH_THRESHOLD:
                scored.append((score, i, j))
    pairs, used_p, used_g = [], set(), set()
    for score, i, j in sorted(scored, reverse=True):
        if i not in used_p and j not in used_g:
            used_p.add(i)
            used_g.add(j)
            pairs.append((i, j, score))
    return pairs


def _covers(spans: list[tuple[int, int]], quote: tuple[int, int] | None) -> bool:
    """At least half of the quote lies inside the spans (the rule `align` uses too)."""
    if quote is None:
        return False
    inside = sum(max(0, min(e, quote[1]) - max(s, quote[0])) for s, e in spans)
    return inside >= 0.5 * max(1, quote[1] - quote[0])


def match_counter_claims(report: Report, label: dict[str, Any]) -> list[tuple[int, int]]:
    """One-to-one (predicted link, gold pair) matches, judged by where the two sides are in the
    article: a link matches a gold pair when its two claims' evidence covers the pair's two quotes
    (either way round). By place rather than through the claim alignment, because one article
    sentence often holds two gold claims while the alignment gives each predicted claim one."""
    text = report.article.text
    spans = {c.id: [(e.start, e.end) for e in c.evidence] for c in report.claims}
    quote = {g["id"]: _quote_span(text, g.get("quote") or "") for g in label["claims"]}
    matches, used = [], set()
    for i, link in enumerate(report.counter_claims):
        a, b = spans.get(link.claim, []), spans.get(link.counter, [])
        for j, pair in enumerate(label["counter_claims"]):
            qa, qb = quote.get(pair["a"]), quote.get(pair["b"])
            if j not in used and (
                (_covers(a, qa) and _covers(b, qb)) or (_covers(a, qb) and _covers(b, qa))
            ):
                matches.append((i, j))
                used.add(j)
                break
    return matches


def score(report: Report | None, label: dict[str, Any], error: str | None = None) -> Scores:
    s = Scores()
    s.add("gold_claims", len(label["claims"]))
    s.add("articles")
    if report is None:
        s.notes.append(f"no report: {error}")
        s.add("failed_articles")
        return s
    text = report.article.text
    s.add("predicted_claims", len(report.claims))
    quotes = [e for c in report.claims for e in c.evidence]
    s.add("quotes", len(quotes))
    s.add("grounded_quotes", sum(text[e.start : e.end] == e.quote for e in quotes))

    pairs = align(report, label)
    s.add("matched_claims", len(pairs))
    for i, j, _ in pairs:
        claim, gold = report.claims[i], label["claims"][j]
        gold_name = gold["source"]["name"]
        ours = claim.source.name
        if ours is None or gold_name is None:
            same_source = ours is None and gold_name is None
        else:
            same_source = attribution.name_in(gold_name, ours) or attribution.name_in(ours, gold_name)
        s.add("source_correct", same_source)
        s.add("source_type_correct", claim.source.type == gold["source"]["type"])
        s.add("uncertainty_correct", claim.uncertainty.level == gold["uncertainty"])
        s.add("check_worthy_correct", claim.check_worthy.value == gold["check_worthy"])

    s.add("predicted_counter", len(report.counter_claims))
    s.add("gold_counter", len(label["counter_claims"]))
    s.add("matched_counter", len(match_counter_claims(report, label)))

    summary = report.summary.text
    for point in label["key_points"]:
        s.add("key_points")
        s.add("key_points_covered", _covered(point, summary))
    for statement in label["must_not_say"]:
        s.add("must_not_say")
        if _says(statement, summary):
            s.add("must_not_say_violations")
            s.notes.append(f"summary says: {statement}")

    predicted_warnings = {w.kind for w in report.warnings} & {
        "unsupported_headline",
        "unattributed_quote",
        "boilerplate",
        "prompt_injection",
    }
    gold_warnings = set(label["warnings"])
    s.add("predicted_warnings", len(predicted_warnings))
    s.add("gold_warnings", len(gold_warnings))
    s.add("matched_warnings", len(predicted_warnings & gold_warnings))
    return s


def _covered(point: str, summary: str) -> bool:
    """A key point counts as covered when most of its content words occur in one summary sentence."""
    words = _content(point)
    sentences = re.split(r"(?<=[.!?])\s+", summary)
    return bool(words) and any(len(words & _content(x)) / len(words) >= 0.5 for x in sentences)


def _says(statement: str, summary: str) -> bool:
    words = _content(statement)
    sentences = re.split(r"(?<=[.!?])\s+", summary)
    return bool(words) and any(len(words & _content(x)) / len(words) >= 0.7 for x in sentences)


def metrics(total: Scores) -> dict[str, float]:
    c = total.counts

    def ratio(a: str, b: str) -> float:
        return round(c.get(a, 0.0) / c[b], 4) if c.get(b) else 0.0

    precision, recall = ratio("matched_claims", "predicted_claims"), ratio("matched_claims", "gold_claims")
    cp, cr = ratio("matched_counter", "predicted_counter"), ratio("matched_counter", "gold_counter")
    wp, wr = ratio("matched_warnings", "predicted_warnings"), ratio("matched_warnings", "gold_warnings")
    return {
        "claim_precision": precision,
        "claim_recall": recall,
        "claim_f1": _f1(precision, recall),
        "source_accuracy": ratio("source_correct", "matched_claims"),
        "source_type_accuracy": ratio("source_type_correct", "matched_claims"),
        "uncertainty_agreement": ratio("uncertainty_correct", "matched_claims"),
        "check_worthy_accuracy": ratio("check_worthy_correct", "matched_claims"),
        "counter_claim_f1": _f1(cp, cr),
        "key_point_coverage": ratio("key_points_covered", "key_points"),
        "must_not_say_rate": ratio("must_not_say_violations", "must_not_say"),
        "warning_f1": _f1(wp, wr),
        "grounding_rate": ratio("grounded_quotes", "quotes") if c.get("quotes") else 1.0,
        "failed_articles": c.get("failed_articles", 0.0),
    }


def _f1(p: float, r: float) -> float:
    return round(2 * p * r / (p + r), 4) if p + r else 0.0
