"""`factcheck batch`, `factcheck cache stats|clear` and `factcheck openai-batch ...`.

Registered in cli.py with:
    app.command()(batch)
    app.add_typer(cache_app, name="cache")
    app.add_typer(openai_batch_app, name="openai-batch")

Only typer is imported at module level: `factcheck --help` must stay fast.
"""

from __future__ import annotations

import os
import shlex
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["batch", "cache_app", "openai_batch_app"]


class BatchBackend(str, Enum):
    auto = "auto"
    local = "local"
    openai = "openai"


class BatchStyle(str, Enum):
    auto = "auto"
    sentence = "sentence"
    written = "written"


def batch(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="article files, globs ('news/**/*.txt'), directories (*.txt, *.md, *.html), "
            "http(s) URLs, or JSONL files of {id, text|path|url}",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="results: one JSON line per article", show_default=False)
    ],
    concurrency: Annotated[
        int, typer.Option(min=1, max=1024, help="articles in flight at once (the local back end: always 1)")
    ] = 8,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue OUTPUT: skip articles done, retry the failed ones")
    ] = False,
    max_cost: Annotated[
        float | None, typer.Option("--max-cost", min=0.0, help="stop starting articles at this many USD")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", min=1, help="stop starting articles at this many tokens")
    ] = None,
    rpm: Annotated[float | None, typer.Option("--rpm", min=0.01, help="requests per minute, at most")] = None,
    tpm: Annotated[float | None, typer.Option("--tpm", min=1.0, help="tokens per minute, at most")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not read or write the response cache")] = False,
    words: Annotated[int, typer.Option(help="summary length limit in words", min=15, max=400)] = 60,
    style: Annotated[BatchStyle, typer.Option(help="claims as article sentences or model-written")] = BatchStyle.auto,
    self_check: Annotated[bool, typer.Option(help="check each summary against its article")] = True,
    backend: Annotated[
        BatchBackend,
        typer.Option("--backend", help="auto: OpenAI-compatible if configured, else the embedded model"),
    ] = BatchBackend.auto,
    model: Annotated[
        str | None, typer.Option("--model", envvar="FACTCHECK_MODEL", help="model name on the server")
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="OpenAI-compatible server, e.g. http://10.0.0.5:8000/v1 (vLLM)"),
    ] = None,
    model_path: Annotated[
        Path | None,
        typer.Option("--model-path", envvar="FACTCHECK_MODEL_PATH", help="run this local GGUF model"),
    ] = None,
) -> None:
    """Summarise many articles into a JSONL file, one line per article as soon as it is done.

    Safe to stop (Ctrl-C) and to rerun with --resume; answers already paid for come from the
    response cache. Exit code 0: all done; 1: some articles failed (error lines); 3: budget
    reached; 130: interrupted.

    Example: factcheck batch 'news/*.txt' -o reports.jsonl --concurrency 16 --max-cost 5
    """
    given = dict(locals())  # the command's arguments, and nothing else yet: for the resume command
    from .batch import run_batch
    from .errors import BudgetExceededError
    from .pipeline import Options

    def factory():  # type: ignore[no-untyped-def]
        from .backends import choose, open_backend

        choice = choose(
            backend.value,  # type: ignore[arg-type]
            model=model,
            base_url=base_url,
            model_path=str(model_path) if model_path else None,
        )
        return open_backend(choice, progress=sys.stderr.isatty(), cache=not no_cache)

    options = None
    if style != BatchStyle.auto or words != 60 or not self_check:
        options = Options(summary_words=words, self_check=self_check)
        if style != BatchStyle.auto:
            options.style = style.value  # type: ignore[assignment]
        else:
            options.style = "sentence" if _will_be_local(backend, base_url, model_path) else "written"
    try:
        summary = run_batch(
            inputs,
            output,
            backend_factory=factory,
            concurrency=concurrency,
            resume=resume,
            options=options,
            max_cost=max_cost,
            max_tokens=max_tokens,
            rpm=rpm,
            tpm=tpm,
        )
    except KeyboardInterrupt:
        typer.echo("interrupted before any article was started", err=True)
        raise typer.Exit(130) from None
    for line in summary.lines():
        typer.echo(line, err=True)
    if summary.interrupted:
        command = _resume_command(given)
        typer.echo(f"interrupted; every finished article is saved. Resume with:\n  {command}", err=True)
        if summary.abandoned:
            # Threads still busy with abandoned articles would hold up the exit; their results
            # can no longer be written, and everything written is already on disk.
            sys.stderr.flush()
            sys.stdout.flush()
            os._exit(130)
        raise typer.Exit(130)
    if summary.budget_reached:
        error = BudgetExceededError(
            f"budget reached after {summary.done} article(s); {summary.not_started} not started "
            "(rerun with --resume and a larger --max-cost / --max-tokens)"
        )
        error.exit_code = 3
        raise error
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


