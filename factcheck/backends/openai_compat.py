"""OpenAI and any OpenAI-compatible server (vLLM, Ollama, llama.cpp server, LM Studio)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from ..errors import BackendError, ConfigError
from .base import Completion, Message

Mode = Literal["auto", "json_schema", "json_object"]
T = TypeVar("T")


class OpenAIBackend:
    """Structured output through `response_format`.

    `json_schema` (strict) is what OpenAI, vLLM, Ollama and llama-server understand; llama-cpp-python's
    server rejects it, so in `auto` mode a rejection switches this back end to `json_object` with
    the schema attached and spelled out in the prompt.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        mode: Mode = "auto",
        timeout: float = 120.0,
        max_retries: int = 2,
    ):
        import openai

        self.model = model
        self.mode: Mode = mode
        self.base_url = base_url
        self._logprobs: bool | None = None  # unknown until the server has answered once
        self._tls = threading.local()  # per-thread usage of the last classify() call
        # Local servers ignore the key but the SDK insists on one.
        self._key = api_key
        self._client = openai.OpenAI(
            api_key=api_key or "not-needed",
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
        )

    def complete(
        self,
        messages: list[Message],
        *,
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int,
        temperature: float = 0.0,
    ) -> Completion:
        import openai

        def send(json_object: bool) -> Completion:
            if json_object:
                hint: Message = {
                    "role": "system",
                    "content": "Answer with one JSON object only, valid against this JSON schema:\n"
                    + json.dumps(schema, separators=(",", ":")),
                }
                fmt = {"type": "json_object", "schema": schema}
                return self._call([*messages, hint], fmt, max_tokens, temperature)
            return self._call(messages, _json_schema_format(schema, schema_name), max_tokens, temperature)

        try:
            return self._in_accepted_form(send)
        except openai.APIError as exc:
            raise self._error(exc) from exc

    def _in_accepted_form(self, send: Callable[[bool], T]) -> T:
        """`send(False)` asks in `json_schema` form; in `auto` mode, when the server rejects that form,
        `send(True)` asks in `json_object` form, which is kept once it has worked (a 400 alone can
        mean anything). Errors reach the caller as the SDK raised them."""
        import openai

        if self.mode != "json_object":
            try:
                return send(False)
            except (openai.BadRequestError, openai.UnprocessableEntityError, openai.InternalServerError) as exc:
                if self.mode != "auto" or not _rejects_schema(exc):
                    raise
        result = send(True)
        if self.mode == "auto":
            self.mode = "json_object"
        return result

    def _error(self, exc: Exception) -> Exception:
        error = _backend_error(exc, self.base_url)
        if self._key and self._key in str(error):  # keys never reach a message
            error = type(error)(str(error).replace(self._key, "***"))
        return error

    def _call(self, messages: list[Message], fmt: dict[str, Any], max_tokens: int, temperature: float) -> Completion:
        import openai

        try:
            response = self._create(
                messages=messages, response_format=fmt, max_tokens=max_tokens, temperature=temperature
            )
        except (openai.BadRequestError, openai.UnprocessableEntityError, openai.InternalServerError):
            raise  # the caller decides whether this means "schema form not supported"
        except openai.APIError as exc:
            raise self._error(exc) from exc
        except (ValueError, TypeError) as exc:  # a 200 that is not JSON: not an OpenAI-style API
            raise BackendError(f"{self.base_url or 'the server'} did not answer like an OpenAI API: {exc}") from exc
        if isinstance(getattr(response, "choices", None), list) and not response.choices:
            raise BackendError("the model server returned no choices")
        try:
            choice = response.choices[0]
            usage = response.usage
            return Completion(
                text=choice.message.content,
                finish_reason=choice.finish_reason or "stop",
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
                refusal=getattr(choice.message, "refusal", None),
            )
        except (AttributeError, IndexError, TypeError) as exc:
            raise BackendError(
                f"{self.base_url or 'the server'} returned something that is not a chat completion"
            ) from exc

    def classify(self, messages: list[Message], *, prefix: str, options: list[str]) -> dict[str, float] | None:
        """Option probabilities from the server's top logprobs at the token where the answer's
        value starts; None (the caller then generates instead) when the server gives no logprobs."""
        import openai

        if self._logprobs is False:
            return None
        key = prefix.split('"')[1] if prefix.count('"') >= 2 else "answer"
        schema = {
            "type": "object",
            "properties": {key: {"type": "string", "enum": options}},
            "required": [key],
            "additionalProperties": False,
        }

        def send(json_object: bool) -> Any:
            return self._create(
                messages=messages,
                response_format={"type": "json_object", "schema": schema}
                if json_object
                else _json_schema_format(schema, "Choice"),
                max_tokens=12,
                temperature=0.0,
                logprobs=True,
                top_logprobs=10,
            )

        try:
            response = self._in_accepted_form(send)
        except (openai.BadRequestError, openai.UnprocessableEntityError, openai.InternalServerError):
            self._logprobs = False  # no logprobs here (or no such request): the caller generates instead
            return None
        except openai.APIError as exc:
            raise self._error(exc) from exc
        usage = response.usage
        self._tls.usage = (usage.prompt_tokens, usage.completion_tokens) if usage else None
        choice = response.choices[0] if response.choices else None
        tokens = choice.logprobs.content if choice and choice.logprobs and choice.logprobs.content else None
        if not tokens:
            self._logprobs = False
            return None
        return _option_probabilities(tokens, options)

    def _create(self, **params: Any) -> Any:
        """POST /chat/completions through the SDK's generic request method (its retries, timeouts
        and errors apply). `chat.completions.create()` would first walk every message and the
        JSON schema against its type hints: ~2.5 ms of CPU a call, most of this tool's own overhead
        in a batch (benchmarks/batch_throughput.py). The request on the wire is the same."""
        from openai.types.chat import ChatCompletion

        return self._client.post("/chat/completions", body={"model": self.model, **params}, cast_to=ChatCompletion)

    def last_classify_usage(self) -> tuple[int, int] | None:
        """(prompt, completion) tokens of this thread's last classify() call."""
        return getattr(self._tls, "usage", None)


