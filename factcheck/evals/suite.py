"""The fixture suite: run every labelled article through the real pipeline, score, log, gate."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__, documents, pipeline
from ..backends.base import Backend
from ..errors import FactcheckError
from ..schemas import Report
from .scorers import Scores, metrics, score

LOWER_IS_BETTER = {"must_not_say_rate", "failed_articles"}


@dataclass
class SuiteResult:
    metrics: dict[str, float]
    items: list[dict[str, Any]]
    seconds: float


def load_labels(directory: Path) -> list[dict[str, Any]]:
    labels = sorted((directory / "fixtures" / "labels").glob("*.json"))
    if not labels:
        raise FactcheckError(f"no fixtures in {directory / 'fixtures' / 'labels'}")
    return [json.loads(p.read_text(encoding="utf-8")) for p in labels]


def run_suite(
    directory: Path,
    backend: Backend,
    *,
    only: list[str] | None = None,
    options: pipeline.Options | None = None,
    on_item: Callable[[dict[str, Any]], None] | None = None,
) -> SuiteResult:
    started = time.perf_counter()
    total = Scores()
    items = []
    for label in load_labels(directory):
        if only and label["id"] not in only and not set(only) & set(label["hard_cases"]):
            continue
        t0 = time.perf_counter()
        report: Report | None = None
        error = None
        try:
            doc = documents.load(str(directory / "fixtures" / label["article"]))
            report = pipeline.summarize(doc, backend, options)
        except FactcheckError as exc:
            error = str(exc)
        scores = score(report, label, error)
        for name, value in scores.counts.items():
            total.add(name, value)
        items.append(
            {
                "id": label["id"],
                "hard_cases": label["hard_cases"],
                "metrics": metrics(scores),
                "notes": scores.notes,
                "usage": report.meta.usage.model_dump() if report else None,
                "prompts": report.meta.prompts if report else None,
                "seconds": round(time.perf_counter() - t0, 2),
                "error": error,
            }
        )
        if on_item:
            on_item(items[-1])
    return SuiteResult(metrics(total), items, round(time.perf_counter() - started, 1))


def check_thresholds(values: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """The metrics that broke their threshold, as readable lines."""
    broken = []
    for name, limit in thresholds.items():
        value = values.get(name)
        if value is None:
            broken.append(f"{name}: missing")
        elif name in LOWER_IS_BETTER and value > limit:
            broken.append(f"{name} = {value} is above its limit {limit}")
        elif name not in LOWER_IS_BETTER and value < limit:
            broken.append(f"{name} = {value} is below its threshold {limit}")
    return broken


def write_log(
    result: SuiteResult, backend: Backend, out_dir: Path, baseline: dict[str, float], thresholds: dict[str, float]
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    log = {
        "version": __version__,
        "backend": backend.name,
        "model": backend.model,
        "seconds": result.seconds,
        "metrics": result.metrics,
        "baseline": baseline,
        "items": result.items,
    }
    path = out_dir / "eval-log.json"
    path.write_text(json.dumps(log, indent=2), encoding="utf-8")
    (out_dir / "eval-report.md").write_text(markdown(result, backend, baseline), encoding="utf-8")
    from ..report.html import eval_to_html

    (out_dir / "eval-report.html").write_text(eval_to_html(log, thresholds, LOWER_IS_BETTER), encoding="utf-8")
    return path


def markdown(result: SuiteResult, backend: Backend, baseline: dict[str, float]) -> str:
    lines = [
        f"## factcheck eval: {backend.name} · {backend.model} · {result.seconds:.0f} s\n",
        "| metric | value | baseline | change |",
        "|---|---|---|---|",
    ]
    for name, value in result.metrics.items():
        base = baseline.get(name)
        delta = "" if base is None else f"{value - base:+.3f}"
        lines.append(f"| {name} | {value:.3f} | {'' if base is None else f'{base:.3f}'} | {delta} |")
    lines += [
        "",
        "| article | claim F1 | counter F1 | key points | warnings F1 | s |",
        "|---|---|---|---|---|---|",
    ]
    for item in result.items:
        m = item["metrics"]
        lines.append(
            f"| {item['id']} | {m['claim_f1']:.2f} | {m['counter_claim_f1']:.2f} | "
            f"{m['key_point_coverage']:.2f} | {m['warning_f1']:.2f} | {item['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"
