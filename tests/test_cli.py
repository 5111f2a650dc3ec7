"""The command line: Typer commands through CliRunner, and main()'s error handling in-process."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import answer_for, run_main
from fakeserver import FakeOpenAIServer, Reply
from typer.testing import CliRunner

from factcheck.cli import app, main
from factcheck.schemas import Report

KEY = "sk-secret-test-123"
ARTICLE = "\n\n".join(
    [
        "Harbour Strike Ends After Record Pay Deal",
        "Dock workers at the port of Westhaven walked off the job on Monday, "
        "the Westhaven Port Authority said.",
        "The dockers' union said 2,400 of its members joined the strike. "
        "The port authority put the number at 900, saying most shifts were covered by agency staff.",
        "Union leader Maria Okafor said the port had refused to discuss a 9 percent pay rise. "
        "The port authority denied that it had refused talks.",
        '"Every day the ships sit idle costs this town money," read a notice pinned to the gates.',
        "Reporting by Lena Varga; Editing by Tom Reed",
    ]
)

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_llama(monkeypatch: pytest.MonkeyPatch) -> None:
    """`llama_cpp` must never be imported here: a None entry makes `import llama_cpp` fail fast."""
    monkeypatch.setitem(sys.modules, "llama_cpp", None)


@pytest.fixture
def article(tmp_path: Path) -> Path:
    path = tmp_path / "harbour.txt"
    path.write_text(ARTICLE, encoding="utf-8")
    return path


def answer_request(request: dict[str, Any]) -> Reply:
    """Answer a chat request by the schema name in its response_format, like FakeBackend does."""
    fmt = request["response_format"]
    assert fmt["type"] == "json_schema", fmt
    name, schema = fmt["json_schema"]["name"], fmt["json_schema"]["schema"]
    content = answer_for(name, schema, request["messages"], targets={6: 5})
    return Reply(content=json.dumps(content), prompt_tokens=120, completion_tokens=15)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(default=answer_request) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        yield srv


# ---------------------------------------------------------------- schema and models


def test_schema_prints_the_report_json_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema == Report.model_json_schema()
    assert schema["type"] == "object"
    assert {"article", "summary", "claims", "counter_claims", "warnings", "meta"} <= set(schema["properties"])
    assert set(schema["required"]) == {"article", "summary", "claims", "counter_claims", "warnings", "meta"}


def test_schema_describes_a_real_report() -> None:
    """A report from the pipeline fits the printed schema (a small structural walk, no jsonschema dep)."""
    from conftest import FakeBackend

    from factcheck import pipeline
    from factcheck.documents import make_document

    schema = json.loads(runner.invoke(app, ["schema"]).stdout)
    report = pipeline.summarize(make_document(ARTICLE), FakeBackend(targets={6: 5}))
    defs = schema.get("$defs", {})

    def check(value: Any, node: dict[str, Any], where: str) -> None:
        if "$ref" in node:
            node = defs[node["$ref"].split("/")[-1]]
        if "anyOf" in node:
            assert any(_fits(value, alt, defs) for alt in node["anyOf"]), where
            return
        if "enum" in node:
            assert value in node["enum"], where
        if node.get("type") == "object" and "properties" in node:
            assert isinstance(value, dict), where
            assert set(node.get("required", [])) <= set(value), where
            assert set(value) <= set(node["properties"]), where
            for k, v in value.items():
                check(v, node["properties"][k], f"{where}.{k}")
        elif node.get("type") == "array":
            assert isinstance(value, list), where
            for i, v in enumerate(value):
                check(v, node.get("items", {}), f"{where}[{i}]")

    def _fits(value: Any, node: dict[str, Any], defs: dict[str, Any]) -> bool:
        try:
            check(value, node, "")
        except AssertionError:
            return False
        kind = node.get("type")
        return kind is None or {"null": value is None, "string": isinstance(value, str)}.get(kind, True)

    check(json.loads(report.model_dump_json()), schema, "$")


def test_models_without_configuration_would_use_local() -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert "would use: local" in result.stdout
    assert "set OPENAI_API_KEY or OPENAI_BASE_URL" in result.stdout
    assert "llama-cpp-python): missing" in result.stdout  # the runtime is hidden from these tests


def test_models_with_a_base_url_would_use_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    result = runner.invoke(app, ["models", "--model", "fake-model"])
    assert result.exit_code == 0, result.output
    assert "would use: openai" in result.stdout
    assert "http://127.0.0.1:9/v1" in result.stdout and "fake-model" in result.stdout


def test_models_never_prints_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    assert "would use: openai" in result.stdout
    assert KEY not in result.output


def test_no_arguments_prints_help() -> None:
    result = runner.invoke(app, [])
    assert "summarize" in result.output and "schema" in result.output


# ---------------------------------------------------------------- errors through main()


def test_missing_file_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.txt"
    assert run_main(monkeypatch, "summarize", str(missing)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"error: no such file: {missing}\n"


def test_directory_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run_main(monkeypatch, "summarize", str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "directory" in err


def test_empty_stdin_is_exit_1(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    class Stdin:
        buffer = io.BytesIO(b"")

    monkeypatch.setattr(sys, "stdin", Stdin())
    assert run_main(monkeypatch, "summarize", "-") == 1
    err = capsys.readouterr().err
    assert err == "error: -: the article is empty\n"


def test_usage_error_is_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(monkeypatch, "summarize") == 2
    assert "Missing argument" in capsys.readouterr().err


def test_out_of_range_option_is_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], article: Path
) -> None:
    assert run_main(monkeypatch, "summarize", str(article), "--words", "3") == 2
    assert "--words" in capsys.readouterr().err


def test_missing_local_runtime_is_a_one_line_config_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], article: Path, tmp_path: Path
) -> None:
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF")
    assert run_main(monkeypatch, "summarize", str(article), "--model-path", str(model)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "llama-cpp-python" in err


def test_model_without_a_server_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], article: Path
) -> None:
    assert run_main(monkeypatch, "summarize", str(article), "--model", "gpt-4o") == 1
    assert capsys.readouterr().err.startswith("error: --model gpt-4o needs an OpenAI-compatible server")


def test_debug_shows_the_exception(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from factcheck.errors import InputError

    monkeypatch.setattr(sys, "argv", ["factcheck", "summarize", str(tmp_path / "nope.txt"), "--debug"])
    with pytest.raises(InputError):
        main()


def test_unreachable_server_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], article: Path
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    url = f"http://127.0.0.1:{port}/v1"
    # --model skips listing the server's models; the SDK's own retries make this take about 2 s.
    code = run_main(monkeypatch, "summarize", str(article), "--base-url", url, "--model", "m", "-f", "json")
    out, err = capsys.readouterr()
    assert code == 1
    assert err.startswith("error: ") and err.count("\n") == 1
    assert url in err
    assert KEY not in out + err


def test_rejected_key_is_one_line_without_the_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], article: Path
) -> None:
    with FakeOpenAIServer(
        default=Reply(status=401, error_message=f"Incorrect API key provided: {KEY}")
    ) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        code = run_main(monkeypatch, "summarize", str(article), "--model", "fake-model", "-f", "json")
    out, err = capsys.readouterr()
    assert code == 1
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "OPENAI_API_KEY" in err
    assert KEY not in out + err


# ---------------------------------------------------------------- summarize end to end on the fake server


def test_summarize_json_end_to_end(server: FakeOpenAIServer, article: Path) -> None:
    result = runner.invoke(app, ["summarize", str(article), "--model", "fake-model", "--format", "json"])
    assert result.exit_code == 0, (result.output, result.exception)
    report = Report.model_validate_json(result.stdout)
    text = report.article.text
    assert report.claims
    for claim in report.claims:
        for ev in claim.evidence:
            assert text[ev.start : ev.end] == ev.quote
    assert report.meta.backend == "openai" and report.meta.model == "fake-model"
    assert report.meta.usage.calls >= 4
    assert report.meta.usage.prompt_tokens >= 4 * 120
    relations = {c.relation for c in report.counter_claims}
    assert relations == {"denies", "contradicts"}
    kinds = {w.kind for w in report.warnings}
    assert {"unattributed_quote", "boilerplate"} <= kinds
    # Style "auto" on a server means model-written claims.
    names = [r["response_format"]["json_schema"]["name"] for r in server.requests]
    assert names[0] == "WrittenClaims"
    assert {"Target", "SummaryAnswer"} <= set(names)
    assert all(r["model"] == "fake-model" for r in server.requests)
    assert all(h["authorization"] == f"Bearer {KEY}" for h in server.headers_seen)
    assert KEY not in result.output


def test_a_5_mb_article_is_cut_with_a_warning(server: FakeOpenAIServer, tmp_path: Path) -> None:
    """Hostile size: the report covers the first MAX_CHARS, says it was cut, and every quote holds."""
    para = "The council met on day {i} and approved {i} million euros for buses, officials said."
    path = tmp_path / "huge.txt"
    path.write_text("\n\n".join(para.format(i=i) for i in range(60_000)), encoding="utf-8")
    assert path.stat().st_size > 5_000_000
    result = runner.invoke(
        app, ["summarize", str(path), "--model", "fake-model", "--format", "json", "--style", "sentence"]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    report = Report.model_validate_json(result.stdout)  # the validator re-checks every quote
    assert "truncated_input" in {w.kind for w in report.warnings}
    assert 300_000 < len(report.article.text) <= 400_000
    assert report.claims and all(
        report.article.text[e.start : e.end] == e.quote for c in report.claims for e in c.evidence
    )


def test_summarize_markdown_to_a_file(server: FakeOpenAIServer, article: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.md"
    result = runner.invoke(
        app, ["summarize", str(article), "--model", "fake-model", "--format", "markdown", "-o", str(out)]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stdout == ""
    assert f"wrote {out}" in result.stderr
    page = out.read_text(encoding="utf-8")
    assert page.startswith("# Fact-check: Harbour Strike Ends After Record Pay Deal")
    assert "Maria Okafor" in page
    assert KEY not in page and KEY not in result.output
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left nothing behind


def test_output_suffix_picks_the_format(server: FakeOpenAIServer, article: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["summarize", str(article), "--model", "fake-model", "-o", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    Report.model_validate_json(out.read_text(encoding="utf-8"))


def test_summarize_stdin_with_sentence_style(server: FakeOpenAIServer) -> None:
    result = runner.invoke(
        app,
        ["summarize", "-", "--model", "fake-model", "-f", "json", "--style", "sentence", "--no-self-check"],
        input=ARTICLE,
    )
    assert result.exit_code == 0, (result.output, result.exception)
    report = Report.model_validate_json(result.stdout)
    assert report.article.origin == "-"
    assert report.summary.revisions == []
    names = [r["response_format"]["json_schema"]["name"] for r in server.requests]
    assert names[0] == "SentenceClaims"


def test_summarize_uses_the_servers_model_when_none_is_given(server: FakeOpenAIServer, article: Path) -> None:
    result = runner.invoke(app, ["summarize", str(article), "-f", "json"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert Report.model_validate_json(result.stdout).meta.model == "fake-model"


def test_unwritable_output_is_one_line(
    server: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    article: Path,
    tmp_path: Path,
) -> None:
    target = tmp_path / "no" / "such" / "dir" / "out.md"
    assert run_main(monkeypatch, "summarize", str(article), "--model", "fake-model", "-o", str(target)) == 1
    out, err = capsys.readouterr()
    assert err.startswith(f"error: cannot write {target}") and err.count("\n") == 1
    assert not target.parent.exists()
    assert KEY not in out + err
