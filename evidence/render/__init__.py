"""Render stage: a :class:`ReportInput` becomes a self-contained HTML report and a PDF/A-3b.

``render_html`` and ``render_pdf`` are the whole public API; both are deterministic (same input,
same bytes) and never fetch a URL.
"""

from evidence.render.html import render_html
from evidence.render.interface import PAGE_SIZES, REPORT_KINDS, RenderError, ReportInput
from evidence.render.pdf import render_pdf

__all__ = ["PAGE_SIZES", "REPORT_KINDS", "RenderError", "ReportInput", "render_html", "render_pdf"]