def _option_probabilities(tokens: list[Any], options: list[str]) -> dict[str, float] | None:
    """At the first token that starts an option, share out the top alternatives among options."""
    import math

    for position in tokens:
        alternatives = position.top_logprobs or []
        mass = {o: 0.0 for o in options}
        for alt in alternatives:
            piece = alt.token.strip().strip('"')
            if not piece:
                continue
            for o in options:
                if o.startswith(piece):
                    mass[o] += math.exp(alt.logprob)
                    break
        if sum(mass.values()) > 0 and any(
            o.startswith(position.token.strip().strip('"')) for o in options if position.token.strip().strip('"')
        ):
            total = sum(mass.values())
            return {o: m / total for o, m in mass.items()}
    return None


def _json_schema_format(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def _rejects_schema(exc: Exception) -> bool:
    # A 400/422 from a server that does not know `json_schema`; a 500 only when it names the
    # schema (llama-cpp-python's server), since a plain 500 says nothing about the format.
    status = getattr(exc, "status_code", 0)
    if status in (400, 422):
        return True
    return status == 500 and bool(re.search(r"response_format|json_schema|schema|grammar", _message(exc), re.I))


def _backend_error(exc: Exception, base_url: str | None) -> Exception:
    import openai

    where = base_url or "the OpenAI API"
    if isinstance(exc, openai.AuthenticationError):
        return ConfigError(f"{where} rejected the API key (check OPENAI_API_KEY)")
    if isinstance(exc, openai.NotFoundError):
        return BackendError(f"{where}: not found (check --model and --base-url): {_message(exc)}")
    if isinstance(exc, openai.RateLimitError):
        return BackendError(f"{where}: rate limited, retries exhausted: {_message(exc)}")
    if isinstance(exc, openai.APITimeoutError):
        return BackendError(f"{where}: request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return BackendError(f"cannot reach the model server at {where}")
    if isinstance(exc, openai.APIStatusError):
        return BackendError(f"{where}: HTTP {exc.status_code}: {_message(exc)}")
    return BackendError(f"{where}: {_message(exc)}")


def _message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
