"""Many articles, safely: bounded concurrency, one JSON line per article, resume, budgets, rate limits.

`run_batch(inputs, output, backend_factory=...)` summarises every article named by `inputs` (files,
globs, directories of *.txt/*.md/*.html, http(s) URLs, or JSONL files of {id, text|path|url}) and
appends one line per article to `output` as soon as it is done:

    {"id": "...", "path": "...", "report": {...}}    or    {"id": "...", "path": "...", "error": "one line"}

Guarantees:
- A line is written in one write() call under a lock, then fsync'ed: the file only ever ends in a
  partial line if the machine dies mid-write, and `resume` repairs exactly that.
- `resume=True` skips ids that already have a report, retries ids with an error line (the old
  error line is removed so each id ends up in the file once; error lines of ids no longer in the
  inputs are kept), and drops a truncated last line.
- Ctrl-C stops submitting, cancels what has not started, lets in-flight articles finish (a second
  Ctrl-C abandons them; nothing more is written) and returns a summary with `interrupted` set.
- Budgets (`max_cost` USD, `max_tokens`) count what the back end actually reports, live, including
  the calls of articles that later failed; an article is only started when its estimated spend fits
  in what is left after the estimates of the articles in flight. Cached answers cost nothing.
  classify() reports no usage, so its tokens are estimated from the prompt (4 characters a token).
- `rpm`/`tpm` are client-side token buckets shared by all threads, applied below the response
  cache (a cache hit does not wait). Server-side 429s are retried by the openai SDK itself, which
  honours Retry-After / retry-after-ms up to two minutes and otherwise backs off exponentially
  (0.5 s doubling to 8 s, with jitter) for its `max_retries` (2 by default); 408, 409, 5xx,
  timeouts and dropped connections are retried the same way.
- The local back end (llama.cpp in this process, not thread-safe) always runs at concurrency 1.
- An unreadable article is an error line; a failure that says something about the server (or the
  model) counts towards a breaker: after `max_consecutive_failures` (at least 2 x concurrency) in
  a row the run stops starting articles rather than writing 100,000 identical error lines. A
  ConfigError (e.g. a rejected API key) or an unwritable output stops it at once.

The OpenAI Batch API (half price, up to 24 h) cannot run the pipeline: an article needs several
dependent calls (extraction, then denial targets for what it found, then a summary, then judging
that summary). `write_openai_batch_file()` therefore writes the first and largest stage only,
the claim-extraction requests, exactly as the pipeline would send them; `submit_openai_batch()`
uploads it, `openai_batch_status()` polls it, and `collect_openai_batch()` stores the answers in the
response cache under the keys the pipeline will look up. A normal batch run with the same model
and options then finds stage 1 in the cache and only makes the later, smaller calls live.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import re
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, FactcheckError, InputError

if TYPE_CHECKING:
    from .backends.base import Backend, Completion, Message
    from .pipeline import Options

log = logging.getLogger(__name__)

ARTICLE_SUFFIXES = {".txt", ".md", ".html", ".htm"}
MAX_ERROR_CHARS = 500


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Item:
    """One article to do; the text of a JSONL item is read again when its turn comes."""

    id: str
    path: str | None = None  # a file to load (shown as "path" in the output line)
    url: str | None = None
    jsonl: Path | None = None  # text items: the JSONL file and the byte offset of their line
    offset: int = 0
    size: int = 0  # characters (or bytes) of input, for the budget's estimate; 0 when unknown
    title: str | None = None

    def where(self) -> dict[str, str]:
        if self.path is not None:
            return {"path": self.path}
        if self.url is not None:
            return {"url": self.url}
        return {}


def collect_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[Item]:
    """Expand files, globs, directories, URLs and JSONL files into items with unique ids.

    A file's id is its path as given or found; a JSONL item's id is its "id" field (else
    FILE:LINE). The same file reached twice counts once; two different items with one id is an
    error, since the output could not tell them apart.
    """
    items: dict[str, Item] = {}
    origin: dict[str, str] = {}

    def add(item: Item, where: str) -> None:
        if item.id in items:
            if items[item.id] == item:
                return
            raise InputError(f"duplicate id {item.id!r} ({origin[item.id]} and {where})")
        items[item.id] = item
        origin[item.id] = where

    for raw in inputs:
        text = os.fspath(raw)
        if text.startswith(("http://", "https://")):
            add(Item(id=text, url=text), text)
            continue
        if glob.has_magic(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise InputError(f"no files match {text}")
            paths = [Path(m) for m in matches]
        else:
            paths = [Path(text)]
        for path in paths:
            if path.is_dir():
                found = [
                    p
                    for p in sorted(path.rglob("*"))
                    if p.suffix.lower() in ARTICLE_SUFFIXES
                    and p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                ]
                if not found and not glob.has_magic(text):
                    raise InputError(f"{path}: no *.txt, *.md or *.html files in this directory")
                for p in found:
                    add(_file_item(p), str(path))
            elif path.suffix.lower() == ".jsonl":
                for item, line in _jsonl_items(path):
                    add(item, f"{path}:{line}")
            elif path.is_file():
                add(_file_item(path), str(path))
            elif not path.exists():
                raise InputError(f"no such file: {path}")
    return list(items.values())


def _file_item(path: Path) -> Item:
    name = os.path.normpath(str(path))
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    return Item(id=name, path=name, size=size)


def _jsonl_items(path: Path) -> Iterator[tuple[Item, int]]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        offset = 0
        for number, line in enumerate(handle, 1):
            start, offset = offset, offset + len(line)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise InputError(f"{path}:{number}: not valid JSON ({exc})") from exc
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{number}: expected an object with id and text, path or url")
            given = [k for k in ("text", "path", "url") if obj.get(k) not in (None, "")]
            if len(given) != 1:
                raise InputError(f"{path}:{number}: give exactly one of text, path or url")
            item_id = str(obj["id"]) if obj.get("id") not in (None, "") else f"{path}:{number}"
            title = obj.get("title") if isinstance(obj.get("title"), str) else None
            kind = given[0]
            value = obj[kind]
            if not isinstance(value, str):
                raise InputError(f"{path}:{number}: {kind} must be a string")
            if kind == "text":
                yield Item(id=item_id, jsonl=path, offset=start, size=len(value), title=title), number
            elif kind == "url":
                yield Item(id=item_id, url=value, title=title), number
            else:
                # A relative path is relative to the JSONL file, so the list can move with its files.
                target = Path(value)
                if not target.is_absolute() and not (path.parent / value).exists() and target.exists():
                    pass  # written relative to the working directory
                elif not target.is_absolute():
                    target = path.parent / value
                size = target.stat().st_size if target.is_file() else 0
                yield Item(id=item_id, path=os.path.normpath(str(target)), size=size, title=title), number


def load_item(item: Item):  # type: ignore[no-untyped-def]
    from . import documents

    if item.jsonl is not None:
        with item.jsonl.open("rb") as handle:
            handle.seek(item.offset)
            obj = json.loads(handle.readline())
        return documents.make_document(str(obj["text"]), origin=item.id, title=item.title)
    doc = documents.load(item.path or item.url or "")
    if item.title is not None:
        doc.title = item.title
    return doc


# ---------------------------------------------------------------- output


class ResultWriter:
    """Appends whole lines: one write() per line under a lock, flushed to disk with fsync."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._closed = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InputError(f"cannot write {path}: {exc.strerror}") from exc

    def write(self, record: dict[str, Any]) -> bool:
        """False when the writer was closed (an abandoned article must not write late)."""
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            if self._closed:
                return False
            end = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                written = os.write(self._fd, data)
                if written != len(data):
                    raise OSError(28, "short write (disk full?)")
                os.fsync(self._fd)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, end)  # never leave half a line behind
                self._closed = True
                raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
            return True

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._fd)


