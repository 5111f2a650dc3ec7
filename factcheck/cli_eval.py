"""`factcheck eval`: the fixture suite and the benchmark adapters, gated on thresholds."""

from __future__ import annotations

import json
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from .cli import BackendArg, BackendOpt, BaseUrlArg, ModelArg, ModelPathArg, NoCacheArg, _open
from .errors import FactcheckError


class TaskOpt(str, Enum):
    verification = "verification"
    consistency = "consistency"
    checkworthiness = "checkworthiness"
    attribution = "attribution"


def eval_(
    suite: Annotated[list[str] | None, typer.Argument(help="fixture ids or hard cases; all when omitted")] = None,
    dataset: Annotated[Path | None, typer.Option(help="a ../shared/evaldata JSONL file instead")] = None,
    task: Annotated[TaskOpt | None, typer.Option(help="what --dataset measures")] = None,
    limit: Annotated[int | None, typer.Option(help="only N dataset items, taken in turn from each gold label")] = None,
    directory: Annotated[Path, typer.Option("--dir", help="the evals folder")] = Path("evals"),
    out: Annotated[Path, typer.Option(help="where the log and report go")] = Path("artifacts/evals"),
    update_baseline: Annotated[bool, typer.Option(help="store these metrics as the new baseline")] = False,
    backend: BackendArg = BackendOpt.auto,
    model: ModelArg = None,
    base_url: BaseUrlArg = None,
    model_path: ModelPathArg = None,
    no_cache: NoCacheArg = False,
) -> None:
    """Score the pipeline on the hand-labelled fixtures (or a benchmark set) and gate on thresholds.

    Example: factcheck eval                      (all fixtures, embedded model)
             factcheck eval --dataset ../shared/evaldata/frank/frank_test_sample.jsonl --task consistency
    """
    from .evals import suite as suites

    if dataset is not None:
        if task is None:
            raise typer.BadParameter("--dataset needs --task")
        from .evals.datasets import evaluate

        llm = _open(backend, model, base_url, model_path, no_cache)
        scored = evaluate(dataset, task.value, llm, limit=limit)  # type: ignore[arg-type]
        out.mkdir(parents=True, exist_ok=True)
        log = out / f"dataset-{dataset.stem}-{task.value}.json"
        log.write_text(json.dumps({"backend": llm.name, "model": llm.model, **scored}, indent=2))
        for name, value in scored["metrics"].items():
            typer.echo(f"{name:20} {value:.4f}")
        typer.echo(f"log: {log}", err=True)
        return
    thresholds = _read_json(directory / "thresholds.json")
    baseline = _read_json(directory / "baseline.json").get("metrics", {})
    llm = _open(backend, model, base_url, model_path, no_cache)

    def progress(item: dict) -> None:  # type: ignore[type-arg]
        m = item["metrics"]
        status = f"error: {item['error']}" if item["error"] else f"claim F1 {m['claim_f1']:.2f}"
        typer.echo(f"  {item['id']:32} {status} ({item['seconds']:.0f} s)", err=True)

    result = suites.run_suite(directory, llm, only=suite or None, on_item=progress)
    log = suites.write_log(result, llm, out, baseline, thresholds)
    typer.echo(f"{'metric':24} {'value':>7} {'baseline':>9} {'threshold':>10}")
    for name, value in result.metrics.items():
        base = baseline.get(name)
        limit_ = thresholds.get(name)
        typer.echo(
            f"{name:24} {value:7.3f} {'' if base is None else f'{base:9.3f}':>9} "
            f"{'' if limit_ is None else f'{limit_:10.3f}':>10}"
        )
    typer.echo(f"log: {log}; report: {log.with_name('eval-report.md')} ({result.seconds:.0f} s)", err=True)
    if update_baseline:
        (directory / "baseline.json").write_text(
            json.dumps(
                {
                    "backend": llm.name,
                    "model": llm.model,
                    "metrics": result.metrics,
                    "measured": f"{date.today()}, factcheck eval ({len(result.items)} fixtures, {result.seconds:.0f} s;"
                    " answers already in the response cache take no time)",
                },
                indent=2,
            )
            + "\n"
        )
    broken = suites.check_thresholds(result.metrics, thresholds) if not suite else []
    for line in broken:
        typer.echo(f"threshold: {line}", err=True)
    if broken:
        raise typer.Exit(1)


def _read_json(path: Path) -> dict:  # type: ignore[type-arg]
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise FactcheckError(f"cannot read {path}: {exc}") from exc
