"""Tests for the fake OpenAI server, driven through the real ``openai`` SDK.

These pin down the behaviours back-end tests rely on: if the fake stops
producing the errors the SDK maps to ``InternalServerError``,
``APITimeoutError`` and so on, every back-end test built on it goes wrong.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from fakeserver import FakeOpenAIServer, Reply, fault_mix
from openai import OpenAI
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


def make_client(srv: FakeOpenAIServer, **kwargs: object) -> OpenAI:
    opts: dict[str, Any] = {"max_retries": 0, "timeout": 5.0} | kwargs
    return OpenAI(api_key="test", base_url=srv.url, **opts)


def ask(client: OpenAI, text: str = "hello") -> ChatCompletion:
    return client.chat.completions.create(model="m1", messages=[{"role": "user", "content": text}])


def last_user_text(request: dict[str, Any]) -> str:
    return str(request["messages"][-1]["content"])


def test_normal_reply(server: FakeOpenAIServer) -> None:
    server.queue(Reply(content="hi there", prompt_tokens=7, completion_tokens=3))
    resp = ask(make_client(server))
    assert resp.choices[0].message.content == "hi there"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == "m1"  # echoed from the request
    assert resp.id.startswith("chatcmpl-fake-")
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (7, 3, 10)
    assert server.pending == 0


def test_request_and_headers_recorded(server: FakeOpenAIServer) -> None:
    server.queue(Reply(content="{}"))
    make_client(server).chat.completions.create(
        model="m2", messages=MESSAGES, response_format={"type": "json_object"}, temperature=0
    )
    [req] = server.requests
    assert req["model"] == "m2"
    assert req["messages"] == MESSAGES
    assert req["response_format"] == {"type": "json_object"}
    assert server.headers_seen[0]["authorization"] == "Bearer test"


def test_when_matching_skips_non_matching_and_falls_back_to_500(server: FakeOpenAIServer) -> None:
    server.queue(
        Reply(content="for beta", when=lambda r: "beta" in last_user_text(r)),
        Reply(content="generic"),
    )
    client = make_client(server)
    # FIFO among *matching* replies: "alpha" skips the beta-only reply.
    assert ask(client, "alpha").choices[0].message.content == "generic"
    assert ask(client, "beta").choices[0].message.content == "for beta"
    with pytest.raises(openai.InternalServerError, match="no reply queued"):
        ask(client, "gamma")


def test_callable_default_computes_answer_from_prompt() -> None:
    with FakeOpenAIServer(default=lambda r: Reply(content=last_user_text(r).upper())) as srv:
        assert ask(make_client(srv), "shout").choices[0].message.content == "SHOUT"


def test_500_maps_to_internal_server_error(server: FakeOpenAIServer) -> None:
    server.queue(Reply(status=500, error_message="boom"))
    with pytest.raises(openai.InternalServerError) as info:
        ask(make_client(server))
    assert info.value.status_code == 500
    assert "boom" in str(info.value)


def test_429_then_success_is_retried_by_sdk(server: FakeOpenAIServer) -> None:
    server.queue(Reply(status=429, headers={"Retry-After": "0"}), Reply(content="ok"))
    resp = ask(make_client(server, max_retries=1))
    assert resp.choices[0].message.content == "ok"
    assert len(server.requests) == 2


def test_429_without_retries_is_rate_limit_error(server: FakeOpenAIServer) -> None:
    server.queue(Reply(status=429, headers={"Retry-After": "0"}))
    with pytest.raises(openai.RateLimitError) as info:
        ask(make_client(server))
    assert info.value.response.headers["retry-after"] == "0"


def test_slow_reply_times_out(server: FakeOpenAIServer) -> None:
    server.queue(Reply(content="late", delay=1.0))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        ask(make_client(server, timeout=0.2))
    assert time.monotonic() - started < 0.9  # the client gave up, not the server


def test_drop_is_connection_error_and_client_recovers(server: FakeOpenAIServer) -> None:
    server.queue(Reply(content="x" * 200, drop=True), Reply(content="after"))
    client = make_client(server)
    with pytest.raises(openai.APIConnectionError) as info:
        ask(client)
    # APITimeoutError subclasses APIConnectionError; a drop must not look like one.
    assert not isinstance(info.value, openai.APITimeoutError)
    assert ask(client).choices[0].message.content == "after"


def test_refusal_and_length_are_passed_through(server: FakeOpenAIServer) -> None:
    server.queue(Reply(refusal="I can't help with that"), Reply(content="trunc", finish_reason="length"))
    client = make_client(server)
    refused = ask(client).choices[0]
    assert refused.message.refusal == "I can't help with that"
    assert refused.message.content is None
    truncated = ask(client).choices[0]
    assert (truncated.finish_reason, truncated.message.content) == ("length", "trunc")


def test_raw_body_models_and_404(server: FakeOpenAIServer) -> None:
    # urllib here so we see the exact bytes, with no SDK parsing in between.
    server.queue(Reply(raw_body="{not json"))
    post = urllib.request.Request(
        server.url + "/chat/completions", data=b'{"model": "m"}', headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(post, timeout=5) as resp:
        assert resp.read() == b"{not json"

    assert [m.id for m in make_client(server).models.list()] == ["fake-model"]

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(server.url + "/nope", timeout=5)
    assert info.value.code == 404
    assert "error" in json.loads(info.value.read())


def test_keep_alive_reuses_one_connection() -> None:
    with FakeOpenAIServer(default=Reply(content="ok")) as srv:
        client = make_client(srv)
        for _ in range(5):
            ask(client)
        # Exact Content-Length on every reply lets the SDK's pool reuse the socket.
        assert srv.connections == 1


def test_latency_applies_to_every_request() -> None:
    with FakeOpenAIServer(default=Reply(content="ok"), latency=0.1) as srv:
        started = time.monotonic()
        ask(make_client(srv))
        assert time.monotonic() - started >= 0.1


def test_concurrent_requests_all_answered() -> None:
    with FakeOpenAIServer(default=lambda r: Reply(content="echo:" + last_user_text(r)), latency=0.01) as srv:
        client = make_client(srv)
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda i: ask(client, str(i)).choices[0].message.content, range(50)))
        assert answers == [f"echo:{i}" for i in range(50)]
        assert len(srv.requests) == 50
        assert len({r["messages"][0]["content"] for r in srv.requests}) == 50


def test_stop_is_quick_with_slow_request_in_flight() -> None:
    srv = FakeOpenAIServer(default=Reply(content="slow", delay=10.0)).start()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            ask(make_client(srv, timeout=10.0))
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion below
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    while not srv.requests:  # wait until the slow request is really in flight
        time.sleep(0.01)
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 1.0
    caller.join(timeout=2)
    assert not caller.is_alive()
    assert errors and isinstance(errors[0], openai.APIConnectionError)


def test_fault_mix_is_seeded_and_respects_rate() -> None:
    def good(r: dict[str, Any]) -> Reply:
        return Reply(content="good answer")

    req = {"messages": MESSAGES}
    assert all(fault_mix(good, 0.0)(req).content == "good answer" for _ in range(50))

    always = fault_mix(good, 1.0, seed=1)
    faults = [always(req) for _ in range(200)]
    kinds = {(f.status, f.drop, f.content, f.finish_reason) for f in faults}
    assert (429, False, None, "stop") in kinds
    assert {500, 502, 503} <= {f.status for f in faults}
    assert any(f.drop for f in faults)
    assert any(f.content == "{not json" for f in faults)
    assert any(f.finish_reason == "length" and f.content == "good " for f in faults)
    assert all(f.headers.get("Retry-After") == "0" for f in faults if f.status == 429)

    # Same seed, same sequence: a failing run can be replayed.
    a, b = fault_mix(good, 0.5, seed=7), fault_mix(good, 0.5, seed=7)
    assert [a(req) for _ in range(30)] == [b(req) for _ in range(30)]


def test_fault_mix_through_sdk() -> None:
    # max_retries=0: SDK back-off (0.5 s+) would dominate the runtime, and we
    # only need to see that every injected fault surfaces as the right error.
    with FakeOpenAIServer(default=fault_mix(lambda r: Reply(content="fine"), 0.5, seed=3)) as srv:
        client = make_client(srv)
        outcomes: list[str] = []
        for i in range(40):
            try:
                outcomes.append(ask(client, str(i)).choices[0].message.content or "")
            except openai.APIStatusError as exc:
                outcomes.append(str(exc.status_code))
            except openai.APIConnectionError:
                outcomes.append("conn")
        assert set(outcomes) <= {"fine", "{not json", "fi", "429", "500", "502", "503", "conn"}
        assert "fine" in outcomes and len(set(outcomes)) >= 4
        assert len(srv.requests) == 40
