"""Loading, normalising, numbering and chunking articles (factcheck/documents.py)."""

from __future__ import annotations

import socket
import threading
import unicodedata
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from factcheck import documents
from factcheck.documents import Document, chunk, estimate_tokens, make_document, normalise, split_sentences
from factcheck.errors import InputError

SEED = Path(__file__).resolve().parents[2] / "shared" / "examples" / "seed-article.txt"

HARD_TEXT = (
    "Dr. Smith arrived in the U.S. on Monday. He said “it was fine.” Then he left.\n\n"
    "A new paragraph starts here. Mr. Jones of Acme Inc. agreed. The U.S. economy grew 2.5% in Q1.\n\n"
    "“We will not stop,” she said. “Never.”\n"
    "Prices rose 3.5 per cent, according to the Office for National Statistics. Was it enough? No!\n\n"
    "The minister’s aide — speaking on Friday — said the plan (worth $1.2bn) “may be delayed”…"
)


def assert_offsets(doc: Document) -> None:
    assert doc.sentences, "no sentences"
    for i, s in enumerate(doc.sentences, start=1):
        assert s.n == i
        assert doc.text[s.start : s.end] == s.text
        assert s.text == s.text.strip() and s.text
    starts = [s.start for s in doc.sentences]
    assert starts == sorted(starts)
    for a, b in zip(doc.sentences, doc.sentences[1:], strict=False):
        assert a.end <= b.start, "sentences overlap"


# ---------------------------------------------------------------- sentences


def test_offsets_match_text_on_hard_text() -> None:
    doc = make_document(HARD_TEXT)
    assert_offsets(doc)
    texts = [s.text for s in doc.sentences]
    # Abbreviations do not end sentences.
    assert "Dr. Smith arrived in the U.S. on Monday." in texts
    assert "Mr. Jones of Acme Inc. agreed." in texts
    assert "The U.S. economy grew 2.5% in Q1." in texts
    # Curly quotes stay with their sentence.
    assert "He said “it was fine.”" in texts
    assert "“We will not stop,” she said." in texts


def test_paragraphs_never_share_a_sentence() -> None:
    text = "First paragraph has no full stop\n\nSecond paragraph starts here. It goes on."
    doc = make_document(text)
    assert_offsets(doc)
    for s in doc.sentences:
        assert "\n" not in s.text
    assert doc.sentences[0].text == "First paragraph has no full stop"


@pytest.mark.skipif(not SEED.is_file(), reason=f"{SEED} is absent")
def test_offsets_on_the_seed_article() -> None:
    doc = make_document(SEED.read_text(encoding="utf-8"), origin=str(SEED))
    assert_offsets(doc)
    assert len(doc.sentences) >= 10
    # Curly apostrophes and quotes survive verbatim.
    assert any("“a second Hezbollah”" in s.text for s in doc.sentences)
    assert any("wasn’t" in s.text for s in doc.sentences)


@pytest.mark.parametrize(
    "text",
    [
        "One.",
        "No final stop",
        "“Quoted only.”",
        "Ends with an ellipsis…",
        "Line one\nline two\nline three.",
        "Numbers 1.5 and 2,000.5 and U.K. and e.g. more text. And then.",
        "Emoji 🙂 inside. And CJK 日本語 text. Fine.",
    ],
)
def test_offsets_on_odd_shapes(text: str) -> None:
    assert_offsets(make_document(text))


def test_split_sentences_directly_is_consistent_with_make_document() -> None:
    text = normalise(HARD_TEXT)
    assert [(s.start, s.end) for s in split_sentences(text)] == [
        (s.start, s.end) for s in make_document(text).sentences
    ]


# ---------------------------------------------------------------- headline


def test_headline_detected() -> None:
    doc = make_document(
        "Port Strike Ends After Record Pay Deal\n\nDock workers walked out on Monday. Talks failed."
    )
    assert doc.title == "Port Strike Ends After Record Pay Deal"
    assert doc.is_title(doc.sentences[0])
    assert doc.sentences[0].n not in {s.n for s in doc.body}


@pytest.mark.parametrize(
    "text",
    [
        "Dock workers walked out on Monday.\n\nTalks failed.",  # ends with a full stop: a sentence
        "Strike\n\nDock workers walked out on Monday.",  # one word
        "Port Strike Ends\nDock workers walked out on Monday.",  # no blank line after it
        "Port Strike Ends After Record Pay Deal",  # nothing after it
        "“Port Strike Ends”\n\nDock workers walked out.",  # a quote
    ],
)
def test_no_headline(text: str) -> None:
    assert make_document(text).title is None


