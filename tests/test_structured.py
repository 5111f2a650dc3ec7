"""Schema-constrained generation: strict schemas, validation, re-asks, refusals (factcheck/structured.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import FakeBackend
from pydantic import BaseModel

from factcheck.answers import (
    Judgement,
    SentenceClaims,
    SummaryAnswer,
    Target,
    WrittenClaims,
)
from factcheck.backends.base import Completion
from factcheck.errors import ModelOutputError, RefusalError, TruncatedOutputError
from factcheck.schemas import Report, Usage
from factcheck.structured import Ledger, generate, strict_schema

MESSAGES = [{"role": "system", "content": "You read articles."}, {"role": "user", "content": "Answer."}]


def _walk(node: Any, path: str = "$"):  # type: ignore[no-untyped-def]
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


def _objects(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(p, n) for p, n in _walk(schema) if n.get("type") == "object"]


# ---------------------------------------------------------------- strict_schema


@pytest.mark.parametrize("model", [SentenceClaims, WrittenClaims, Target, SummaryAnswer, Judgement, Report])
def test_strict_schema_form(model: type[BaseModel]) -> None:
    schema = strict_schema(model)
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text
    objects = _objects(schema)
    assert objects, "no object nodes"
    for path, node in objects:
        assert node["additionalProperties"] is False, path
        assert sorted(node["required"]) == sorted(node.get("properties", {})), path
    for path, node in _walk(schema):
        assert "default" not in node or path.endswith(".properties"), path


def test_strict_schema_constraints_at_paths() -> None:
    schema = strict_schema(
        SentenceClaims, constraints={"claims": {"minItems": 3}, "claims.n": {"enum": [2, 3, 4]}}
    )
    claims = schema["properties"]["claims"]
    assert claims["type"] == "array" and claims["minItems"] == 3
    n = claims["items"]["properties"]["n"]
    assert n["type"] == "integer" and n["enum"] == [2, 3, 4]
    # Nothing else picked up the constraint.
    assert "enum" not in claims["items"]["properties"]["source"]
    assert "minItems" not in claims["items"]


def test_strict_schema_does_not_mutate_between_calls() -> None:
    with_enum = strict_schema(SentenceClaims, constraints={"claims.n": {"enum": [7]}})
    plain = strict_schema(SentenceClaims)
    assert with_enum["properties"]["claims"]["items"]["properties"]["n"]["enum"] == [7]
    assert "enum" not in plain["properties"]["claims"]["items"]["properties"]["n"]


def test_strict_schema_optional_fields_become_required_nullable() -> None:
    class Opt(BaseModel):
        name: str | None = None
        count: int = 3

    schema = strict_schema(Opt)
    assert schema["required"] == ["name", "count"]
    assert {"type": "null"} in schema["properties"]["name"]["anyOf"]
    assert "default" not in schema["properties"]["count"]


def test_strict_schema_keeps_a_field_named_title() -> None:
    class Headline(BaseModel):
        title: str
        default: bool

    schema = strict_schema(Headline)
    assert set(schema["properties"]) == {"title", "default"}
    assert set(schema["required"]) == {"title", "default"}


# ---------------------------------------------------------------- generate()


def _gen(backend: FakeBackend, answer: type[BaseModel] = Target, **kwargs: Any) -> tuple[Any, Usage]:
    usage = Usage()
    result = generate(backend, list(MESSAGES), answer, usage=usage, max_tokens=50, **kwargs)
    return result, usage


def test_valid_first_time() -> None:
    fake = FakeBackend().queue({"target": 3})
    result, usage = _gen(fake)
    assert result == Target(target=3)
    assert (usage.calls, usage.reasks) == (1, 0)
    assert (usage.prompt_tokens, usage.completion_tokens) == (100, 10)
    (call,) = fake.calls
    assert call.schema_name == "Target"
    assert call.schema == strict_schema(Target)
    assert call.max_tokens == 50
    assert call.messages == MESSAGES


def test_invalid_json_then_valid_reasks_with_the_error() -> None:
    fake = FakeBackend().queue('{"target": 3', {"target": 3})
    result, usage = _gen(fake)
    assert result.target == 3
    assert (usage.calls, usage.reasks) == (2, 1)
    first, second = fake.calls
    assert first.messages == MESSAGES
    assert second.messages[: len(MESSAGES)] == MESSAGES
    assistant, reask = second.messages[len(MESSAGES) :]
    assert assistant == {"role": "assistant", "content": '{"target": 3'}
    assert reask["role"] == "user"
    assert "That JSON is invalid" in reask["content"]
    assert "Invalid JSON" in reask["content"] or "EOF" in reask["content"]  # pydantic's json_invalid message


def test_wrong_shape_then_valid() -> None:
    fake = FakeBackend().queue({"target": "three"}, {"target": 3, "extra": 1}, {"target": 3})
    result, usage = _gen(fake)
    assert result.target == 3
    assert usage.reasks == 2
    reasks = [c.messages[-1]["content"] for c in fake.calls[1:]]
    assert "target" in reasks[0] and "integer" in reasks[0]
    assert "extra" in reasks[1]  # extra="forbid"


def test_schema_invalid_sentence_number_via_context_then_valid() -> None:
    fake = FakeBackend().queue(
        {"claims": [{"n": 9, "source": "", "worthy": True}]},
        {"claims": [{"n": 2, "source": "Police", "worthy": True}]},
    )
    result, usage = _gen(fake, SentenceClaims, context={"sentences": {1, 2, 3}})
    assert [c.n for c in result.claims] == [2]
    assert usage.reasks == 1
    reask = fake.calls[1].messages[-1]["content"]
    assert "claims.0.n" in reask
    assert "sentence 9 is not in the article shown" in reask


def test_always_invalid_raises_model_output_error() -> None:
    fake = FakeBackend().queue("nope 1", "nope 2", "nope 3", "never asked")
    with pytest.raises(ModelOutputError) as info:
        _gen(fake, attempts=3)
    err = info.value
    assert type(err) is ModelOutputError
    assert err.attempts == 3
    assert err.last_output == "nope 3"
    assert "Target" in str(err) and "3 times" in str(err)
    assert len(fake.calls) == 3 and fake.pending == 1
    # Each re-ask carries the whole conversation so far.
    assert len(fake.calls[2].messages) == len(MESSAGES) + 4


def test_reasks_count_only_reasks_sent() -> None:
    fake = FakeBackend().queue("bad", "bad", "bad")
    usage = Usage()
    with pytest.raises(ModelOutputError):
        generate(fake, list(MESSAGES), Target, usage=usage, max_tokens=50, attempts=3)
    assert usage.calls == 3
    assert usage.reasks == 2


def test_truncated_output_is_not_reasked() -> None:
    fake = FakeBackend().queue(Completion(text='{"targ', finish_reason="length"), {"target": 1})
    with pytest.raises(TruncatedOutputError) as info:
        _gen(fake)
    assert info.value.last_output == '{"targ'
    assert "max_tokens=50" in str(info.value)
    assert len(fake.calls) == 1 and fake.pending == 1


def test_truncated_attempts_counts_this_call_only() -> None:
    fake = FakeBackend().queue(Completion(text='{"targ', finish_reason="length"))
    usage = Usage(calls=5)  # five earlier calls in the same stage
    with pytest.raises(TruncatedOutputError) as info:
        generate(fake, list(MESSAGES), Target, usage=usage, max_tokens=50)
    assert info.value.attempts == 1


def test_truncated_after_a_reask() -> None:
    fake = FakeBackend().queue("bad", Completion(text='{"tar', finish_reason="length"))
    with pytest.raises(TruncatedOutputError):
        _gen(fake)
    assert len(fake.calls) == 2


def test_refusal_raises() -> None:
    fake = FakeBackend().queue(Completion(text=None, finish_reason="stop", refusal="I can't help with that."))
    with pytest.raises(RefusalError, match="refused: I can't help"):
        _gen(fake)
    assert len(fake.calls) == 1


def test_content_filter_is_a_refusal() -> None:
    fake = FakeBackend().queue(Completion(text="", finish_reason="content_filter"))
    with pytest.raises(RefusalError, match="content filter"):
        _gen(fake)


def test_none_text_is_invalid_not_a_crash() -> None:
    fake = FakeBackend().queue(Completion(text=None, finish_reason="stop"), {"target": 0})
    result, usage = _gen(fake)
    assert result.target == 0 and usage.reasks == 1


def test_backend_exception_propagates_without_retry() -> None:
    from factcheck.errors import BackendError

    fake = FakeBackend().queue(BackendError("server down"), {"target": 0})
    with pytest.raises(BackendError, match="server down"):
        _gen(fake)
    assert len(fake.calls) == 1


def test_constraints_reach_the_backend() -> None:
    fake = FakeBackend().queue({"target": 0})
    _gen(fake, constraints={"target": {"enum": [0, 2]}})
    assert fake.calls[0].schema["properties"]["target"]["enum"] == [0, 2]


def test_ledger_totals() -> None:
    ledger = Ledger()
    fake = FakeBackend().queue("bad", {"target": 1}, {"target": 2})
    generate(fake, list(MESSAGES), Target, usage=ledger.stage("a"), max_tokens=10)
    generate(fake, list(MESSAGES), Target, usage=ledger.stage("b"), max_tokens=10)
    total = ledger.total()
    assert (total.calls, total.reasks, total.prompt_tokens, total.completion_tokens) == (3, 1, 300, 30)
    assert set(ledger.stages) == {"a", "b"}