class OutputError(FactcheckError):
    """The results file cannot be written: the batch stops."""


@dataclass
class Existing:
    done: set[str] = field(default_factory=set)  # ids with a report
    errors: int = 0  # error lines removed so their ids are retried
    truncated: bool = False  # a partial last line was dropped
    duplicates: int = 0


def prepare_output(path: Path, *, resume: bool, retry: set[str] | None = None) -> Existing:
    """Check or repair the results file before appending to it.

    Without resume an existing non-empty file is an error (appending would mix two runs). With
    resume: ids with a report are done; error lines for ids in `retry` (default: all) are removed
    so those articles are redone and each id ends up once in the file; a last line cut off
    mid-write is removed; a broken line anywhere else is an error (the file was edited or damaged).
    """
    state = Existing()
    if not path.exists():
        return state
    if not resume:
        if path.stat().st_size > 0:
            raise InputError(f"{path} already has results: pass --resume to continue it, or choose another file")
        return state
    drop: set[int] = set()
    cut_at: int | None = None
    needs_newline = False
    try:
        with path.open("rb") as handle:
            offset = 0
            for number, line in enumerate(handle, 1):
                start, offset = offset, offset + len(line)
                complete = line.endswith(b"\n")  # only the last line can lack its newline
                if not line.strip():
                    if complete:
                        drop.add(number)
                        continue
                    cut_at = start
                    break
                record = _parse(line)
                if record is None:
                    if complete:
                        raise InputError(f"{path}:{number} is not a valid result line; remove it and run again")
                    cut_at, state.truncated = start, True  # cut off mid-write: that article is redone
                    break
                needs_newline = not complete
                rid = str(record["id"])
                if "report" in record:
                    if rid in state.done:
                        drop.add(number)
                        state.duplicates += 1
                    else:
                        state.done.add(rid)
                elif retry is None or rid in retry:
                    drop.add(number)
                    state.errors += 1
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    if drop:
        _rewrite(path, drop)
        return state
    if cut_at is not None or needs_newline:
        with path.open("r+b") as handle:
            if cut_at is not None:
                handle.truncate(cut_at)
            else:
                handle.seek(0, os.SEEK_END)
                handle.write(b"\n")
            handle.flush()
            os.fsync(handle.fileno())
    return state


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or "id" not in record or not ("report" in record or "error" in record):
        return None
    return record


