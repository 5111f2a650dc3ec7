"""A self-contained HTML page: the article with highlighted evidence, claim cards, filters, metadata.

Everything the article or the model wrote reaches the page escaped: the template is rendered with
autoescape on, and the only markup built here (the highlighted article, claim-id links inside
free text) is assembled from pieces that each went through `markupsafe.escape` first. The page
loads nothing from the network: CSS and JS are inline, there are no fonts, images or links out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from ..schemas import Claim, Report
from ..schemas import Warning as ReportWarning

_TEMPLATES = Path(__file__).parent / "templates"
_RANK = {"low": 0, "medium": 1, "high": 2}
_LEVELS = ("high", "medium", "low")

# "c4 denies c3": how each side of a link reads on its own card.
_ACTIVE = {"denies": "denies", "contradicts": "contradicts", "qualifies": "qualifies"}
_PASSIVE = {"denies": "denied by", "contradicts": "contradicted by", "qualifies": "qualified by"}

_WARNING_LABELS = {
    "unsupported_headline": "Unsupported headline",
    "unattributed_quote": "Unattributed quote",
    "boilerplate": "Boilerplate ignored",
    "truncated_input": "Truncated input",
    "prompt_injection": "Possible prompt injection",
    "summary_revised": "Summary revised",
}
_STAGE_ORDER = ("extract", "links", "summary", "self_check", "headline", "verify")


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(_TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["pct"] = lambda x: f"{x * 100:.0f}%"
    env.filters["thousands"] = lambda n: f"{n:,}"
    return env


def to_html(report: Report) -> str:
    slugs = _slugs(report.claims)
    levels: dict[str, str] = {c.id: c.uncertainty.level for c in report.claims}
    relations = _relations(report, slugs, levels)
    ctx = {
        "report": report,
        "title": report.article.title or report.article.origin,
        "article_html": _article_markup(report, slugs),
        "cards": [_card(c, slugs, relations.get(c.id, []), len(report.article.text)) for c in report.claims],
        "key_points": [
            {"text": k.text, "links": [_claim_ref(cid, slugs, levels) for cid in k.claims]}
            for k in report.summary.key_points
        ],
        "warnings": [_warning(w) for w in report.warnings],
        "pairs": [
            {
                "counter": _claim_ref(link.counter, slugs, levels),
                "claim": _claim_ref(link.claim, slugs, levels),
                "relation": link.relation,
                "sentences": sorted(set(link.sentences)),
            }
            for link in report.counter_claims
        ],
        "diagram": _diagram(report, slugs),
        "stats": _stats(report),
        "stages": _stages(report),
        "level_counts": {lv: sum(c.uncertainty.level == lv for c in report.claims) for lv in _LEVELS},
        "worthy_counts": {
            "yes": sum(c.check_worthy.value for c in report.claims),
            "no": sum(not c.check_worthy.value for c in report.claims),
        },
        "sentence_ids": {s.n for s in report.article.sentences},
    }
    return _env().get_template("report.html.j2").render(**ctx)


# --- claim ids --------------------------------------------------------------------------------


def _slugs(claims: list[Claim]) -> dict[str, str]:
    """Claim id -> a unique token safe inside `id`, `href="#..."` and space-separated attributes."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for c in claims:
        if c.id in out:
            continue
        base = re.sub(r"[^A-Za-z0-9_-]+", "-", c.id).strip("-") or "claim"
        slug, k = base, 2
        while slug in used:
            slug, k = f"{base}-{k}", k + 1
        used.add(slug)
        out[c.id] = slug
    return out


def _claim_ref(cid: str, slugs: dict[str, str], levels: dict[str, str]) -> dict[str, str | None]:
    """A link target for a claim id; `slug` is None when the id names no claim in the report."""
    return {"id": cid, "slug": slugs.get(cid), "level": levels.get(cid, "")}


def _linkify(text: str, slugs: dict[str, str]) -> Markup:
    """Escape `text`, turning mentions of known claim ids (e.g. "disputed (c6)") into links."""
    if not slugs:
        return escape(text)
    ids = sorted(slugs, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w-])(" + "|".join(re.escape(i) for i in ids) + r")(?![\w-])")
    out: list[Markup] = []
    pos = 0
    for m in pattern.finditer(text):
        out.append(escape(text[pos : m.start()]))
        slug = slugs[m.group(1)]
        out.append(Markup('<a class="cid" href="#claim-{0}" data-claim="{0}">{1}</a>').format(slug, m.group(1)))
        pos = m.end()
    out.append(escape(text[pos:]))
    return Markup("").join(out)


