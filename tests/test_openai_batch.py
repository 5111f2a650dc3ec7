"""`factcheck openai-batch write|submit|status|collect` through the real `openai` SDK, against the
Files and Batches endpoints of the loopback FakeOpenAIServer, then `factcheck batch` on the cache."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import answer_for, run_main
from fakeserver import FakeOpenAIServer, Reply
from typer.testing import CliRunner

from factcheck.cli import app

KEY = "sk-batch-secret-4242"
MODEL = "gpt-4o-mini"
EXTRACTION = "WrittenClaims"  # the schema `write` asks for (Options(style="written"))
runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_llama(monkeypatch: pytest.MonkeyPatch) -> None:
    """`llama_cpp` must never be imported here: a None entry makes `import llama_cpp` fail fast."""
    monkeypatch.setitem(sys.modules, "llama_cpp", None)


def answer(request: dict[str, Any]) -> Reply:
    fmt = request["response_format"]["json_schema"]
    return Reply(content=json.dumps(answer_for(fmt["name"], fmt["schema"], request["messages"])))


def mentions(text: str) -> Any:
    """A `when` matching requests whose system prompt (the article) contains `text`."""
    return lambda request: text in request["messages"][0]["content"]


def schema_names(requests: list[dict[str, Any]]) -> list[str]:
    return [r["response_format"]["json_schema"]["name"] for r in requests]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(default=answer) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        yield srv


@pytest.fixture
def articles(tmp_path: Path) -> Path:
    root = tmp_path / "news"
    root.mkdir()
    for i, place in enumerate(["Westhaven", "Northport", "Eastbay"], 1):
        (root / f"a{i}.txt").write_text(
            f"Article {i}: the harbour at {place} reopened on Monday after repairs, officials said. "
            f"Shipping firms expect {i * 10} more ships next month.\n",
            encoding="utf-8",
        )
    return root


def cli(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def write_and_submit(articles: Path, tmp_path: Path) -> tuple[Path, str]:
    requests_file = tmp_path / "requests.jsonl"
    result = cli("openai-batch", "write", str(articles), "-o", str(requests_file), "--model", MODEL)
    assert result.exit_code == 0 and "wrote 3 request(s)" in result.stderr
    submitted = cli("openai-batch", "submit", str(requests_file))
    assert submitted.exit_code == 0, submitted.output
    return requests_file, submitted.stdout.strip()


def live_batch(articles: Path, out: Path) -> Any:
    result = cli("batch", str(articles), "-o", str(out), "--model", MODEL, "--concurrency", "1")
    assert result.exit_code == 0, result.output
    return result


def test_submit_uploads_the_exact_request_file(server: FakeOpenAIServer, articles: Path, tmp_path: Path) -> None:
    requests_file, batch_id = write_and_submit(articles, tmp_path)
    lines = [json.loads(line) for line in requests_file.read_text(encoding="utf-8").splitlines()]
    assert sorted(line["custom_id"] for line in lines) == [f"{articles / f'a{i}.txt'}#0" for i in (1, 2, 3)]
    assert schema_names([line["body"] for line in lines]) == [EXTRACTION] * 3

    assert list(server.batches) == [batch_id]  # stdout is the batch id and nothing else
    batch = server.batches[batch_id]
    assert (batch["endpoint"], batch["completion_window"]) == ("/v1/chat/completions", "24h")
    upload = server.files[batch["input_file_id"]]
    assert (upload["purpose"], upload["filename"]) == ("batch", "requests.jsonl")
    assert server.file_data[upload["id"]] == requests_file.read_bytes()
    assert all(h["authorization"] == f"Bearer {KEY}" for _, _, h in server.batch_api_calls)
    assert server.requests == [] and server.batch_requests == []  # nothing answered yet


def test_status_reports_in_progress_then_completed(server: FakeOpenAIServer, articles: Path, tmp_path: Path) -> None:
    server.batch_in_progress_polls = 2
    _, batch_id = write_and_submit(articles, tmp_path)
    polls = [cli("openai-batch", "status", batch_id) for _ in range(3)]
    assert all(p.exit_code == 0 for p in polls)
    assert [p.stdout.strip() for p in polls] == [
        "in_progress (0/3 done, 0 failed)",
        "in_progress (0/3 done, 0 failed)",
        "completed (3/3 done, 0 failed)",
    ]
    assert schema_names(server.batch_requests) == [EXTRACTION] * 3


def test_collect_fills_the_cache_and_batch_makes_only_follow_up_calls(
    server: FakeOpenAIServer, articles: Path, tmp_path: Path
) -> None:
    requests_file, batch_id = write_and_submit(articles, tmp_path)
    collected = cli("openai-batch", "collect", batch_id, str(requests_file))
    assert collected.exit_code == 0
    assert "cached 3 answer(s); 0 not usable" in collected.stderr

    out = tmp_path / "reports.jsonl"
    live_batch(articles, out)
    assert EXTRACTION not in schema_names(server.requests)  # stage 1 came from the cache
    assert "SummaryAnswer" in schema_names(server.requests)  # the later stages ran live
    reports = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(reports) == 3 and all("error" not in r for r in reports)


def test_failed_and_refused_lines_are_reported_and_not_cached(
    server: FakeOpenAIServer, articles: Path, tmp_path: Path
) -> None:
    server.queue(
        Reply(status=500, error_message="overloaded", when=mentions("Article 2:")),
        Reply(refusal="I can't help with that", when=mentions("Article 3:")),
    )
    requests_file, batch_id = write_and_submit(articles, tmp_path)
    assert cli("openai-batch", "status", batch_id).stdout.strip() == "completed (2/3 done, 1 failed)"
    batch = server.batches[batch_id]
    assert batch["output_file_id"] and batch["error_file_id"]  # failures sit in the error file
    collected = cli("openai-batch", "collect", batch_id, str(requests_file))
    assert collected.exit_code == 0
    assert "cached 1 answer(s); 2 not usable" in collected.stderr

    live_batch(articles, tmp_path / "reports.jsonl")
    live = [r for r in server.requests if r["response_format"]["json_schema"]["name"] == EXTRACTION]
    about = {n for r in live for n in (1, 2, 3) if mentions(f"Article {n}:")(r)}
    assert len(live) == 2 and about == {2, 3}  # only the uncached articles' stage 1 ran live


def test_a_batch_where_every_line_failed_collects_nothing(
    server: FakeOpenAIServer, articles: Path, tmp_path: Path
) -> None:
    server.default = Reply(status=400, error_message="model not found")
    requests_file, batch_id = write_and_submit(articles, tmp_path)
    assert cli("openai-batch", "status", batch_id).stdout.strip() == "completed (0/3 done, 3 failed)"
    assert server.batches[batch_id]["output_file_id"] is None
    collected = cli("openai-batch", "collect", batch_id, str(requests_file))
    assert collected.exit_code == 0, collected.output
    assert "cached 0 answer(s); 3 not usable" in collected.stderr


@pytest.mark.parametrize("state", ["in_progress", "failed"])
def test_collecting_an_unfinished_batch_is_a_one_line_error(
    server: FakeOpenAIServer,
    articles: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    state: str,
) -> None:
    requests_file = tmp_path / "requests.jsonl"
    assert run_main(monkeypatch, "openai-batch", "write", str(articles), "-o", str(requests_file)) == 0
    if state == "in_progress":
        server.batch_in_progress_polls = 5
    else:  # a malformed line: the server fails the whole batch on validation
        with requests_file.open("a", encoding="utf-8") as handle:
            handle.write("{not json\n")
    assert run_main(monkeypatch, "openai-batch", "submit", str(requests_file)) == 0
    batch_id = capsys.readouterr().out.strip()

    assert run_main(monkeypatch, "openai-batch", "collect", batch_id, str(requests_file)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"error: batch {batch_id} is {state}, not completed: nothing to collect yet\n"
    assert server.batch_requests == []  # nothing was processed, so nothing could be cached


def test_server_errors_are_one_line_without_the_key(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(monkeypatch, "openai-batch", "status", "batch_nope") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err and KEY not in err


def test_no_api_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert run_main(monkeypatch, "openai-batch", "status", "batch_1") != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_the_api_key_never_reaches_outputs_or_the_cache(
    server: FakeOpenAIServer, articles: Path, tmp_path: Path
) -> None:
    requests_file, batch_id = write_and_submit(articles, tmp_path)
    outputs = [
        cli("openai-batch", "status", batch_id).output,
        cli("openai-batch", "collect", batch_id, str(requests_file)).output,
        live_batch(articles, tmp_path / "reports.jsonl").output,
        cli("cache", "stats").output,
    ]
    assert "cached 3 answer(s)" in outputs[1]
    assert all(KEY not in text for text in outputs)
    cache_dir = Path(os.environ["FACTCHECK_CACHE_DIR"])
    files = [p for p in [*cache_dir.rglob("*"), *tmp_path.rglob("*")] if p.is_file()]
    assert any(p.parent == cache_dir for p in files)
    assert all(KEY.encode() not in p.read_bytes() for p in files)
