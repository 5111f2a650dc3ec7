"""Fault tolerance against the fake OpenAI-compatible server, through the real openai SDK.

For every fault: one article through `pipeline.summarize` raises the right FactcheckError subclass
(or succeeds after the SDK's own retries), and a batch finishes every article it can, records the
rest as error lines, and a --resume after the fault clears finishes them, each id exactly once.
Then a soak: 500 articles at concurrency 32 with 10% random faults.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import answer_json, schema_name_of
from fakeserver import FakeOpenAIServer, Reply, fault_mix

from factcheck import pipeline
from factcheck.backends.cache import CachedBackend
from factcheck.backends.openai_compat import OpenAIBackend
from factcheck.batch import run_batch
from factcheck.documents import make_document
from factcheck.errors import BackendError, ModelOutputError, RefusalError, TruncatedOutputError
from factcheck.schemas import Report

MARKER = "Zebra"
JSON = dict[str, Any]


def good(request: JSON) -> Reply:
    """A correct answer to whatever the pipeline asked, in json_schema or json_object mode."""
    fmt = request.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        name, schema = fmt["json_schema"]["name"], fmt["json_schema"]["schema"]
    else:  # json_object: the schema rides along (and is spelled out in a system hint)
        schema = fmt.get("schema") or json.loads(request["messages"][-1]["content"].split("\n", 1)[1])
        name = schema_name_of(schema)
    content = json.dumps(answer_json(name, schema, request["messages"]))
    prompt = sum(len(m.get("content") or "") for m in request["messages"]) // 4
    return Reply(content=content, prompt_tokens=prompt, completion_tokens=len(content) // 4)


def mentions(request: JSON, word: str) -> bool:
    return any(word in (m.get("content") or "") for m in request.get("messages", []))


class Switch:
    """The server's default: `fault` for requests about a marked article while `on`, else good."""

    def __init__(self, fault: Callable[[JSON], Reply], *, marker: str | None = MARKER):
        self.fault, self.marker, self.on = fault, marker, True
        self.faulted = 0
        self._lock = threading.Lock()

    def __call__(self, request: JSON) -> Reply:
        if self.on and (self.marker is None or mentions(request, self.marker)):
            with self._lock:
                self.faulted += 1
            return self.fault(request)
        return good(request)


def backend(url: str, *, max_retries: int = 0, timeout: float = 5.0) -> OpenAIBackend:
    return OpenAIBackend("fake-model", base_url=url, api_key="sk-test", max_retries=max_retries, timeout=timeout)


def text(i: int, marked: bool = False) -> str:
    extra = f" A {MARKER} was seen near the quay." if marked else ""
    return f"Article {i} says the harbour reopened after repairs. Officials expect more ships next month.{extra}"


def summarize(url: str, **kw: Any) -> Report:
    return pipeline.summarize(make_document(text(1, marked=True), origin="a1"), backend(url, **kw))


