"""The real embedded model, end to end, on a short article (slow: about a minute).

Skips only where llama-cpp-python is not installed; in CI (CI=true) a missing runtime fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from factcheck.schemas import Report

ROOT = Path(__file__).resolve().parents[1]
ARTICLE = ROOT / "examples" / "port-strike.txt"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("llama-cpp-python is not installed in CI")
        pytest.skip('the local extra is not installed: pip install ".[local]"')
    out = tmp_path_factory.mktemp("e2e") / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FACTCHECK_MODEL"))}
    # The user's real cache dir: the joined model is reused, as it would be for a user.
    env.pop("FACTCHECK_CACHE_DIR", None)
    env["FACTCHECK_NO_CACHE"] = "1"  # the model must really run, not replay stored answers
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from factcheck.cli import main; main()",
            "summarize",
            str(ARTICLE),
            "--format",
            "json",
            "-o",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return Report.model_validate_json(out.read_text())


@pytest.mark.model
def test_report_is_grounded(report: Report) -> None:
    text = report.article.text
    assert report.meta.backend == "local"
    assert len(report.claims) >= 5
    for claim in report.claims:
        assert claim.evidence
        for ev in claim.evidence:
            assert text[ev.start : ev.end] == ev.quote
    assert report.summary.text


@pytest.mark.model
def test_report_flags_what_the_article_hides(report: Report) -> None:
    kinds = {w.kind for w in report.warnings}
    # Deterministic signals: the quote pinned to the gates and the credit line.
    assert "unattributed_quote" in kinds
    assert "boilerplate" in kinds
    # The union's 2,400 against the port's 900, and the port's denial of refusing talks.
    assert report.counter_claims, json.dumps([c.model_dump() for c in report.claims])[:2000]
    credits = {n for w in report.warnings if w.kind == "boilerplate" for n in w.sentences}
    assert credits and not credits & {ev.sentence for c in report.claims for ev in c.evidence}
