"""Load an article (file, stdin, HTML, URL), normalise it, number its sentences, chunk it."""

from __future__ import annotations

import re
import sys
import threading
import unicodedata
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError

MAX_CHARS = 400_000  # about 60k words; longer input is cut and the report warns about it
FETCH_TIMEOUT_S = 20


@dataclass(frozen=True)
class Sentence:
    n: int  # 1-based number the model sees
    start: int
    end: int
    text: str


@dataclass
class Document:
    origin: str
    text: str  # normalised; every offset in a report points into this
    title: str | None = None
    sentences: list[Sentence] = field(default_factory=list)
    boilerplate: list[Sentence] = field(default_factory=list)
    truncated: bool = False

    def sentence(self, n: int) -> Sentence:
        return self.sentences[n - 1]

    @property
    def body(self) -> list[Sentence]:
        """Sentences the model should read: everything but the headline and boilerplate."""
        skip = {s.n for s in self.boilerplate}
        return [s for s in self.sentences if s.n not in skip and not self.is_title(s)]

    def is_title(self, s: Sentence) -> bool:
        return self.title is not None and s.n == 1 and s.text == self.title


# ---------------------------------------------------------------- reading


def read_source(origin: str) -> tuple[bytes, bool]:
    """Return the raw bytes and whether they are HTML."""
    if origin == "-":
        data = sys.stdin.buffer.read()
        return data, _looks_like_html(data)
    if re.match(r"^https?://", origin, re.I):
        return _fetch(origin)
    path = Path(origin)
    if not path.exists():
        raise InputError(f"no such file: {origin}")
    if path.is_dir():
        raise InputError(f"{origin} is a directory, not an article")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {origin}: {exc.strerror}") from exc
    html = path.suffix.lower() in {".html", ".htm", ".xhtml"} or _looks_like_html(data)
    return data, html


