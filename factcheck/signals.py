"""Deterministic text signals: attribution cues, hedging, anonymity, unattributed quotes, injection.

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
_CUE_RE = re.compile(r"\b(" + "|".join(re.escape(c) for c in CUES) + r"|According to)\b")

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
_QUOTE = re.compile(r"“[^”]{3,}”|\"[^\"\n]{3,}\"")


def cue_in(text: str) -> str | None:
    """The first attribution cue in a piece of text, outside quotation marks."""
    match = _CUE_RE.search(_QUOTE.sub(" ", text))
    return match.group(1).lower() if match else None


def content_words(text: str) -> set[str]:
    """Lower-cased words of four letters or more: what two texts sharing a topic have in common."""
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 3}


def overlap(a: str, b: str) -> float:
    """Share of a's content words that also occur in b."""
    words_a = content_words(a)
    return len(words_a & content_words(b)) / max(1, len(words_a))


def hedges_in(text: str) -> list[str]:
    return sorted({m.group(0).lower() for m in _HEDGES.finditer(_QUOTE.sub(" ", text))})


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
        quotes = [q for q in _QUOTE.findall(s.text) if len(q.split()) >= 5]
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


# ---------------------------------------------------------------- sources

_MEDIA = re.compile(
    r"\b(television|tv|newspaper|radio|news|times|post|journal|gazette|herald|tribune|reuters|"
    r"broadcaster|magazine|bbc|cnn|daily|channel|outlet|newsflash|wire|courier|echo|chronicle|observer|"
    r"telegraph|dispatch|inquirer|examiner|guardian|reporters?|correspondents?)\b",
    re.I,
)
_GOVERNMENT = re.compile(
    r"\b(ministry|ministers?|department|pentagon|police|army|military|government|officials?|"
    r"president|secretary|spokes(man|woman|person)|council|mayor|prosecutors?|court|judge|senators?|"
    r"congress|parliament|cabinet|embassy|white house|kremlin|authorit(y|ies)|governor|commission)\b",
    re.I,
)
_DOCUMENT = re.compile(r"\b(report|study|survey|filing|document|paper|records|census|audit|analysis)\b", re.I)
_NAME_STOP = {"the", "a", "an", "of", "and", "one", "two", "some", "its", "his", "her", "their", "'s"}
_PRONOUN_CUE = re.compile(r"\b(he|she|they|it)\s+(" + "|".join(CUES) + r")\b", re.I)


_ORGANIZATION = re.compile(
    r"\b(union|company|group|university|institute|association|party|corp|inc|ltd|bank|foundation|"
    r"organi[sz]ation|charity|club|committee|firm|airline|hospital|school|society|federation|"
    r"coalition|campaign|network|alliance|league|board|fund|trust|centre|center|lab|laboratory|"
    r"organisers|organizers|researchers|scientists|economists|analysts|industry|chamber)\b",
    re.I,
)


def source_type(name: str | None, guess: str | None = None, sentence: str = "") -> str:
    """The capacity a source speaks in. Keyword rules where the name says it plainly; then the
    role the sentence gives a named person ("Finance Minister Ana Ruiz", "Ana Ruiz, the council's
    finance director,"); then the model's guess, if any; else a private person."""
    if not name:
        return "unattributed"
    kind = (
        _kind_by_keywords(name)
        or ("government" if _names_a_country(name) else None)
        or _kind_by_keywords(_role(name, sentence))
    )
    return kind or (guess if guess and guess != "unattributed" else "person")


def _kind_by_keywords(text: str) -> str | None:
    if _MEDIA.search(text):
        return "media"
    if _DOCUMENT.search(text) and not _GOVERNMENT.search(text):
        return "document"
    if _GOVERNMENT.search(text):
        return "government"
    if _ORGANIZATION.search(text):
        return "organization"
    return None


def _names_a_country(name: str) -> bool:
    """ "The US", "Russia", "Turkey and allies"; not "Jordan Peterson" (a capital follows)."""
    from .countries import COUNTRIES

    words = name.split()
    if words and words[0].lower() == "the":
        words = words[1:]
    for n in (3, 2, 1):  # the longest country name the source starts with
        head = re.sub(r"[’']s$", "", " ".join(words[:n]))
        if len(words) >= n and head in COUNTRIES:
            return not words[n:] or not words[n][:1].isupper()
    return False


def _role(name: str, sentence: str) -> str:
    """The words that give a named person's role: a title just before the name ("Finance Minister
    Ana Ruiz"), a phrase set off before it ("The council's finance director, Ana Ruiz,") or an
    appositive after it ("Ana Ruiz, the council's finance director,")."""
    words = _name_words(name)
    first = re.search(r"\b" + re.escape(words[0]), sentence, re.I) if words else None
    last = re.search(r"\b" + re.escape(words[-1]) + r"[\w’']*", sentence, re.I) if words else None
    if not first or not last:
        return ""
    before = sentence[: first.start()].rstrip()
    role = " ".join(before[:-1].split(",")[-1].split()[-5:]) if before.endswith(",") else " ".join(before.split()[-3:])
    after = re.match(r"\s*,([^,]{3,80}),", sentence[last.end() :])
    return f"{role} {after.group(1) if after else ''}"