def truncated(request: JSON) -> Reply:
    ok = good(request)
    return replace(ok, content=(ok.content or "")[: len(ok.content or "") // 2], finish_reason="length")


def slow(seconds: float) -> Callable[[JSON], Reply]:
    return lambda request: replace(good(request), delay=seconds)


# name -> (fault reply, the error one article raises, SDK retries, client timeout)
FAULTS: dict[str, tuple[Callable[[JSON], Reply], type[Exception], int, float]] = {
    "429-with-retry-after": (
        lambda r: Reply(status=429, error_message="rate limited", headers={"Retry-After": "0", "retry-after-ms": "5"}),
        BackendError,
        1,
        5.0,
    ),
    "429-without-retry-after": (lambda r: Reply(status=429, error_message="slow down"), BackendError, 0, 5.0),
    "500": (lambda r: Reply(status=500, error_message="boom"), BackendError, 0, 5.0),
    "502": (lambda r: Reply(status=502, error_message="bad gateway"), BackendError, 0, 5.0),
    "503": (lambda r: Reply(status=503, error_message="overloaded"), BackendError, 0, 5.0),
    "read-timeout": (slow(3.0), BackendError, 0, 0.3),
    "dropped-mid-response": (lambda r: Reply(content="x" * 300, drop=True), BackendError, 0, 5.0),
    "invalid-json": (lambda r: Reply(content="{not json"), ModelOutputError, 0, 5.0),
    "schema-invalid-json": (
        lambda r: Reply(content='{"claims": "none", "extra": 1}'),
        ModelOutputError,
        0,
        5.0,
    ),
    "truncated-output": (truncated, TruncatedOutputError, 0, 5.0),
    "refusal": (lambda r: Reply(refusal="I can't help with that"), RefusalError, 0, 5.0),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_one_article_raises_the_right_error(name: str) -> None:
    fault, expected, retries, timeout = FAULTS[name]
    with FakeOpenAIServer(default=Switch(fault)) as server, pytest.raises(expected) as info:
        summarize(server.url, max_retries=retries, timeout=timeout)
    assert type(info.value) is expected  # not a broader or narrower kind
    assert "\n" not in str(info.value) and "sk-test" not in str(info.value)
    if name.startswith("429"):
        assert "rate limited" in str(info.value)
    if name == "read-timeout":
        assert "timed out" in str(info.value)


@pytest.mark.parametrize("name", list(FAULTS))
def test_batch_records_errors_and_resume_finishes(name: str, tmp_path: Path) -> None:
    fault, _, retries, timeout = FAULTS[name]
    listing = tmp_path / "in.jsonl"
    listing.write_text(
        "".join(json.dumps({"id": f"a{i}", "text": text(i, marked=i in (2, 5))}) + "\n" for i in range(1, 7))
    )
    out = tmp_path / "out.jsonl"
    switch = Switch(fault)
    with FakeOpenAIServer(default=switch) as server:

        def factory() -> OpenAIBackend:
            return backend(server.url, max_retries=retries, timeout=timeout)

        first = run_batch([str(listing)], out, backend_factory=factory, concurrency=4, progress=False)
        assert (first.done, first.failed) == (4, 2)
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert {line["id"] for line in lines if "error" in line} == {"a2", "a5"}
        assert switch.faulted >= 2

        switch.on = False  # the fault clears
        again = run_batch([str(listing)], out, backend_factory=factory, resume=True, concurrency=4, progress=False)
    assert (again.done, again.failed, again.skipped) == (2, 0, 4)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert Counter(line["id"] for line in lines) == {f"a{i}": 1 for i in range(1, 7)}
    assert all("report" in line for line in lines)


def test_429_retry_after_is_honoured_by_the_sdk() -> None:
    with FakeOpenAIServer(default=good) as server:
        server.queue(Reply(status=429, error_message="rate limited", headers={"Retry-After": "1"}))
        started = time.monotonic()
        report = summarize(server.url, max_retries=1)
        assert time.monotonic() - started >= 1.0  # the SDK waited as told, then retried
        assert report.meta.usage.calls >= 3 and server.pending == 0


def test_429_without_retry_after_backs_off_and_succeeds() -> None:
    with FakeOpenAIServer(default=good) as server:
        server.queue(Reply(status=429, error_message="slow down"), Reply(status=503, error_message="busy"))
        report = summarize(server.url, max_retries=2)
        assert server.pending == 0 and report.summary.text


@pytest.mark.parametrize("kind", ["500", "502", "503", "drop"])
def test_transient_server_errors_are_retried_by_the_sdk(kind: str) -> None:
    fault = Reply(content="x" * 100, drop=True) if kind == "drop" else Reply(status=int(kind), error_message="once")
    with FakeOpenAIServer(default=good) as server:
        server.queue(fault)
        report = summarize(server.url, max_retries=1)
        assert server.pending == 0 and report.claims


def test_slow_for_a_while_then_fine() -> None:
    # The first two requests take longer than the client waits; the SDK's retries get through.
    with FakeOpenAIServer(default=good) as server:
        server.queue(replace(Reply(content="late"), delay=2.0), replace(Reply(content="late"), delay=2.0))
        report = summarize(server.url, max_retries=2, timeout=0.3)
        assert report.claims and len(server.requests) >= 3


def test_slow_for_a_while_in_a_batch(tmp_path: Path) -> None:
    listing = tmp_path / "in.jsonl"
    listing.write_text("".join(json.dumps({"id": f"a{i}", "text": text(i)}) + "\n" for i in range(8)))
    out = tmp_path / "out.jsonl"
    switch = Switch(slow(2.0), marker=None)
    with FakeOpenAIServer(default=switch) as server:

        def factory() -> OpenAIBackend:
            return backend(server.url, timeout=0.3)

        first = run_batch([str(listing)], out, backend_factory=factory, concurrency=8, progress=False)
        assert first.failed == 8 and "timed out" in out.read_text()
        switch.on = False
        again = run_batch([str(listing)], out, backend_factory=factory, resume=True, concurrency=8, progress=False)
    assert again.done == 8
    assert Counter(json.loads(line)["id"] for line in out.read_text().splitlines()) == {f"a{i}": 1 for i in range(8)}


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there any more


def test_connection_refused(tmp_path: Path) -> None:
    url = _dead_url()
    with pytest.raises(BackendError, match="cannot reach"):
        summarize(url, max_retries=1)

    listing = tmp_path / "in.jsonl"
    listing.write_text("".join(json.dumps({"id": f"a{i}", "text": text(i)}) + "\n" for i in range(5)))
    out = tmp_path / "out.jsonl"
    first = run_batch([str(listing)], out, backend_factory=lambda: backend(url), concurrency=2, progress=False)
    assert first.failed == 5 and first.exit_code == 1
    with FakeOpenAIServer(default=good) as server:  # the server is back (at a new address)
        again = run_batch([str(listing)], out, backend_factory=lambda: backend(server.url), resume=True, progress=False)
    assert again.done == 5 and len(out.read_text().splitlines()) == 5


def test_soak_500_articles_with_random_faults(tmp_path: Path) -> None:
    listing = tmp_path / "in.jsonl"
    ids = [f"n{i:03d}" for i in range(500)]
    listing.write_text(
        "".join(
            json.dumps(
                {
                    "id": ident,
                    "text": f"Report {i} says the bridge reopened. Traffic resumed by noon."
                    + (" Shops stayed closed." if i % 2 else ""),
                }
            )
            + "\n"
            for i, ident in enumerate(ids)
        )
    )
    out = tmp_path / "out.jsonl"
    cache = tmp_path / "cache.sqlite"
    started = time.monotonic()
    rounds = []
    with FakeOpenAIServer(default=fault_mix(good, 0.1, seed=11)) as server:

        def factory() -> CachedBackend:
            return CachedBackend(backend(server.url, max_retries=1, timeout=5.0), cache)

        for attempt in range(8):
            summary = run_batch(
                [str(listing)],
                out,
                backend_factory=factory,
                concurrency=32,
                resume=attempt > 0,
                progress=False,
            )
            rounds.append((summary.done, summary.failed))
            if not summary.failed and not summary.not_started:
                break
    elapsed = time.monotonic() - started
    lines = [json.loads(line) for line in out.read_bytes().decode().splitlines()]
    counts = Counter(line["id"] for line in lines)
    assert set(counts) == set(ids) and set(counts.values()) == {1}, rounds
    assert all("report" in line for line in lines)
    assert rounds[0][1] > 0 and len(rounds) <= 5, rounds  # faults did hit, and a few resumes cleared them
    assert elapsed < 60, (elapsed, rounds)
