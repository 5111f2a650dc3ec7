"""Thin Typer commands: parse options, call one library function, print."""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

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
ModelArg = Annotated[str | None, typer.Option("--model", envvar="FACTCHECK_MODEL", help="model name on the server")]
BaseUrlArg = Annotated[
    str | None, typer.Option("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1")
]
ModelPathArg = Annotated[
    Path | None,
    typer.Option("--model-path", envvar="FACTCHECK_MODEL_PATH", help="run this local GGUF model"),
]
OutArg = Annotated[Path | None, typer.Option("-o", "--output", help="write the report to this file")]


NoCacheArg = Annotated[
    bool, typer.Option("--no-cache", help="do not read or write the response cache (or FACTCHECK_NO_CACHE=1)")
]


def _open(
    backend: BackendOpt, model: str | None, base_url: str | None, model_path: Path | None, no_cache: bool = False
):  # type: ignore[no-untyped-def]
    from .backends import choose, open_backend

    path = str(model_path) if model_path else None
    choice = choose(backend.value, model=model, base_url=base_url, model_path=path)  # type: ignore[arg-type]
    return open_backend(choice, progress=sys.stderr.isatty(), cache=not no_cache)


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
    fmt: Annotated[Fmt | None, typer.Option("--format", "-f", help="default: rich on a terminal, else json")] = None,
    output: OutArg = None,
    words: Annotated[int, typer.Option(help="summary length limit in words", min=15, max=400)] = 60,
    style: Annotated[StyleOpt, typer.Option(help="claims as article sentences or model-written")] = StyleOpt.auto,
    self_check: Annotated[bool, typer.Option(help="check the summary against the article")] = True,
    sources: Annotated[
        list[str] | None,
        typer.Option("--sources", help="other documents (files or a folder) to check claims against"),
    ] = None,
    backend: BackendArg = BackendOpt.auto,
    model: ModelArg = None,
    base_url: BaseUrlArg = None,
    model_path: ModelPathArg = None,
    no_cache: NoCacheArg = False,
) -> None:
    """Summarise an article and list its claims, sources, counter-claims and uncertainty.

    Example: factcheck summarize article.txt --format markdown -o report.md
    """
    from . import documents, pipeline
    from .report import render
    from .sources import load_sources

    doc = documents.load(article)  # read the input first: a bad path fails before a model loads
    others = load_sources(sources) if sources else []
    llm = _open(backend, model, base_url, model_path, no_cache)
    chosen = style.value if style != StyleOpt.auto else ("sentence" if llm.name == "local" else "written")
    options = pipeline.Options(
        style=chosen,  # type: ignore[arg-type]
        summary_words=words,
        self_check=self_check,
        sources=others,
    )
    report = pipeline.summarize(doc, llm, options)
    _write(render(report, _default_format(fmt, output).value), output)  # type: ignore[arg-type]


@app.command()
def check(
    claim: Annotated[list[str] | None, typer.Option("--claim", help="a claim to check (repeat for several)")] = None,
    evidence: Annotated[list[str] | None, typer.Option("--evidence", help="evidence file or URL (repeat)")] = None,
    input: Annotated[Path | None, typer.Option("--input", help="JSONL of {id, claim, document}")] = None,
    fmt: Annotated[Fmt | None, typer.Option("--format", "-f", help="rich or json")] = None,
    output: OutArg = None,
    explain: Annotated[bool, typer.Option(help="have the model write a rationale (slower)")] = False,
    backend: BackendArg = BackendOpt.auto,
    model: ModelArg = None,
    base_url: BaseUrlArg = None,
    model_path: ModelPathArg = None,
    no_cache: NoCacheArg = False,
) -> None:
    """Check claims against evidence: supported, contradicted or not_enough_info.

    Example: factcheck check --claim "The port lost 3 million euros a day" --evidence article.txt

    Several --claim give one verdict each (a JSON list with --format json).
    """
    from . import documents
    from .structured import Ledger
    from .verify import check_claim

    if input is None and (not claim or not evidence):
        raise typer.BadParameter("give --claim and --evidence, or --input items.jsonl")
    if input is not None:
        from .jsonl import read_items

        items = list(read_items(input, ("claim", "document")))
        llm = _open(backend, model, base_url, model_path, no_cache)

        def work(item: dict) -> dict:  # type: ignore[type-arg]
            doc = documents.make_document(str(item["document"]), origin=str(item["id"]))
            result = check_claim(llm, Ledger(), str(item["claim"]), [doc], explain=explain)
            return _line(result, item)

        _run_jsonl(items, work, output, "checking claims")
        return
    docs = [documents.load(path) for path in evidence or []]
    llm = _open(backend, model, base_url, model_path, no_cache)
    results = [_line(check_claim(llm, Ledger(), text, docs, explain=explain), {"claim": text}) for text in claim or []]
    _show(results[0] if len(results) == 1 else results, fmt, output)


