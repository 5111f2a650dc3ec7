"""Batch runs with in-process fake back ends: failed articles and resume, concurrency, interrupts,
consecutive failures, and the CLI wrapper (budget exit code, cache, Ctrl-C).

The fake back end and answers shared with other batch tests live in batch_helpers.py."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import batch_helpers
import pytest
from batch_helpers import FakeBackend, answer_json, article, ids_once, read_lines, schema_name_of

from factcheck.batch import run_batch
from factcheck.errors import ConfigError

articles = batch_helpers.articles  # the shared fixture; a plain import would look unused to ruff


# ---------------------------------------------------------------- errors and resume


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
        "from batch_helpers import FakeBackend\n"
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
