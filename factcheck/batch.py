"""Many articles, safely: bounded concurrency, one JSON line per article, resume, budgets, rate limits.

`run_batch(inputs, output, backend_factory=...)` summarises every article named by `inputs` (files,
globs, directories of *.txt/*.md/*.html, http(s) URLs, or JSONL files of {id, text|path|url}; see
inputs.py) and appends one line per article to `output` as soon as it is done:

    {"id": "...", "path": "...", "report": {...}}    or    {"id": "...", "path": "...", "error": "one line"}

Guarantees:
- A line is written in one write() call under a lock, then fsync'ed: the file only ever ends in a
  partial line if the machine dies mid-write, and `resume` repairs exactly that (results_file.py).
- `resume=True` skips ids that already have a report, retries ids with an error line (the old
  error line is removed so each id ends up in the file once; error lines of ids no longer in the
  inputs are kept), and drops a truncated last line.
- Ctrl-C stops submitting, cancels what has not started, lets in-flight articles finish (a second
  Ctrl-C abandons them; nothing more is written) and returns a summary with `interrupted` set.
- Budgets (`max_cost` USD, `max_tokens`) count what the back end actually reports, live, including
  the calls of articles that later failed; an article is only started when its estimated spend fits
  in what is left after the estimates of the articles in flight. Cached answers cost nothing.
  classify() reports no usage, so its tokens are estimated from the prompt (4 characters a token).
  See budget.py.
- `rpm`/`tpm` are client-side token buckets shared by all threads, applied below the response
  cache (a cache hit does not wait; ratelimit.py). Server-side 429s are retried by the openai SDK
  itself, which honours Retry-After / retry-after-ms up to two minutes and otherwise backs off
  exponentially (0.5 s doubling to 8 s, with jitter) for its `max_retries` (2 by default); 408, 409,
  5xx, timeouts and dropped connections are retried the same way.
- The local back end (llama.cpp in this process, not thread-safe) always runs at concurrency 1.
- An unreadable article is an error line; a failure that says something about the server (or the
  model) counts towards a breaker: after `max_consecutive_failures` (at least 2 x concurrency) in
  a row the run stops starting articles rather than writing 100,000 identical error lines. A
  ConfigError (e.g. a rejected API key) or an unwritable output stops it at once.

The first stage of a run can be done beforehand at half price through the OpenAI Batch API:
see openai_batch.py.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .budget import Budget, MeteredBackend, Spend
from .errors import ConfigError, FactcheckError, InputError
from .inputs import Item, collect_inputs, load_item
from .progress_bar import ProgressBar, progress_bar
from .ratelimit import RateLimitedBackend, RateLimiter
from .results_file import OutputError, ResultWriter, prepare_output

if TYPE_CHECKING:
    from .backends.base import Backend
    from .pipeline import Options

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 500


@dataclass
class BatchSummary:
    """What a run did: counts, spend, time, and why it stopped early if it did."""

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
        state = _Run(top, metered, options, writer, summary, max_failures=max_consecutive_failures)
        try:
            state.loop(todo, concurrency, budget, progress_bar(progress, len(items), summary.skipped))
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


@dataclass(frozen=True)
class _Outcome:
    """How one article went, once its line is written."""

    ok: bool
    error: str | None = None
    bad_input: bool = False


class _Abandoned(BaseException):
    """Raised in a worker whose result can no longer be written."""


# Each article in flight: its item, what it has spent so far, and the (prompt, completion) tokens
# reserved for it, so the budget can see what it may still spend.
_InFlight = dict[Future[_Outcome], tuple[Item, Spend, tuple[int, int]]]


class _Run:
    """One run's workers: submits articles as concurrency and budget allow, counts what comes back,
    and stops on a budget, a breaker, a fatal error or Ctrl-C."""

    def __init__(
        self,
        backend: Any,
        meter: MeteredBackend,
        options: Options,
        writer: ResultWriter,
        summary: BatchSummary,
        *,
        max_failures: int = 50,
    ):
        self.backend, self.meter = backend, meter  # what the pipeline calls; what counts the spend
        self.options, self.writer, self.summary = options, writer, summary
        self.fatal: BaseException | None = None
        self.consecutive_failures = 0
        self.max_failures = max_failures

    def work(self, item: Item, spend: Spend) -> _Outcome:
        """One article, its line written before returning."""
        from . import costs, pipeline

        record: dict[str, Any] = {"id": item.id, **item.where()}  # then "report" or "error"
        bad_input = False
        with self.meter.article(spend):
            try:
                doc = load_item(item)
                report = pipeline.summarize(doc, self.backend, self.options)  # type: ignore[arg-type]
                usage = report.meta.usage
                cost = costs.cost(self.backend.name, self.backend.model, usage.prompt_tokens, usage.completion_tokens)
                report.meta.cost_usd = round(cost, 6)
                record["report"] = report.model_dump(mode="json")
                spend.pipeline_calls = usage.calls
            except (ConfigError, OutputError):
                raise  # the same for every article: stop the batch
            except FactcheckError as exc:
                record["error"] = one_line(str(exc))
                bad_input = isinstance(exc, InputError)
            except Exception as exc:  # a bug on one article must not sink 100,000 others
                log.debug("article %s failed", item.id, exc_info=True)
                record["error"] = one_line(f"internal error: {type(exc).__name__}: {exc}")
        if not self.writer.write(record):
            raise _Abandoned()
        error = record.get("error")
        return _Outcome(error is None, error, bad_input)

    def loop(self, todo: deque[Item], concurrency: int, budget: Budget, bar: ProgressBar) -> None:
        summary = self.summary
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="factcheck-batch")
        running: _InFlight = {}
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
                            bar.advance(summary.failed)
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
                f"budget reached ({budget.describe(self.meter.total)}): stopped starting articles; "
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

    def _fits(self, budget: Budget, item: Item, running: _InFlight) -> bool:
        # What the articles in flight may still spend: their estimate less what they already spent.
        p = sum(max(0, est[0] - spend.prompt_tokens) for _, spend, est in running.values())
        c = sum(max(0, est[1] - spend.completion_tokens) for _, spend, est in running.values())
        if budget.exhausted(self.meter.total):
            return False
        return budget.fits(item, self.meter.total, (p, c))

    def _drain(self, running: _InFlight, summary: BatchSummary, bar: ProgressBar, todo: deque[Item]) -> bool:
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
                    bar.advance(summary.failed)
        except KeyboardInterrupt:
            self.writer.close()  # nothing more is written, whatever the abandoned threads do
            summary.abandoned = len(running)
            for item, _, _ in running.values():
                todo.appendleft(item)
            return True
        return False


def one_line(message: str) -> str:
    text = " ".join(message.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def _error_kind(message: str) -> str:
    """Error lines grouped for the summary: numbers (ports, counts) folded, details cut."""
    return re.sub(r"\d+", "N", message)[:100]
