"""Counter-claims inside an article: denials and figures that cannot both be true.

Denials: Python finds a denial cue and the model says which earlier sentence is denied, a few
tokens a small model gets right far more often than listing every opposing pair at once. Figures
that cannot both be true are found in Python (see _figure_conflicts).
"""

from __future__ import annotations

import re

from .answers import Target
from .backends.base import Backend
from .claims import DraftClaim
from .documents import Document, Sentence, estimate_tokens
from .prompts import render
from .schemas import Relation
from .structured import Ledger, generate
from .verify import article_messages

_DENIAL = re.compile(
    r"\b(den(y|ies|ied|ial)|reject(s|ed)?|dismiss(es|ed)?|disput(e|es|ed)|refut(e|es|ed)|"
    r"rebut(s|ted)?|contradict(s|ed)?|not true|false|baseless|categorically)\b",
    re.I,
)
_STOP = set(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "with",
        "from",
        "by",
        "that",
        "this",
        "these",
        "those",
        "was",
        "were",
        "is",
        "are",
        "be",
        "been",
        "has",
        "have",
        "had",
        "it",
        "its",
        "their",
        "they",
        "them",
        "he",
        "she",
        "his",
        "her",
        "said",
        "says",
        "say",
        "would",
        "will",
        "could",
        "may",
        "might",
        "about",
        "after",
        "before",
        "over",
        "under",
        "than",
        "more",
        "most",
        "also",
        "into",
        "during",
        "which",
        "who",
        "what",
        "when",
        "where",
        "while",
        "not",
        "no",
        "all",
        "any",
        "some",
        "such",
        "per",
        "cent",
        "percent",
    ]
)
MAX_FIGURE_PAIRS = 3


def find(
    backend: Backend, ledger: Ledger, doc: Document, context: list[Sentence], drafts: list[DraftClaim]
) -> list[tuple[int, int, Relation]]:
    """(original claim index, opposing claim index, relation) triples."""
    by_sentence = {n: i for i, d in enumerate(drafts) for n in d.sentences}
    found: dict[tuple[int, int], tuple[int, int, Relation]] = {}
    for i, d in enumerate(drafts):
        if not _DENIAL.search(doc.sentence(d.sentences[0]).text):
            continue
        target = _denied_claim(backend, ledger, doc, context, d, by_sentence)
        if target is not None and target != i:
            found.setdefault(_key(target, i), (target, i, "denies"))
    for a, b in _figure_conflicts(drafts):
        found.setdefault(_key(a, b), (a, b, "contradicts"))
    return sorted(found.values())


def _key(a: int, b: int) -> tuple[int, int]:
    return (min(a, b), max(a, b))


def _window(context: list[Sentence], body: list[Sentence], n: int, budget: int) -> list[Sentence]:
    """What the model reads to find what sentence n denies: the shared context when it holds
    sentence n (its cache is warm), else the sentences just before n within the budget."""
    if any(s.n == n for s in context):
        return context
    before = [s for s in body if s.n <= n]
    out: list[Sentence] = []
    size = 0
    for s in reversed(before):
        size += estimate_tokens(s.text) + 3
        if out and size > budget:
            break
        out.insert(0, s)
    return out


def _denied_claim(backend, ledger, doc, context, d, by_sentence) -> int | None:  # type: ignore[no-untyped-def]
    n = d.sentences[0]
    task = render("target.j2", n=n, sentence=doc.sentence(n).text)
    ledger.prompts[task.name] = task.hash
    context = _window(context, doc.body, n, max(400, sum(estimate_tokens(s.text) + 3 for s in context)))
    shown = {s.n for s in context}
    earlier = [m for m in sorted(by_sentence) if m < n and m in shown]
    if not earlier:
        return None
    answer = generate(
        backend,
        article_messages(context, task.text, ledger),
        Target,
        usage=ledger.stage("links"),
        max_tokens=20,
        constraints={"target": {"enum": [0, *earlier]}},  # denials answer what came before
    )
    if answer.target not in by_sentence:
        return None  # 0, itself, or a sentence with no claim: nothing to link
    return by_sentence[answer.target]


_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
    "fifty|hundred|hundreds|thousand|thousands|dozen|dozens|million|millions"
)
_FIGURE = re.compile(r"\b(\d[\d,.]*\d|\d|" + _NUMBER_WORDS + r")((?:\s+[\w’'-]+){0,3})", re.I)
_SMALL = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
_WORD_VALUES = {w: v for v, w in enumerate(_SMALL)}
_WORD_VALUES.update(twenty=20, thirty=30, forty=40, fifty=50, dozen=12, hundred=100, thousand=1000, million=10**6)


def _value(figure: str) -> float | str:
    """ "2,400" and "2400" and "four" and "4" are the same figure."""
    figure = figure.lower()
    if figure in _WORD_VALUES:
        return float(_WORD_VALUES[figure])
    try:
        return float(figure.replace(",", ""))
    except ValueError:
        return figure


def _has_figure(text: str) -> bool:
    return bool(_FIGURE.search(text))


_RESTATED = re.compile(r"\b(the|that|this|its own) (number|figure|estimate|count|total|toll|tally)\b", re.I)


def _figures(text: str) -> dict[str, str]:
    """unit -> figure: "four Russian cruise missiles" -> {"missile": "four"}; the unit is the first
    plural noun within three words of the number, else the first lower-case word."""
    out: dict[str, str] = {}
    for m in _FIGURE.finditer(text):
        words = [w for w in m.group(2).split() if w.islower() and w not in _STOP]
        plural = [w for w in words if w.endswith("s") and len(w) > 3]
        unit = (plural or words or [""])[0].rstrip("s")
        if len(unit) > 2:
            out.setdefault(unit, m.group(1))
    return out


def _figure_conflicts(drafts: list[DraftClaim]) -> list[tuple[int, int]]:
    """Two sources giving different figures for the same unit (200 protesters vs 5,000 protesters).

    Deterministic on purpose: the embedded model could not tell such pairs from compatible ones
    (its probabilities sat near 0.5 for both), and a unit match with a different figure from a
    different source is exactly what a reader should be shown."""
    figures = [_figures(d.text) for d in drafts]
    pairs = []
    for a in range(len(drafts)):
        for b in range(a + 1, len(drafts)):
            if drafts[a].source and drafts[a].source == drafts[b].source:
                continue
            shared = set(figures[a]) & set(figures[b])
            same_unit = any(_value(figures[a][u]) != _value(figures[b][u]) for u in shared)
            # "The union said 2,400 joined. The port put the number at 900.": the next sentence
            # gives its own figure for "the number" the previous one stated.
            restated = (
                _has_figure(drafts[a].text)
                and _has_figure(drafts[b].text)
                and drafts[b].sentences[0] - drafts[a].sentences[-1] == 1
                and _RESTATED.search(drafts[b].text)
            )
            if same_unit or restated:
                pairs.append((a, b))
    return pairs[:MAX_FIGURE_PAIRS]