def _will_be_local(backend: BatchBackend, base_url: str | None, model_path: Path | None) -> bool:
    from .backends import choose

    try:
        choice = choose(backend.value, base_url=base_url, model_path=str(model_path) if model_path else None)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - the real error is reported when the back end opens
        return False
    return choice.backend == "local"


def _resume_command(given: dict[str, Any]) -> str:
    """`factcheck batch` with the arguments `given` (by parameter name) and --resume."""
    inputs, output, concurrency = given["inputs"], given["output"], given["concurrency"]
    max_cost, max_tokens, rpm, tpm = given["max_cost"], given["max_tokens"], given["rpm"], given["tpm"]
    no_cache, words, style, self_check = given["no_cache"], given["words"], given["style"], given["self_check"]
    backend, model, base_url, model_path = given["backend"], given["model"], given["base_url"], given["model_path"]
    q = shlex.quote
    parts = ["factcheck", "batch", *map(q, inputs), "-o", q(str(output)), "--resume"]
    if concurrency != 8:
        parts += ["--concurrency", str(concurrency)]
    for flag, value in (
        ("--max-cost", max_cost),
        ("--max-tokens", max_tokens),
        ("--rpm", rpm),
        ("--tpm", tpm),
    ):
        if value is not None:
            parts += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    if no_cache:
        parts.append("--no-cache")
    if words != 60:
        parts += ["--words", str(words)]
    if style != BatchStyle.auto:
        parts += ["--style", style.value]
    if not self_check:
        parts.append("--no-self-check")
    if backend != BatchBackend.auto:
        parts += ["--backend", backend.value]
    for flag, value in (("--model", model), ("--base-url", base_url), ("--model-path", model_path)):
        if value:
            parts += [flag, q(str(value))]
    return " ".join(parts)


# ---------------------------------------------------------------- factcheck cache ...

cache_app = typer.Typer(
    help="The response cache: model answers already paid for, replayed for free.",
    no_args_is_help=True,
    add_completion=False,
)


@cache_app.command("stats")
def cache_stats() -> None:
    """Show where the cache is, how many answers it holds and its size on disk."""
    from .backends.cache import stats

    for line in stats().lines():
        typer.echo(line)


@cache_app.command("clear")
def cache_clear() -> None:
    """Delete every cached answer (safe while another run is using the cache)."""
    from .backends.cache import clear, default_path

    removed = clear()
    typer.echo(f"removed {removed} cached answer(s) from {default_path()}")


# ---------------------------------------------------------------- factcheck openai-batch ...

openai_batch_app = typer.Typer(
    help="Stage 1 (claim extraction) through the OpenAI Batch API at half price; "
    "the rest of the pipeline then runs live with `factcheck batch`.",
    no_args_is_help=True,
    add_completion=False,
)


@openai_batch_app.command("write")
def openai_batch_write(
    inputs: Annotated[list[str], typer.Argument(help="the same inputs you will give `factcheck batch`")],
    output: Annotated[Path, typer.Option("-o", "--output", help="the Batch API request file (JSONL)")],
    model: Annotated[str, typer.Option("--model", envvar="FACTCHECK_MODEL", help="OpenAI model")] = "gpt-4o-mini",
) -> None:
    """Write the claim-extraction requests of every article as a Batch API input file.

    An article needs several dependent calls (claims, then denial targets, then a summary, then
    judging it), so the Batch API can only run the first stage; `collect` puts its answers in the
    response cache, where `factcheck batch --model MODEL` finds them.
    """
    from .openai_batch import write_openai_batch_file
    from .pipeline import Options

    requests, unreadable = write_openai_batch_file(inputs, output, model=model, options=Options(style="written"))
    typer.echo(
        f"wrote {requests} request(s) to {output}" + (f"; {unreadable} article(s) unreadable" if unreadable else ""),
        err=True,
    )
    typer.echo(f"next: factcheck openai-batch submit {shlex.quote(str(output))}", err=True)


@openai_batch_app.command("submit")
def openai_batch_submit(
    request_file: Annotated[Path, typer.Argument(help="the file `write` made")],
) -> None:
    """Upload the request file and start the batch; prints the batch id."""
    from .openai_batch import submit_openai_batch

    typer.echo(submit_openai_batch(request_file))


@openai_batch_app.command("status")
def openai_batch_status_cmd(batch_id: Annotated[str, typer.Argument()]) -> None:
    """Show a batch's state and progress."""
    from .openai_batch import openai_batch_status

    typer.echo(openai_batch_status(batch_id))


@openai_batch_app.command("collect")
def openai_batch_collect(
    batch_id: Annotated[str, typer.Argument()],
    request_file: Annotated[Path, typer.Argument(help="the file the batch was submitted from")],
) -> None:
    """Store a completed batch's answers in the response cache."""
    from .openai_batch import collect_openai_batch

    stored, skipped = collect_openai_batch(batch_id, request_file)
    typer.echo(f"cached {stored} answer(s); {skipped} not usable (errors, refusals, invalid JSON)", err=True)
    typer.echo("next: factcheck batch <the same inputs> -o reports.jsonl --model <the same model>", err=True)
