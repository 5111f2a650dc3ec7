"""Schema-constrained calls: validate the model's JSON with pydantic, re-ask with the error."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_none

from .backends.base import Backend, Message
from .errors import ModelOutputError, RefusalError, TruncatedOutputError
from .schemas import Usage

T = TypeVar("T", bound=BaseModel)


@dataclass
class Ledger:
    """Token usage per stage, including re-asks, and the prompt templates used."""

    stages: dict[str, Usage] = field(default_factory=dict)
    prompts: dict[str, str] = field(default_factory=dict)

    def stage(self, name: str) -> Usage:
        return self.stages.setdefault(name, Usage())

    def total(self) -> Usage:
        total = Usage()
        for usage in self.stages.values():
            total.add(usage)
        return total


class _Invalid(Exception):
    def __init__(self, output: str, error: str):
        super().__init__(error)
        self.output = output
        self.error = error


def strict_schema(model: type[BaseModel], *, constraints: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The model's JSON schema in the strict form OpenAI requires and llama.cpp turns into a grammar:
    references inlined, every property required, no extra properties, no titles or defaults.

    `constraints` adds per-call keywords at a dotted path ("claims", "claims.n"), such as the
    minimum number of items or the sentence numbers that exist, so the grammar itself rules out
    what the validator would otherwise have to send back.
    """
    fixed = _strict_base(model)  # shared and cached: copied along a path before any change
    for path, keywords in (constraints or {}).items():
        fixed = _with_keywords(fixed, path.split("."), keywords)
    return fixed


def _with_keywords(node: dict[str, Any], names: list[str], keywords: dict[str, Any]) -> dict[str, Any]:
    """A copy of `node` with `keywords` added at the property path `names` (through array items);
    only the nodes on the path are copied."""
    if not names:
        return {**node, **keywords}
    name, rest = names[0], names[1:]
    child = node["properties"][name]
    if rest and "items" in child:  # a list of objects: the path goes on inside its items
        child = {**child, "items": _with_keywords(child["items"], rest, keywords)}
    else:
        child = _with_keywords(child, rest, keywords)
    return {**node, "properties": {**node["properties"], name: child}}


@functools.cache
def _strict_base(model: type[BaseModel]) -> dict[str, Any]:
    """Built once per answer type: pydantic's schema generation costs about a millisecond a call."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return fix(copy.deepcopy(defs[node["$ref"].split("/")[-1]]))
            out: dict[str, Any] = {}
            for key, value in node.items():
                if key in ("title", "default"):
                    continue  # schema keywords; a *property* of that name lives under "properties"
                if key == "properties":
                    out[key] = {name: fix(sub) for name, sub in value.items()}
                else:
                    out[key] = fix(value)
            if out.get("type") == "object":
                out["additionalProperties"] = False
                out["required"] = list(out.get("properties", {}))
            return out
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    return fix(schema)  # type: ignore[no-any-return]


def generate(
    backend: Backend,
    messages: list[Message],
    answer: type[T],
    *,
    usage: Usage,
    max_tokens: int,
    attempts: int = 3,
    context: dict[str, Any] | None = None,
    constraints: dict[str, dict[str, Any]] | None = None,
) -> T:
    """Ask until the answer validates, feeding each validation error back, at most `attempts` times."""
    schema = strict_schema(answer, constraints=constraints)
    conversation = list(messages)
    last_output = ""
    tries = 0

    def attempt() -> T:
        nonlocal last_output, tries
        tries += 1
        completion = backend.complete(conversation, schema=schema, schema_name=answer.__name__, max_tokens=max_tokens)
        usage.calls += 1
        usage.prompt_tokens += completion.prompt_tokens
        usage.completion_tokens += completion.completion_tokens
        if completion.refusal:
            raise RefusalError(f"the model refused: {completion.refusal[:200]}")
        text = completion.text or ""
        last_output = text
        if completion.finish_reason == "length":
            raise TruncatedOutputError(
                f"the model's answer was cut off at max_tokens={max_tokens} ({answer.__name__})",
                last_output=text,
                attempts=tries,
            )
        if completion.finish_reason == "content_filter":
            raise RefusalError("the model's answer was blocked by a content filter")
        try:
            return answer.model_validate_json(text, context=context)
        except ValidationError as exc:
            error = _short_errors(exc)
            if tries < attempts:  # a re-ask follows: show the model its answer and what is wrong
                conversation.extend(
                    [
                        {"role": "assistant", "content": text},
                        {
                            "role": "user",
                            "content": f"That JSON is invalid: {error}. Reply with corrected JSON only.",
                        },
                    ]
                )
                usage.reasks += 1
            raise _Invalid(text, error) from exc

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        retry=retry_if_exception_type(_Invalid),
        wait=wait_none(),
        reraise=False,
    )
    try:
        return retrying(attempt)
    except RetryError as exc:
        cause = exc.last_attempt.exception()
        error = cause.error if isinstance(cause, _Invalid) else str(cause)
        raise ModelOutputError(
            f"the model returned invalid {answer.__name__} {attempts} times; last error: {error}; "
            f"last output: {last_output[:200]!r}",
            last_output=last_output,
            attempts=attempts,
        ) from None


def _short_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
