"""The cache's keys: the sha256 of canonical JSON of everything that decides an answer.

A key covers the back end's name and model, a model identity string (the GGUF file's size and
mtime for the local back end; the server URL without credentials for an OpenAI-compatible one),
the messages, the schema and its name, max_tokens and the temperature (for classify(): the
messages, the answer prefix and the options). API keys are never part of a key.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .base import Message

FORMAT = 1  # bump when the key recipe or the stored value changes meaning


def model_identity(inner: Any) -> str:
    """What tells two models of the same name apart, without any secret in it."""
    custom = getattr(inner, "cache_identity", None)
    if custom is not None:
        return str(custom() if callable(custom) else custom)
    path = getattr(inner, "path", None)
    if isinstance(path, Path):
        try:
            st = path.stat()
        except OSError:
            return f"file:{path.name}"
        return f"file:{path.name}:{st.st_size}:{st.st_mtime_ns}"
    if hasattr(inner, "base_url"):
        return "url:" + _public_url(getattr(inner, "base_url", None) or "https://api.openai.com/v1")
    return ""


def _public_url(url: str) -> str:
    """The URL without user:password@, query or fragment (where a key could hide)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def _digest(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def complete_key(
    identity: dict[str, str],
    messages: list[Message],
    schema: dict[str, Any],
    schema_name: str,
    max_tokens: int,
    temperature: float,
) -> str:
    return _digest(
        {
            "format": FORMAT,
            "call": "complete",
            **identity,
            "messages": messages,
            "schema": schema,
            "schema_name": schema_name,
            "max_tokens": max_tokens,
            "temperature": float(temperature),
        }
    )


def classify_key(identity: dict[str, str], messages: list[Message], prefix: str, options: list[str]) -> str:
    return _digest(
        {
            "format": FORMAT,
            "call": "classify",
            **identity,
            "messages": messages,
            "prefix": prefix,
            "options": options,
        }
    )


def identity_of(inner: Any) -> dict[str, str]:
    return {"backend": str(inner.name), "model": str(inner.model), "identity": model_identity(inner)}
