"""Who says it: the speaker an attribution cue names, and the capacity they speak in.

The model's attribution is data to check, not to trust: a source must appear in its sentence, and
when the model names none the speaker is read off the cue ("Its chair, Ana Ruiz, said").
"""

from __future__ import annotations

import re

from .signals import CUE_RE, CUES, NOT_NAMES, QUOTE_RE

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
    if found is None and _PRONOUN_CUE.search(QUOTE_RE.sub(" ", sentence)):
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
    plain = QUOTE_RE.sub(" ", sentence)
    m = re.search(r"\b[Aa]ccording to ([^,.;]+)", plain)
    if m:
        return m.group(1).strip()
    m = re.search(r"\b[Aa]s ([A-Z][^,]+?) (noted|reported|said|wrote)\b", plain)
    if m:
        return m.group(1).strip()
    m = CUE_RE.search(plain)
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
    start = next((i for i, w in enumerate(words) if w[:1].isupper() and _bare(w) not in NOT_NAMES), None)
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