def test_explicit_title_wins() -> None:
    doc = make_document("Dock workers walked out on Monday. Talks failed.", title="Given Title")
    assert doc.title == "Given Title"
    assert len(doc.body) == 2  # a title that is not sentence 1 hides nothing


# ---------------------------------------------------------------- boilerplate


@pytest.mark.skipif(not SEED.is_file(), reason=f"{SEED} is absent")
def test_seed_trailing_credit_is_boilerplate() -> None:
    doc = make_document(SEED.read_text(encoding="utf-8"))
    texts = [s.text for s in doc.boilerplate]
    assert texts == ["Careful now.", "Reuters Eric Vidal"]
    body = {s.n for s in doc.body}
    assert not body & {s.n for s in doc.boilerplate}
    assert doc.title == "Islamic State Closes In On Syrian City Of Aleppo"
    assert 1 not in body


@pytest.mark.parametrize(
    ("credit", "expected"),
    [
        ("Reporting by Jane Doe; Editing by John Roe", ["Reporting by Jane Doe; Editing by John Roe"]),
        ("© 2026 Example News Ltd.", ["© 2026 Example News Ltd."]),
        (
            "Copyright 2026 Example News. All rights reserved.",
            ["Copyright 2026 Example News.", "All rights reserved."],
        ),
        ("Photo: Jane Doe/Example Images", ["Photo: Jane Doe/Example Images"]),
        ("Additional reporting by Ann Lee in Paris", ["Additional reporting by Ann Lee in Paris"]),
        ("Sign up for our newsletter.", ["Sign up for our newsletter."]),
        ("AFP", ["AFP"]),
    ],
)
def test_synthetic_credit_lines_are_boilerplate(credit: str, expected: list[str]) -> None:
    text = (
        "Markets Rally On Rate Cut Hopes\n\n"
        "Stocks rose on Monday. Traders said the central bank may cut rates next month.\n\n"
        "The yield on ten-year bonds fell to 3.9 percent, its lowest since March.\n\n" + credit
    )
    doc = make_document(text)
    assert [s.text for s in doc.boilerplate] == expected
    assert all(s.text not in expected for s in doc.body)
    assert len(doc.body) == 3


def test_credit_in_the_middle_is_boilerplate_but_body_is_kept() -> None:
    text = (
        "Stocks rose on Monday as traders bet on lower rates.\n\n"
        "Photo: Jane Doe/Example Images\n\n"
        "Traders said the central bank may cut rates next month, citing weak hiring data.\n\n"
        "Bond yields fell to their lowest level since March, extending a three-week decline in prices."
    )
    doc = make_document(text)
    assert [s.text for s in doc.boilerplate] == ["Photo: Jane Doe/Example Images"]
    assert len(doc.body) == 3


def test_ordinary_article_has_no_boilerplate() -> None:
    text = (
        "Stocks rose on Monday as traders bet on lower rates.\n\n"
        "Traders said the central bank may cut rates next month, citing weak hiring data."
    )
    assert make_document(text).boilerplate == []


def test_short_last_paragraph_reporting_an_agency_is_not_boilerplate() -> None:
    text = (
        "Stocks rose on Monday as traders bet on lower rates.\n\n"
        "Traders said the central bank may cut rates next month, citing weak hiring data.\n\n"
        "The ministry denied the report, Reuters said."
    )
    assert make_document(text).boilerplate == []


@pytest.mark.parametrize(
    "sentence",
    [
        "Credit Suisse said on Monday it would cut 9,000 jobs by the end of next year.",
        "Photographs published by the bank showed its Zurich headquarters empty on Sunday.",
        "Subscribers to the bank's research service were told of the cuts first, the company said.",
        "Related talks with regulators will resume on Friday, officials said.",
    ],
)
def test_body_sentences_that_start_like_credits_are_kept(sentence: str) -> None:
    text = (
        "Banks Brace For Losses\n\n" + sentence + "\n\n"
        "The bank's shares fell 4 percent in early trading in Zurich, traders said."
    )
    assert make_document(text).boilerplate == []


# ---------------------------------------------------------------- chunks


def _sentences(n: int, words: int = 12) -> list[documents.Sentence]:
    text = " ".join(f"Sentence number {i} has " + " ".join(["word"] * words) + "." for i in range(n))
    return make_document(text).sentences


