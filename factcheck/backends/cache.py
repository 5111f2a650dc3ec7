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
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError
from .base import Backend, Completion, Message

__all__ = ["CachedBackend", "CacheStats", "clear", "default_path", "disabled_by_env", "stats"]

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the key recipe or the stored value changes meaning
FILE_NAME = "responses.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,               -- 'complete' or 'classify'
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    text TEXT,                        -- the completion text, or the JSON of classify()'s probabilities
    finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,   -- what the original call cost, for stats
    completion_tokens INTEGER NOT NULL,
    created REAL NOT NULL
)
"""


def default_path() -> Path:
    """`responses.sqlite` in the user cache directory (FACTCHECK_CACHE_DIR overrides)."""
    from .. import embedded

    return embedded.cache_dir() / FILE_NAME


def disabled_by_env() -> bool:
    return os.environ.get("FACTCHECK_NO_CACHE", "").strip().lower() in ("1", "true", "yes", "on")


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


class CachedBackend:
    """Any back end, with answers stored in and replayed from a SQLite file."""

    def __init__(self, inner: Backend, path: Path | str | None = None):
        self.inner = inner
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

    # The protocol's attributes are the inner back end's: reports and cache keys name the real model.
    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    @property
    def model(self) -> str:  # type: ignore[override]
        return self.inner.model

    def __getattr__(self, attr: str) -> Any:
        # Anything else (load_seconds, mode, base_url, ...) is the inner back end's.
        if attr == "inner":
            raise AttributeError(attr)
        return getattr(self.inner, attr)

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
        completion = self.inner.complete(
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
        classify = getattr(self.inner, "classify", None)
        if classify is None:  # a back end without probabilities: the caller falls back to generation
            return None
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
        probs = classify(messages, prefix=prefix, options=options)
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


def _connect(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit: every INSERT is its own transaction, visible to other processes at once.
        db = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable except for the last commits on power loss
        db.execute(_SCHEMA)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(
            f"cannot open the response cache {path}: {exc} (set FACTCHECK_CACHE_DIR, or use --no-cache)"
        ) from exc
    return db


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


# ---------------------------------------------------------------- `factcheck cache stats|clear`


@dataclass
class CacheStats:
    path: Path
    exists: bool
    entries: int
    bytes: int  # the database file with its WAL and shared-memory files
    completions: int
    classifications: int
    prompt_tokens: int  # what the stored answers cost when they were first made
    completion_tokens: int
    models: dict[str, int]  # "backend/model" -> entries

    def lines(self) -> list[str]:
        if not self.exists:
            return [f"response cache: {self.path} (empty, not created yet)"]
        out = [
            f"response cache: {self.path}",
            f"  entries: {self.entries} ({self.completions} completions, {self.classifications} classifications)",
            f"  size: {_human(self.bytes)}",
            f"  tokens the stored answers cost: {self.prompt_tokens} prompt + {self.completion_tokens} completion",
        ]
        for model, n in sorted(self.models.items(), key=lambda kv: -kv[1]):
            out.append(f"  {model}: {n}")
        return out


def _files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def stats(path: Path | None = None) -> CacheStats:
    path = path or default_path()
    size = sum(p.stat().st_size for p in _files(path) if p.is_file())
    if not path.is_file():
        return CacheStats(path, False, 0, 0, 0, 0, 0, 0, {})
    db = _connect(path)
    try:
        entries, completions, prompt, completion = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(kind = 'complete'), 0), COALESCE(SUM(prompt_tokens), 0), "
            "COALESCE(SUM(completion_tokens), 0) FROM responses"
        ).fetchone()
        models = {
            f"{b}/{m}": n
            for b, m, n in db.execute("SELECT backend, model, COUNT(*) FROM responses GROUP BY backend, model")
        }
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot read the response cache {path}: {exc}") from exc
    finally:
        db.close()
    return CacheStats(path, True, entries, size, completions, entries - completions, prompt, completion, models)


def clear(path: Path | None = None) -> int:
    """Delete every stored answer; returns how many there were. Safe while another process uses
    the cache (it sees an empty cache from then on)."""
    path = path or default_path()
    if not path.is_file():
        return 0
    db = _connect(path)
    try:
        (count,) = db.execute("SELECT COUNT(*) FROM responses").fetchone()
        db.execute("DELETE FROM responses")
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot clear the response cache {path}: {exc}") from exc
    finally:
        db.close()
    return int(count)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
