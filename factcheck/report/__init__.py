"""Renderers: the report as a terminal view, JSON, Markdown or a self-contained HTML page."""

from __future__ import annotations

from typing import Literal

from ..schemas import Report

Format = Literal["rich", "json", "markdown", "html"]


def render(report: Report, fmt: Format) -> str:
    if fmt == "json":
        return report.model_dump_json(indent=2)
    if fmt == "markdown":
        from .markdown import to_markdown

        return to_markdown(report)
    if fmt == "html":
        from .html import to_html

        return to_html(report)
    from .terminal import to_text

    return to_text(report)
