"""Benchmark adapters for the normalised JSONL formats of ../shared/evaldata (see its README)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from .. import claims, documents, verify
from ..backends.base import Backend
from ..errors import FactcheckError, InputError
from ..structured import Ledger

Task = Literal["verification", "consistency", "checkworthiness", "attribution"]
POSITIVE = {"supported", "consistent", "check_worthy"}


def read(path: Path, limit: int | None) -> list[dict[str, Any]]:
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read dataset {path}: {exc}") from exc
    return spread(rows, limit) if limit else rows


def spread(rows: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The first `limit` items taken in turn from each gold label, so a small run of a file sorted
    by label still sees every label."""
    by_label: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        by_label.setdefault(row.get("label"), []).append(row)
    queues = list(by_label.values())
    picked: list[dict[str, Any]] = []
    while len(picked) < limit and any(queues):
        for queue in queues:
            if queue and len(picked) < limit:
                picked.append(queue.pop(0))
    return picked


def predict(task: Task, item: dict[str, Any], backend: Backend) -> dict[str, Any]:
    """One item's prediction; `positive` is the binary view the metrics use."""
    ledger = Ledger()
    if task == "verification":
        doc = documents.make_document(item["document"], origin=item["id"])
        result = verify.check_claim(backend, ledger, item["claim"], [doc])
        return {
            "verdict": result.verdict,
            "p_supported": result.p_supported,
            "positive": result.verdict == "supported",
        }
    if task == "consistency":
        doc = documents.make_document(item["article"], origin=item["id"])
        check = verify.check_consistency(backend, ledger, doc, item["summary"])
        return {"consistent": check.consistent, "score": check.score, "positive": check.consistent}
    if task == "checkworthiness":
        doc = documents.make_document(item["sentence"], origin=item["id"])
        drafts = claims.extract(backend, ledger, doc, doc.body or doc.sentences, "sentence")
        worthy = any(d.worthy for d in drafts)
        return {"check_worthy": worthy, "positive": worthy}
    return _attribution(item, backend, ledger)


def _attribution(item: dict[str, Any], backend: Backend, ledger: Ledger) -> dict[str, Any]:
    """Sources we attribute to the sentences holding each gold attribution's content."""
    from .. import attribution

    doc = documents.make_document(item["article"], origin=item["id"])
    found = []
    for part in documents.chunk(doc.body or doc.sentences, max_tokens=1400, overlap=0):
        found += claims.extract(backend, ledger, doc, part, "sentence")
    by_sentence = {n: d for d in found for n in d.sentences}
    hits = total = 0
    for gold in item.get("attributions", []):
        texts = [documents.normalise(part["text"]) for part in gold.get("content") or [] if part.get("text")]
        # Our offsets are into the normalised text, so find the content by its words, not its offsets.
        start = doc.text.find(texts[0][:80]) if texts else -1
        if start < 0:
            continue
        sentence = next((s for s in doc.sentences if s.start <= start < s.end), None)
        if sentence is None or sentence.n not in by_sentence:
            continue  # content in a headline, boilerplate or a sentence the model skipped
        total += 1
        ours = by_sentence[sentence.n].source
        name = " ".join(part["text"] for part in gold.get("source") or []) or None
        if name is None:
            hits += ours is None
        else:
            hits += bool(ours and (attribution.name_in(name, ours) or attribution.name_in(ours, name)))
    return {"attributions": total, "correct": hits, "positive": None}


def evaluate(
    path: Path,
    task: Task,
    backend: Backend,
    *,
    limit: int | None = None,
    on_item: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    rows = read(path, limit)
    predictions = []
    for item in rows:
        started = time.perf_counter()
        try:
            out = predict(task, item, backend)
        except FactcheckError as exc:  # scored as wrong, with the reason
            out = {"error": str(exc), "positive": None}
        out.update(id=item.get("id"), label=item.get("label"), seconds=round(time.perf_counter() - started, 2))
        predictions.append(out)
        if on_item:
            on_item(out)
    return {
        "task": task,
        "dataset": str(path),
        "metrics": binary_metrics(task, predictions),
        "predictions": predictions,
    }


def binary_metrics(task: Task, predictions: list[dict[str, Any]]) -> dict[str, float]:
    if task == "attribution":
        total = sum(p.get("attributions", 0) for p in predictions)
        return {
            "attribution_accuracy": round(sum(p.get("correct", 0) for p in predictions) / total, 4) if total else 0.0,
            "attributions": float(total),
        }
    tp = fp = tn = fn = 0
    for p in predictions:
        gold = p["label"] in POSITIVE
        pred = bool(p.get("positive"))  # an error counts as a negative prediction
        tp += gold and pred
        fn += gold and not pred
        fp += (not gold) and pred
        tn += (not gold) and not pred
    tpr = tp / (tp + fn) if tp + fn else 0.0
    tnr = tn / (tn + fp) if tn + fp else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    f1 = 2 * precision * tpr / (precision + tpr) if precision + tpr else 0.0
    return {
        "balanced_accuracy": round((tpr + tnr) / 2, 4),
        "precision": round(precision, 4),
        "recall": round(tpr, 4),
        "f1": round(f1, 4),
        "n": float(len(predictions)),
    }
