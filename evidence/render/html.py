"""Render a report to one self-contained HTML file (also the source WeasyPrint lays out)."""

from __future__ import annotations

from evidence.render.context import Media, build_context
from evidence.render.interface import PAGE_SIZES, RenderError, ReportInput
from evidence.render.templates import environment

TEMPLATE = "report.html.j2"


def render_document(report: ReportInput, *, media: Media, page_size: str = "A4") -> str:
    """The report as HTML for ``media``: "screen" (the HTML deliverable) or "print" (PDF input)."""
    if page_size not in PAGE_SIZES:
        raise RenderError(f"unknown page size {page_size!r}", hint=f"use one of: {', '.join(PAGE_SIZES)}")
    ctx = build_context(report, media)
    return environment().get_template(TEMPLATE).render(ctx, page_size=page_size)


def render_html(report: ReportInput) -> str:
    """One self-contained HTML file: inline CSS and SVG, no script, no remote loads (CSP)."""
    return render_document(report, media="screen")