def _rewrite(path: Path, drop: set[int]) -> None:
    """Copy the file without the dropped lines and without a partial last line, then swap it in."""
    tmp = path.with_name(f".{path.name}.resume.tmp")
    with path.open("rb") as src, tmp.open("wb") as out:
        for number, line in enumerate(src, 1):
            if number in drop:
                continue
            if not line.endswith(b"\n"):
                if _parse(line) is None:
                    break  # the truncated tail
                line += b"\n"
            out.write(line)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------- rate limits and metering


class TokenBucket:
    """`per_minute` units a minute, bursts of up to `burst_seconds` worth; thread-safe.

    A request larger than the burst is let through when the bucket is full and leaves it in debt,
    so the long-run rate still holds.
    """

    def __init__(
        self,
        per_minute: float,
        *,
        burst_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if per_minute <= 0:
            raise ConfigError("rate limits must be positive")
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, per_minute * burst_seconds / 60.0)
        self.level = self.capacity
        self._clock, self._sleep = clock, sleep
        self._stamp = clock()
        self._lock = threading.Lock()

    def acquire(self, amount: float = 1.0) -> float:
        """Take `amount`, waiting as needed; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
                self._stamp = now
                need = min(amount, self.capacity)
                if self.level >= need - 1e-9:  # a float hair short is not worth a sleep
                    self.level -= amount
                    return waited
                pause = (need - self.level) / self.rate
            pause = min(max(pause, 0.001), 1.0)
            self._sleep(pause)
            waited += pause


class RateLimiter:
    def __init__(self, rpm: float | None = None, tpm: float | None = None):
        self.requests = TokenBucket(rpm) if rpm else None
        self.tokens = TokenBucket(tpm) if tpm else None

    def acquire(self, tokens: int) -> None:
        if self.requests:
            self.requests.acquire(1)
        if self.tokens:
            self.tokens.acquire(tokens)


def estimate_prompt_tokens(messages: list[Message]) -> int:
    return sum(len(m.get("content") or "") for m in messages) // 4 + 4 * len(messages)


class _Wrapper:
    """Forwards the protocol's attributes (and anything else) to the wrapped back end."""

    def __init__(self, inner: Any):
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def model(self) -> str:
        return self.inner.model

    def __getattr__(self, attr: str) -> Any:
        if attr == "inner":
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    def classify(self, messages: list[Message], *, prefix: str, options: list[str]) -> dict[str, float] | None:
        classify = getattr(self.inner, "classify", None)
        return None if classify is None else classify(messages, prefix=prefix, options=options)


class RateLimitedBackend(_Wrapper):
    def __init__(self, inner: Any, limiter: RateLimiter):
        super().__init__(inner)
        self.limiter = limiter

    def complete(
        self,
        messages: list[Message],
        *,
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int,
        temperature: float = 0.0,
    ) -> Completion:
        self.limiter.acquire(estimate_prompt_tokens(messages) + max_tokens)
        return self.inner.complete(
            messages, schema=schema, schema_name=schema_name, max_tokens=max_tokens, temperature=temperature
        )

    def classify(self, messages: list[Message], *, prefix: str, options: list[str]) -> dict[str, float] | None:
        classify = getattr(self.inner, "classify", None)
        if classify is None:
            return None
        probs = classify(messages, prefix=prefix, options=options)
        # Charged afterwards: a back end that has no probabilities answers None without a request,
        # and must not use up the rate. The debt makes the next calls wait instead.
        if probs is not None:
            self.limiter.acquire(estimate_prompt_tokens(messages) + 12)
        return probs


