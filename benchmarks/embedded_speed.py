"""Speed of `summarize` on the embedded model: wall time, load, tokens per stage, time outside the model.

    python benchmarks/embedded_speed.py [ARTICLE]     (default: ../shared/examples/seed-article.txt)

Targets (issue 3): under 60 s end to end with the model already joined, at least 10 claims,
peak memory under 3 GB, under 5% of wall time outside the model.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

from factcheck import documents, embedded, pipeline
from factcheck.backends.local import LocalBackend

ROOT = Path(__file__).resolve().parents[1]


class Timed:
    """Wraps a back end and adds up the time spent inside the model."""

    def __init__(self, inner: LocalBackend):
        self.inner, self.name, self.model = inner, inner.name, inner.model
        self.seconds = 0.0
        self.calls: list[tuple[str, float, int, int]] = []

    def complete(self, messages, **kw):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        out = self.inner.complete(messages, **kw)
        spent = time.perf_counter() - started
        self.seconds += spent
        self.calls.append((kw["schema_name"], spent, out.prompt_tokens, out.completion_tokens))
        return out

    def classify(self, messages, **kw):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        out = self.inner.classify(messages, **kw)
        spent = time.perf_counter() - started
        self.seconds += spent
        self.calls.append(("classify", spent, 0, 0))
        return out


def main() -> None:
    article = sys.argv[1] if len(sys.argv) > 1 else str(ROOT.parent / "shared/examples/seed-article.txt")
    started = time.perf_counter()
    path = embedded.ensure_model()
    load_started = time.perf_counter()
    backend = Timed(LocalBackend(path))
    load = time.perf_counter() - load_started
    doc = documents.load(article)
    run_started = time.perf_counter()
    report = pipeline.summarize(doc, backend)  # type: ignore[arg-type]
    run = time.perf_counter() - run_started
    wall = time.perf_counter() - started
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2

    print(f"article: {article} ({len(doc.text.split())} words, {len(doc.sentences)} sentences)")
    print(f"wall time (model ready -> report): {wall:.1f} s   [target < 60 s]")
    print(f"model load: {load:.1f} s")
    print(f"claims: {len(report.claims)}   [target >= 10 on the seed article]")
    print(f"peak RSS: {peak_gb:.2f} GB   [target < 3 GB]")
    print("stage        calls  prompt_tok  completion_tok")
    for name, usage in report.meta.stages.items():
        print(f"{name:12} {usage.calls:5}  {usage.prompt_tokens:10}  {usage.completion_tokens:14}")
    print("call                 seconds  prompt  completion  completion tok/s")
    for name, spent, p, c in backend.calls:
        print(f"{name:20} {spent:7.2f}  {p:6}  {c:10}  {c / spent if c else 0:8.1f}")
    outside = run - backend.seconds
    print(
        f"time in the model: {backend.seconds:.1f} s; outside the model: {outside:.2f} s "
        f"= {100 * outside / run:.1f}% of the pipeline's wall time   [target < 5%]"
    )


if __name__ == "__main__":
    main()
