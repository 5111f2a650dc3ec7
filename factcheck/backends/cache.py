"""A persistent response cache in front of any back end: the same request is never paid for twice.

`CachedBackend(inner, path)` implements the Backend protocol. Requests are keyed by the sha256
of canonical JSON of everything that decides the answer: the back end's name and model, a model
identity string (the GGUF file's size and mtime for the local back end; the server URL without
credentials for an OpenAI-compatible one), the messages, the schema and its name, max_tokens and
the temperature (for classify(): the messages, the answer prefix and the options). API keys are
never part of a key nor stored.

Only answers worth replaying are stored: a finished ("stop") completion, not refused, whose text
is JSON valid against the request's schema. A transient fault (invalid JSON, a truncated or
refused answer) is therefore retried for real on the next run instead of being replayed forever.
A hit returns `Completion(..., cached=True)` with 0 prompt and completion tokens, since nothing
was spent; the stored row keeps the original counts for `stats()`.

The store is one SQLite file in WAL mode, shared safely by the threads of a batch (one connection,
`check_same_thread=False`, every statement under a lock) and by concurrent processes (SQLite's
own file locking with a busy timeout). A cache that stops working mid-run (disk full, locked too
long) degrades to "miss, do not store" rather than failing the article.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from .base import Backend, Completion, Message

# The keys and the SQLite file live in their own modules; their names stay importable from here.
from .cache_keys import FORMAT as FORMAT
from .cache_keys import _public_url as _public_url
from .cache_keys import classify_key, complete_key, identity_of
from .cache_keys import model_identity as model_identity
from .cache_store import FILE_NAME as FILE_NAME
from .cache_store import CacheStats, _connect, clear, default_path, disabled_by_env, stats
from .wrapper import BackendWrapper

__all__ = ["CachedBackend", "CacheStats", "clear", "default_path", "disabled_by_env", "stats"]

log = logging.getLogger(__name__)


class CachedBackend(BackendWrapper):
    """Any back end, with answers stored in and replayed from a SQLite file.

    name, model and any other attribute are the inner back end's (BackendWrapper): reports and
    cache keys name the real model."""

    def __init__(self, inner: Backend, path: Path | str | None = None):
        super().__init__(inner)
        self._spent = threading.local()
        self.path = Path(path) if path is not None else default_path()
        # Computed once: a model file cannot change under a running process without it noticing.
        self.identity = identity_of(inner)
        self.hits = 0
        self.misses = 0
        self.stored = 0
        self._lock = threading.Lock()
        self._broken = False
        self._db = _connect(self.path)

    def complete(
        self,
        messages: list[Message],
        *,
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int,
        temperature: float = 0.0,
    ) -> Completion:
        key = complete_key(self.identity, messages, schema, schema_name, max_tokens, temperature)
        row = self._get(key)
        if row is not None:
            text, finish_reason = row
            return Completion(text=text, finish_reason=finish_reason, cached=True)
        completion = super().complete(
            messages, schema=schema, schema_name=schema_name, max_tokens=max_tokens, temperature=temperature
        )
        self.store(
            messages,
            completion,
            schema=schema,
            schema_name=schema_name,
            max_tokens=max_tokens,
            temperature=temperature,
            key=key,
        )
        return completion

    def store(
        self,
        messages: list[Message],
        completion: Completion,
        *,
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int,
        temperature: float = 0.0,
        key: str | None = None,
    ) -> bool:
        """Store an answer made elsewhere (e.g. by the OpenAI Batch API) for this request, if it is
        worth replaying. Returns whether it was stored."""
        if not _worth_storing(completion, schema):
            return False
        key = key or complete_key(self.identity, messages, schema, schema_name, max_tokens, temperature)
        return self._put(
            key,
            "complete",
            completion.text,
            completion.finish_reason,
            completion.prompt_tokens,
            completion.completion_tokens,
        )

    def classify(self, messages: list[Message], *, prefix: str, options: list[str]) -> dict[str, float] | None:
        if getattr(self.inner, "classify", None) is None:
            return None  # a back end without probabilities: the caller falls back to generation
        key = classify_key(self.identity, messages, prefix, options)
        self._spent.usage = None  # a hit costs nothing
        row = self._get(key)
        if row is not None:
            try:
                probs = json.loads(row[0] or "")
            except ValueError:
                probs = False
            if probs is None:  # the back end had no probabilities for this request
                return None
            if isinstance(probs, dict) and set(probs) == set(options):
                return {o: float(probs[o]) for o in options}
        probs = super().classify(messages, prefix=prefix, options=options)
        self._spent.usage = getattr(self.inner, "last_classify_usage", lambda: None)()
        # None is stored too: finding out may have cost a request (a server without logprobs).
        self._put(key, "classify", json.dumps(probs, sort_keys=True), "classify", 0, 0)
        return probs

    def last_classify_usage(self) -> tuple[int, int] | None:
        return getattr(self._spent, "usage", None)

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._broken = True

    # ---------------------------------------------------------------- storage

    def _get(self, key: str) -> tuple[str | None, str] | None:
        with self._lock:
            if self._broken:
                self.misses += 1
                return None
            try:
                row = self._db.execute("SELECT text, finish_reason FROM responses WHERE key = ?", (key,)).fetchone()
            except sqlite3.Error as exc:
                self._degrade(exc)
                row = None
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
            return row[0], row[1]

    def _put(self, key: str, kind: str, text: str | None, finish_reason: str, prompt: int, completion: int) -> bool:
        with self._lock:
            if self._broken:
                return False
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        kind,
                        self.identity["backend"],
                        self.identity["model"],
                        text,
                        finish_reason,
                        int(prompt),
                        int(completion),
                        time.time(),
                    ),
                )
            except sqlite3.Error as exc:
                self._degrade(exc)
                return False
            self.stored += 1
            return True

    def _degrade(self, exc: sqlite3.Error) -> None:
        # Called with the lock held. "database is locked" after the busy timeout is worth another
        # try on the next call; anything else (disk full, corrupt file) turns the cache off.
        if "locked" in str(exc).lower() or "busy" in str(exc).lower():
            log.warning("response cache %s busy: %s", self.path, exc)
            return
        log.warning("response cache %s disabled for this run: %s", self.path, exc)
        self._broken = True


def _worth_storing(completion: Completion, schema: dict[str, Any]) -> bool:
    if completion.cached or completion.refusal or completion.finish_reason != "stop":
        return False
    if completion.text is None:
        return False
    try:
        value = json.loads(completion.text)
    except ValueError:
        return False
    return conforms(value, schema)


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def conforms(value: Any, schema: Any) -> bool:
    """A small JSON-schema check covering the keywords `structured.strict_schema` produces (type,
    properties, required, additionalProperties, items, enum, const, anyOf, min/max items and
    length). Unknown keywords pass; it only decides whether an answer is worth caching."""
    if not isinstance(schema, dict):
        return True
    if "anyOf" in schema and not any(conforms(value, s) for s in schema["anyOf"]):
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "const" in schema and value != schema["const"]:
        return False
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_is_type(value, k) for k in kinds):
            return False
    if isinstance(value, dict):
        props = schema.get("properties", {})
        if any(k not in value for k in schema.get("required", [])):
            return False
        if schema.get("additionalProperties") is False and any(k not in props for k in value):
            return False
        return all(conforms(v, props[k]) for k, v in value.items() if k in props)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            return False
        items = schema.get("items")
        return all(conforms(v, items) for v in value)
    if isinstance(value, str):
        return schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value))
    return True


def _is_type(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(kind, (object,)))