@dataclass
class Spend:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0  # real calls (cache hits never reach the meter)
    pipeline_calls: int = 0  # calls the pipeline made, hits included (known when a report is made)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class MeteredBackend(_Wrapper):
    """Counts what real calls spend, in total and for the article the calling thread works on, so
    budgets see the spend of articles in flight and of articles that fail. It sits below the
    response cache: a cache hit never reaches it and costs nothing.

    classify() reports no usage, so for a paid back end its tokens are estimated from the prompt
    length (the OpenAI back end asks for at most 12 tokens back)."""

    def __init__(self, inner: Any):
        super().__init__(inner)
        self.total = Spend()
        self._lock = threading.Lock()
        self._local = threading.local()

    @contextlib.contextmanager
    def article(self, spend: Spend) -> Iterator[Spend]:
        self._local.spend = spend
        try:
            yield spend
        finally:
            self._local.spend = None

    def _add(self, prompt: int, completion: int) -> None:
        mine = getattr(self._local, "spend", None)
        with self._lock:
            for spend in (self.total, mine):
                if spend is not None:
                    spend.prompt_tokens += prompt
                    spend.completion_tokens += completion
                    spend.calls += 1

    def complete(
        self,
        messages: list[Message],
        *,
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int,
        temperature: float = 0.0,
    ) -> Completion:
        completion = self.inner.complete(
            messages, schema=schema, schema_name=schema_name, max_tokens=max_tokens, temperature=temperature
        )
        if not completion.cached:
            self._add(completion.prompt_tokens, completion.completion_tokens)
        return completion

    def classify(self, messages: list[Message], *, prefix: str, options: list[str]) -> dict[str, float] | None:
        classify = getattr(self.inner, "classify", None)
        if classify is None:
            return None
        probs = classify(messages, prefix=prefix, options=options)
        if probs is not None:  # None: no probabilities, and (after the first probe) no request
            # A back end may report what its last classify() in this thread cost; else estimate it.
            reported = getattr(self.inner, "last_classify_usage", None)
            usage = reported() if callable(reported) else None
            if usage is None:
                paid = self.inner.name != "local"
                usage = (estimate_prompt_tokens(messages), 12) if paid else (0, 0)
            self._add(int(usage[0]), int(usage[1]))
        return probs


# ---------------------------------------------------------------- budget


class Budget:
    """Measured spend against --max-cost / --max-tokens, with estimates reserved for articles in flight."""

    PRIOR_CALLS = 6  # extraction, summary, 2-3 summary judgements, headline: each re-sends the article
    CALL_OVERHEAD = 600  # system prompt, task and schema hint, in tokens
    MARGIN = 1.25

    def __init__(self, backend_name: str, model: str, max_cost: float | None, max_tokens: int | None):
        from . import costs

        self.max_cost, self.max_tokens = max_cost, max_tokens
        self._price = costs.price(backend_name, model)
        if max_cost is not None and self._price is None:
            raise ConfigError(
                f"--max-cost needs a price for {model}: set FACTCHECK_PRICES to a price file, or use --max-tokens"
            )
        self._seen_units = 0.0
        self._seen_prompt = 0
        self._seen_completion = 0

    @property
    def active(self) -> bool:
        return self.max_cost is not None or self.max_tokens is not None

    def cost(self, prompt: int, completion: int) -> float:
        if self._price is None:
            return 0.0
        return (prompt * self._price.input + completion * self._price.output) / 1_000_000

    def learn(self, item: Item, spend: Spend) -> None:
        """Calibrate on finished articles that made every call for real (no cache hits)."""
        if spend.tokens and spend.pipeline_calls and spend.calls >= spend.pipeline_calls:
            self._seen_units += self._units(item)
            self._seen_prompt += spend.prompt_tokens
            self._seen_completion += spend.completion_tokens

    def _units(self, item: Item) -> float:
        size = item.size or 4000  # an unknown size (a URL): assume a long-ish article
        return size / 4 + self.CALL_OVERHEAD

    def estimate(self, item: Item) -> tuple[int, int]:
        """(prompt, completion) tokens this article is likely to take, on the safe side."""
        units = self._units(item)
        if self._seen_units:
            prompt = units * self._seen_prompt / self._seen_units
            completion = units * self._seen_completion / self._seen_units
        else:
            prompt = units * self.PRIOR_CALLS
            completion = (item.size or 4000) / 4 * 0.6 + 400
        return int(prompt * self.MARGIN), int(completion * self.MARGIN)

    def left(self, spent: Spend, reserved: tuple[int, int]) -> tuple[float | None, int | None]:
        cost_left = tokens_left = None
        if self.max_cost is not None:
            cost_left = self.max_cost - self.cost(spent.prompt_tokens, spent.completion_tokens) - self.cost(*reserved)
        if self.max_tokens is not None:
            tokens_left = self.max_tokens - spent.tokens - sum(reserved)
        return cost_left, tokens_left

    def exhausted(self, spent: Spend) -> bool:
        if self.max_cost is not None and self.cost(spent.prompt_tokens, spent.completion_tokens) >= self.max_cost:
            return True
        return self.max_tokens is not None and spent.tokens >= self.max_tokens

    def fits(self, item: Item, spent: Spend, reserved: tuple[int, int]) -> bool:
        prompt, completion = self.estimate(item)
        cost_left, tokens_left = self.left(spent, reserved)
        if cost_left is not None and self.cost(prompt, completion) > cost_left:
            return False
        return tokens_left is None or prompt + completion <= tokens_left


