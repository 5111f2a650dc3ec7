"""Shared fixtures: a clean environment for every test and a scripted, offline `FakeBackend`.

`FakeBackend` implements the Backend protocol of factcheck/backends/base.py without any model or
network. It answers from, in order:

1. its queue of canned responses (`fake.queue(...)`), optionally tied to one schema name;
2. an `answer` callable `(messages, schema, schema_name) -> response | None`;
3. built-in defaults that answer every schema the pipeline uses, read off the prompt and the
   schema, so a whole `pipeline.summarize` run is deterministic (see `default_answer`).

A response is a `Completion`, a str (the completion text), a dict/list (dumped to JSON), an
exception (raised) or a callable returning one of those. `classify()` answers from `probs`: a
dict, None (no probabilities: the caller generates instead) or a callable
`(statement, messages) -> dict | None`. Every call is recorded in `fake.calls`.

`answer_for()` is the same default logic keyed by schema name, for a FakeOpenAIServer `default`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from factcheck.backends.base import Completion, Message

pytest.register_assert_rewrite("batch_helpers")  # its asserts explain themselves too

ENV_REMOVED = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "FACTCHECK_MODEL",
    "FACTCHECK_MODEL_PATH",
    "FACTCHECK_NO_CACHE",
    "FACTCHECK_PRICES",
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than 20 s (building a wheel, a fresh venv)")
    config.addinivalue_line("markers", "model: runs the real embedded model (slow)")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees the developer's keys, servers or model paths, nor writes to the real cache."""
    for name in ENV_REMOVED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FACTCHECK_CACHE_DIR", str(tmp_path_factory.mktemp("factcheck-cache")))


