"""The persistent response cache: keys, what is stored, secrets, threads, classify, open_backend."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from factcheck.backends import Choice, open_backend
from factcheck.backends.base import Completion
from factcheck.backends.cache import (
    CachedBackend,
    _public_url,
    clear,
    conforms,
    default_path,
    model_identity,
    stats,
)

SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": ["yes", "no"]}, "n": {"type": "integer"}},
    "required": ["verdict", "n"],
    "additionalProperties": False,
}
MESSAGES = [{"role": "system", "content": "article"}, {"role": "user", "content": "task"}]


class Inner:
    """Counts calls; answers with `text` (valid against SCHEMA by default)."""

    name = "openai"

    def __init__(self, model: str = "m1", text: str = '{"verdict": "yes", "n": 1}', **completion: Any):
        self.model = model
        self.base_url = "http://127.0.0.1:9/v1"
        self.text = text
        self.completion = completion
        self.calls = 0
        self.classifies = 0
        self._lock = threading.Lock()

    def complete(self, messages, *, schema, schema_name, max_tokens, temperature=0.0):  # type: ignore[no-untyped-def]
        with self._lock:
            self.calls += 1
        fields = {"finish_reason": "stop", "prompt_tokens": 120, "completion_tokens": 30} | self.completion
        return Completion(text=self.text, **fields)

    def classify(self, messages, *, prefix, options):  # type: ignore[no-untyped-def]
        with self._lock:
            self.classifies += 1
        return {o: 1.0 / len(options) for o in options}


def ask(backend: Any, messages: list[dict[str, str]] = MESSAGES, **kw: Any) -> Completion:
    args: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_name": "Answer",
        "max_tokens": 50,
        "temperature": 0.0,
    } | kw
    return backend.complete(messages, **args)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "responses.sqlite"


def test_miss_then_hit_reports_no_tokens_spent(db: Path) -> None:
    inner = Inner()
    cache = CachedBackend(inner, db)
    first = ask(cache)
    assert (first.cached, first.prompt_tokens, first.completion_tokens) == (False, 120, 30)
    second = ask(cache)
    assert second.cached and second.text == first.text and second.finish_reason == "stop"
    assert (second.prompt_tokens, second.completion_tokens) == (0, 0)
    assert inner.calls == 1 and (cache.hits, cache.misses) == (1, 1)
    assert (cache.name, cache.model, cache.base_url) == ("openai", "m1", inner.base_url)  # forwarded
    # Persistent: a new process (here a new instance) finds it too.
    again = CachedBackend(Inner(), db)
    assert ask(again).cached
    # The stored row keeps what the answer cost, for stats.
    s = stats(db)
    assert (s.entries, s.completions, s.prompt_tokens, s.completion_tokens) == (1, 1, 120, 30)
    assert s.models == {"openai/m1": 1} and s.bytes > 0


@pytest.mark.parametrize(
    "change",
    [
        {"messages": [{"role": "system", "content": "article"}, {"role": "user", "content": "other task"}]},
        {
            "schema": {
                **SCHEMA,
                "properties": {**SCHEMA["properties"], "n": {"type": "integer", "enum": [1, 2]}},
            }
        },
        {"schema_name": "Other"},
        {"max_tokens": 51},
        {"temperature": 0.7},
    ],
    ids=["prompt", "schema", "schema_name", "max_tokens", "temperature"],
)
def test_key_changes_with_every_part_of_the_request(db: Path, change: dict[str, Any]) -> None:
    inner = Inner()
    cache = CachedBackend(inner, db)
    ask(cache)
    assert not ask(cache, **change).cached
    assert inner.calls == 2
    assert ask(cache, **change).cached


def test_key_changes_with_the_model_and_server(db: Path) -> None:
    ask(CachedBackend(Inner("m1"), db))
    other_model = Inner("m2")
    assert not ask(CachedBackend(other_model, db)).cached and other_model.calls == 1
    other_server = Inner("m1")
    other_server.base_url = "http://10.0.0.2:8000/v1"
    assert not ask(CachedBackend(other_server, db)).cached
    local = Inner("m1")
    local.name = "local"  # type: ignore[misc]
    assert not ask(CachedBackend(local, db)).cached


def test_local_model_identity_is_the_file_size_and_mtime(db: Path, tmp_path: Path) -> None:
    import os

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"x" * 10)

    class Local(Inner):
        name = "local"

        def __init__(self) -> None:
            super().__init__("model")
            del self.base_url
            self.path = gguf

    first = model_identity(Local())
    assert first.startswith("file:model.gguf:10:")
    ask(CachedBackend(Local(), db))
    assert ask(CachedBackend(Local(), db)).cached
    os.utime(gguf, ns=(1_000_000_000, 1_000_000_000))  # the same name, a different file
    assert model_identity(Local()) != first
    assert not ask(CachedBackend(Local(), db)).cached


@pytest.mark.parametrize(
    "completion",
    [
        {"finish_reason": "length"},
        {"refusal": "I can't help with that", "text": None},
        {"finish_reason": "content_filter"},
        {"text": "{not json"},
        {"text": '{"verdict": "maybe", "n": 1}'},  # valid JSON, not valid against the schema
        {"text": '{"verdict": "yes"}'},
    ],
    ids=["truncated", "refused", "filtered", "invalid-json", "enum", "missing-field"],
)
def test_failed_answers_are_not_stored(db: Path, completion: dict[str, Any]) -> None:
    text = completion.pop("text", '{"verdict": "yes", "n": 1}')
    inner = Inner(text=text, **completion)
    cache = CachedBackend(inner, db)
    ask(cache)
    assert not ask(cache).cached and inner.calls == 2
    assert stats(db).entries == 0


def test_no_api_key_in_the_cache_file(tmp_path: Path) -> None:
    from fakeserver import FakeOpenAIServer, Reply

    from factcheck.backends.openai_compat import OpenAIBackend

    secret = "sk-test-THIS-MUST-NEVER-BE-STORED-0123456789"
    db = tmp_path / "responses.sqlite"
    with FakeOpenAIServer(default=Reply(content='{"verdict": "yes", "n": 2}')) as server:
        backend = CachedBackend(OpenAIBackend("gpt-4o-mini", base_url=server.url, api_key=secret, max_retries=0), db)
        assert not ask(backend).cached
        assert ask(backend).cached
        assert backend.classify(MESSAGES, prefix='{"verdict": "', options=["yes", "no"]) is None  # no logprobs
        assert server.headers_seen[0]["authorization"] == f"Bearer {secret}"  # the key was in use
        backend.close()
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("responses.sqlite"))
    assert b"gpt-4o-mini" in data  # the file is readable as bytes: the grep below is meaningful
    assert secret.encode() not in data and b"THIS-MUST-NEVER" not in data


def test_credentials_in_a_base_url_are_not_part_of_the_identity() -> None:
    assert _public_url("https://user:sk-secret@proxy.example.com:8443/v1/?key=sk-secret#x") == (
        "https://proxy.example.com:8443/v1"
    )


def test_concurrent_writes_from_16_threads(db: Path) -> None:
    inner = Inner()
    cache = CachedBackend(inner, db)
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def worker(t: int) -> None:
        try:
            start.wait()
            for i in range(40):
                # Half the prompts are shared between threads, half are the thread's own.
                task = f"shared {i % 20}" if i % 2 else f"thread {t} item {i}"
                completion = ask(cache, [{"role": "user", "content": task}])
                assert json.loads(completion.text or "") == {"verdict": "yes", "n": 1}
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    distinct = 16 * 20 + 10
    assert stats(db).entries == distinct
    assert cache.hits + cache.misses == 16 * 40
    assert inner.calls == cache.misses >= distinct
    # Everything written is there for the next run.
    fresh = Inner()
    again = CachedBackend(fresh, db)
    for t in range(16):
        assert ask(again, [{"role": "user", "content": f"thread {t} item 0"}]).cached
    assert fresh.calls == 0


def test_classify_is_cached(db: Path) -> None:
    inner = Inner()
    cache = CachedBackend(inner, db)
    options = ["supported", "contradicted", "not_mentioned"]
    first = cache.classify(MESSAGES, prefix='{"verdict": "', options=options)
    assert first == pytest.approx({o: 1 / 3 for o in options})
    assert cache.classify(MESSAGES, prefix='{"verdict": "', options=options) == first
    assert inner.classifies == 1
    cache.classify(MESSAGES, prefix='{"v": "', options=options)  # another prefix, another key
    cache.classify(MESSAGES, prefix='{"verdict": "', options=options[:2])
    assert inner.classifies == 3
    assert stats(db).classifications == 3


def test_classify_without_probabilities(db: Path) -> None:
    class NoProbs(Inner):
        def classify(self, messages, *, prefix, options):  # type: ignore[no-untyped-def]
            self.classifies += 1
            return None

    class NoClassify:
        name, model = "openai", "m1"

        def complete(self, *a: Any, **k: Any) -> Completion:
            raise AssertionError

    inner = NoProbs()
    cache = CachedBackend(inner, db)
    assert cache.classify(MESSAGES, prefix="", options=["a", "b"]) is None
    assert cache.classify(MESSAGES, prefix="", options=["a", "b"]) is None
    assert inner.classifies == 1  # "no probabilities" is remembered too
    assert CachedBackend(NoClassify(), db).classify(MESSAGES, prefix="", options=["a"]) is None  # type: ignore[arg-type]


def test_open_backend_wraps_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from factcheck.backends.openai_compat import OpenAIBackend

    monkeypatch.setenv("FACTCHECK_CACHE_DIR", str(tmp_path / "c"))
    choice = Choice("openai", "test", model="m", base_url="http://127.0.0.1:9/v1")
    wrapped = open_backend(choice)
    assert isinstance(wrapped, CachedBackend) and isinstance(wrapped.inner, OpenAIBackend)
    assert wrapped.path == tmp_path / "c" / "responses.sqlite" == default_path()
    assert isinstance(open_backend(choice, cache=False), OpenAIBackend)
    monkeypatch.setenv("FACTCHECK_NO_CACHE", "1")
    assert isinstance(open_backend(choice), OpenAIBackend)


def test_stats_and_clear(db: Path) -> None:
    assert not stats(db).exists and clear(db) == 0
    assert "not created yet" in stats(db).lines()[0]
    cache = CachedBackend(Inner(), db)
    for i in range(5):
        ask(cache, [{"role": "user", "content": str(i)}])
    s = stats(db)
    assert s.entries == 5 and any("entries: 5" in line for line in s.lines())
    assert clear(db) == 5
    assert stats(db).entries == 0
    assert not ask(cache, [{"role": "user", "content": "0"}]).cached  # the open instance sees it too


def test_unusable_cache_location_is_a_config_error(tmp_path: Path) -> None:
    from factcheck.errors import ConfigError

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="--no-cache"):
        CachedBackend(Inner(), blocker / "responses.sqlite")


def test_conforms() -> None:
    schema = {
        "type": "object",
        "properties": {
            "claims": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "n": {"type": "integer", "enum": [1, 2]},
                        "text": {"type": "string", "minLength": 3},
                    },
                    "required": ["n", "text"],
                    "additionalProperties": False,
                },
            },
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["claims", "note"],
        "additionalProperties": False,
    }
    good = {"claims": [{"n": 1, "text": "abc"}], "note": None}
    assert conforms(good, schema)
    assert not conforms({**good, "extra": 1}, schema)
    assert not conforms({**good, "claims": []}, schema)
    assert not conforms({**good, "claims": [{"n": 3, "text": "abc"}]}, schema)
    assert not conforms({**good, "claims": [{"n": True, "text": "abc"}]}, schema)
    assert not conforms({**good, "claims": [{"n": 1, "text": "ab"}]}, schema)
    assert not conforms({**good, "note": 5}, schema)
    assert not conforms([good], schema)