# ---------------------------------------------------------------- the run


@dataclass
class BatchSummary:
    output: Path
    total: int = 0  # articles named by the inputs
    done: int = 0  # reports written by this run
    failed: int = 0  # error lines written by this run
    skipped: int = 0  # already in the output (resume)
    not_started: int = 0  # left for a later run (budget, Ctrl-C, too many failures)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    cached_calls: int = 0
    cost_usd: float = 0.0
    cost_note: str = ""
    seconds: float = 0.0
    concurrency: int = 1
    notes: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    budget_reached: bool = False
    interrupted: bool = False
    abandoned: int = 0  # in flight when a second Ctrl-C came: not written
    stopped_on_failures: bool = False

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        if self.budget_reached:
            return 3
        return 1 if self.failed or self.stopped_on_failures else 0

    def lines(self) -> list[str]:
        rate = self.done / self.seconds if self.seconds > 0 else 0.0
        out = [
            f"{self.done} done, {self.failed} failed, {self.skipped} skipped (already done), "
            f"{self.not_started} not started; {self.total} in the inputs",
            f"tokens: {self.prompt_tokens} prompt + {self.completion_tokens} completion in {self.calls} calls"
            + (f" ({self.cached_calls} answered from the cache)" if self.cached_calls else ""),
            f"cost: ${self.cost_usd:.4f}" + (f" ({self.cost_note})" if self.cost_note else ""),
            f"time: {self.seconds:.1f} s ({rate:.2f} articles/s at concurrency {self.concurrency})",
        ]
        for message, n in self.errors.most_common(3):
            out.append(f"  {n} x {message}")
        if self.abandoned:
            out.append(f"{self.abandoned} article(s) in flight were abandoned (not written; redone on resume)")
        out.extend(self.notes)
        out.append(f"results: {self.output}")
        return out


