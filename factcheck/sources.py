"""Check an article's claims against other documents (`summarize --sources`).

BM25 over passages of three sentences finds, for each check-worthy claim, the most relevant
passage of each source document; the judge then says whether it supports or contradicts the claim.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

from . import documents
from .backends.base import Backend
from .documents import Document, Sentence
from .errors import InputError
from .schemas import Claim, Evidence, SourceVerdict
from .structured import Ledger
from .verify import judge

PASSAGE = 3  # sentences per passage, sliding by one


def load_sources(paths: list[str]) -> list[Document]:
    files: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files += sorted(str(f) for f in path.iterdir() if f.suffix.lower() in (".txt", ".md", ".html", ".htm"))
        else:
            files.append(p)
    if not files:
        raise InputError("--sources names no readable documents")
    return [documents.load(f) for f in files]


def _terms(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2]


class BM25:
    """Okapi BM25 (k1 = 1.5, b = 0.75) over a fixed list of passages."""

    def __init__(self, passages: list[str], k1: float = 1.5, b: float = 0.75):
        self.docs = [Counter(_terms(p)) for p in passages]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.avg = sum(self.lengths) / max(1, len(self.docs))
        df = Counter(t for d in self.docs for t in d)
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        self.k1, self.b = k1, b

    def scores(self, query: str) -> list[float]:
        out = []
        for doc, length in zip(self.docs, self.lengths, strict=True):
            s = 0.0
            for t in set(_terms(query)):
                f = doc.get(t, 0)
                if f:
                    s += self.idf[t] * f * (self.k1 + 1) / (f + self.k1 * (1 - self.b + self.b * length / self.avg))
            out.append(s)
        return out


def _passages(doc: Document) -> list[list[Sentence]]:
    body = doc.body or doc.sentences
    return [body[i : i + PASSAGE] for i in range(max(1, len(body) - PASSAGE + 1))]


def attach_verdicts(backend: Backend, ledger: Ledger, claims: list[Claim], sources: list[Document]) -> None:
    """Add a verdict from each source's best passage to every check-worthy claim."""
    usage = ledger.stage("sources")
    indexed = [(doc, _passages(doc)) for doc in sources]
    indexes = [BM25([" ".join(s.text for s in p) for p in passages]) for _, passages in indexed]
    for claim in claims:
        if not claim.check_worthy.value:
            continue
        for (doc, passages), index in zip(indexed, indexes, strict=True):
            scores = index.scores(claim.text)
            best = max(range(len(scores)), key=scores.__getitem__)
            if scores[best] <= 0:
                continue  # the source does not talk about this at all
            passage = passages[best]
            judged = judge(backend, ledger, usage, claim.text, passage)
            if judged.verdict == "not_enough_info":
                continue
            claim.verdicts.append(
                SourceVerdict(
                    document=doc.origin,
                    verdict=judged.verdict,
                    confidence=judged.confidence if judged.confidence is not None else 0.5,
                    evidence=[
                        Evidence(sentence=s.n, quote=doc.text[s.start : s.end], start=s.start, end=s.end)
                        for s in passage
                        if doc.text[s.start : s.end] == s.text
                    ],
                )
            )
