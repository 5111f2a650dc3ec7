"""Deterministic text signals: attribution cues, hedging, anonymity, unattributed quotes, injection,
check-worthiness and the details a statement adds. Who is speaking is attribution.py.

These are Python's job, not the model's: they are cheap, repeatable and explainable.
"""

from __future__ import annotations

import re

from .documents import Document, Sentence

CUES = (
    "according to",
    "said",
    "says",
    "say",
    "told",
    "tells",
    "denied",
    "denies",
    "deny",
    "claimed",
    "claims",
    "warned",
    "warns",
    "announced",
    "announces",
    "reported",
    "reports",
    "noted",
    "notes",
    "confirmed",
    "confirms",
    "insisted",
    "insists",
    "argued",
    "argues",
    "stated",
    "states",
    "added",
    "alleged",
    "alleges",
    "vowed",
    "estimated",
    "estimates",
    "acknowledged",
    "admitted",
    "rejected",
    "disputed",
    "disputes",
    "suggested",
    "suggests",
    "wrote",
    "writes",
    "believes",
    "believed",
    "testified",
    "accused",
    "accuses",
    "predicted",
    "predicts",
    "found",
    "showed",
    "shows",
    "maintained",
    "maintains",
    "countered",
    "explained",
    "described",
    "called",
    "boasted",
)
# Case-sensitive on purpose: "United States officials" must not read as the cue "states".
CUE_RE = re.compile(r"\b(" + "|".join(re.escape(c) for c in CUES) + r"|According to)\b")

_HEDGES = re.compile(
    r"\b(may|might|could|possibly|perhaps|reportedly|allegedly|apparently|appears? to|seem(s|ed)? to|"
    r"suggest(s|ed|ing)?|likely|unlikely|unclear|unconfirmed|unverified|preliminary|estimated?|"
    r"believed to|thought to|not (yet )?peer[- ]reviewed|early (data|results|findings)|small study|"
    r"expected to|projected|rumou?red|claimed)\b",
    re.I,
)
_ANONYMOUS_SOURCE = re.compile(
    r"^(an?|one|two|three|several|some|many|other|senior|unnamed|anonymous)?\s*"
    r"(\w+\s+)?(officials?|sources?|persons?|people|diplomats?|aides?|insiders?|employees?|"
    r"executives?|witnesses?|residents?|analysts?|observers?)$",
    re.I,
)
_ANONYMITY_PHRASES = re.compile(
    r"(asked not to be (named|identified)|on condition of anonymity|familiar with (the|its|his|her)|"
    r"speaking anonymously|who (did not|declined to) (give|be) (his|her|their)? ?name|"
    r"sources (said|say|told)|not authori[sz]ed to speak)",
    re.I,
)
_INJECTION = re.compile(
    r"(ignore (all |any )?(the )?(previous|prior|above|earlier) (instructions|prompts?)|"
    r"disregard (all |any )?(the )?(previous|prior|above) |you are now (a|an) |"
    r"(reveal|print) (your|the) system prompt|as an ai (language )?model, you must)",
    re.I,
)
QUOTE_RE = re.compile(r"“[^”]{3,}”|\"[^\"\n]{3,}\"")


def cue_in(text: str) -> str | None:
    """The first attribution cue in a piece of text, outside quotation marks."""
    match = CUE_RE.search(QUOTE_RE.sub(" ", text))
    return match.group(1).lower() if match else None


def content_words(text: str) -> set[str]:
    """Lower-cased words of four letters or more: what two texts sharing a topic have in common."""
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 3}


def overlap(a: str, b: str) -> float:
    """Share of a's content words that also occur in b."""
    words_a = content_words(a)
    return len(words_a & content_words(b)) / max(1, len(words_a))


def hedges_in(text: str) -> list[str]:
    return sorted({m.group(0).lower() for m in _HEDGES.finditer(QUOTE_RE.sub(" ", text))})


def is_anonymous_source(name: str | None, evidence_text: str) -> bool:
    if name and _ANONYMOUS_SOURCE.match(name.strip()):
        return True
    return bool(_ANONYMITY_PHRASES.search(evidence_text))