def run_batch(
    inputs: Iterable[str | os.PathLike[str]],
    output: Path,
    *,
    backend_factory: Callable[[], Backend],
    concurrency: int = 8,
    resume: bool = False,
    options: Options | None = None,
    max_cost: float | None = None,
    max_tokens: int | None = None,
    rpm: float | None = None,
    tpm: float | None = None,
    progress: bool | None = None,
    max_consecutive_failures: int = 50,
) -> BatchSummary:
    """Summarise every article in `inputs` into `output` (JSONL); see the module docstring."""
    from . import costs

    started = time.perf_counter()
    output = Path(output)
    items = collect_inputs(inputs)
    existing = prepare_output(output, resume=resume, retry={i.id for i in items})
    todo = deque(i for i in items if i.id not in existing.done)
    summary = BatchSummary(output=output, total=len(items), skipped=len(items) - len(todo))
    if existing.truncated:
        summary.notes.append("a partial last line in the output (an interrupted write) was removed and redone")
    if not todo:
        summary.seconds = time.perf_counter() - started
        return summary

    _make_segmenter_thread_safe()
    backend = backend_factory()
    if backend.name == "local" and concurrency > 1:
        summary.notes.append("the local back end runs one article at a time (llama.cpp is not thread-safe)")
        concurrency = 1
    concurrency = max(1, concurrency)
    summary.concurrency = concurrency
    if options is None:
        from .pipeline import Options

        options = Options(style="sentence" if backend.name == "local" else "written")
    budget = Budget(backend.name, backend.model, max_cost, max_tokens)
    if costs.price(backend.name, backend.model) is None:
        summary.cost_note = costs.describe(backend.name, backend.model)

    from .backends.cache import CachedBackend

    # Below the cache (real calls only): the rate limiter, then the meter. Above it: the pipeline.
    cache = backend if isinstance(backend, CachedBackend) else None
    real: Any = cache.inner if cache is not None else backend
    original = real
    if rpm or tpm:
        real = RateLimitedBackend(real, RateLimiter(rpm, tpm))
    metered = MeteredBackend(real)
    hits_before = cache.hits if cache is not None else 0
    top: Any = metered
    if cache is not None:
        cache.inner = metered  # type: ignore[assignment]
        top = cache
    try:
        writer = ResultWriter(output)
        state = _Run(top, metered, options, writer, summary)
        state.max_failures = max_consecutive_failures
        try:
            state.loop(todo, concurrency, budget, _progress(progress, len(items), summary.skipped))
        finally:
            writer.close()
    finally:
        if cache is not None:
            cache.inner = original  # the caller's back end, as it was given
        total = metered.total
        summary.prompt_tokens, summary.completion_tokens = total.prompt_tokens, total.completion_tokens
        summary.cached_calls = (cache.hits - hits_before) if cache is not None else 0
        summary.calls = total.calls + summary.cached_calls
        summary.cost_usd = costs.cost(backend.name, backend.model, total.prompt_tokens, total.completion_tokens)
        summary.seconds = time.perf_counter() - started
    return summary


