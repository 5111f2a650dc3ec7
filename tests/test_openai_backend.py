"""OpenAIBackend against FakeOpenAIServer through the real openai SDK (no network, no model)."""

from __future__ import annotations

import json
import math
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fakeserver import FakeOpenAIServer, Reply

from factcheck.answers import SentenceClaims, Target
from factcheck.backends import choose, open_backend
from factcheck.backends.openai_compat import OpenAIBackend
from factcheck.errors import BackendError, ConfigError, ModelOutputError, RefusalError, TruncatedOutputError
from factcheck.schemas import Usage
from factcheck.structured import generate, strict_schema

KEY = "sk-secret-test-123"
MESSAGES = [
    {"role": "system", "content": "<article>\n[1] The port reopened.\n[2] The union denied it.\n</article>"},
    {"role": "user", "content": "Which sentence?"},
]
OPTIONS = ["supported", "contradicted", "not_mentioned"]


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


def make(srv: FakeOpenAIServer | None = None, *, url: str | None = None, **kwargs: Any) -> OpenAIBackend:
    opts: dict[str, Any] = {"api_key": KEY, "max_retries": 0, "timeout": 5.0} | kwargs
    return OpenAIBackend("fake-model", base_url=url or (srv.url if srv else None), **opts)


def ask(backend: OpenAIBackend, answer: type = Target, **kwargs: Any) -> Any:
    return generate(
        backend, list(MESSAGES), answer, usage=kwargs.pop("usage", Usage()), max_tokens=40, **kwargs
    )


def assert_clean(error: BaseException) -> None:
    text = str(error)
    assert KEY not in text
    assert "\n" not in text
    assert text.strip()


# ---------------------------------------------------------------- json_schema and the fallback