def _name_words(name: str) -> list[str]:
    words = re.findall(r"[\w’']+", name.lower())
    return [w for w in words if w not in _NAME_STOP and len(w) > 1]


def name_in(name: str, text: str) -> bool:
    """Most of the name's words appear in the text ("US officials" ~ "United States officials")."""
    words = _name_words(name)
    if not words:
        return False
    present = sum(1 for w in words if re.search(r"\b" + re.escape(w), text.lower()))
    return present * 2 > len(words) or (
        len(words) == 2 and present == 1 and len(words[1]) > 3 and words[1] in text.lower()
    )


def speaker_in_context(sentence: str, previous: str) -> str | None:
    """speaker(sentence); for "she said" / "he added", the speaker the sentence before names."""
    found = speaker(sentence)
    if found is None and _PRONOUN_CUE.search(_QUOTE.sub(" ", sentence)):
        found = speaker(previous)
    return found


def grounded_source(name: str | None, sentence: str, previous: str) -> bool:
    """A source the model names must appear in the sentence, or in the previous one when this
    sentence only says "he said": the model's attribution is data to check, not to trust."""
    if not name:
        return True
    if name_in(name, sentence):
        return True
    return bool(_PRONOUN_CUE.search(sentence)) and name_in(name, previous)


def speaker(sentence: str) -> str | None:
    """The words right before an attribution cue, or after "according to" (a fallback)."""
    plain = _QUOTE.sub(" ", sentence)
    m = re.search(r"\b[Aa]ccording to ([^,.;]+)", plain)
    if m:
        return m.group(1).strip()
    m = re.search(r"\b[Aa]s ([A-Z][^,]+?) (noted|reported|said|wrote)\b", plain)
    if m:
        return m.group(1).strip()
    m = _CUE_RE.search(plain)
    if not m:
        return None
    subject = plain[: m.start()].rstrip()
    if not subject.strip(" ,.;:“”\"'"):  # inverted: “…,” said Chief Executive Ana Ruiz
        return _name_after(plain[m.end() :])
    if subject.endswith(","):  # set off by commas: "Its chair, Ana Ruiz, said" / "Ana Ruiz, a lawyer, said"
        parts = [p for p in subject[:-1].split(",")[-3:] if p.strip()]
        for part in reversed(parts):
            name = _trailing_name(part.split())
            if name:
                return name
        subject = ",".join(p for p in parts if not re.match(r"\s*(who|which|that)\b", p))
    before = re.split(r"[,;:“”\"]|\b(?:which|that|who|but)\b", subject)[-1]
    words = before.split()[-7:]
    while words and words[-1].lower() in _AUXILIARIES:
        words.pop()
    if not words or words[-1].lower() in ("he", "she", "they", "it", "we", "i", "you", "this"):
        return None
    run = _trailing_run(words)  # capitalised words at the end are a name: "Defense Secretary Ash Carter"
    if len(run) >= 2 or (run and len(run) == len(words)):
        return " ".join(run)
    return " ".join(words[-3:])  # a common noun phrase: "Russia's defence ministry", "police"


_NAME_JOINERS = ("of", "and", "for", "de", "al")  # lower-case words inside a name: "Bank of England"


def _trailing_run(words: list[str]) -> list[str]:
    """The capitalised words (and joiners between them) that end `words`."""
    run: list[str] = []
    for w in reversed(words):
        if not (w[:1].isupper() or (run and w.lower() in _NAME_JOINERS)):
            break
        run.insert(0, w)
    return run


def _trailing_name(words: list[str]) -> str | None:
    """A run of two or more capitalised words at the end: "Its chair, Ana Ruiz" -> "Ana Ruiz"."""
    run = _trailing_run(words)
    return " ".join(run) if len(run) >= 2 else None


def _bare(word: str) -> str:
    return re.split(r"[’']", word.strip(",.;:"))[0]


def _name_after(text: str) -> str | None:
    """The name after an inverted cue: "said the company's director, Ana Ruiz." -> "Ana Ruiz"."""
    words = text.split()[:12]
    start = next((i for i, w in enumerate(words) if w[:1].isupper() and _bare(w) not in _NOT_NAMES), None)
    if start is None or start > 6:
        return None
    run: list[str] = []
    for w in words[start:]:
        if not (w[:1].isupper() or (run and w.lower() in _NAME_JOINERS)):
            break
        run.append(w.rstrip(",.;:"))
        if w[-1] in ",.;:":
            break
    return " ".join(run) or None


_AUXILIARIES = {
    "has",
    "have",
    "had",
    "was",
    "were",
    "is",
    "are",
    "been",
    "would",
    "will",
    "also",
    "later",
    "previously",
    "publicly",
    "repeatedly",
    "then",
}


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
_NOT_NAMES = set(
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
        if name not in _NOT_NAMES and name[:4].lower() not in lowered:
            missing.append(name)
    return missing
