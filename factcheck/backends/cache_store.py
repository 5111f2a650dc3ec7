"""The cache's SQLite file: opening it, and `factcheck cache stats|clear`.

One file in WAL mode (see cache.py for how a running CachedBackend shares it).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

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