def test_json_schema_accepted(server: FakeOpenAIServer) -> None:
    server.queue(Reply(content='{"target": 2}', prompt_tokens=31, completion_tokens=4))
    usage = Usage()
    assert ask(make(server), usage=usage) == Target(target=2)
    (request,) = server.requests
    fmt = request["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["name"] == "Target"
    assert fmt["json_schema"]["schema"] == strict_schema(Target)
    assert request["model"] == "fake-model"
    assert request["messages"] == MESSAGES
    assert request["max_tokens"] == 40
    assert request["temperature"] == 0.0
    assert (usage.calls, usage.prompt_tokens, usage.completion_tokens) == (1, 31, 4)
    assert server.headers_seen[0]["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("status", [400, 422, 500])
def test_json_schema_rejected_falls_back_to_json_object_and_remembers(
    server: FakeOpenAIServer, status: int
) -> None:
    server.queue(
        Reply(status=status, error_message="response_format json_schema is not supported"),
        Reply(content='{"target": 1}'),
        Reply(content='{"target": 2}'),
    )
    backend = make(server)
    assert ask(backend).target == 1
    assert backend.mode == "json_object"
    rejected, fallback = server.requests
    schema = strict_schema(Target)
    assert rejected["response_format"]["type"] == "json_schema"
    assert fallback["response_format"] == {"type": "json_object", "schema": schema}
    assert fallback["messages"][: len(MESSAGES)] == MESSAGES
    hint = fallback["messages"][-1]
    assert hint["role"] == "system"
    assert json.dumps(schema, separators=(",", ":")) in hint["content"]
    # The second call goes straight to json_object: one request, no new rejection.
    assert ask(backend).target == 2
    assert len(server.requests) == 3
    assert server.requests[2]["response_format"]["type"] == "json_object"
    assert server.pending == 0


def test_json_object_mode_from_the_start(server: FakeOpenAIServer) -> None:
    server.queue(Reply(content='{"target": 1}'))
    assert ask(make(server, mode="json_object")).target == 1
    assert server.requests[0]["response_format"]["type"] == "json_object"


def test_json_schema_mode_does_not_fall_back(server: FakeOpenAIServer) -> None:
    server.queue(Reply(status=400, error_message="bad schema"), Reply(content='{"target": 1}'))
    backend = make(server, mode="json_schema")
    with pytest.raises(BackendError, match="HTTP 400: bad schema") as info:
        ask(backend)
    assert_clean(info.value)
    assert len(server.requests) == 1 and backend.mode == "json_schema"


def test_fallback_that_fails_too_is_a_backend_error(server: FakeOpenAIServer) -> None:
    server.queue(
        Reply(status=400, error_message="no json_schema"), Reply(status=400, error_message="no json_object")
    )
    with pytest.raises(BackendError, match="no json_object") as info:
        ask(make(server))
    assert_clean(info.value)


def test_other_server_errors_are_not_taken_for_a_schema_rejection(server: FakeOpenAIServer) -> None:
    server.queue(Reply(status=503, error_message="overloaded"))
    backend = make(server)
    with pytest.raises(BackendError, match="HTTP 503") as info:
        ask(backend)
    assert_clean(info.value)
    assert backend.mode == "auto" and len(server.requests) == 1


def test_unrelated_400_does_not_switch_modes_for_good(server: FakeOpenAIServer) -> None:
    too_long = "This model's maximum context length is 8192 tokens"
    server.queue(Reply(status=400, error_message=too_long), Reply(status=400, error_message=too_long))
    backend = make(server)
    with pytest.raises(BackendError, match="maximum context length"):
        ask(backend)
    server.queue(Reply(content='{"target": 1}'))
    assert ask(backend).target == 1
    assert server.requests[-1]["response_format"]["type"] == "json_schema"


# ---------------------------------------------------------------- output problems, through generate()


def test_invalid_json_then_valid_is_reasked(server: FakeOpenAIServer) -> None:
    server.queue(Reply(content='{"target": '), Reply(content='{"target": 2}'))
    usage = Usage()
    assert ask(make(server), usage=usage).target == 2
    assert (usage.calls, usage.reasks) == (2, 1)
    first, second = server.requests
    assert second["messages"][: len(MESSAGES)] == MESSAGES
    assert second["messages"][len(MESSAGES)] == {"role": "assistant", "content": '{"target": '}
    assert "That JSON is invalid" in second["messages"][-1]["content"]
    assert second["response_format"]["type"] == "json_schema"


def test_bad_sentence_number_is_reasked(server: FakeOpenAIServer) -> None:
    server.queue(
        Reply(content='{"claims": [{"n": 7, "source": "", "worthy": true}]}'),
        Reply(content='{"claims": [{"n": 2, "source": "", "worthy": true}]}'),
    )
    result = ask(make(server), SentenceClaims, context={"sentences": {1, 2}})
    assert [c.n for c in result.claims] == [2]
    assert "sentence 7 is not in the article shown" in server.requests[1]["messages"][-1]["content"]


def test_always_invalid_is_a_model_output_error(server: FakeOpenAIServer) -> None:
    server.default = Reply(content="not json at all")
    with pytest.raises(ModelOutputError) as info:
        ask(make(server))
    assert info.value.attempts == 3
    assert info.value.last_output == "not json at all"
    assert len(server.requests) == 3


def test_length_is_a_truncated_output_error(server: FakeOpenAIServer) -> None:
    server.queue(Reply(content='{"targ', finish_reason="length"), Reply(content='{"target": 1}'))
    with pytest.raises(TruncatedOutputError) as info:
        ask(make(server))
    assert info.value.last_output == '{"targ'
    assert len(server.requests) == 1


def test_refusal_is_a_refusal_error(server: FakeOpenAIServer) -> None:
    server.queue(Reply(content=None, refusal="I cannot help with that."))
    with pytest.raises(RefusalError, match="I cannot help"):
        ask(make(server))


def test_no_choices_is_a_backend_error(server: FakeOpenAIServer) -> None:
    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "fake-model", "choices": []}
    server.queue(Reply(raw_body=json.dumps(body)))
    with pytest.raises(BackendError, match="no choices"):
        ask(make(server))


@pytest.mark.parametrize("body", ["<html><body>Welcome</body></html>", "null"])
def test_a_non_completion_body_is_a_backend_error(server: FakeOpenAIServer, body: str) -> None:
    server.queue(Reply(raw_body=body))
    with pytest.raises(BackendError):
        ask(make(server))


# ---------------------------------------------------------------- transport errors


def test_rate_limit_is_retried_by_the_sdk(server: FakeOpenAIServer) -> None:
    server.queue(
        Reply(status=429, error_message="slow down", headers={"retry-after-ms": "1"}),
        Reply(content='{"target": 1}'),
    )
    started = time.perf_counter()
    assert ask(make(server, max_retries=2)).target == 1
    assert len(server.requests) == 2
    assert time.perf_counter() - started < 3


def test_rate_limit_exhausted(server: FakeOpenAIServer) -> None:
    server.default = Reply(status=429, error_message="slow down", headers={"retry-after-ms": "1"})
    with pytest.raises(BackendError, match="rate limited") as info:
        ask(make(server, max_retries=1))
    assert_clean(info.value)
    assert len(server.requests) == 2


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_is_a_one_line_backend_error() -> None:
    url = f"http://127.0.0.1:{_unused_port()}/v1"
    with pytest.raises(BackendError) as info:
        ask(make(url=url))
    assert type(info.value) is BackendError
    assert_clean(info.value)
    assert "cannot reach the model server" in str(info.value) and url in str(info.value)


def test_unauthorized_is_a_config_error_without_the_key(server: FakeOpenAIServer) -> None:
    server.queue(Reply(status=401, error_message=f"Incorrect API key provided: {KEY}"))
    with pytest.raises(ConfigError) as info:
        ask(make(server))
    assert "OPENAI_API_KEY" in str(info.value)
    assert_clean(info.value)
    assert len(server.requests) == 1


def test_key_echoed_in_an_error_message_is_redacted(server: FakeOpenAIServer) -> None:
    server.queue(Reply(status=404, error_message=f"model fake-model not found for key {KEY}"))
    with pytest.raises(BackendError, match="not found") as info:
        ask(make(server))
    assert_clean(info.value)
    assert "***" in str(info.value)


def test_timeout_is_a_backend_error(server: FakeOpenAIServer) -> None:
    server.queue(Reply(content='{"target": 1}', delay=2.0))
    with pytest.raises(BackendError, match="timed out") as info:
        ask(make(server, timeout=0.3))
    assert_clean(info.value)


# ---------------------------------------------------------------- classify()


def _logprob_body(tokens: list[tuple[str, list[tuple[str, float]]]]) -> str:
    content = [
        {
            "token": token,
            "logprob": math.log(top[0][1]) if top else 0.0,
            "bytes": None,
            "top_logprobs": [{"token": t, "logprob": math.log(p), "bytes": None} for t, p in top],
        }
        for token, top in tokens
    ]
    return json.dumps(
        {
            "id": "chatcmpl-lp",
            "object": "chat.completion",
            "created": 0,
            "model": "fake-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": '{"verdict": "supported"}'},
                    "finish_reason": "stop",
                    "logprobs": {"content": content},
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        }
    )