class _Run:
    def __init__(
        self,
        backend: Any,
        meter: MeteredBackend,
        options: Options,
        writer: ResultWriter,
        summary: BatchSummary,
    ):
        self.backend, self.meter = backend, meter  # what the pipeline calls; what counts the spend
        self.options, self.writer, self.summary = options, writer, summary
        self.fatal: BaseException | None = None
        self.consecutive_failures = 0
        self.max_failures = 50

    def work(self, item: Item, spend: Spend) -> _Outcome:
        """One article, its line written before returning."""
        from . import pipeline

        bad_input = False

        with self.meter.article(spend):
            try:
                doc = load_item(item)
                report = pipeline.summarize(doc, self.backend, self.options)  # type: ignore[arg-type]
                report.meta.cost_usd = round(
                    _cost(self.backend, report.meta.usage.prompt_tokens, report.meta.usage.completion_tokens),
                    6,
                )
                record: dict[str, Any] = {
                    "id": item.id,
                    **item.where(),
                    "report": report.model_dump(mode="json"),
                }
                spend.pipeline_calls = report.meta.usage.calls
                ok = True
            except (ConfigError, OutputError):
                raise  # the same for every article: stop the batch
            except FactcheckError as exc:
                record, ok = {"id": item.id, **item.where(), "error": one_line(str(exc))}, False
                bad_input = isinstance(exc, InputError)
            except Exception as exc:  # a bug on one article must not sink 100,000 others
                log.debug("article %s failed", item.id, exc_info=True)
                record, ok = (
                    {
                        "id": item.id,
                        **item.where(),
                        "error": one_line(f"internal error: {type(exc).__name__}: {exc}"),
                    },
                    False,
                )
        if not self.writer.write(record):
            raise _Abandoned()
        return _Outcome(ok, None if ok else record["error"], bad_input)

    def loop(self, todo: deque[Item], concurrency: int, budget: Budget, bar: _Bar) -> None:
        summary = self.summary
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="factcheck-batch")
        running: dict[Future[_Outcome], tuple[Item, Spend, tuple[int, int]]] = {}
        stop = False
        abandon = False
        try:
            with bar:
                try:
                    while todo or running:
                        while todo and not stop and len(running) < concurrency:
                            item = todo[0]
                            if budget.active and not self._fits(budget, item, running):
                                if running:
                                    break  # wait for spend to be measured and reservations freed
                                summary.budget_reached = True
                                stop = True
                                break
                            todo.popleft()
                            spend = Spend()
                            estimate = budget.estimate(item) if budget.active else (0, 0)
                            running[pool.submit(self.work, item, spend)] = (item, spend, estimate)
                        if not running:
                            break
                        finished, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
                        for future in finished:
                            item, spend, _ = running.pop(future)
                            try:
                                outcome = future.result()
                            except KeyboardInterrupt:  # raised in the worker: redo that article later
                                todo.appendleft(item)
                                raise
                            except (ConfigError, OutputError, _Abandoned) as exc:
                                if not isinstance(exc, _Abandoned):
                                    self.fatal = self.fatal or exc
                                stop = True
                                todo.appendleft(item)
                                continue
                            budget.learn(item, spend)
                            self._count(outcome)
                            if self.consecutive_failures >= self._failure_limit(concurrency) and not stop:
                                summary.stopped_on_failures = True
                                stop = True
                            bar.advance(summary)
                        if budget.active and not stop and budget.exhausted(self.meter.total):
                            summary.budget_reached = True
                            stop = True
                except KeyboardInterrupt:
                    summary.interrupted = True
                    abandon = self._drain(running, summary, bar, todo)
        finally:
            pool.shutdown(wait=not abandon, cancel_futures=True)
        summary.not_started = len(todo)
        if summary.budget_reached:
            summary.notes.append(
                f"budget reached ({_budget_text(budget, self.meter.total)}): stopped starting articles; "
                "rerun with --resume and a larger budget to continue"
            )
        if summary.stopped_on_failures:
            summary.notes.append(
                f"stopped: the last {self.consecutive_failures} articles all failed; "
                "fix the cause and rerun with --resume"
            )
        if self.fatal is not None:
            raise self.fatal

    def _failure_limit(self, concurrency: int) -> int:
        return max(self.max_failures, 2 * concurrency)

    def _count(self, outcome: _Outcome) -> None:
        if outcome.ok:
            self.summary.done += 1
            self.consecutive_failures = 0
            return
        self.summary.failed += 1
        self.summary.errors[_error_kind(outcome.error or "")] += 1
        if not outcome.bad_input:  # an unreadable article says nothing about the server
            self.consecutive_failures += 1

    def _fits(
        self, budget: Budget, item: Item, running: dict[Future[_Outcome], tuple[Item, Spend, tuple[int, int]]]
    ) -> bool:
        # What the articles in flight may still spend: their estimate less what they already spent.
        p = sum(max(0, est[0] - spend.prompt_tokens) for _, spend, est in running.values())
        c = sum(max(0, est[1] - spend.completion_tokens) for _, spend, est in running.values())
        if budget.exhausted(self.meter.total):
            return False
        return budget.fits(item, self.meter.total, (p, c))

    def _drain(self, running: dict[Future[_Outcome], Any], summary: BatchSummary, bar: _Bar, todo: deque[Item]) -> bool:
        """After Ctrl-C: cancel what has not started, let the rest finish. Returns True if a second
        Ctrl-C abandoned articles still in flight."""
        for future, (item, _, _) in list(running.items()):
            if future.cancel():
                running.pop(future)
                todo.appendleft(item)
        if running:
            bar.say(f"stopping: finishing {len(running)} article(s) in flight (Ctrl-C again to abandon them)")
        try:
            while running:
                finished, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
                for future in finished:
                    item, _, _ = running.pop(future)
                    try:
                        outcome = future.result()
                    except BaseException:  # noqa: BLE001 - interrupted or fatal: the article is redone later
                        todo.appendleft(item)
                        continue
                    self._count(outcome)
                    bar.advance(summary)
        except KeyboardInterrupt:
            self.writer.close()  # nothing more is written, whatever the abandoned threads do
            summary.abandoned = len(running)
            for item, _, _ in running.values():
                todo.appendleft(item)
            return True
        return False


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    error: str | None = None
    bad_input: bool = False


class _Abandoned(BaseException):
    """Raised in a worker whose result can no longer be written."""


def _cost(backend: Any, prompt: int, completion: int) -> float:
    from . import costs

    return costs.cost(backend.name, backend.model, prompt, completion)


def _budget_text(budget: Budget, spent: Spend) -> str:
    parts = []
    if budget.max_cost is not None:
        parts.append(f"${budget.cost(spent.prompt_tokens, spent.completion_tokens):.4f} of ${budget.max_cost:g}")
    if budget.max_tokens is not None:
        parts.append(f"{spent.tokens} of {budget.max_tokens} tokens")
    return ", ".join(parts)


