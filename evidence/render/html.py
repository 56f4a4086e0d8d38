"""Render a report to one self-contained HTML file (also the source WeasyPrint lays out)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from evidence.render.context import Media, build_context
from evidence.render.interface import PAGE_SIZES, RenderError, ReportInput
from evidence.render.templates import environment

TEMPLATE = "report.html.j2"


@dataclass(frozen=True)
class PrintDocument:
    """What WeasyPrint lays out: the print HTML and the in-memory assets it loads (chart SVGs)."""

    html: str
    assets: Mapping[str, tuple[bytes, str]]  # URL under ASSET_BASE -> (bytes, media type)


def _render(report: ReportInput, media: Media, page_size: str) -> PrintDocument:
    if page_size not in PAGE_SIZES:
        raise RenderError(f"unknown page size {page_size!r}", hint=f"use one of: {', '.join(PAGE_SIZES)}")
    ctx = build_context(report, media)
    html = environment().get_template(TEMPLATE).render(ctx, page_size=page_size)
    return PrintDocument(html, dict(ctx["assets"]))


def render_document(report: ReportInput, *, media: Media, page_size: str = "A4") -> str:
    """The report as HTML for ``media``: "screen" (the HTML deliverable) or "print" (PDF input)."""
    return _render(report, media, page_size).html


def render_print_document(report: ReportInput, *, page_size: str = "A4") -> PrintDocument:
    """The PDF's input: print HTML whose charts are images of the returned assets."""
    return _render(report, "print", page_size)


def render_html(report: ReportInput) -> str:
    """One self-contained HTML file: inline CSS and SVG, no script, no remote loads (CSP)."""
    return render_document(report, media="screen")