def test_chunks_hold_whole_sentences_in_order_with_overlap() -> None:
    sentences = _sentences(30)
    chunks = chunk(sentences, max_tokens=120, overlap=1)
    assert len(chunks) > 2
    for part in chunks:
        assert all(s in sentences for s in part)  # whole Sentence objects, never cut
        numbers = [s.n for s in part]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a[-1] == b[0], "neighbouring chunks share one sentence"
    covered = {s.n for part in chunks for s in part}
    assert covered == {s.n for s in sentences}
    assert chunks[0][0].n == 1 and chunks[-1][-1].n == len(sentences)


def test_chunk_budget_respected_for_even_sentences() -> None:
    sentences = _sentences(30)
    budget = 120
    for part in chunk(sentences, max_tokens=budget, overlap=1):
        assert sum(estimate_tokens(s.text) + 3 for s in part) <= budget


def test_chunk_without_overlap_partitions() -> None:
    sentences = _sentences(20)
    chunks = chunk(sentences, max_tokens=100, overlap=0)
    flat = [s.n for part in chunks for s in part]
    assert flat == [s.n for s in sentences]


def test_one_chunk_when_it_fits_and_none_when_empty() -> None:
    sentences = _sentences(3)
    assert chunk(sentences, max_tokens=10_000) == [sentences]
    assert chunk([], max_tokens=100) == []


def test_a_sentence_longer_than_the_budget_is_its_own_chunk() -> None:
    sentences = _sentences(3, words=200)
    chunks = chunk(sentences, max_tokens=50, overlap=0)
    assert [[s.n for s in part] for part in chunks] == [[1], [2], [3]]


def test_overlap_never_pushes_a_chunk_over_budget() -> None:
    short = "Short one here and there."
    long = "Long " + " ".join(["word"] * 60) + "."
    doc = make_document(f"{short} {short} {short} {long} {short}")
    budget = 60
    for part in chunk(doc.sentences, max_tokens=budget, overlap=1):
        cost = sum(estimate_tokens(s.text) + 3 for s in part)
        assert len(part) == 1 or cost <= budget, [s.n for s in part]


# ---------------------------------------------------------------- normalisation


def test_normalise_line_endings_tabs_spaces_and_nfc() -> None:
    raw = "Cafe\u0301  opened.\r\nTabs\there.\r\rOld Mac line.\r\n\r\n\r\n\r\nNext   para.  \n   \n"
    text = normalise(raw)
    assert text == "Café opened.\nTabs here.\n\nOld Mac line.\n\nNext para."
    assert unicodedata.is_normalized("NFC", text)
    assert "\r" not in text and "\t" not in text


def test_make_document_text_is_normalised() -> None:
    doc = make_document("  Cafe\u0301 opened.\r\n\r\n\tIt\tis new.  ")
    assert doc.text == "Café opened.\n\nIt is new."
    assert_offsets(doc)


def test_long_input_is_truncated_at_a_line_break() -> None:
    para = "The council met on Monday and approved the budget for the next year.\n\n"
    doc = make_document(para * 50, max_chars=1000)
    assert doc.truncated
    assert len(doc.text) <= 1000
    assert doc.text.endswith("year.")
    assert_offsets(doc)
    assert not make_document(para).truncated


# ---------------------------------------------------------------- files and encodings


def test_latin1_file_is_decoded(tmp_path: Path) -> None:
    text = (
        "Der Minister sagte, die Reform sei nötig. "
        "Die Gewerkschaften in München äußerten sich kritisch über die Maßnahmen."
    )
    path = tmp_path / "latin.txt"
    path.write_bytes(text.encode("latin-1"))
    doc = documents.load(str(path))
    assert doc.text == text
    assert doc.origin == str(path)
    assert_offsets(doc)


def test_latin1_french_file_is_decoded(tmp_path: Path) -> None:
    text = (
        "Le ministre a déclaré que la réforme était nécessaire. "
        "Les syndicats ont contesté cette décision à Besançon, où la grève se poursuit."
    )
    path = tmp_path / "latin.txt"
    path.write_bytes(text.encode("latin-1"))
    assert documents.load(str(path)).text == text


def test_utf8_bom_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffCafé opened on Monday. It was busy.".encode())
    doc = documents.load(str(path))
    assert doc.text == "Café opened on Monday. It was busy."
    assert doc.sentences[0].start == 0


def test_utf16_file_with_bom_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "utf16.txt"
    path.write_bytes("Headline Of The Day\n\nIt rained on Monday. It stopped.".encode("utf-16"))
    assert documents.load(str(path)).text == "Headline Of The Day\n\nIt rained on Monday. It stopped."