# --- the highlighted article ------------------------------------------------------------------


@dataclass(eq=False)
class _Span:
    start: int
    end: int
    slug: str
    cid: str
    level: str
    index: int  # position of the quote in the claim's evidence list


@dataclass
class _Boundary:
    ends: list[_Span] = field(default_factory=list)
    starts: list[_Span] = field(default_factory=list)
    sentence_end: bool = False
    sentence_start: int | None = None


def _article_markup(report: Report, slugs: dict[str, str]) -> Markup:
    """The article text with every sentence wrapped (anchor `s-N`) and every evidence quote marked.

    Built by slicing `article.text` at sentence and quote offsets: each slice is escaped on its
    own, so the markup can never be confused with (or injected through) the article's text.
    Overlapping quotes are split into segments; a segment covered by several claims lists them all.
    """
    text = report.article.text
    n = len(text)

    sentences: list[tuple[int, int, int]] = []
    seen_n: set[int] = set()
    last_end = 0
    for s in sorted(report.article.sentences, key=lambda s: (s.start, s.end)):
        if 0 <= s.start < s.end <= n and s.start >= last_end and s.n not in seen_n:
            sentences.append((s.start, s.end, s.n))
            seen_n.add(s.n)
            last_end = s.end

    spans: list[_Span] = []
    for c in report.claims:
        for i, ev in enumerate(c.evidence):
            if 0 <= ev.start < ev.end <= n:
                spans.append(_Span(ev.start, ev.end, slugs[c.id], c.id, c.uncertainty.level, i))

    points: dict[int, _Boundary] = {0: _Boundary(), n: _Boundary()}
    for start, end, num in sentences:
        points.setdefault(start, _Boundary()).sentence_start = num
        points.setdefault(end, _Boundary()).sentence_end = True
    for sp in spans:
        points.setdefault(sp.start, _Boundary()).starts.append(sp)
        points.setdefault(sp.end, _Boundary()).ends.append(sp)
    cuts = sorted(points)

    out: list[Markup] = []
    in_sentence = False
    active: list[_Span] = []
    for i, pos in enumerate(cuts):
        b = points[pos]
        # 1. close the quotes ending here, each with a link to its claim card
        for sp in b.ends:
            active.remove(sp)
            out.append(
                Markup(
                    '<a class="cref lvl-{0}" href="#claim-{1}" data-claim="{1}" '
                    'title="Claim {2}: {0} uncertainty">{2}</a>'
                ).format(sp.level, sp.slug, sp.cid)
            )
        # 2. sentence boundaries (sentences never overlap; quotes are split at their edges)
        if b.sentence_end and in_sentence:
            out.append(Markup("</span>"))
            in_sentence = False
        if b.sentence_start is not None:
            out.append(
                Markup(
                    '<span class="sent" id="s-{0}" data-n="{0}"><span class="sn" aria-hidden="true">{0}</span>'
                ).format(b.sentence_start)
            )
            in_sentence = True
        # 3. anchors for the quotes starting here (targets of the cards' "show in article" links)
        for sp in b.starts:
            active.append(sp)
            out.append(Markup('<span class="ev-anchor" id="ev-{0}-{1}"></span>').format(sp.slug, sp.index))
        if i + 1 == len(cuts):
            break
        piece = escape(text[pos : cuts[i + 1]])
        if active:
            level = max((sp.level for sp in active), key=_RANK.__getitem__)
            claims = " ".join(dict.fromkeys(sp.slug for sp in active))
            out.append(Markup('<mark class="ev lvl-{0}" data-claims="{1}">{2}</mark>').format(level, claims, piece))
        else:
            out.append(piece)
    if in_sentence:
        out.append(Markup("</span>"))
    return Markup("").join(out)


# --- cards, warnings, diagram, metadata --------------------------------------------------------


def _relations(report: Report, slugs: dict[str, str], levels: dict[str, str]) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    for k, link in enumerate(report.counter_claims):
        out.setdefault(link.counter, []).append(
            {
                "label": _ACTIVE[link.relation],
                "relation": link.relation,
                "pair": k,
                "other": _claim_ref(link.claim, slugs, levels),
            }
        )
        out.setdefault(link.claim, []).append(
            {
                "label": _PASSIVE[link.relation],
                "relation": link.relation,
                "pair": k,
                "other": _claim_ref(link.counter, slugs, levels),
            }
        )
    return out