def run_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """`factcheck ARGS` as the console script runs it (main(): one-line errors, exit codes)."""
    import sys

    from factcheck.cli import main

    monkeypatch.setattr(sys, "argv", ["factcheck", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return 0 if info.value.code is None else int(info.value.code)


# ---------------------------------------------------------------- reading a prompt back

_ARTICLE_LINE = re.compile(r"^\[(\d+)\] (.*)$", re.M)


def article_sentences(messages: list[Message]) -> dict[int, str]:
    """The numbered sentences of the <article> block the pipeline puts in the system message."""
    for m in messages:
        content = m.get("content") or ""
        if "\n<article>\n" in content:  # the preamble mentions "<article>" inline first
            block = content.split("\n<article>\n", 1)[1].rsplit("\n</article>", 1)[0]
            return {int(n): text for n, text in _ARTICLE_LINE.findall(block)}
    return {}


def statement_of(messages: list[Message]) -> str | None:
    """The statement judge.j2 asks about."""
    for m in reversed(messages):
        match = re.search(r"^Statement: (.*)$", m.get("content") or "", re.M)
        if match:
            return match.group(1).strip()
    return None


def denial_of(messages: list[Message]) -> int | None:
    """The sentence number target.j2 says denies something."""
    for m in reversed(messages):
        match = re.search(r"Sentence \[(\d+)\] denies", m.get("content") or "")
        if match:
            return int(match.group(1))
    return None


def _prop(schema: dict[str, Any], *path: str) -> dict[str, Any]:
    node = schema
    for name in path:
        node = node["properties"][name]
        if name != path[-1] and "items" in node:
            node = node["items"]
    return node


# ---------------------------------------------------------------- default answers


def answer_for(
    schema_name: str,
    schema: dict[str, Any],
    messages: list[Message],
    *,
    targets: dict[int, int] | None = None,
    summary: list[str] | None = None,
    key: list[int] | None = None,
    verdict: str = "supported",
) -> dict[str, Any]:
    """A valid answer to every schema the pipeline asks for.

    SentenceClaims / WrittenClaims: one entry per sentence number in the schema's `enum` for `n`.
    Target: `targets[denying sentence]` if given (and allowed by the schema), else 0.
    SummaryAnswer: `summary` (else the first article sentences), as many as the schema wants.
    Judgement / ReasonedJudgement: `verdict`, citing the first article sentence.
    Choice (OpenAIBackend.classify): the first option.
    """
    sentences = article_sentences(messages)
    if schema_name in ("SentenceClaims", "WrittenClaims"):
        numbers = _prop(schema, "claims", "n").get("enum") or sorted(sentences)
        claims = []
        for n in numbers:
            if schema_name == "SentenceClaims":
                claims.append({"n": n, "source": "", "worthy": True})
            else:
                text = sentences.get(n, f"sentence number {n}")
                claims.append(
                    {"n": n, "text": text.ljust(8, "."), "source": "", "type": "unattributed", "worthy": True}
                )
        return {"claims": claims}
    if schema_name == "Target":
        allowed = _prop(schema, "target").get("enum")
        n = denial_of(messages)
        target = (targets or {}).get(n or -1, 0)
        if allowed is not None and target not in allowed:
            target = 0
        return {"target": target}
    if schema_name == "SummaryAnswer":
        spec = _prop(schema, "sentences")
        want = spec.get("minItems", 2)
        texts = list(summary) if summary is not None else list(sentences.values())
        texts = (texts + ["The article says more."] * want)[
            : max(want, min(len(texts), spec.get("maxItems", want)))
        ]
        return {"sentences": texts, "key": key if key is not None else sorted(sentences)[:2] or [1]}
    if schema_name in ("Judgement", "ReasonedJudgement"):
        out: dict[str, Any] = {
            "verdict": verdict,
            "sents": sorted(sentences)[:1] if verdict != "not_mentioned" else [],
        }
        if schema_name == "ReasonedJudgement":
            out["reason"] = "the fake back end says so"
        return out
    if schema_name == "Choice":
        (name,) = schema["properties"]
        return {name: schema["properties"][name]["enum"][0]}
    raise AssertionError(f"FakeBackend has no default answer for schema {schema_name!r}")


# ---------------------------------------------------------------- the fake back end


@dataclass
class Call:
    kind: str  # "complete" or "classify"
    messages: list[Message]
    schema: dict[str, Any] | None = None
    schema_name: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    prefix: str | None = None
    options: list[str] | None = None

    @property
    def statement(self) -> str | None:
        return statement_of(self.messages)


Response = Any  # Completion | str | dict | list | BaseException | Callable[..., Any]

DEFAULT_PROBS = {"supported": 0.9, "contradicted": 0.05, "not_mentioned": 0.05}


@dataclass
class FakeBackend:
    name: str = "fake"
    model: str = "fake-model"
    answer: Callable[[list[Message], dict[str, Any], str], Response | None] | None = None
    probs: dict[str, float] | Callable[[str | None, list[Message]], dict[str, float] | None] | None = field(
        default_factory=lambda: dict(DEFAULT_PROBS)
    )
    targets: dict[int, int] = field(default_factory=dict)  # denying sentence -> denied sentence
    summary: list[str] | None = None
    key: list[int] | None = None
    verdict: str = "supported"  # what a generated Judgement says
    calls: list[Call] = field(default_factory=list)
    _queue: list[tuple[str | None, Response]] = field(default_factory=list)

    # -- scripting

    def queue(self, *responses: Response, schema_name: str | None = None) -> FakeBackend:
        self._queue.extend((schema_name, r) for r in responses)
        return self

    @property
    def pending(self) -> int:
        return len(self._queue)

    def completes(self, schema_name: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.kind == "complete" and schema_name in (None, c.schema_name)]

    def classifies(self) -> list[Call]:
        return [c for c in self.calls if c.kind == "classify"]

    # -- the Backend protocol

    def complete(
        self,
        messages: list[Message],
        *,
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int,
        temperature: float = 0.0,
    ) -> Completion:
        snapshot = [dict(m) for m in messages]  # generate() extends its list after the call
        self.calls.append(Call("complete", snapshot, schema, schema_name, max_tokens, temperature))
        response: Response | None = None
        for i, (name, _) in enumerate(self._queue):
            if name is None or name == schema_name:
                response = self._queue.pop(i)[1]
                break
        if response is None and self.answer is not None:
            response = self.answer(snapshot, schema, schema_name)
        if response is None:
            response = answer_for(
                schema_name,
                schema,
                snapshot,
                targets=self.targets,
                summary=self.summary,
                key=self.key,
                verdict=self.verdict,
            )
        return _as_completion(response, snapshot, schema, schema_name)

    def classify(
        self, messages: list[Message], *, prefix: str, options: list[str]
    ) -> dict[str, float] | None:
        snapshot = [dict(m) for m in messages]
        self.calls.append(Call("classify", snapshot, prefix=prefix, options=list(options)))
        probs = self.probs(statement_of(snapshot), snapshot) if callable(self.probs) else self.probs
        if probs is None:
            return None
        assert set(probs) == set(options), f"classify options {options} != {sorted(probs)}"
        return dict(probs)


def _as_completion(
    response: Response, messages: list[Message], schema: dict[str, Any], name: str
) -> Completion:
    if callable(response) and not isinstance(response, type):
        response = response(messages, schema, name)
    if isinstance(response, BaseException):
        raise response
    if isinstance(response, Completion):
        return response
    if isinstance(response, (dict, list)):
        response = json.dumps(response)
    return Completion(text=response, finish_reason="stop", prompt_tokens=100, completion_tokens=10)


def probs_for(p_supported: float) -> dict[str, float]:
    """Probabilities with P(supported) = p and the rest split towards not_mentioned."""
    rest = 1.0 - p_supported
    return {"supported": p_supported, "contradicted": rest * 0.25, "not_mentioned": rest * 0.75}


@pytest.fixture
def fake_backend() -> FakeBackend:
    """A FakeBackend answering every pipeline schema by default; script it per test."""
    return FakeBackend()


@pytest.fixture
def make_fake_backend() -> Callable[..., FakeBackend]:
    """FakeBackend(**kwargs), for tests that need more than one."""
    return FakeBackend
