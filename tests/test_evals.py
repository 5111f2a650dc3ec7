"""Evals machinery: scorers, thresholds, the fixture suite and the dataset adapters (fake model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FakeBackend, probs_for

from factcheck import documents, pipeline
from factcheck.evals import datasets, scorers, suite
from factcheck.schemas import CounterClaim

EVALS = Path(__file__).resolve().parents[1] / "evals"


def _label(slug: str) -> dict:  # type: ignore[type-arg]
    return json.loads((EVALS / "fixtures" / "labels" / f"{slug}.json").read_text())


def test_every_fixture_label_is_well_formed() -> None:
    labels = suite.load_labels(EVALS)
    assert len(labels) >= 15
    for label in labels:
        article = (EVALS / "fixtures" / label["article"]).read_text()
        ids = {c["id"] for c in label["claims"]}
        assert len(ids) == len(label["claims"])
        for claim in label["claims"]:
            assert claim["quote"] in article, (label["id"], claim["id"])
        for pair in label["counter_claims"]:
            assert {pair["a"], pair["b"]} <= ids


def test_scorer_counts_a_missing_report_as_wrong_not_a_crash() -> None:
    scores = scorers.score(None, _label("varno-flood-toll"), "model kept returning invalid JSON")
    m = scorers.metrics(scores)
    assert m["claim_recall"] == 0.0 and m["failed_articles"] == 1.0
    assert "invalid JSON" in scores.notes[0]


def test_scorer_matches_claims_by_their_evidence_and_words() -> None:
    label = _label("varno-flood-toll")
    doc = documents.load(str(EVALS / "fixtures" / label["article"]))
    report = pipeline.summarize(doc, FakeBackend())
    m = scorers.metrics(scorers.score(report, label))
    # The fake model names no sources, but every sentence becomes a claim: gold claims whose quote
    # sits in a predicted claim's evidence must be found.
    assert m["claim_recall"] > 0.5
    assert 0 < m["claim_precision"] <= 1
    assert m["grounding_rate"] == 1.0


def test_counter_claims_match_gold_pairs_by_place_in_the_article() -> None:
    label = _label("varno-flood-toll")
    doc = documents.load(str(EVALS / "fixtures" / label["article"]))
    report = pipeline.summarize(doc, FakeBackend())
    quotes = {g["id"]: g["quote"] for g in label["claims"]}
    pair = label["counter_claims"][0]

    def claim_holding(quote: str) -> str:
        return next(c.id for c in report.claims if any(quote in doc.text[e.start : e.end] for e in c.evidence))

    a, b = claim_holding(quotes[pair["a"]]), claim_holding(quotes[pair["b"]])
    link = CounterClaim(claim=b, counter=a, relation="contradicts", sentences=[])  # either way round
    report.counter_claims = [link]
    assert scorers.match_counter_claims(report, label) == [(0, 0)]
    report.counter_claims = [link.model_copy(update={"counter": b, "claim": b})]  # one side wrong
    assert scorers.match_counter_claims(report, label) == []


def test_similarity_tolerates_paraphrase_and_inflection() -> None:
    assert scorers.similarity("Police arrested 40 protesters", "40 protesters were arrested by police") > 0.7
    assert scorers.similarity("The bridge opened", "Inflation rose sharply") == 0.0


def test_thresholds_respect_direction() -> None:
    broken = suite.check_thresholds(
        {"claim_f1": 0.4, "must_not_say_rate": 0.5, "grounding_rate": 1.0},
        {"claim_f1": 0.5, "must_not_say_rate": 0.2, "grounding_rate": 1.0},
    )
    assert len(broken) == 2
    assert any("claim_f1" in b and "below" in b for b in broken)
    assert any("must_not_say_rate" in b and "above" in b for b in broken)
    assert suite.check_thresholds({"x": 1.0}, {"y": 0.1}) == ["y: missing"]


def test_suite_runs_the_real_pipeline_and_writes_logs(tmp_path: Path) -> None:
    fake = FakeBackend()
    result = suite.run_suite(EVALS, fake, only=["plain"])
    assert {i["id"] for i in result.items} == {"northfield-radiotherapy", "halden-burglary-sentence"}
    assert fake.calls  # the pipeline really asked the model
    log = suite.write_log(result, fake, tmp_path, {"claim_f1": 0.1}, {"claim_f1": 0.99})
    data = json.loads(log.read_text())
    assert data["metrics"] == result.metrics and len(data["items"]) == 2
    assert "claim_f1" in (tmp_path / "eval-report.md").read_text()
    html = (tmp_path / "eval-report.html").read_text()
    assert "<svg" in html and "threshold(s) broken" in html and "http" not in html


@pytest.mark.parametrize(
    ("task", "row", "positive"),
    [
        ("verification", {"id": "v1", "claim": "The council approved the budget.",
                          "document": "The council approved the budget on Monday.", "label": "supported"}, True),
        ("consistency", {"id": "s1", "article": "The council approved the budget on Monday.",
                         "summary": "The council approved the budget.", "label": "consistent"}, True),
        ("checkworthiness", {"id": "k1", "sentence": "Unemployment fell to 4 percent last year.",
                             "label": "check_worthy"}, True),
    ],
)
def test_dataset_adapters(tmp_path: Path, task: str, row: dict, positive: bool) -> None:  # type: ignore[type-arg]
    path = tmp_path / "set.jsonl"
    low = dict(row, id="x2", label="refuted" if task == "verification" else "inconsistent")
    path.write_text(json.dumps(row) + "\n" + json.dumps(low) + "\n")
    fake = FakeBackend(probs=probs_for(0.95))
    result = datasets.evaluate(path, task, fake)  # type: ignore[arg-type]
    assert [p["positive"] for p in result["predictions"]] == [positive, positive]
    # Both predicted positive, one gold positive: recall 1, specificity 0.
    if task != "checkworthiness":
        assert result["metrics"]["balanced_accuracy"] == 0.5


def test_a_dataset_limit_takes_every_label_in_turn(tmp_path: Path) -> None:
    path = tmp_path / "sorted.jsonl"
    labels = ["check_worthy"] * 5 + ["not_check_worthy"] * 5
    path.write_text("".join(json.dumps({"id": i, "label": label}) + "\n" for i, label in enumerate(labels)))
    picked = datasets.read(path, limit=4)
    assert [row["id"] for row in picked] == [0, 5, 1, 6]
    assert len(datasets.read(path, limit=None)) == 10