def one_line(message: str) -> str:
    text = " ".join(message.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def _error_kind(message: str) -> str:
    """Error lines grouped for the summary: numbers (ports, counts) folded, details cut."""
    return re.sub(r"\d+", "N", message)[:100]


_segmenter_lock = threading.Lock()


def _make_segmenter_thread_safe() -> None:
    """pysbd's Segmenter keeps the text being split on `self`, so the one shared instance in
    documents._segmenter splits wrongly when two threads use it at once (measured: about 8% of
    splits wrong at 16 threads). Until documents.py keeps one segmenter per thread, give each
    batch thread its own."""
    from . import documents

    with _segmenter_lock:
        current = documents._segmenter
        if getattr(current, "_per_thread", False) or not hasattr(current, "cache_info"):
            return
        local = threading.local()

        def per_thread():  # type: ignore[no-untyped-def]
            seg = getattr(local, "segmenter", None)
            if seg is None:
                import pysbd

                seg = local.segmenter = pysbd.Segmenter(language="en", clean=False)
            return seg

        per_thread._per_thread = True  # type: ignore[attr-defined]
        documents._segmenter = per_thread  # type: ignore[assignment]


# ---------------------------------------------------------------- progress


class _Bar:
    """A rich progress bar on stderr (articles/s and ETA), or nothing when not on a terminal."""

    def __init__(self, enabled: bool, total: int, skipped: int):
        self.enabled = enabled
        self._progress: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                ProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.text import Text

            class Rate(ProgressColumn):
                def render(self, task):  # type: ignore[no-untyped-def]
                    speed = task.finished_speed or task.speed
                    return Text(f"{speed:.2f}/s" if speed else "-/s", style="progress.data.speed")

            self._progress = Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                Rate(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._task = self._progress.add_task("articles", total=total, completed=skipped)

    def __enter__(self) -> _Bar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, summary: BatchSummary) -> None:
        if self._progress is not None:
            failed = f" ({summary.failed} failed)" if summary.failed else ""
            self._progress.update(self._task, advance=1, description=f"articles{failed}")

    def say(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message)
        else:
            print(message, file=sys.stderr, flush=True)


def _progress(enabled: bool | None, total: int, skipped: int) -> _Bar:
    return _Bar(sys.stderr.isatty() if enabled is None else enabled, total, skipped)


# ---------------------------------------------------------------- the OpenAI Batch API (stage 1 only)


class _Captured(BaseException):
    def __init__(self, request: dict[str, Any]):
        super().__init__("captured")
        self.request = request


class _Recorder:
    """A back end that records the request the pipeline would send, then stops it."""

    name = "openai"

    def __init__(self, model: str):
        self.model = model
        self.base_url = None

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
    _make_segmenter_thread_safe()
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

    return openai.OpenAI()


def submit_openai_batch(request_file: Path, *, client: Any = None) -> str:
    """Upload the request file and start a batch (24 h window); returns the batch id."""
    client = _client(client)
    with request_file.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    return str(batch.id)


def openai_batch_status(batch_id: str, *, client: Any = None) -> str:
    batch = _client(client).batches.retrieve(batch_id)
    counts = getattr(batch, "request_counts", None)
    done = f" ({counts.completed}/{counts.total} done, {counts.failed} failed)" if counts else ""
    return f"{batch.status}{done}"


def collect_openai_batch(
    batch_id: str, request_file: Path, *, client: Any = None, cache_path: Path | None = None
) -> tuple[int, int]:
    """Store a finished batch's answers in the response cache, keyed as the live pipeline will
    look them up (OpenAI back end, api.openai.com, same model, messages and schema). Returns
    (stored, not stored: errors, refusals, truncated or invalid answers)."""
    from .backends.base import Completion
    from .backends.cache import CachedBackend

    client = _client(client)
    batch = client.batches.retrieve(batch_id)
    if batch.status != "completed" or not batch.output_file_id:
        raise InputError(f"batch {batch_id} is {batch.status}, not completed: nothing to collect yet")
    bodies = {}
    with request_file.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                request = json.loads(line)
                bodies[request["custom_id"]] = request["body"]
    content = client.files.content(batch.output_file_id)
    text = content.text if hasattr(content, "text") else content.read().decode("utf-8")
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
                caches[model] = CachedBackend(_Recorder(model), cache_path)  # type: ignore[arg-type]
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
