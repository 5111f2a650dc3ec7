"""Thin Typer commands: parse options, call one library function, print."""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import FactcheckError

app = typer.Typer(
    help="Summarise and fact-check news articles: claims, who says so, who disputes it, how sure anyone can be.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # a traceback must never print an API key
    add_completion=False,
)


class Fmt(str, Enum):
    rich = "rich"
    json = "json"
    markdown = "markdown"
    html = "html"


class BackendOpt(str, Enum):
    auto = "auto"
    local = "local"
    openai = "openai"


class StyleOpt(str, Enum):
    auto = "auto"
    sentence = "sentence"
    written = "written"


BackendArg = Annotated[
    BackendOpt,
    typer.Option("--backend", help="auto: OpenAI-compatible if configured, else the embedded model"),
]
ModelArg = Annotated[
    Optional[str], typer.Option("--model", envvar="FACTCHECK_MODEL", help="model name on the server")
]
BaseUrlArg = Annotated[
    Optional[str], typer.Option("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1")
]
ModelPathArg = Annotated[
    Optional[Path],
    typer.Option("--model-path", envvar="FACTCHECK_MODEL_PATH", help="run this local GGUF model"),
]
OutArg = Annotated[Optional[Path], typer.Option("-o", "--output", help="write the report to this file")]


def _open(backend: BackendOpt, model: str | None, base_url: str | None, model_path: Path | None):  # type: ignore[no-untyped-def]
    from .backends import choose, open_backend

    choice = choose(
        backend.value, model=model, base_url=base_url, model_path=str(model_path) if model_path else None
    )  # type: ignore[arg-type]
    return open_backend(choice, progress=sys.stderr.isatty())


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, output)  # never leave a half-written report behind
    except OSError as exc:
        raise FactcheckError(f"cannot write {output}: {exc.strerror}") from exc
    typer.echo(f"wrote {output}", err=True)


def _default_format(fmt: Fmt | None, output: Path | None) -> Fmt:
    if fmt is not None:
        return fmt
    if output is not None:
        suffix = output.suffix.lower()
        return {".md": Fmt.markdown, ".html": Fmt.html, ".htm": Fmt.html}.get(suffix, Fmt.json)
    return Fmt.rich if sys.stdout.isatty() else Fmt.json


@app.command()
def summarize(
    article: Annotated[str, typer.Argument(help="file, '-' for stdin, .html file or http(s):// URL")],
    fmt: Annotated[
        Optional[Fmt], typer.Option("--format", "-f", help="default: rich on a terminal, else json")
    ] = None,
    output: OutArg = None,
    words: Annotated[int, typer.Option(help="summary length limit in words", min=15, max=400)] = 60,
    style: Annotated[
        StyleOpt, typer.Option(help="claims as article sentences or model-written")
    ] = StyleOpt.auto,
    self_check: Annotated[bool, typer.Option(help="check the summary against the article")] = True,
    backend: BackendArg = BackendOpt.auto,
    model: ModelArg = None,
    base_url: BaseUrlArg = None,
    model_path: ModelPathArg = None,
) -> None:
    """Summarise an article and list its claims, sources, counter-claims and uncertainty.

    Example: factcheck summarize article.txt --format markdown -o report.md
    """
    from . import documents, pipeline
    from .report import render

    doc = documents.load(article)  # read the input first: a bad path fails before a model loads
    llm = _open(backend, model, base_url, model_path)
    chosen = style.value if style != StyleOpt.auto else ("sentence" if llm.name == "local" else "written")
    options = pipeline.Options(style=chosen, summary_words=words, self_check=self_check)  # type: ignore[arg-type]
    report = pipeline.summarize(doc, llm, options)
    _write(render(report, _default_format(fmt, output).value), output)  # type: ignore[arg-type]


@app.command()
def schema() -> None:
    """Print the JSON Schema of the report that `summarize --format json` writes."""
    from .schemas import Report

    typer.echo(json.dumps(Report.model_json_schema(), indent=2))


@app.command()
def models(
    backend: BackendArg = BackendOpt.auto,
    model: ModelArg = None,
    base_url: BaseUrlArg = None,
    model_path: ModelPathArg = None,
) -> None:
    """Show the back ends, which one would be used and why, and the embedded model's state."""
    from . import embedded
    from .backends import choose

    choice = choose(
        backend.value, model=model, base_url=base_url, model_path=str(model_path) if model_path else None
    )  # type: ignore[arg-type]
    status = embedded.status()
    try:
        import llama_cpp  # noqa: F401

        runtime = "installed"
    except ImportError:
        runtime = 'missing (pip install "factcheck[local]")'
    typer.echo(f"would use: {choice.backend} ({choice.reason})")
    if choice.backend == "openai":
        typer.echo(
            f"  server: {choice.base_url or 'https://api.openai.com/v1'}  model: {choice.model or '(default)'}"
        )
    elif choice.model_path:
        typer.echo(f"  model file: {choice.model_path}")
    typer.echo(f"local back end (llama-cpp-python): {runtime}")
    typer.echo(
        f"embedded model {embedded.MODEL_NAME}: {'ready' if status.ready else 'not ready'} - {status.detail}"
    )
    typer.echo(f"  path: {status.path}")
    typer.echo(
        "openai back end: "
        + (
            "configured"
            if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL")
            else "set OPENAI_API_KEY or OPENAI_BASE_URL to use it"
        )
    )


def main() -> None:
    """Console entry point: expected failures become one line on stderr and a non-zero exit."""
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        app()
    except FactcheckError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(exc.exit_code) from None