def test_crlf_file(tmp_path: Path) -> None:
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"Headline Here Today\r\n\r\nBody sentence one. Body two.\r\n")
    doc = documents.load(str(path))
    assert doc.text == "Headline Here Today\n\nBody sentence one. Body two."
    assert doc.title == "Headline Here Today"


def test_binary_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)))
    with pytest.raises(InputError, match="binary"):
        documents.load(str(path))


@pytest.mark.parametrize("content", [b"", b"   \n\t\n  ", b"\r\n\r\n", b"... --- !!!"])
def test_empty_article_is_an_input_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match="empty"):
        documents.load(str(path))


def test_empty_text_is_an_input_error() -> None:
    with pytest.raises(InputError):
        make_document("  \n ")


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(InputError, match="no such file") as info:
        documents.load(str(missing))
    assert "\n" not in str(info.value)


def test_directory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="directory"):
        documents.load(str(tmp_path))


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    class FakeStdin:
        buffer = io.BytesIO(b"Headline Of The Day\n\nIt rained. It stopped.")

    monkeypatch.setattr(sys, "stdin", FakeStdin())
    doc = documents.load("-")
    assert doc.origin == "-"
    assert doc.title == "Headline Of The Day"
    assert [s.text for s in doc.body] == ["It rained.", "It stopped."]


# ---------------------------------------------------------------- HTML

PAGE = """<!DOCTYPE html>
<html><head><title>Port Strike Ends</title>
<script>var tracker = "SCRIPT_TEXT_MARKER"; function go() { return "ignore previous"; }</script>
<style>body { color: red; } .STYLE_MARKER {}</style>
</head><body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/world">World NAV_MARKER</a></li>
<li><a href="/sport">Sport</a></li><li><a href="/login">Log in</a></li></ul></nav>
<article><h1>Port Strike Ends</h1>
<p>Dock workers at the port of Saltmere walked off the job on Monday, halting container traffic for
a second day, the port authority said.</p>
<p>The dockers union said 2,400 of its members joined the strike, while the port authority put the
number at 900 and said most shifts were covered by agency staff.</p>
<p>Union leader Maria Okafor said the port had refused to discuss a nine percent pay rise, which the
port authority denied on Tuesday evening in a short statement.</p>
</article>
<footer><a href="/privacy">Privacy FOOTER_MARKER</a> <a href="/terms">Terms</a></footer>
<script>document.write("SCRIPT_TWO_MARKER")</script>
</body></html>
"""


def _check_page_doc(doc: Document) -> None:
    assert "Dock workers at the port of Saltmere walked off the job on Monday" in doc.text
    assert "Maria Okafor" in doc.text
    for marker in (
        "SCRIPT_TEXT_MARKER",
        "SCRIPT_TWO_MARKER",
        "STYLE_MARKER",
        "NAV_MARKER",
        "FOOTER_MARKER",
        "<",
    ):
        assert marker not in doc.text
    assert doc.title == "Port Strike Ends"
    assert_offsets(doc)
    assert all(s.text != "Port Strike Ends" for s in doc.body)


def test_html_file_main_text_only(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(PAGE, encoding="utf-8")
    _check_page_doc(documents.load(str(path)))


def test_html_detected_without_extension(tmp_path: Path) -> None:
    path = tmp_path / "page.txt"
    path.write_text(PAGE, encoding="utf-8")
    _check_page_doc(documents.load(str(path)))


def test_html_with_only_scripts_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "blank.html"
    path.write_text(
        '<html><head><title>T</title><script>var x = "hello world";</script></head>'
        '<body><script>alert("hi there")</script></body></html>'
    )
    with pytest.raises(InputError, match="empty"):
        documents.load(str(path))


# ---------------------------------------------------------------- URLs


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/article":
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
        elif self.path == "/plain":
            body = b"Headline For Plain Text\n\nIt rained on Monday. It stopped."
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        else:
            body = b"not here"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_url_html(web: str) -> None:
    doc = documents.load(f"{web}/article")
    assert doc.origin == f"{web}/article"
    _check_page_doc(doc)


def test_url_plain_text(web: str) -> None:
    doc = documents.load(f"{web}/plain")
    assert doc.title == "Headline For Plain Text"
    assert [s.text for s in doc.body] == ["It rained on Monday.", "It stopped."]


def test_url_404_is_an_input_error(web: str) -> None:
    with pytest.raises(InputError, match="HTTP 404"):
        documents.load(f"{web}/missing")


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_url_connection_refused_is_an_input_error() -> None:
    url = f"http://127.0.0.1:{_unused_port()}/article"
    with pytest.raises(InputError, match="could not fetch") as info:
        documents.load(url)
    assert "\n" not in str(info.value)
