"""The OpenAI Batch API (half price, up to 24 h) for the first stage of a batch run.

The Batch API cannot run the pipeline: an article needs several dependent calls (extraction,
then denial targets for what it found, then a summary, then judging that summary).
`write_openai_batch_file()` therefore writes the first and largest stage only, the
claim-extraction requests, exactly as the pipeline would send them; `submit_openai_batch()`
uploads it, `openai_batch_status()` polls it, and `collect_openai_batch()` stores the answers in
the response cache under the keys the pipeline will look up. A normal batch run with the same
model and options then finds stage 1 in the cache and only makes the later, smaller calls live.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, FactcheckError, InputError
from .inputs import collect_inputs, load_item

if TYPE_CHECKING:
    from .backends.base import Completion, Message
    from .pipeline import Options

log = logging.getLogger(__name__)


class _Captured(BaseException):
    """Carries the request _Recorder saw out of the pipeline (a BaseException, so no handler for
    FactcheckError or Exception on the way swallows it)."""

    def __init__(self, request: dict[str, Any]):
        super().__init__("captured")
        self.request = request


class _Recorder:
    """A back end that records the request the pipeline would send, then stops it."""

    name = "openai"

    def __init__(self, model: str, base_url: str | None = None):
        self.model = model
        self.base_url = base_url  # part of the cache key: the server the live run will call

    def complete(
        self,
        messages: list[Message],
        *,
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int,
        temperature: float = 0.0,
    ) -> Completion:
        raise _Captured(
            {
                "messages": messages,
                "schema": schema,
                "schema_name": schema_name,
                "max_tokens": max_tokens,
                "temperature": float(temperature),
            }
        )

    def classify(self, messages: list[Message], *, prefix: str, options: list[str]) -> None:
        return None


def write_openai_batch_file(
    inputs: Iterable[str | os.PathLike[str]],
    path: Path,
    *,
    model: str,
    options: Options | None = None,
) -> tuple[int, int]:
    """Write the claim-extraction requests of every article as an OpenAI Batch API input file:
    one {custom_id, method, url, body} line per chunk, custom_id "ID#CHUNK". Returns
    (requests, articles that could not be read). Only stage 1: see the module docstring."""
    from . import claims
    from .backends.openai_compat import _json_schema_format
    from .documents import chunk
    from .pipeline import Options
    from .structured import Ledger

    options = options or Options(style="written")
    recorder = _Recorder(model)
    requests = unreadable = 0
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for item in collect_inputs(inputs):
            try:
                doc = load_item(item)
            except FactcheckError as exc:
                log.warning("%s: %s", item.id, exc)
                unreadable += 1
                continue
            body = doc.body
            parts = chunk(body, max_tokens=options.max_chunk_tokens, overlap=1) if body else []
            for k, part in enumerate(parts):
                try:
                    claims.extract(recorder, Ledger(), doc, part, options.style)  # type: ignore[arg-type]
                except _Captured as cap:
                    r = cap.request
                    line = {
                        "custom_id": f"{item.id}#{k}",
                        "method": "POST",
                        "url": "/v1/chat/completions",
                        "body": {
                            "model": model,
                            "messages": r["messages"],
                            "response_format": _json_schema_format(r["schema"], r["schema_name"]),
                            "max_tokens": r["max_tokens"],
                            "temperature": r["temperature"],
                        },
                    }
                    out.write(json.dumps(line, ensure_ascii=False) + "\n")
                    requests += 1
                else:  # pragma: no cover - extract always calls the back end
                    raise AssertionError("claim extraction made no request")
    os.replace(tmp, path)
    return requests, unreadable


def _client(client: Any = None) -> Any:
    if client is not None:
        return client
    import openai

    try:
        return openai.OpenAI()
    except openai.OpenAIError as exc:  # no API key
        raise ConfigError(f"the OpenAI Batch API needs a client: {exc}") from exc


@contextlib.contextmanager
def _api_errors() -> Iterator[None]:
    """The SDK's errors as this tool's one-line errors (no traceback, no key)."""
    import openai

    from .backends.openai_compat import _backend_error

    try:
        yield
    except openai.APIError as exc:
        raise _backend_error(exc, os.environ.get("OPENAI_BASE_URL")) from exc


def submit_openai_batch(request_file: Path, *, client: Any = None) -> str:
    """Upload the request file and start a batch (24 h window); returns the batch id."""
    client = _client(client)
    with request_file.open("rb") as handle, _api_errors():
        uploaded = client.files.create(file=handle, purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    return str(batch.id)


def openai_batch_status(batch_id: str, *, client: Any = None) -> str:
    with _api_errors():
        batch = _client(client).batches.retrieve(batch_id)
    counts = getattr(batch, "request_counts", None)
    done = f" ({counts.completed}/{counts.total} done, {counts.failed} failed)" if counts else ""
    return f"{batch.status}{done}"


def collect_openai_batch(
    batch_id: str, request_file: Path, *, client: Any = None, cache_path: Path | None = None
) -> tuple[int, int]:
    """Store a finished batch's answers in the response cache, keyed as the live pipeline will
    look them up (OpenAI back end, the same server: OPENAI_BASE_URL or api.openai.com, same model,
    messages and schema). Returns (stored, not stored: errors, refusals, truncated or invalid
    answers)."""
    from .backends.base import Completion
    from .backends.cache import CachedBackend

    # The live run keys its cache by OPENAI_BASE_URL as given (backends.choose()), not as the SDK
    # normalises it (https://host:443/v1 -> https://host/v1), so read the variable itself.
    base_url = (os.environ.get("OPENAI_BASE_URL") or None) if client is None else getattr(client, "base_url", None)
    client = _client(client)
    with _api_errors():
        batch = client.batches.retrieve(batch_id)
    if batch.status != "completed":
        raise InputError(f"batch {batch_id} is {batch.status}, not completed: nothing to collect yet")
    bodies = {}
    with request_file.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                request = json.loads(line)
                bodies[request["custom_id"]] = request["body"]
    # Answers are in the output file; failed requests only in the error file (either may be absent).
    text = ""
    for file_id in (batch.output_file_id, getattr(batch, "error_file_id", None)):
        if file_id:
            with _api_errors():
                content = client.files.content(file_id)
            text += (content.text if hasattr(content, "text") else content.read().decode("utf-8")) + "\n"
    stored = skipped = 0
    caches: dict[str, CachedBackend] = {}
    try:
        for line in text.splitlines():
            if not line.strip():
                continue
            result = json.loads(line)
            body = bodies.get(result.get("custom_id"))
            response = result.get("response") or {}
            if body is None or response.get("status_code") != 200:
                skipped += 1
                continue
            answer = response["body"]
            choice = answer["choices"][0]
            usage = answer.get("usage") or {}
            completion = Completion(
                text=choice["message"].get("content"),
                finish_reason=choice.get("finish_reason") or "stop",
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", 0),
                refusal=choice["message"].get("refusal"),
            )
            model = body["model"]
            if model not in caches:
                recorder = _Recorder(model, str(base_url) if base_url else None)
                caches[model] = CachedBackend(recorder, cache_path)  # type: ignore[arg-type]
            if caches[model].store(
                body["messages"],
                completion,
                schema=body["response_format"]["json_schema"]["schema"],
                schema_name=body["response_format"]["json_schema"]["name"],
                max_tokens=body["max_tokens"],
                temperature=body.get("temperature", 0.0),
            ):
                stored += 1
            else:
                skipped += 1
    finally:
        for cache in caches.values():
            cache.close()
    return stored, skipped
