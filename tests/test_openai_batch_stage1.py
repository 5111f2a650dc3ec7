"""OpenAI Batch API, stage 1 (factcheck/openai_batch.py): the request file, and collecting the
results into the response cache that a live run then reads. The SDK and CLI side is in
test_openai_batch.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import batch_helpers
from batch_helpers import FakeBackend, answer_json, read_lines

from factcheck.backends.cache import CachedBackend
from factcheck.batch import run_batch
from factcheck.openai_batch import collect_openai_batch, write_openai_batch_file

articles = batch_helpers.articles  # the shared fixture; a plain import would look unused to ruff


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
