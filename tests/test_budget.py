"""Budgets (--max-tokens, --max-cost), metered spend (factcheck/budget.py) and the price table
(factcheck/costs.py)."""

from __future__ import annotations

import json
from pathlib import Path

import batch_helpers
import pytest
from batch_helpers import FakeBackend, ids_once, read_lines

from factcheck import costs
from factcheck.batch import run_batch
from factcheck.errors import ConfigError

articles = batch_helpers.articles  # the shared fixture; a plain import would look unused to ruff


# ---------------------------------------------------------------- budgets


def test_token_budget_stops_starting_articles(tmp_path: Path, articles: Path) -> None:
    out = tmp_path / "out.jsonl"
    backend = FakeBackend(tokens=(1000, 100))
    summary = run_batch(
        [str(articles)],
        out,
        backend_factory=lambda: backend,
        concurrency=1,
        max_tokens=15_000,
        progress=False,
    )
    assert summary.budget_reached and summary.exit_code == 3
    assert 0 < summary.done < 6 and summary.not_started == 6 - summary.done
    assert summary.tokens <= 15_000  # never started an article that would not fit
    assert len(read_lines(out)) == summary.done
    assert any("budget reached" in n for n in summary.notes)

    rest = run_batch(
        [str(articles)],
        out,
        backend_factory=lambda: FakeBackend(tokens=(1000, 100)),
        resume=True,
        max_tokens=1_000_000,
        progress=False,
    )
    assert rest.exit_code == 0 and rest.done == 6 - summary.done
    assert len(ids_once(read_lines(out))) == 6


def test_budget_too_small_for_any_article_starts_none(tmp_path: Path, articles: Path) -> None:
    backend = FakeBackend(forbid_calls=True)
    summary = run_batch(
        [str(articles)],
        tmp_path / "out.jsonl",
        backend_factory=lambda: backend,
        max_tokens=50,
        progress=False,
    )
    assert summary.budget_reached and summary.done == 0 and summary.not_started == 6 and backend.calls == 0


def test_cost_budget_with_a_priced_model(tmp_path: Path, articles: Path) -> None:
    # gpt-4o: 1000 prompt + 100 completion tokens a call = $0.0035; ~4 calls an article = $0.014.
    backend = FakeBackend(model="gpt-4o", tokens=(1000, 100))
    summary = run_batch(
        [str(articles)],
        tmp_path / "out.jsonl",
        backend_factory=lambda: backend,
        concurrency=2,
        max_cost=0.05,
        progress=False,
    )
    assert summary.budget_reached and 0 < summary.done < 6
    assert summary.cost_usd == pytest.approx(
        costs.cost("openai", "gpt-4o", summary.prompt_tokens, summary.completion_tokens)
    )
    assert summary.cost_usd <= 0.05
    line = read_lines(tmp_path / "out.jsonl")[0]
    assert line["report"]["meta"]["cost_usd"] > 0


def test_max_cost_needs_a_known_price(tmp_path: Path, articles: Path) -> None:
    with pytest.raises(ConfigError, match="FACTCHECK_PRICES"):
        run_batch([str(articles)], tmp_path / "out.jsonl", backend_factory=FakeBackend, max_cost=1.0, progress=False)


# ---------------------------------------------------------------- costs


def test_prices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert costs.cost("openai", "gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert costs.cost("openai", "gpt-4o", 2_000_000, 0) == pytest.approx(5.0)
    assert costs.cost("openai", "gpt-4.1-mini-2025-04-14", 0, 1_000_000) == pytest.approx(1.60)
    assert costs.cost("openai", "gpt-4.1", 1_000_000, 1_000_000) == pytest.approx(10.0)
    assert costs.cost("local", "qwen", 10**9, 10**9) == 0.0
    assert costs.price("openai", "llama-3-70b") is None
    assert costs.cost("openai", "llama-3-70b", 10**6, 10**6) == 0.0
    assert "no price known" in costs.describe("openai", "llama-3-70b")

    prices = tmp_path / "prices.toml"
    prices.write_text(
        '[models."llama-3-70b"]\ninput = 0.5\noutput = 1.5\n[models."gpt-4o-mini"]\ninput = 1\noutput = 1\n'
    )
    monkeypatch.setenv("FACTCHECK_PRICES", str(prices))
    assert costs.cost("openai", "llama-3-70b", 1_000_000, 1_000_000) == pytest.approx(2.0)
    assert costs.cost("openai", "gpt-4o-mini", 1_000_000, 0) == pytest.approx(1.0)
    as_json = tmp_path / "prices.json"
    as_json.write_text(json.dumps({"my-model": {"input": 3, "output": 4}}))
    monkeypatch.setenv("FACTCHECK_PRICES", str(as_json))
    assert costs.cost("openai", "my-model", 1_000_000, 1_000_000) == pytest.approx(7.0)
    broken = tmp_path / "broken.json"
    broken.write_text('{"m": {"input": "x"}}')
    monkeypatch.setenv("FACTCHECK_PRICES", str(broken))
    with pytest.raises(ConfigError, match="FACTCHECK_PRICES"):
        costs.price("openai", "m")


# ---------------------------------------------------------------- metered spend


def test_classify_spend_is_metered(tmp_path: Path, articles: Path) -> None:
    class WithProbs(FakeBackend):
        def classify(self, messages, *, prefix, options):  # type: ignore[no-untyped-def]
            return {o: (0.9 if o == "supported" else 0.05) for o in options}

    class Reporting(WithProbs):
        def last_classify_usage(self) -> tuple[int, int]:
            return (1000, 1)

    estimated = run_batch([str(articles)], tmp_path / "a.jsonl", backend_factory=WithProbs, progress=False)
    reported = run_batch([str(articles)], tmp_path / "b.jsonl", backend_factory=Reporting, progress=False)
    judged = reported.calls - reported.done * 2  # extraction and summary are generated
    assert judged > 0 and estimated.calls == reported.calls
    assert reported.prompt_tokens == 100 * 2 * reported.done + 1000 * judged
    assert 100 * 2 * estimated.done < estimated.prompt_tokens < reported.prompt_tokens
