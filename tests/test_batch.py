"""Batch runs with in-process fake back ends: inputs, one line per article, resume, budgets,
interrupts, rate limits, costs, the CLI wrapper and the OpenAI Batch API stage-1 helpers."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from factcheck import costs
from factcheck.backends.base import Completion
from factcheck.backends.cache import CachedBackend
from factcheck.batch import run_batch
from factcheck.errors import BackendError, ConfigError, InputError
from factcheck.inputs import Item, collect_inputs
from factcheck.openai_batch import collect_openai_batch, write_openai_batch_file
from factcheck.ratelimit import TokenBucket
from factcheck.results_file import prepare_output
from factcheck.schemas import Report

# ---------------------------------------------------------------- a model that answers by schema


def article_sentences(messages: list[dict[str, str]]) -> dict[int, str]:
    """The numbered sentences of the article block in the system prompt."""
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    return {int(n): text.strip() for n, text in re.findall(r"^\[(\d+)\] (.*)$", system, re.M)}


def schema_name_of(schema: dict[str, Any]) -> str:
    """For json_object requests, which carry the schema but not its name."""
    props = schema.get("properties", {})
    if "claims" in props:
        return "WrittenClaims" if "text" in props["claims"]["items"]["properties"] else "SentenceClaims"
    if "target" in props:
        return "Target"
    if "key" in props:
        return "SummaryAnswer"
    if "verdict" in props:
        if "sents" not in props:
            return "Choice"  # OpenAIBackend.classify's probe
        return "ReasonedJudgement" if "reason" in props else "Judgement"
    raise AssertionError(f"unknown schema {sorted(props)}")


def answer_json(name: str, schema: dict[str, Any], messages: list[dict[str, str]]) -> dict[str, Any]:
    """A valid answer for each pipeline schema: one claim per allowed sentence, a two-sentence
    summary made of article sentences, target 0, verdict supported."""
    sentences = article_sentences(messages)
    first = min(sentences) if sentences else 1
    props = schema.get("properties", {})
    if name in ("SentenceClaims", "WrittenClaims"):
        item = props["claims"]["items"]["properties"]
        numbers = item["n"].get("enum") or sorted(sentences)
        claims = []
        for n in numbers:
            claim: dict[str, Any] = {"n": n, "source": "", "worthy": True}
            if "text" in item:
                claim |= {"text": sentences.get(n, "A claim made by the article."), "type": "unattributed"}
            claims.append(claim)
        return {"claims": claims}
    if name == "Target":
        return {"target": 0}
    if name == "SummaryAnswer":
        k = props["sentences"].get("minItems", 2)
        texts = list(sentences.values()) or ["The article reports an event."]
        return {"sentences": [texts[i % len(texts)] for i in range(k)], "key": [first]}
    if name in ("Judgement", "ReasonedJudgement"):
        out: dict[str, Any] = {"verdict": "supported", "sents": [first]}
        if "reason" in props:
            out["reason"] = "The article says so."
        return out
    if name == "Choice":  # answered, but without logprobs: the back end then generates instead
        (key,) = props
        return {key: props[key]["enum"][0]}
    raise AssertionError(f"no answer for schema {name}")


class FakeBackend:
    """Answers every pipeline call; can fail articles by a marker word, raise KeyboardInterrupt on
    the Nth call, sleep, and report fixed token counts. Records the most calls ever in flight."""

    def __init__(
        self,
        *,
        name: str = "openai",
        model: str = "fake-model",
        fail_marker: str | None = None,
        interrupt_on: int | None = None,
        delay: float = 0.0,
        tokens: tuple[int, int] = (100, 20),
        forbid_calls: bool = False,
    ):
        self.name, self.model = name, model
        self.base_url = None
        self.fail_marker = fail_marker
        self.interrupt_on = interrupt_on
        self.delay = delay
        self.tokens = tokens
        self.forbid_calls = forbid_calls
        self.calls = 0
        self.schema_names: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def complete(self, messages, *, schema, schema_name, max_tokens, temperature=0.0):  # type: ignore[no-untyped-def]
        assert not self.forbid_calls, "no model call expected"
        with self._lock:
            self.calls += 1
            number = self.calls
            self.schema_names.append(schema_name)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.interrupt_on is not None and number == self.interrupt_on:
                raise KeyboardInterrupt
            if self.delay:
                time.sleep(self.delay)
            if self.fail_marker and self.fail_marker in messages[0]["content"]:
                raise BackendError("fake server: HTTP 503: overloaded")
            text = json.dumps(answer_json(schema_name, schema, messages))
            return Completion(
                text=text,
                finish_reason="stop",
                prompt_tokens=self.tokens[0],
                completion_tokens=self.tokens[1],
            )
        finally:
            with self._lock:
                self.in_flight -= 1

    def classify(self, messages, *, prefix, options):  # type: ignore[no-untyped-def]
        return None


def article(i: int, extra: str = "") -> str:
    return (
        f"Article {i} reports that the harbour reopened after repairs. "
        f"Officials expect more ships next month. Local shops welcomed the news.{extra}\n"
    )


@pytest.fixture
def articles(tmp_path: Path) -> Path:
    root = tmp_path / "articles"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    for i in range(1, 5):
        (root / f"a{i}.txt").write_text(article(i))
    (root / "sub" / "b1.md").write_text(article(11))
    (root / "sub" / "b2.html").write_text(f"<html><body><article><p>{article(12)}</p></article></body></html>")
    (root / ".hidden" / "x.txt").write_text(article(99))
    (root / "notes.json").write_text("{}")
    return root


def read_lines(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n") or not raw
    return [json.loads(line) for line in raw.decode("utf-8").splitlines()]


def ids_once(lines: list[dict[str, Any]]) -> set[str]:
    counts = Counter(line["id"] for line in lines)
    assert all(n == 1 for n in counts.values()), counts.most_common(3)
    return set(counts)


# ---------------------------------------------------------------- inputs and output lines


def test_directory_glob_and_jsonl_inputs(tmp_path: Path, articles: Path) -> None:
    listing = tmp_path / "list.jsonl"
    (tmp_path / "rel.txt").write_text(article(21))
    listing.write_text(
        json.dumps({"id": "t1", "text": article(22)})
        + "\n\n"
        + json.dumps({"id": "p1", "path": "rel.txt"})
        + "\n"
        + json.dumps({"text": article(23), "title": "Harbour reopens"})
        + "\n"
    )
    items = collect_inputs([str(articles), str(articles / "a*.txt"), str(listing)])
    ids = [i.id for i in items]
    # The directory is walked recursively, hidden folders and other files skipped; the glob adds
    # nothing new (same files); JSONL items keep their ids or get FILE:LINE.
    assert sorted(ids[:6]) == sorted(
        str(articles / n) for n in ("a1.txt", "a2.txt", "a3.txt", "a4.txt", "sub/b1.md", "sub/b2.html")
    )
    assert ids[6:] == ["t1", "p1", f"{listing}:4"]
    assert items[7].path == str(tmp_path / "rel.txt")

    out = tmp_path / "out.jsonl"
    summary = run_batch([str(articles), str(listing)], out, backend_factory=FakeBackend, concurrency=4, progress=False)
    lines = read_lines(out)
    assert ids_once(lines) == set(ids)
    assert (summary.done, summary.failed, summary.total, summary.exit_code) == (9, 0, 9, 0)
    for line in lines:
        Report.model_validate(line["report"])
        assert ("path" in line) == (line["id"] != "t1" and not line["id"].endswith(":4"))
    by_id = {line["id"]: line for line in lines}
    assert by_id[f"{listing}:4"]["report"]["article"]["title"] == "Harbour reopens"
    assert summary.prompt_tokens == 100 * summary.calls


def test_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        collect_inputs([str(tmp_path / "missing.txt")])
    with pytest.raises(InputError, match="no files match"):
        collect_inputs([str(tmp_path / "*.txt")])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "text": "a", "url": "http://b"}\n')
    with pytest.raises(InputError, match="exactly one of"):
        collect_inputs([str(bad)])
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "x", "text": "one"}\n{"id": "x", "text": "two"}\n')
    with pytest.raises(InputError, match="duplicate id 'x'"):
        collect_inputs([str(dup)])


def test_error_lines_then_resume_retries_them(tmp_path: Path, articles: Path) -> None:
    (articles / "a2.txt").write_text(article(2, " Zebra crossing works continue."))
    (articles / "a3.txt").write_text(article(3, " Zebra sightings were reported."))
    out = tmp_path / "out.jsonl"
    first = run_batch(
        [str(articles)],
        out,
        backend_factory=lambda: FakeBackend(fail_marker="Zebra"),
        concurrency=3,
        progress=False,
    )
    assert (first.done, first.failed, first.exit_code) == (4, 2, 1)
    errors = [line for line in read_lines(out) if "error" in line]
    assert {e["id"] for e in errors} == {str(articles / "a2.txt"), str(articles / "a3.txt")}
    assert all("\n" not in e["error"] and "HTTP 503" in e["error"] for e in errors)
    assert first.errors  # grouped error messages for the summary
    assert any("HTTP" in line for line in first.lines())

    again = run_batch([str(articles)], out, backend_factory=FakeBackend, resume=True, progress=False)
    assert (again.done, again.failed, again.skipped) == (2, 0, 4)
    lines = read_lines(out)
    assert len(ids_once(lines)) == 6 and all("report" in line for line in lines)

    # Nothing left: no back end is even opened.
    def no_backend():  # type: ignore[no-untyped-def]
        raise AssertionError("opened a back end with nothing to do")

    done = run_batch([str(articles)], out, backend_factory=no_backend, resume=True, progress=False)
    assert (done.done, done.skipped, done.exit_code) == (0, 6, 0)


def test_existing_output_needs_resume(tmp_path: Path, articles: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "x", "error": "e"}\n')
    with pytest.raises(InputError, match="--resume"):
        run_batch([str(articles)], out, backend_factory=FakeBackend, progress=False)


def test_truncated_last_line_is_dropped_and_redone(tmp_path: Path, articles: Path) -> None:
    out = tmp_path / "out.jsonl"
    run_batch([str(articles)], out, backend_factory=FakeBackend, progress=False)
    raw = out.read_bytes().splitlines(keepends=True)
    victim = json.loads(raw[-1])["id"]
    out.write_bytes(b"".join(raw[:-1]) + raw[-1][: len(raw[-1]) // 2])  # died mid-write
    state = prepare_output(out, resume=True)
    assert state.truncated and victim not in state.done and len(state.done) == 5
    assert out.read_bytes() == b"".join(raw[:-1])  # the partial line is gone
    out.write_bytes(b"".join(raw[:-1]) + raw[-1][:-7])
    summary = run_batch([str(articles)], out, backend_factory=FakeBackend, resume=True, progress=False)
    assert (summary.done, summary.skipped) == (1, 5)
    assert any("partial last line" in n for n in summary.notes)
    assert len(ids_once(read_lines(out))) == 6


def test_complete_last_line_without_newline_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "a", "report": {}}\n{"id": "b", "report": {}}')
    state = prepare_output(out, resume=True)
    assert state.done == {"a", "b"} and not state.truncated
    assert out.read_text().endswith('"report": {}}\n')


def test_broken_line_in_the_middle_is_an_error(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "a", "report": {}}\n{"id": "b", "rep\n{"id": "c", "report": {}}\n')
    with pytest.raises(InputError, match="out.jsonl:2"):
        prepare_output(out, resume=True)


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


# ---------------------------------------------------------------- concurrency and interrupts


def test_local_backend_is_forced_to_concurrency_one(tmp_path: Path, articles: Path) -> None:
    backend = FakeBackend(name="local", delay=0.01)
    summary = run_batch(
        [str(articles)],
        tmp_path / "out.jsonl",
        backend_factory=lambda: backend,
        concurrency=8,
        progress=False,
    )
    assert backend.max_in_flight == 1 and summary.concurrency == 1 and summary.done == 6
    assert "SentenceClaims" in backend.schema_names  # the local default style
    assert any("one article at a time" in n for n in summary.notes)


def test_openai_backend_runs_concurrently(tmp_path: Path, articles: Path) -> None:
    backend = FakeBackend(delay=0.03)
    summary = run_batch(
        [str(articles)],
        tmp_path / "out.jsonl",
        backend_factory=lambda: backend,
        concurrency=6,
        progress=False,
    )
    assert summary.done == 6 and backend.max_in_flight > 1
    assert "WrittenClaims" in backend.schema_names


def test_keyboard_interrupt_leaves_a_valid_file_and_resume_finishes(tmp_path: Path, articles: Path) -> None:
    out = tmp_path / "out.jsonl"
    summary = run_batch(
        [str(articles)],
        out,
        backend_factory=lambda: FakeBackend(interrupt_on=9, delay=0.005),
        concurrency=2,
        progress=False,
    )
    assert summary.interrupted and summary.exit_code == 130
    lines = read_lines(out)  # every line complete and valid
    assert len(lines) == summary.done + summary.failed < 6
    assert summary.not_started == 6 - len(lines)
    assert all("report" in line for line in lines)

    rest = run_batch([str(articles)], out, backend_factory=FakeBackend, resume=True, progress=False)
    assert rest.exit_code == 0 and rest.skipped == len(lines)
    assert len(ids_once(read_lines(out))) == 6


def test_many_consecutive_failures_stop_the_run(tmp_path: Path) -> None:
    listing = tmp_path / "many.jsonl"
    listing.write_text("".join(json.dumps({"id": f"x{i}", "text": article(i, " Zebra.")}) + "\n" for i in range(30)))
    summary = run_batch(
        [str(listing)],
        tmp_path / "out.jsonl",
        backend_factory=lambda: FakeBackend(fail_marker="Zebra"),
        concurrency=1,
        max_consecutive_failures=5,
        progress=False,
    )
    assert summary.stopped_on_failures and summary.failed == 5 and summary.not_started == 25
    assert summary.exit_code == 1

    # Unreadable articles say nothing about the server: they never stop the run.
    empty = tmp_path / "empty.jsonl"
    empty.write_text("".join(json.dumps({"id": f"e{i}", "text": "..."}) + "\n" for i in range(30)))
    summary = run_batch(
        [str(empty)],
        tmp_path / "out2.jsonl",
        backend_factory=FakeBackend,
        concurrency=1,
        max_consecutive_failures=5,
        progress=False,
    )
    assert summary.failed == 30 and not summary.stopped_on_failures
    assert "the article is empty" in (tmp_path / "out2.jsonl").read_text()


def test_config_error_stops_the_batch(tmp_path: Path, articles: Path) -> None:
    class Rejected(FakeBackend):
        def complete(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise ConfigError("the server rejected the API key")

    out = tmp_path / "out.jsonl"
    with pytest.raises(ConfigError, match="rejected"):
        run_batch([str(articles)], out, backend_factory=Rejected, concurrency=2, progress=False)
    assert out.read_text() == ""  # not 6 identical error lines


# ---------------------------------------------------------------- rate limits


def test_token_bucket_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    bucket = TokenBucket(60, burst_seconds=2, clock=lambda: now[0], sleep=sleep)  # 1/s, burst 2
    assert bucket.acquire() == 0 and bucket.acquire() == 0
    assert bucket.acquire() == pytest.approx(1.0)  # empty: wait for one to drip in
    big = TokenBucket(600, burst_seconds=1, clock=lambda: now[0], sleep=sleep)  # 10/s, burst 10
    assert big.acquire(50) == 0  # larger than the burst: allowed when full, leaves debt
    assert big.acquire(1) == pytest.approx(4.1)  # 41 short at 10/s


def test_rate_limiter_sits_below_the_cache(tmp_path: Path, articles: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from factcheck.ratelimit import RateLimiter

    acquired: list[int] = []
    monkeypatch.setattr(RateLimiter, "acquire", lambda self, tokens: acquired.append(tokens))
    inner = FakeBackend()
    cache = CachedBackend(inner, tmp_path / "cache.sqlite")
    summary = run_batch(
        [str(articles)],
        tmp_path / "out.jsonl",
        backend_factory=lambda: cache,
        rpm=6000,
        tpm=10_000_000,
        progress=False,
    )
    assert summary.done == 6 and len(acquired) == inner.calls == summary.calls > 0
    assert all(t > 100 for t in acquired)  # prompt estimate + max_tokens
    assert cache.inner is inner  # the caller's back end is given back as it was
    again = run_batch(
        [str(articles)], tmp_path / "again.jsonl", backend_factory=lambda: cache, rpm=6000, progress=False
    )
    assert again.cached_calls == again.calls > 0 and again.tokens == 0 and again.cost_usd == 0
    assert len(acquired) == inner.calls  # a cache hit does not wait for the rate limit


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


# ---------------------------------------------------------------- the CLI command


def cli_app():  # type: ignore[no-untyped-def]
    import typer

    from factcheck.cli_batch import batch, cache_app

    app = typer.Typer()
    app.command()(batch)
    app.add_typer(cache_app, name="cache")
    return app


def test_cli_batch_against_a_server(tmp_path: Path, articles: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fakeserver import FakeOpenAIServer, Reply
    from typer.testing import CliRunner

    from factcheck.errors import BudgetExceededError

    def good(request: dict[str, Any]) -> Reply:
        fmt = request["response_format"]
        schema = fmt["json_schema"]["schema"] if fmt["type"] == "json_schema" else fmt["schema"]
        name = fmt["json_schema"]["name"] if fmt["type"] == "json_schema" else schema_name_of(schema)
        return Reply(content=json.dumps(answer_json(name, schema, request["messages"])), prompt_tokens=800)

    monkeypatch.setenv("FACTCHECK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FACTCHECK_NO_CACHE", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    runner = CliRunner()
    out = tmp_path / "out.jsonl"
    with FakeOpenAIServer(default=good) as server:
        common = ["--base-url", server.url, "--model", "fake-model"]
        result = runner.invoke(cli_app(), ["batch", str(articles), "-o", str(out), "--max-tokens", "9000", *common])
        assert isinstance(result.exception, BudgetExceededError) and result.exception.exit_code == 3
        assert "budget reached" in result.output
        result = runner.invoke(
            cli_app(), ["batch", str(articles), "-o", str(out), "--resume", "--concurrency", "3", *common]
        )
        assert result.exit_code == 0, result.output
        assert "done" in result.output and "results:" in result.output
        assert len(ids_once(read_lines(out))) == 6
        requests = len(server.requests)
        # A fresh output, same articles: every answer comes from the cache.
        result = runner.invoke(cli_app(), ["batch", str(articles), "-o", str(tmp_path / "b.jsonl"), *common])
        assert result.exit_code == 0 and len(server.requests) == requests
        # --no-cache really goes to the server.
        result = runner.invoke(
            cli_app(), ["batch", str(articles), "-o", str(tmp_path / "c.jsonl"), "--no-cache", *common]
        )
        assert result.exit_code == 0 and len(server.requests) > requests

    stats = runner.invoke(cli_app(), ["cache", "stats"])
    assert stats.exit_code == 0 and "entries:" in stats.output and str(tmp_path / "cache") in stats.output
    cleared = runner.invoke(cli_app(), ["cache", "clear"])
    assert cleared.exit_code == 0 and "removed" in cleared.output
    assert "entries: 0" in runner.invoke(cli_app(), ["cache", "stats"]).output


def test_cli_interrupt_prints_the_resume_command(
    tmp_path: Path, articles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import factcheck.batch as batch_module

    real = batch_module.run_batch

    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs["backend_factory"] = lambda: FakeBackend(interrupt_on=3)
        return real(*args, **kwargs)

    monkeypatch.setattr(batch_module, "run_batch", interrupted)
    result = CliRunner().invoke(
        cli_app(), ["batch", str(articles), "-o", str(tmp_path / "o.jsonl"), "--concurrency", "1"]
    )
    assert result.exit_code == 130
    assert f"factcheck batch {articles} -o {tmp_path / 'o.jsonl'} --resume --concurrency 1" in result.output


# ---------------------------------------------------------------- OpenAI Batch API, stage 1


def test_openai_batch_file_and_collect_into_the_cache(tmp_path: Path, articles: Path) -> None:
    requests_file = tmp_path / "requests.jsonl"
    count, unreadable = write_openai_batch_file([str(articles)], requests_file, model="gpt-4o-mini")
    requests = read_lines(requests_file)
    assert count == len(requests) == 6 and unreadable == 0
    first = requests[0]
    assert first["method"] == "POST" and first["url"] == "/v1/chat/completions"
    assert first["custom_id"] == str(articles / "a1.txt") + "#0"
    body = first["body"]
    assert body["model"] == "gpt-4o-mini" and body["response_format"]["json_schema"]["name"] == "WrittenClaims"
    assert "[1] Article 1 reports" in body["messages"][0]["content"]

    # What the Batch API would return, one answer per request (one an error).
    results = []
    for r in requests:
        schema = r["body"]["response_format"]["json_schema"]["schema"]
        content = json.dumps(answer_json("WrittenClaims", schema, r["body"]["messages"]))
        results.append(
            {
                "custom_id": r["custom_id"],
                "response": {
                    "status_code": 200,
                    "body": {
                        "choices": [{"message": {"content": content, "refusal": None}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 500, "completion_tokens": 80},
                    },
                },
            }
        )
    results[-1]["response"] = {"status_code": 500, "body": {"error": {"message": "boom"}}}

    class Stub:
        class batches:  # noqa: N801
            @staticmethod
            def retrieve(batch_id: str) -> Any:
                return type("B", (), {"status": "completed", "output_file_id": "file-out"})()

        class files:  # noqa: N801
            @staticmethod
            def content(file_id: str) -> Any:
                return type("C", (), {"text": "\n".join(json.dumps(r) for r in results)})()

    cache = tmp_path / "cache.sqlite"
    assert collect_openai_batch("batch_1", requests_file, client=Stub(), cache_path=cache) == (5, 1)

    # The live run (same model, api.openai.com) finds stage 1 in the cache for 5 of 6 articles.
    inner = FakeBackend(model="gpt-4o-mini")
    summary = run_batch(
        [str(articles)],
        tmp_path / "out.jsonl",
        backend_factory=lambda: CachedBackend(inner, cache),
        progress=False,
    )
    assert summary.done == 6
    assert inner.schema_names.count("WrittenClaims") == 1
    assert summary.cached_calls == 5


def test_item_where() -> None:
    assert Item(id="a", path="x.txt").where() == {"path": "x.txt"}
    assert Item(id="b", url="https://e.com/a").where() == {"url": "https://e.com/a"}
    assert Item(id="c").where() == {}


def test_real_ctrl_c_in_the_cli(tmp_path: Path) -> None:
    """SIGINT to a running `factcheck batch`: exit 130, the resume command printed, only whole
    lines in the output, and the resume finishes with every article once."""
    import os
    import signal
    import subprocess
    import sys

    listing = tmp_path / "in.jsonl"
    listing.write_text("".join(json.dumps({"id": f"a{i}", "text": article(i)}) + "\n" for i in range(40)))
    out = tmp_path / "out.jsonl"
    code = (
        "import sys; sys.path.insert(0, sys.argv.pop(1)); import typer\n"
        "import factcheck.batch as b; from factcheck.cli_batch import batch\n"
        "from test_batch import FakeBackend\n"
        "real = b.run_batch\n"
        "fake = lambda: FakeBackend(delay=0.05)\n"
        "b.run_batch = lambda *a, **k: real(*a, **{**k, 'backend_factory': fake})\n"
        "app = typer.Typer(); app.command()(batch); app.command('other')(lambda: None); app()\n"
    )
    tests_dir = str(Path(__file__).parent)
    cmd = [sys.executable, "-c", code, tests_dir, "batch", str(listing), "-o", str(out), "--concurrency", "2"]
    env = {**os.environ, "FACTCHECK_NO_CACHE": "1"}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 30
    while (not out.exists() or out.stat().st_size == 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Resume with:" in err and "--resume" in err
    lines = read_lines(out)
    assert 0 < len(lines) < 40

    summary = run_batch([str(listing)], out, backend_factory=FakeBackend, resume=True, progress=False)
    assert summary.skipped == len(lines) and summary.done == 40 - len(lines)
    assert len(ids_once(read_lines(out))) == 40


def test_url_inputs(tmp_path: Path) -> None:
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    site = tmp_path / "site"
    site.mkdir()
    (site / "story.html").write_text(
        f"<html><head><title>Harbour reopens</title></head><body><article><p>{article(31)}</p></article></body></html>"
    )

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/story.html"
        listing = tmp_path / "urls.jsonl"
        listing.write_text(json.dumps({"id": "u1", "url": url}) + "\n")
        out = tmp_path / "out.jsonl"
        summary = run_batch([url, str(listing)], out, backend_factory=FakeBackend, progress=False)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert summary.done == 2
    lines = {line["id"]: line for line in read_lines(out)}
    assert lines[url]["url"] == url and lines["u1"]["url"] == url
    assert "Article 31 reports" in lines["u1"]["report"]["article"]["text"]


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