def _card(c: Claim, slugs: dict[str, str], relations: list[dict[str, object]], text_len: int) -> dict[str, object]:
    return {
        "claim": c,
        "slug": slugs[c.id],
        "signals": [_linkify(s, slugs) for s in c.uncertainty.signals],
        "reason": _linkify(c.check_worthy.reason, slugs),
        "relations": relations,
        "evidence": [
            # the same condition as in _article_markup, so a link never points at a missing anchor
            {"ev": ev, "anchor": f"ev-{slugs[c.id]}-{i}" if 0 <= ev.start < ev.end <= text_len else None}
            for i, ev in enumerate(c.evidence)
        ],
    }


def _warning(w: ReportWarning) -> dict[str, object]:
    return {
        "kind": w.kind,
        "label": _WARNING_LABELS.get(w.kind, w.kind.replace("_", " ")),
        "message": w.message,
        "sentences": sorted(set(w.sentences)),
    }


def _diagram(report: Report, slugs: dict[str, str]) -> dict[str, object] | None:
    """An arc diagram of the counter-claim links: the claims involved in article order, arcs above."""
    if not report.counter_claims:
        return None
    involved = {x for link in report.counter_claims for x in (link.claim, link.counter)}
    claims = [c for c in report.claims if c.id in involved]
    step, pad, r_node = 84, 40, 17
    xs = {c.id: pad + i * step for i, c in enumerate(claims)}
    width = pad * 2 + max(len(claims) - 1, 1) * step
    max_span = max(abs(xs[link.claim] - xs[link.counter]) for link in report.counter_claims) or step
    base = max_span / 2 + 34
    arcs = []
    for link in report.counter_claims:
        x1, x2 = xs[link.counter], xs[link.claim]
        if x1 == x2:
            continue
        r = abs(x2 - x1) / 2
        # from the counter-claim to the claim it disputes; the arrowhead sits on the claim
        sweep = 1 if x2 > x1 else 0
        d = f"M {x1:.1f} {base - r_node:.1f} A {r:.1f} {r:.1f} 0 0 {sweep} {x2:.1f} {base - r_node:.1f}"
        arcs.append(
            {
                "d": d,
                "relation": link.relation,
                "label": f"{link.counter} {link.relation} {link.claim}",
                "lx": (x1 + x2) / 2,
                "ly": base - r_node - r - 6,
            }
        )
    nodes = [{"id": c.id, "slug": slugs[c.id], "x": xs[c.id], "level": c.uncertainty.level} for c in claims]
    return {
        "width": width,
        "height": base + r_node + 14,
        "base": base,
        "r": r_node,
        "arcs": arcs,
        "nodes": nodes,
    }


def _stats(report: Report) -> list[tuple[str, int]]:
    claims = report.claims
    return [
        ("claims", len(claims)),
        ("check-worthy", sum(c.check_worthy.value for c in claims)),
        ("high uncertainty", sum(c.uncertainty.level == "high" for c in claims)),
        ("counter-claims", len(report.counter_claims)),
        ("warnings", len(report.warnings)),
    ]


def _stages(report: Report) -> list[tuple[str, object]]:
    order = {name: i for i, name in enumerate(_STAGE_ORDER)}
    return sorted(report.meta.stages.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))


def eval_to_html(log: dict[str, Any], thresholds: dict[str, float], lower_is_better: set[str]) -> str:
    """The `factcheck eval` report: one bar per metric against its baseline and threshold."""
    baseline = log.get("baseline") or {}
    rows = []
    for name, value in log["metrics"].items():
        limit = thresholds.get(name)
        lower = name in lower_is_better
        failed = limit is not None and (value > limit if lower else value < limit)
        scale = name != "failed_articles"  # a count, not a share: drawn without a bar
        rows.append(
            {
                "name": name,
                "value": value,
                "bar": min(max(value, 0.0), 1.0) if scale else 0.0,
                "baseline": baseline.get(name) if scale else None,
                "limit": limit,
                "lower": lower,
                "failed": failed,
            }
        )
    broken = [r for r in rows if r["failed"]]
    return (
        _env()
        .get_template("eval.html.j2")
        .render(
            rows=rows,
            broken=broken,
            items=log["items"],
            backend=log["backend"],
            model=log["model"],
            seconds=log["seconds"],
            version=log["version"],
        )
    )