def test_classify_reads_top_logprobs(server: FakeOpenAIServer) -> None:
    body = _logprob_body(
        [
            ('{"', [('{"', 1.0)]),
            ("verdict", [("verdict", 1.0)]),
            ('":"', [('":"', 1.0)]),
            ("supported", [("supported", 0.6), ("contr", 0.2), ("not", 0.1), ("maybe", 0.1)]),
            ('"}', [('"}', 1.0)]),
        ]
    )
    server.queue(Reply(raw_body=body))
    backend = make(server)
    probs = backend.classify(MESSAGES, prefix='{"verdict": "', options=OPTIONS)
    assert probs is not None
    assert probs == pytest.approx(
        {"supported": 0.6 / 0.9, "contradicted": 0.2 / 0.9, "not_mentioned": 0.1 / 0.9}
    )
    (request,) = server.requests
    assert request["logprobs"] is True and request["top_logprobs"] >= 3
    fmt = request["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["properties"] == {"verdict": {"type": "string", "enum": OPTIONS}}


def test_classify_without_logprobs_returns_none_and_stops_asking(server: FakeOpenAIServer) -> None:
    server.default = Reply(content='{"verdict": "supported"}')  # the fake sends "logprobs": null
    backend = make(server)
    assert backend.classify(MESSAGES, prefix='{"verdict": "', options=OPTIONS) is None
    assert backend.classify(MESSAGES, prefix='{"verdict": "', options=OPTIONS) is None
    assert len(server.requests) == 1


def test_classify_rejected_in_both_forms_returns_none_and_stops_asking(server: FakeOpenAIServer) -> None:
    server.queue(*[Reply(status=400, error_message="logprobs not supported")] * 2)
    backend = make(server)
    assert backend.classify(MESSAGES, prefix='{"verdict": "', options=OPTIONS) is None
    assert backend.classify(MESSAGES, prefix='{"verdict": "', options=OPTIONS) is None
    assert [r["response_format"]["type"] for r in server.requests] == ["json_schema", "json_object"]


def test_classify_falls_back_to_json_object_when_json_schema_is_rejected(server: FakeOpenAIServer) -> None:
    """llama-cpp-python's server answers json_schema with a 500 naming response_format."""
    body = _logprob_body([("supported", [("supported", 0.7), ("contr", 0.2), ("not", 0.1)])])
    rejected = Reply(status=500, error_message="Input should be 'text' or 'json_object' (response_format.type)")
    server.queue(rejected, Reply(raw_body=body), Reply(raw_body=body))
    backend = make(server)
    first = backend.classify(MESSAGES, prefix='{"verdict": "', options=OPTIONS)
    assert first == pytest.approx({"supported": 0.7, "contradicted": 0.2, "not_mentioned": 0.1})
    assert backend.mode == "json_object"  # remembered: the next call goes straight to the form that works
    assert backend.classify(MESSAGES, prefix='{"verdict": "', options=OPTIONS) is not None
    assert [r["response_format"]["type"] for r in server.requests] == ["json_schema", "json_object", "json_object"]


def test_classify_auth_error_is_raised(server: FakeOpenAIServer) -> None:
    server.queue(Reply(status=401, error_message=f"bad key {KEY}"))
    with pytest.raises(ConfigError) as info:
        make(server).classify(MESSAGES, prefix='{"verdict": "', options=OPTIONS)
    assert_clean(info.value)


# ---------------------------------------------------------------- choosing and opening


def test_open_backend_uses_the_servers_first_model(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    choice = choose()
    assert choice.backend == "openai" and choice.base_url == server.url and choice.api_key is None
    backend = open_backend(choice)
    assert backend.name == "openai"
    assert backend.model == "fake-model"


def test_choose_without_configuration_is_local() -> None:
    choice = choose()
    assert choice.backend == "local" and choice.model_path is None


def test_choose_model_without_a_server_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--model gpt-4o needs"):
        choose(model="gpt-4o")


def test_choose_key_only_is_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    choice = choose()
    assert choice.backend == "openai" and choice.base_url is None
    assert KEY not in choice.reason
