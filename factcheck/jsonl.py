"""Read items from JSONL and write one result line per item as soon as it is done."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from .errors import FactcheckError, InputError


def read_items(path: Path, required: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            missing = [k for k in required if not isinstance(item, dict) or k not in item]
            if missing:
                raise InputError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
            item.setdefault("id", str(number))
            yield item


def run_items(
    items: list[dict[str, Any]],
    work: Callable[[dict[str, Any]], dict[str, Any]],
    out: TextIO,
    *,
    label: str = "items",
) -> tuple[int, int]:
    """Apply `work` to each item, one flushed JSON line each; a failed item becomes an error line
    and the run goes on. Returns (done, failed)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    done = failed = 0
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not sys.stderr.isatty(),
        transient=True,
    )
    with progress:
        task = progress.add_task(label, total=len(items))
        for item in items:
            try:
                result = {"id": item["id"], **work(item)}
                done += 1
            except FactcheckError as exc:
                result = {"id": item["id"], "error": str(exc)}
                failed += 1
            out.write(json.dumps(result, ensure_ascii=False) + "\n")
            out.flush()
            progress.advance(task)
    return done, failed
