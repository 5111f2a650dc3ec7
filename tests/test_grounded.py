"""Grounded checking: verify.judge / judge_document / check_claim / check_consistency on FakeBackend,
and the `check`, `consistency` and `summarize --sources` commands on the fake OpenAI server."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeBackend, answer_for, article_sentences, probs_for, run_main, statement_of
from fakeserver import FakeOpenAIServer, Reply
from typer.testing import CliRunner

from factcheck import verify
from factcheck.backends.base import Message
from factcheck.cli import app
from factcheck.documents import Document, chunk, make_document
from factcheck.errors import InputError
from factcheck.schemas import Report, Usage
from factcheck.structured import Ledger
from factcheck.verify import CONSISTENCY_THRESHOLD, SUPPORT_THRESHOLD

runner = CliRunner()

# Each 48-107 characters: with SMALL chunks of 30 tokens every sentence is a chunk of its own.
SMALL = 30
SENTENCES = [
    "The council met in the old town hall on Monday evening.",
    "Members debated the new cycling lanes for three long hours.",
    "The council approved a budget of four million euros for buses.",
    "Residents outside protested against higher parking fees downtown.",
    "The mayor promised a public consultation on the harbour plans.",
    "Local shops reported that weekend trade fell during the roadworks.",
]
BUDGET = "The council approved a budget for buses."
TITLED = "Council Approves Bus Budget\n\n" + "\n\n".join(SENTENCES[:3])


def doc_of(sentences: list[str], origin: str = "-") -> Document:
    return make_document("\n\n".join(sentences), origin=origin)


def chunked(sentences: list[str]) -> Document:
    doc = doc_of(sentences)
    assert len(chunk(doc.body, max_tokens=SMALL)) == len(sentences)  # the premise of the chunk tests
    return doc


def run_judge(fake: FakeBackend, statement: str) -> verify.Judged:
    return verify.judge(fake, Ledger(), Usage(), statement, doc_of(SENTENCES).sentences)


def judge_doc(fake: FakeBackend, statement: str, doc: Document, max_chunks: int = 4) -> verify.Judged:
    return verify.judge_document(fake, Ledger(), Usage(), statement, doc, max_chunk_tokens=SMALL, max_chunks=max_chunks)


def chunk_of(messages: list[Message]) -> int:
    """0-based chunk index of a one-sentence-per-chunk prompt (no headline, so sentence n is chunk n-1)."""
    (n,) = article_sentences(messages)
    return n - 1


def by_chunk(rule: Callable[[str | None, int], float]) -> Callable[[str | None, list[Message]], dict[str, float]]:
    """FakeBackend probs from P(supported) = rule(statement, chunk index)."""
    return lambda statement, messages: probs_for(rule(statement, chunk_of(messages)))


# ---------------------------------------------------------------- judge() with probabilities


def test_supported_iff_p_reaches_the_threshold() -> None:
    at = run_judge(FakeBackend(probs=probs_for(SUPPORT_THRESHOLD)), BUDGET)
    below = run_judge(FakeBackend(probs=probs_for(SUPPORT_THRESHOLD - 0.01)), BUDGET)
    assert (at.verdict, at.p_supported, at.confidence, at.missing) == ("supported", SUPPORT_THRESHOLD, 0.75, [])
    assert below.verdict == "not_enough_info"  # probs_for gives not_mentioned the larger rest
    assert below.confidence == round(1 - (SUPPORT_THRESHOLD - 0.01), 3)


@pytest.mark.parametrize(
    ("contradicted", "not_mentioned", "verdict"),
    [(0.5, 0.2, "contradicted"), (0.2, 0.5, "not_enough_info")],
)
def test_below_threshold_the_larger_alternative_wins(contradicted: float, not_mentioned: float, verdict: str) -> None:
    fake = FakeBackend(probs={"supported": 0.3, "contradicted": contradicted, "not_mentioned": not_mentioned})
    assert run_judge(fake, BUDGET).verdict == verdict


@pytest.mark.parametrize(
    ("statement", "missing"),
    [
        ("The council approved a budget of 7 million euros for buses.", ["7"]),
        ("The council under Jansen approved a budget for buses.", ["Jansen"]),
    ],
)
def test_a_detail_absent_from_the_evidence_is_never_supported(statement: str, missing: list[str]) -> None:
    fake = FakeBackend(probs={"supported": 0.99, "contradicted": 0.004, "not_mentioned": 0.006})
    judged = run_judge(fake, statement)
    assert judged.verdict == "not_enough_info"
    assert judged.missing == missing


# ---------------------------------------------------------------- judge() without probabilities


@pytest.mark.parametrize(
    ("said", "verdict", "cited"),
    [("supported", "supported", [1]), ("contradicted", "contradicted", [1]), ("not_mentioned", "not_enough_info", [])],
)
def test_without_probabilities_the_generated_judgement_decides(said: str, verdict: str, cited: list[int]) -> None:
    fake = FakeBackend(probs=None, verdict=said)
    judged = run_judge(fake, BUDGET)
    assert (judged.verdict, judged.sentences) == (verdict, cited)
    assert judged.p_supported is None and judged.confidence is None
    assert len(fake.classifies()) == 1 and len(fake.completes("Judgement")) == 1


def test_a_generated_supported_with_a_missing_detail_is_not_enough_info() -> None:
    fake = FakeBackend(probs=None, verdict="supported")
    judged = run_judge(fake, "The council approved 7 buses.")
    assert judged.verdict == "not_enough_info" and judged.sentences == []


# ---------------------------------------------------------------- judge_document / judge_statements


def test_the_supporting_chunk_decides_and_reading_stops_there() -> None:
    fake = FakeBackend(probs=by_chunk(lambda _, c: 0.95 if c == 2 else 0.1))
    judged = judge_doc(fake, BUDGET, chunked(SENTENCES))
    assert (judged.verdict, judged.chunk, judged.chunks) == ("supported", 2, 6)
    assert judged.p_supported == 0.95
    assert [chunk_of(c.messages) for c in fake.classifies()] == [0, 1, 2]


def test_without_support_a_contradiction_beats_a_likelier_not_enough_info() -> None:
    def probs(statement: str | None, messages: list[Message]) -> dict[str, float]:
        if chunk_of(messages) == 1:
            return {"supported": 0.2, "contradicted": 0.7, "not_mentioned": 0.1}
        return {"supported": 0.6, "contradicted": 0.1, "not_mentioned": 0.3}

    fake = FakeBackend(probs=probs)
    judged = judge_doc(fake, BUDGET, chunked(SENTENCES[:3]))
    assert (judged.verdict, judged.chunk, judged.chunks) == ("contradicted", 1, 3)
    assert len(fake.classifies()) == 3


def test_among_equal_verdicts_the_higher_p_supported_wins() -> None:
    fake = FakeBackend(probs=by_chunk(lambda _, c: [0.2, 0.6, 0.4][c]))
    judged = judge_doc(fake, BUDGET, chunked(SENTENCES[:3]))
    assert (judged.verdict, judged.chunk, judged.p_supported) == ("not_enough_info", 1, 0.6)


def test_on_a_long_page_only_the_chunks_sharing_most_words_are_read() -> None:
    fake = FakeBackend(probs=probs_for(0.1))
    statement = "Members debated cycling lanes and harbour consultation plans."  # words of chunks 1 and 4
    judged = judge_doc(fake, statement, chunked(SENTENCES), max_chunks=2)
    assert sorted(chunk_of(c.messages) for c in fake.classifies()) == [1, 4]
    assert judged.chunks == 6 and judged.chunk in (1, 4)


def test_judge_statements_reads_chunk_by_chunk_with_the_same_verdicts() -> None:
    statements = [BUDGET, "Members debated the cycling lanes.", "The mayor promised a consultation."]
    supported_at = {BUDGET: 0, statements[2]: 1}  # statement 1 is never supported
    rule = by_chunk(lambda s, c: 0.9 if supported_at.get(s or "") == c else 0.2 + 0.1 * c)
    doc = chunked(SENTENCES[:3])

    together = FakeBackend(probs=rule)
    joint = verify.judge_statements(together, Ledger(), Usage(), statements, doc, max_chunk_tokens=SMALL)
    one_by_one = [judge_doc(FakeBackend(probs=rule), s, doc) for s in statements]

    def key(j: verify.Judged) -> tuple[Any, ...]:
        return j.verdict, j.p_supported, j.chunk, j.chunks

    assert [key(j) for j in joint] == [key(j) for j in one_by_one]
    assert [j.verdict for j in joint] == ["supported", "not_enough_info", "supported"]
    order = [(chunk_of(c.messages), statements.index(c.statement or "")) for c in together.classifies()]
    assert order == [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 1)]


# ---------------------------------------------------------------- check_claim


def test_evidence_quotes_point_into_the_document() -> None:
    doc = make_document(TITLED, origin="council.txt")
    for fake in (FakeBackend(), FakeBackend(probs=None)):
        result = verify.check_claim(fake, Ledger(), BUDGET, [doc])
        assert result.verdict == "supported" and result.document == "council.txt"
        assert result.evidence
        for e in result.evidence:
            assert doc.text[e.start : e.end] == e.quote == doc.sentence(e.sentence).text
    # From probabilities the evidence is the two sentences sharing most words with the claim, in
    # article order; the headline shares more words than sentence 1 but is not part of the body read.
    quotes = [e.quote for e in verify.check_claim(FakeBackend(), Ledger(), BUDGET, [doc]).evidence]
    assert quotes == [SENTENCES[0], SENTENCES[2]]


def test_the_best_of_several_documents_decides() -> None:
    docs = [doc_of(SENTENCES[3:], origin="a.txt"), doc_of(SENTENCES[:3], origin="b.txt"), doc_of(SENTENCES, "c.txt")]
    fake = FakeBackend(probs=lambda s, m: probs_for(0.9 if SENTENCES[2] in str(m) else 0.2))
    result = verify.check_claim(fake, Ledger(), BUDGET, docs)
    assert (result.verdict, result.document) == ("supported", "b.txt")
    assert result.confidence == 0.9
    assert len(fake.classifies()) == 2  # b.txt supports it: c.txt is never read


def test_rationale_names_threshold_and_chunk() -> None:
    result = verify.check_claim(FakeBackend(probs=probs_for(0.4)), Ledger(), BUDGET, [doc_of(SENTENCES)])
    assert result.rationale == f"P(supported) = 0.40 against threshold {SUPPORT_THRESHOLD} (chunk 1 of 1)"


def test_rationale_lists_the_missing_details() -> None:
    claim = "The council under Jansen approved 7 buses."
    result = verify.check_claim(FakeBackend(probs=probs_for(0.95)), Ledger(), claim, [doc_of(SENTENCES)])
    assert result.verdict == "not_enough_info"
    assert result.missing == ["7", "Jansen"]
    assert "threshold" in result.rationale
    assert result.rationale.endswith("the evidence never mentions: 7, Jansen")


def test_explain_generates_a_reasoned_judgement() -> None:
    fake = FakeBackend()
    result = verify.check_claim(fake, Ledger(), BUDGET, [doc_of(SENTENCES)], explain=True)
    assert fake.classifies() == []
    assert len(fake.completes("ReasonedJudgement")) == 1
    assert result.rationale == "the fake back end says so"
    assert result.p_supported is None and result.confidence is None
    assert [e.sentence for e in result.evidence] == [1]


# ---------------------------------------------------------------- check_consistency


def test_every_summary_sentence_is_judged_and_the_score_is_the_minimum() -> None:
    summary = [BUDGET, "Members debated the cycling lanes.", "The mayor promised a consultation."]
    p = {BUDGET: 0.97, summary[1]: 0.92, summary[2]: 0.95}
    fake = FakeBackend(probs=lambda s, m: probs_for(p[s or ""]))
    result = verify.check_consistency(fake, Ledger(), doc_of(SENTENCES), " ".join(summary))
    assert [c.statement for c in fake.classifies()] == summary
    assert [s.sentence for s in result.sentences] == summary
    assert result.consistent is True
    assert result.score == 0.92


@pytest.mark.parametrize(("p", "consistent"), [(CONSISTENCY_THRESHOLD - 0.01, False), (CONSISTENCY_THRESHOLD, True)])
def test_summary_sentences_need_the_consistency_threshold(p: float, consistent: bool) -> None:
    """Higher than for claims: chosen on the summary-consistency dev sets (see verify.py)."""
    assert CONSISTENCY_THRESHOLD > SUPPORT_THRESHOLD
    result = verify.check_consistency(FakeBackend(probs=probs_for(p)), Ledger(), doc_of(SENTENCES), BUDGET)
    assert result.consistent is consistent


def test_one_unsupported_sentence_makes_the_summary_inconsistent() -> None:
    summary = [BUDGET, "The mayor resigned after the vote."]
    fake = FakeBackend(probs=lambda s, m: probs_for(0.95 if s == BUDGET else 0.3))
    result = verify.check_consistency(fake, Ledger(), doc_of(SENTENCES), " ".join(summary))
    assert [s.verdict for s in result.sentences] == ["supported", "not_enough_info"]
    assert result.consistent is False and result.score == 0.3


def test_consistency_without_probabilities_has_no_score() -> None:
    result = verify.check_consistency(FakeBackend(probs=None), Ledger(), doc_of(SENTENCES), BUDGET)
    assert result.consistent is True and result.score is None


def test_an_empty_summary_is_an_input_error_not_consistent() -> None:
    with pytest.raises(InputError, match="summary is empty"):
        verify.check_consistency(FakeBackend(), Ledger(), doc_of(SENTENCES), "  \n")


# ---------------------------------------------------------------- the commands on the fake server


@pytest.fixture(autouse=True)
def _no_llama(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)


Rule = Callable[[str | None, list[Message]], str]


@contextmanager
def serving(monkeypatch: pytest.MonkeyPatch, rule: Rule = lambda s, m: "supported") -> Iterator[FakeOpenAIServer]:
    """The fake server gives no logprobs, so every judgement is a generated one: `rule` says which."""

    def reply(request: dict[str, Any]) -> Reply:
        fmt, messages = request["response_format"]["json_schema"], request["messages"]
        verdict = rule(statement_of(messages), messages)
        return Reply(content=json.dumps(answer_for(fmt["name"], fmt["schema"], messages, verdict=verdict)))

    with FakeOpenAIServer(default=reply) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        yield srv


def invoke(*args: str) -> Any:
    result = runner.invoke(app, [*args, "--model", "fake-model"])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(path: Path, *items: dict[str, Any]) -> Path:
    return write(path, "".join(json.dumps(i) + "\n" for i in items))


def test_check_one_claim_as_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    evidence = write(tmp_path / "council.txt", TITLED)
    with serving(monkeypatch):
        out = json.loads(invoke("check", "--claim", BUDGET, "--evidence", str(evidence), "--format", "json").stdout)
    assert isinstance(out, dict)
    assert (out["claim"], out["verdict"], out["confidence"]) == (BUDGET, "supported", None)
    assert out["document"] == str(evidence)
    assert out["evidence"]
    for e in out["evidence"]:
        assert TITLED[e["start"] : e["end"]] == e["quote"]


def test_check_two_claims_gives_a_list_in_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    evidence = write(tmp_path / "council.txt", TITLED)
    wrong = "The council rejected the budget for buses."
    with serving(monkeypatch, lambda s, m: "contradicted" if s == wrong else "supported"):
        result = invoke("check", "--claim", BUDGET, "--claim", wrong, "--evidence", str(evidence), "-f", "json")
    out = json.loads(result.stdout)
    assert [(o["claim"], o["verdict"]) for o in out] == [(BUDGET, "supported"), (wrong, "contradicted")]


def test_check_input_gives_one_line_per_item(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    items = jsonl(
        tmp_path / "items.jsonl",
        {"id": "a", "claim": BUDGET, "document": TITLED, "label": "supported"},
        {"id": "b", "claim": "The mayor resigned.", "document": TITLED},
    )
    with serving(monkeypatch, lambda s, m: "supported" if s == BUDGET else "not_mentioned"):
        result = invoke("check", "--input", str(items))
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(x["id"], x["claim"], x["verdict"]) for x in lines] == [
        ("a", BUDGET, "supported"),
        ("b", "The mayor resigned.", "not_enough_info"),
    ]
    assert lines[0]["label"] == "supported" and "label" not in lines[1]
    assert "2 done, 0 failed" in result.stderr


def test_check_input_item_that_fails_is_an_error_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    items = jsonl(
        tmp_path / "items.jsonl",
        {"id": "blank", "claim": BUDGET, "document": "  "},
        {"id": "ok", "claim": BUDGET, "document": TITLED},
    )
    with serving(monkeypatch):
        result = runner.invoke(app, ["check", "--input", str(items), "--model", "fake-model"])
    assert result.exit_code == 1
    blank, ok = (json.loads(line) for line in result.stdout.splitlines())
    assert blank == {"id": "blank", "error": "blank: the article is empty"}
    assert (ok["id"], ok["verdict"]) == ("ok", "supported")
    assert "1 done, 1 failed" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "a", "claim": "x", "document": "y"}\n{not json\n', "items.jsonl:2: not valid JSON"),
        ('{"id": "a", "claim": "x"}\n', "items.jsonl:1: missing field(s) document"),
    ],
)
def test_check_bad_input_is_one_line_and_non_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, message: str
) -> None:
    items = write(tmp_path / "items.jsonl", content)
    assert run_main(monkeypatch, "check", "--input", str(items), "--model", "fake-model") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert "Traceback" not in err


def test_check_without_evidence_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(monkeypatch, "check", "--claim", BUDGET) == 2
    assert "--evidence" in capsys.readouterr().err


def test_consistency_as_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    article = write(tmp_path / "article.txt", "\n\n".join(SENTENCES))
    summary = write(tmp_path / "summary.txt", f"{BUDGET} The mayor resigned after the vote.")
    with serving(monkeypatch, lambda s, m: "supported" if s == BUDGET else "not_mentioned"):
        result = invoke("consistency", "--article", str(article), "--summary", str(summary), "-f", "json")
    out = json.loads(result.stdout)
    assert out["consistent"] is False and out["score"] is None
    assert [(s["sentence"], s["verdict"]) for s in out["sentences"]] == [
        (BUDGET, "supported"),
        ("The mayor resigned after the vote.", "not_enough_info"),
    ]


def test_consistency_input_gives_one_line_per_item(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    article = "\n\n".join(SENTENCES)
    items = jsonl(
        tmp_path / "items.jsonl",
        {"id": "good", "article": article, "summary": BUDGET},
        {"id": "bad", "article": article, "summary": "The mayor resigned after the vote."},
    )
    with serving(monkeypatch, lambda s, m: "supported" if s == BUDGET else "contradicted"):
        result = invoke("consistency", "--input", str(items))
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(x["id"], x["consistent"]) for x in lines] == [("good", True), ("bad", False)]
    assert lines[1]["sentences"][0]["verdict"] == "contradicted"


def test_summarize_with_a_contradicting_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    article = write(tmp_path / "article.txt", "\n\n".join(SENTENCES))
    sources = tmp_path / "sources"
    sources.mkdir()
    denial = write(sources / "denial.txt", "The council rejected the budget for buses after a long debate.")
    # Sorts before denial.txt, so naming the first source would be caught.
    write(sources / "background.txt", "The council budget for buses was not discussed in the regional press.")

    def rule(statement: str | None, messages: list[Message]) -> str:
        text = " ".join(article_sentences(messages).values())
        if "rejected" in text:
            return "contradicted"
        return "not_mentioned" if "regional press" in text else "supported"

    with serving(monkeypatch, rule):
        result = invoke("summarize", str(article), "--sources", str(sources), "-f", "json", "--style", "sentence")
    report = Report.model_validate_json(result.stdout)
    verdicts = [(c.text, v) for c in report.claims for v in c.verdicts]
    assert SENTENCES[2] in [text for text, _ in verdicts]
    assert verdicts and all(v.document == str(denial) and v.verdict == "contradicted" for _, v in verdicts)
    source_text = denial.read_text(encoding="utf-8")
    assert all(source_text[e.start : e.end] == e.quote for _, v in verdicts for e in v.evidence)
