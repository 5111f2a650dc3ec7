"""Balanced accuracy of `check` and `consistency` on the development sets in ../shared/evaldata.

    python benchmarks/grounded.py [--per-label N] [--sets wice,frank:20,...] [--threshold T]

Claims (WiCE, Climate-FEVER, AVeriTeC) go through verify.check_claim, summaries (FRANK, QAGS,
XSumFaith, SummEval, FactCC) through verify.check_consistency, on the configured back end
(the embedded model by default). "supported"/"consistent" is the positive class; every other
label is negative (the evaldata README's binary view). A stratified sample of N items per gold
label keeps a run affordable on two cores (`name:N` sets N for one set; a large N takes the whole
set). Samples grow by prefix: a larger N keeps the items of a smaller one, whose answers the
response cache still holds. Per-item results go to artifacts/grounded/*.jsonl.

Printed per set: balanced accuracy at the shipped threshold (verify.SUPPORT_THRESHOLD for claims,
verify.CONSISTENCY_THRESHOLD for summaries, with the
missing-details rule), and, for reference only, the best threshold on this same sample (optimistic:
chosen on the data it is scored on).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import defaultdict
from pathlib import Path

from factcheck import documents, verify
from factcheck.backends import choose, open_backend
from factcheck.errors import FactcheckError
from factcheck.structured import Ledger

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "evaldata"
CLAIM_SETS = {
    "wice": "wice/wice_test_claims.jsonl",
    "climate_fever": "climate_fever/climate_fever_sample.jsonl",
    "averitec": "averitec/averitec_dev_sample.jsonl",
}
SUMMARY_SETS = {
    "frank": "frank/frank_test_sample.jsonl",
    "qags_cnndm": "qags/qags_cnndm.jsonl",
    "qags_xsum": "qags/qags_xsum.jsonl",
    "xsumfaith": "xsumfaith/xsumfaith_sample.jsonl",
    "summeval": "summeval_consistency/summeval_consistency.jsonl",
    "factcc": "factcc_annotated/factcc_annotated_sample.jsonl",
}


def sample(path: Path, per_label: int, seed: int = 0) -> list[dict]:  # type: ignore[type-arg]
    by_label = defaultdict(list)
    for line in path.read_text().splitlines():
        item = json.loads(line)
        by_label[item["label"]].append(item)
    rng = random.Random(seed)
    out = []
    for label in sorted(by_label):
        items = by_label[label]
        rng.shuffle(items)
        out += items[:per_label]
    return out


def balanced_accuracy(gold: list[bool], pred: list[bool]) -> float:
    pos = [p for g, p in zip(gold, pred, strict=True) if g]
    neg = [not p for g, p in zip(gold, pred, strict=True) if not g]
    rates = [sum(x) / len(x) for x in (pos, neg) if x]
    return sum(rates) / len(rates) if rates else float("nan")


def run_set(name: str, rel: str, per_label: int, llm, out_dir: Path) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    claims = name in CLAIM_SETS
    rows = []
    log = out_dir / f"{name}.jsonl"
    with log.open("w") as handle:
        for item in sample(DATA / rel, per_label):
            started = time.perf_counter()
            row = {
                "id": item["id"],
                "label": item["label"],
                "gold": item["label"] in ("supported", "consistent"),
            }
            try:
                if claims:
                    doc = documents.make_document(item["document"], origin=item["id"])
                    result = verify.check_claim(llm, Ledger(), item["claim"], [doc])
                    row.update(verdict=result.verdict, p=result.p_supported, missing=bool(result.missing))
                else:
                    doc = documents.make_document(item["article"], origin=item["id"])
                    result = verify.check_consistency(llm, Ledger(), doc, item["summary"])
                    row.update(
                        verdict="supported" if result.consistent else "unsupported",
                        p=result.score,
                        missing=any(s.missing for s in result.sentences),
                    )
            except FactcheckError as exc:
                row.update(verdict="error", p=None, missing=False, error=str(exc))
            row["seconds"] = round(time.perf_counter() - started, 2)
            handle.write(json.dumps(row) + "\n")
            handle.flush()
            rows.append(row)
    return rows


def report(name: str, rows: list[dict]) -> None:  # type: ignore[type-arg]
    gold = [r["gold"] for r in rows]
    shipped = balanced_accuracy(gold, [r["verdict"] == "supported" for r in rows])
    scored = [r for r in rows if r["p"] is not None]
    best = (-1.0, 0.0)
    for t in [x / 100 for x in range(30, 100, 2)]:
        ba = balanced_accuracy(
            [r["gold"] for r in scored], [r["p"] >= t and not r["missing"] for r in scored]
        )
        best = max(best, (ba, t))
    secs = sum(r["seconds"] for r in rows)
    errors = sum(r["verdict"] == "error" for r in rows)
    print(
        f"{name:14} n={len(rows):3}  balanced accuracy {shipped:.3f} at threshold "
        f"{verify.CONSISTENCY_THRESHOLD if name in SUMMARY_SETS else verify.SUPPORT_THRESHOLD}   "
        f"(best on this sample {best[0]:.3f} at {best[1]:.2f})   "
        f"{secs / max(1, len(rows)):.1f} s/item  errors={errors}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-label", type=int, default=10)
    parser.add_argument("--sets", default=",".join([*CLAIM_SETS, *SUMMARY_SETS]))
    parser.add_argument("--threshold", type=float, default=None)
    args = parser.parse_args()
    if args.threshold is not None:
        verify.SUPPORT_THRESHOLD = verify.CONSISTENCY_THRESHOLD = args.threshold
    out_dir = ROOT / "artifacts" / "grounded"
    out_dir.mkdir(parents=True, exist_ok=True)
    llm = open_backend(choose())
    print(f"back end: {llm.name} {llm.model}")
    for spec in args.sets.split(","):
        name, _, size = spec.partition(":")
        rel = {**CLAIM_SETS, **SUMMARY_SETS}[name]
        report(name, run_set(name, rel, int(size or args.per_label), llm, out_dir))


if __name__ == "__main__":
    main()
