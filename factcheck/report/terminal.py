"""The terminal view (rich)."""

from __future__ import annotations

import io

from ..schemas import Report

_STYLE = {"low": "green", "medium": "yellow", "high": "red"}


def to_text(report: Report, *, width: int = 110, color: bool = True) -> str:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=color, no_color=not color)
    console.rule(escape(report.article.title or report.article.origin))
    for w in report.warnings:
        console.print(f"[bold red]![/] [bold]{w.kind.replace('_', ' ')}[/]: {escape(w.message)}")
    console.print(f"\n[bold]Summary[/] {escape(report.summary.text)}\n")
    table = Table(show_lines=True, expand=True)
    for column, ratio in (("id", 1), ("claim", 8), ("source", 3), ("check", 1), ("uncertainty", 4)):
        table.add_column(column, ratio=ratio)
    for c in report.claims:
        level = c.uncertainty.level
        table.add_row(
            c.id,
            escape(c.text) + f"\n[dim]sentences {', '.join(str(e.sentence) for e in c.evidence)}[/]",
            escape(f"{c.source.name or '-'} ({c.source.type})" + (f", {c.source.cue}" if c.source.cue else "")),
            "yes" if c.check_worthy.value else "no",
            f"[{_STYLE[level]}]{level}[/]: " + escape("; ".join(c.uncertainty.signals)),
        )
    console.print(table)
    for link in report.counter_claims:
        console.print(f"[bold]{link.counter}[/] {link.relation} [bold]{link.claim}[/]")
    m = report.meta
    console.print(
        f"\n[dim]{m.backend} · {m.model} · {m.usage.prompt_tokens}+{m.usage.completion_tokens} tokens · "
        f"{m.usage.calls} calls · {m.wall_time_s:.1f} s[/]"
    )
    return buffer.getvalue()