def unattributed_quotes(doc: Document) -> list[Sentence]:
    """Sentences holding a quote of five words or more with no speaker named.

    A quote counts as attributed when its sentence has a cue outside the quotation marks, when the
    sentence before ends with a colon ("She said:"), or when the quote runs on into a following
    sentence that carries the cue (“A. B,” she said.).
    """
    body = doc.body
    found = []
    for i, s in enumerate(body):
        quotes = [q for q in QUOTE_RE.findall(s.text) if len(q.split()) >= 5]
        opens = s.text.count("“") > s.text.count("”")  # a quote continued in the next sentence
        if not quotes and not (opens and len(s.text.split()) >= 5):
            continue
        if cue_in(s.text):
            continue
        prev = body[i - 1].text if i > 0 else ""
        if prev.rstrip().endswith(":") and cue_in(prev):
            continue
        if opens and i + 1 < len(body) and cue_in(body[i + 1].text):
            continue
        found.append(s)
    return found


def injection_sentences(doc: Document) -> list[Sentence]:
    return [s for s in doc.sentences if _INJECTION.search(s.text)]


# ---------------------------------------------------------------- check-worthiness

# A 1.5B model calls nearly every sentence check-worthy (ClaimBuster dev sample: balanced accuracy
# 0.45). What makes a statement checkable is visible in its words: a figure or quantity, a named
# party, a reported event; what makes it not is a first-person opinion, wish or promise, or a
# question. These cues decide (README: check-worthiness benchmarks).
_QUANTITY = re.compile(
    r"\d|\b(million|billion|trillion|thousand|hundred|percent|half|twice|doubled|tripled|dozens?|"
    r"one|two|three|four|five|six|seven|eight|nine|ten|first|second|third|last|most|least|majority|"
    r"every|all|none|no one|nobody)\b",
    re.I,
)
_NAMED = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-zA-Z]+")  # a capital inside the sentence
_EVENT = re.compile(
    r"\b(was|were|has been|have been|had|did|said|announced|reported|found|rose|fell|increased|"
    r"decreased|killed|died|voted|passed|signed|cut|raised|lost|won|closed|opened|grew|dropped)\b",
    re.I,
)
_OPINION = re.compile(
    r"^\s*(I|we)\s+(think|believe|feel|hope|want|will|would|must|should|can|need|am going|are going)\b"
    r"|\b(I think|I believe|I hope|in my opinion|we must|we should|we need to|we can|we will|let me|"
    r"let's|thank you)\b|\?\s*$",
    re.I,
)


def not_checkable(text: str) -> str | None:
    """Why a statement is not worth checking, or None when it is."""
    if _OPINION.search(text):
        return "a first-person opinion, wish or promise, or a question"
    if len(text.split()) < 6:
        return "too short to state a checkable fact"
    if not (_QUANTITY.search(text) or _NAMED.search(text) or _EVENT.search(text)):
        return "no figure, named party or reported event to check"
    return None


# ---------------------------------------------------------------- details a statement adds

_NUMBER = re.compile(r"\b\d[\d,]*(?:\.\d+)?\b")
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]{2,}\b")
NOT_NAMES = set(
    [
        "The",
        "This",
        "That",
        "These",
        "Those",
        "There",
        "Their",
        "They",
        "Then",
        "When",
        "While",
        "After",
        "Before",
        "During",
        "However",
        "But",
        "And",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
        "Mr",
        "Mrs",
        "Ms",
        "Dr",
    ]
)


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(text)}


def missing_details(statement: str, evidence: str) -> list[str]:
    """Numbers and proper names in the statement that the evidence never mentions: a summary or
    claim that adds them cannot be fully supported, whatever a small model's judgement says."""
    missing = sorted(_numbers(statement) - _numbers(evidence))
    words = statement.split()
    if sum(w[:1].isupper() for w in words) > 0.6 * len(words):
        return missing  # Title Case (a headline): capitals say nothing about names
    lowered = evidence.lower()
    for name in dict.fromkeys(_NAME.findall(statement)):
        if name not in NOT_NAMES and name[:4].lower() not in lowered:
            missing.append(name)
    return missing