@app.command()
def consistency(
    article: Annotated[str | None, typer.Option("--article", help="the article file")] = None,
    summary: Annotated[str | None, typer.Option("--summary", help="the summary file")] = None,
    input: Annotated[Path | None, typer.Option("--input", help="JSONL of {id, article, summary}")] = None,
    fmt: Annotated[Fmt | None, typer.Option("--format", "-f", help="rich or json")] = None,
    output: OutArg = None,
    backend: BackendArg = BackendOpt.auto,
    model: ModelArg = None,
    base_url: BaseUrlArg = None,
    model_path: ModelPathArg = None,
    no_cache: NoCacheArg = False,
) -> None:
    """Check every sentence of a summary against its article.

    Example: factcheck consistency --article article.txt --summary summary.txt
    """
    from . import documents
    from .structured import Ledger
    from .verify import check_consistency

    if input is None and (article is None or summary is None):
        raise typer.BadParameter("give --article and --summary, or --input items.jsonl")
    if input is not None:
        from .jsonl import read_items

        items = list(read_items(input, ("article", "summary")))
        llm = _open(backend, model, base_url, model_path, no_cache)

        def work(item: dict) -> dict:  # type: ignore[type-arg]
            doc = documents.make_document(str(item["article"]), origin=str(item["id"]))
            return _line(check_consistency(llm, Ledger(), doc, str(item["summary"])), item)

        _run_jsonl(items, work, output, "checking summaries")
        return
    doc = documents.load(article or "")
    text = documents.load(summary or "").text
    llm = _open(backend, model, base_url, model_path, no_cache)
    _show(_line(check_consistency(llm, Ledger(), doc, text), {}), fmt, output)


def _line(result, item: dict) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """A check result as a JSON-ready dict, carrying the item's gold label so a benchmark can score it."""
    from dataclasses import asdict

    out = {"claim": item["claim"]} if "claim" in item else {}
    out.update(asdict(result))
    if "evidence" in out:
        out["evidence"] = [e.model_dump() for e in result.evidence]
    if "label" in item:
        out["label"] = item["label"]
    return out


def _run_jsonl(items: list, work, output: Path | None, label: str) -> None:  # type: ignore[no-untyped-def,type-arg]
    from .jsonl import run_items

    if output is None:
        done, failed = run_items(items, work, sys.stdout, label=label)
    else:
        with output.open("a", encoding="utf-8") as out:
            done, failed = run_items(items, work, out, label=label)
    typer.echo(f"{done} done, {failed} failed", err=True)
    if failed:
        raise typer.Exit(1)


def _show(result: dict | list[dict], fmt: Fmt | None, output: Path | None) -> None:  # type: ignore[type-arg]
    if (fmt or _default_format(None, output)) != Fmt.rich:
        _write(json.dumps(result, indent=2, ensure_ascii=False), output)
        return
    blocks = []
    for one in result if isinstance(result, list) else [result]:
        lines = [f"{k}: {v}" for k, v in one.items() if k not in ("evidence", "sentences")]
        for e in one.get("evidence", []):
            lines.append(f"  [{e['sentence']}] {e['quote']}")
        for s in one.get("sentences", []):
            lines.append(f"  {s['verdict']:16} {s['p_supported']}  {s['sentence']}")
        blocks.append("\n".join(lines))
    _write("\n\n".join(blocks), output)


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

    choice = choose(backend.value, model=model, base_url=base_url, model_path=str(model_path) if model_path else None)  # type: ignore[arg-type]
    status = embedded.status()
    try:
        import llama_cpp  # noqa: F401

        runtime = "installed"
    except ImportError:
        runtime = 'missing (pip install "factcheck[local]")'
    typer.echo(f"would use: {choice.backend} ({choice.reason})")
    if choice.backend == "openai":
        typer.echo(f"  server: {choice.base_url or 'https://api.openai.com/v1'}  model: {choice.model or '(default)'}")
    elif choice.model_path:
        typer.echo(f"  model file: {choice.model_path}")
    typer.echo(f"local back end (llama-cpp-python): {runtime}")
    typer.echo(f"embedded model {embedded.MODEL_NAME}: {'ready' if status.ready else 'not ready'} - {status.detail}")
    typer.echo(f"  path: {status.path}")
    typer.echo(
        "openai back end: "
        + (
            "configured"
            if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL")
            else "set OPENAI_API_KEY or OPENAI_BASE_URL to use it"
        )
    )


from .cli_batch import batch, cache_app, openai_batch_app  # noqa: E402  (registered after the core commands)
from .cli_eval import eval_  # noqa: E402

app.command("eval")(eval_)
app.command()(batch)
app.add_typer(cache_app, name="cache")
app.add_typer(openai_batch_app, name="openai-batch")


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
