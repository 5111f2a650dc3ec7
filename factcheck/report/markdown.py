"""Markdown that renders well in a GitHub issue or pull-request comment."""

from __future__ import annotations

from ..schemas import Claim, Report

_LEVEL = {"low": "🟢 low", "medium": "🟡 medium", "high": "🔴 high"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _quote(text: str) -> str:
    return "> " + text.replace("\n", "\n> ")


def to_markdown(report: Report) -> str:
    out: list[str] = []
    title = report.article.title or report.article.origin
    out.append(f"# Fact-check: {_cell(title)}\n")
    if report.warnings:
        out.append("## Warnings\n")
        out += [f"- **{w.kind.replace('_', ' ')}**: {_cell(w.message)}" for w in report.warnings]
        out.append("")
    out.append("## Summary\n")
    out.append(report.summary.text or "_(no summary)_")
    if report.summary.key_points:
        out.append("\n**Key points**\n")
        out += [f"- {_cell(k.text)} ({', '.join(k.claims)})" for k in report.summary.key_points]
    out.append("\n## Claims\n")
    out.append("| id | claim | source | check-worthy | uncertainty |")
    out.append("|---|---|---|---|---|")
    for c in report.claims:
        out.append(
            f"| {c.id} | {_cell(c.text)} | {_cell(_source(c))} | {'yes' if c.check_worthy.value else 'no'} "
            f"| {_LEVEL[c.uncertainty.level]}: {_cell('; '.join(c.uncertainty.signals))} |"
        )
    if report.counter_claims:
        out.append("\n## Counter-claims\n")
        for link in report.counter_claims:
            out.append(f"- **{link.counter}** {link.relation} **{link.claim}** (sentences {link.sentences})")
    out.append("\n<details><summary>Evidence</summary>\n")
    for c in report.claims:
        for e in c.evidence:
            out.append(f"**{c.id}**, sentence {e.sentence} (chars {e.start}–{e.end}):\n\n{_quote(e.quote)}\n")
        for v in c.verdicts:
            out.append(f"**{c.id}** vs `{_cell(v.document)}`: {v.verdict} ({v.confidence:.2f})\n")
    out.append("</details>\n")
    m = report.meta
    out.append(
        f"<sub>{m.backend} · {m.model} · {m.usage.prompt_tokens} prompt + {m.usage.completion_tokens} "
        f"completion tokens · {m.usage.calls} calls · {m.wall_time_s:.1f} s · factcheck {m.version}</sub>"
    )
    return "\n".join(out) + "\n"


def _source(c: Claim) -> str:
    if not c.source.name:
        return c.source.type
    cue = f", {c.source.cue}" if c.source.cue else ""
    return f"{c.source.name} ({c.source.type}{cue})"
