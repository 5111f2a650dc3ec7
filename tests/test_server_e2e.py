"""`check`, `consistency` and `summarize` against a real OpenAI-compatible server (slow: ~2 min).

The server is llama-cpp-python's own (`python -m llama_cpp.server`, from the dev extra) on
127.0.0.1, serving the embedded model. It rejects `json_schema` (the back end falls back to
`json_object` + schema) and gives no logprobs, so verdicts come from generated answers: the path
a user of a llama.cpp- or LM Studio-style server takes. Responses are never cached here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from factcheck.schemas import Report

ROOT = Path(__file__).resolve().parents[1]
ARTICLE = ROOT / "examples" / "port-strike.txt"
pytestmark = pytest.mark.model


def _user_env() -> dict[str, str]:
    """The environment without the test suite's temporary cache dir: the joined model is reused."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FACTCHECK_"))}


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("llama-cpp-python[server] is not installed in CI")
        pytest.skip('the server extra is not installed: pip install ".[local,dev]"')
    model = subprocess.run(
        [sys.executable, "-c", "from factcheck import embedded; print(embedded.ensure_model())"],
        env=_user_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    threads = str(len(os.sched_getaffinity(0)))
    args = ["--model", model, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "8192"]
    log = tmp_path_factory.mktemp("server") / "server.log"  # a file: a full pipe would stall the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", *args, "--n_threads", threads, "--model_alias", "embedded"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/models", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def factcheck(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**_user_env(), "OPENAI_BASE_URL": url, "FACTCHECK_NO_CACHE": "1"}
    return subprocess.run(
        [sys.executable, "-c", "from factcheck.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_check_against_the_server(server_url: str) -> None:
    claims = ["The dockers' union said 2,400 members joined the strike.", "The union said 7,000 members joined."]
    args = [a for c in claims for a in ("--claim", c)]
    done = factcheck(server_url, "check", *args, "--evidence", str(ARTICLE), "--format", "json")
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    text = ARTICLE.read_text(encoding="utf-8")
    assert [r["claim"] for r in results] == claims
    for r in results:
        assert r["verdict"] in ("supported", "contradicted", "not_enough_info")
        assert all(text[e["start"] : e["end"]] == e["quote"] for e in r["evidence"])
    # A figure the article never gives cannot be supported, whatever the model says.
    assert results[1]["verdict"] != "supported" and "7000" in results[1]["missing"]


def test_consistency_against_the_server(server_url: str, tmp_path: Path) -> None:
    summary = tmp_path / "summary.txt"
    summary.write_text("Dock workers at Saltmere went on strike. The strike cost 40 million euros a day.")
    done = factcheck(server_url, "consistency", "--article", str(ARTICLE), "--summary", str(summary), "-f", "json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert len(result["sentences"]) == 2
    assert result["consistent"] is False and result["sentences"][1]["verdict"] != "supported"


def test_summarize_against_the_server(server_url: str, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    done = factcheck(server_url, "summarize", str(ARTICLE), "--style", "sentence", "-o", str(out))
    assert done.returncode == 0, done.stderr
    report = Report.model_validate_json(out.read_text())  # validates every quote against the text
    assert report.meta.backend == "openai" and report.meta.model == "embedded"
    assert len(report.claims) >= 5 and report.summary.text
    assert {"unattributed_quote", "boilerplate"} <= {w.kind for w in report.warnings}
