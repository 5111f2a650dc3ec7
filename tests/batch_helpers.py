"""Helpers shared by the batch tests (test_batch, test_inputs, test_results_file, test_budget,
test_ratelimit, test_openai_batch_stage1): a FakeBackend that answers every pipeline schema by
itself, the `articles` fixture and readers for JSONL output. test_batch re-exports answer_json,
schema_name_of and FakeBackend for test_faults.py, benchmarks/batch_throughput.py and the
subprocess in test_real_ctrl_c_in_the_cli."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from factcheck.backends.base import Completion
from factcheck.errors import BackendError

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