def _fetch(url: str) -> tuple[bytes, bool]:
    request = urllib.request.Request(url, headers={"User-Agent": "factcheck/0.1"})
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response:
            data = response.read(MAX_CHARS * 8)
            ctype = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        raise InputError(f"could not fetch {url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(f"could not fetch {url}: {reason}") from exc
    return data, "html" in ctype.lower() or _looks_like_html(data)


def _looks_like_html(data: bytes) -> bool:
    head = data[:2048].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<body" in head


def decode(data: bytes, origin: str) -> str:
    for bom, codec in (
        (b"\xff\xfe\x00\x00", "utf-32"),
        (b"\x00\x00\xfe\xff", "utf-32"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    ):
        if data.startswith(bom):  # a byte-order mark: Windows "Unicode" text, not binary
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                break
    if b"\x00" in data[:8192]:
        raise InputError(f"{origin} looks like a binary file, not an article")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    results = from_bytes(data)
    best = results.best()
    if best is None:
        raise InputError(f"{origin}: cannot detect the text encoding")
    # On a tie charset-normalizer may pick a Central European code page for Western text;
    # cp1252 is by far the likelier one for news in Latin script.
    tied = [r for r in results if r.chaos == best.chaos and r.encoding in ("cp1252", "latin_1", "iso8859_15")]
    return str(tied[0]) if tied else str(best)


def html_to_text(html: str) -> tuple[str, str | None]:
    """Main text and title of a web page; scripts, navigation and boilerplate dropped."""
    import trafilatura

    text = trafilatura.extract(html, include_comments=False, include_tables=False)
    meta = trafilatura.extract_metadata(html)
    title = meta.title if meta is not None else None
    return text or "", title


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[^\S\n]+", " ", text)  # fold spaces and tabs, keep line breaks
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def load(origin: str, *, max_chars: int = MAX_CHARS) -> Document:
    data, is_html = read_source(origin)
    raw = decode(data, origin)
    title = None
    if is_html:
        raw, title = html_to_text(raw)
    text = normalise(raw)
    return make_document(text, origin=origin, title=title, max_chars=max_chars)


def make_document(text: str, *, origin: str = "-", title: str | None = None, max_chars: int = MAX_CHARS) -> Document:
    text = normalise(text)
    truncated = len(text) > max_chars
    if truncated:
        cut = text.rfind("\n", 0, max_chars)
        text = text[: cut if cut > max_chars // 2 else max_chars].rstrip()
    if not text or not re.search(r"\w", text):
        raise InputError(f"{origin}: the article is empty")
    doc = Document(origin=origin, text=text, truncated=truncated)
    doc.sentences = split_sentences(text)
    doc.title = title if title is not None else detect_headline(text)
    doc.boilerplate = detect_boilerplate(doc)
    return doc


# ---------------------------------------------------------------- sentences


_segmenters = threading.local()


def _segmenter():  # type: ignore[no-untyped-def]
    # One per thread: a shared pysbd segmenter gives wrong sentences under concurrent batch runs.
    segmenter = getattr(_segmenters, "segmenter", None)
    if segmenter is None:
        import pysbd

        segmenter = _segmenters.segmenter = pysbd.Segmenter(language="en", clean=False)
    return segmenter


def split_sentences(text: str) -> list[Sentence]:
    """Numbered sentences with offsets; paragraphs never share a sentence."""
    out: list[Sentence] = []
    for para in re.finditer(r"[^\n]+(?:\n[^\n]+)*", text):
        cursor = para.start()
        for piece in _segmenter().segment(para.group()):
            piece = piece.strip()
            if not piece:
                continue
            start = text.find(piece, cursor, para.end())
            if start < 0:  # pysbd altered the text; fall back to the rest of the paragraph
                start, piece = cursor, text[cursor : para.end()].strip()
            end = start + len(piece)
            out.append(Sentence(len(out) + 1, start, end, piece))
            cursor = end
    return out


# ---------------------------------------------------------------- headline and boilerplate


def detect_headline(text: str) -> str | None:
    """A first line that is short, unpunctuated and followed by a blank line is a headline."""
    first, sep, rest = text.partition("\n\n")
    if not sep or "\n" in first or not rest.strip():
        return None
    words = first.split()
    if 2 <= len(words) <= 20 and not re.search(r"[.!?\"”:]$", first):
        return first
    return None


_CREDIT = re.compile(
    r"^(reporting by|additional reporting by|editing by|writing by|compiled by|"
    r"(photo(graph)?s?|image|pictures?|video|credit|source|related|read more|more)\s*[:/|]|"
    r"copyright\b|©|\(c\) ?\d{4}|all rights reserved|share (this|on)\b|sign up\b|"
    r"subscribe (to|now|here|for)\b|follow (us|me)\b|click here\b|advertisement$)",
    re.I,
)
_AGENCY = re.compile(
    r"\b(Reuters|Associated Press|AP|AFP|Agence France-Presse|Getty Images|EPA|PA Media|Bloomberg|"
    r"Xinhua|Shutterstock|Staff Writer)\b"
)


_ATTRIBUTION_CUE = re.compile(r"\b(said|says|told|denied|reported|according to|announced|confirmed)\b")


def detect_boilerplate(doc: Document) -> list[Sentence]:
    """Credit lines, bylines and share/subscribe prompts, mostly at the end of an article.

    A trailing short paragraph that carries a credit or an agency name is boilerplate as a whole,
    so stray words beside the credit ("Careful now. Reuters Eric Vidal") go with it.
    """
    found: dict[int, Sentence] = {}
    paragraphs = [m.span() for m in re.finditer(r"[^\n]+(?:\n[^\n]+)*", doc.text)]
    for s in doc.sentences:
        words = s.text.split()
        credit = _CREDIT.match(s.text) or re.search(r"©|all rights reserved", s.text, re.I)
        if len(words) <= 25 and credit:
            found[s.n] = s
    if paragraphs and len(paragraphs) > 1:
        start, end = paragraphs[-1]
        last = doc.text[start:end]
        statement = _ATTRIBUTION_CUE.search(last)  # "The ministry denied it, Reuters said." is news
        if len(last.split()) <= 12 and not statement and (_AGENCY.search(last) or _CREDIT.search(last)):
            for s in doc.sentences:
                if s.start >= start:
                    found[s.n] = s
    return sorted(found.values(), key=lambda s: s.n)


# ---------------------------------------------------------------- chunks


def estimate_tokens(text: str) -> int:
    # No tokenizer download: about four characters a token for English news prose.
    return len(text) // 4 + 1


def chunk(sentences: list[Sentence], *, max_tokens: int = 1400, overlap: int = 1) -> list[list[Sentence]]:
    """Whole sentences within a token budget; neighbouring chunks share `overlap` sentences."""
    chunks: list[list[Sentence]] = []
    current: list[Sentence] = []
    size = 0
    for s in sentences:
        cost = estimate_tokens(s.text) + 3
        if current and size + cost > max_tokens:
            chunks.append(current)
            current = current[-overlap:] if overlap else []
            size = sum(estimate_tokens(x.text) + 3 for x in current)
            while current and size + cost > max_tokens:  # the overlap must not break the budget
                size -= estimate_tokens(current[0].text) + 3
                current = current[1:]
        current.append(s)
        size += cost
    if current and (not chunks or current != chunks[-1][-len(current) :]):
        chunks.append(current)
    return chunks
