"""The batch output file (factcheck/results_file.py): --resume, a truncated or broken last line."""

from __future__ import annotations

import json
from pathlib import Path

import batch_helpers
import pytest
from batch_helpers import FakeBackend, ids_once, read_lines

from factcheck.batch import run_batch
from factcheck.errors import InputError
from factcheck.results_file import prepare_output

articles = batch_helpers.articles  # the shared fixture; a plain import would look unused to ruff


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
