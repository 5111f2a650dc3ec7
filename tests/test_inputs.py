"""Collecting batch inputs (factcheck/inputs.py): directories, globs, JSONL listings, URLs."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import batch_helpers
import pytest
from batch_helpers import FakeBackend, article, ids_once, read_lines

from factcheck.batch import run_batch
from factcheck.errors import InputError
from factcheck.inputs import Item, collect_inputs
from factcheck.schemas import Report

articles = batch_helpers.articles  # the shared fixture; a plain import would look unused to ruff


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


def test_item_where() -> None:
    assert Item(id="a", path="x.txt").where() == {"path": "x.txt"}
    assert Item(id="b", url="https://e.com/a").where() == {"url": "https://e.com/a"}
    assert Item(id="c").where() == {}


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
