"""Render a report to PDF/A-3b with WeasyPrint, from the same templates as the HTML.

Determinism (research §1.6): WeasyPrint takes /CreationDate and /ModDate only from the
``dcterms.created``/``dcterms.modified`` meta tags (set from ``generated_at``), and /ID is an MD5
of the content. The one remaining source of change is font subsetting: without libharfbuzz-subset,
WeasyPrint falls back to fontTools, which stamps "now" into each subset font unless
``SOURCE_DATE_EPOCH`` is set. We set it for the duration of ``write_pdf`` only in that case, and
restore the environment afterwards.
"""

from __future__ import annotations

import contextlib
import gc
import os
import warnings
from collections.abc import Iterator

from evidence.clock import parse_timestamp
from evidence.render.fetcher import AllowListFetcher, report_fetcher
from evidence.render.html import render_print_document
from evidence.render.interface import ASSET_BASE, RenderError, ReportInput

#: WeasyPrint's PDF/A-3b: XMP with pdfaid part 3 / conformance B, sRGB output intent, embedded fonts.
#: Not validated with veraPDF (not installable here), so this is WeasyPrint's claim (research §5.2).
PDF_VARIANT = "pdf/a-3b"


def harfbuzz_subset_available() -> bool:
    """Whether WeasyPrint subsets fonts with HarfBuzz (deterministic) rather than fontTools."""
    from weasyprint.text import ffi

    return ffi.harfbuzz_subset is not None and bool(ffi.harfbuzz.hb_version_atleast(4, 1, 0))


@contextlib.contextmanager
def source_date_epoch(epoch: int) -> Iterator[None]:
    """Set ``SOURCE_DATE_EPOCH`` for the block, then put the environment back as it was."""
    previous = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(epoch)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = previous


#: Collector thresholds while WeasyPrint runs, at least (CPython's defaults are 700, 10, 10).
LAYOUT_GC_THRESHOLDS = (10_000, 10, 10)


@contextlib.contextmanager
def layout_collector() -> Iterator[None]:
    """Run the young collections less often while WeasyPrint runs, then restore the thresholds.

    WeasyPrint allocates millions of short-lived objects; with CPython's default thresholds the
    collector ran ~520 young, ~48 middle and 3 full collections during the demo report's render,
    and each full one walked the whole process heap: in ``evidence demo`` that heap holds the
    collected tenant (~420,000 objects), which made garbage collection 0.9 s of a 3.5 s render.
    With a young threshold of 10,000 it runs ~35 young and ~3 middle ones, which free the
    render's garbage as it goes, and no full one (0.1 s). What is left when the render ends is
    freed by a later collection, as after any other call; the full-collection threshold is left
    as it is, so back-to-back renders level off (sample report, 8 in one process: peak RSS
    173 MB, was 119 MB; one render: 105 MB, was 113 MB). ``gc.freeze()`` was tried too: it
    needs a collection at the end so frozen garbage does not pile up, and that cost more than it saved.
    """
    threshold = gc.get_threshold()
    gc.set_threshold(*(max(now, during) for now, during in zip(threshold, LAYOUT_GC_THRESHOLDS, strict=True)))
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


def _write_pdf(html: str, fetcher: AllowListFetcher, pin: contextlib.AbstractContextManager[None]) -> object:
    """WeasyPrint's layout and PDF output, translated errors."""
    import weasyprint

    try:
        document = weasyprint.HTML(
            string=html,
            # A fake base: relative URLs resolve under the asset origin, which only serves the allow-list.
            base_url=ASSET_BASE,
            url_fetcher=fetcher,
            media_type="print",
        ).render()
        with pin, warnings.catch_warnings():
            # WeasyPrint 70 opens its bundled sRGB2014.icc for the PDF/A output intent and never
            # closes it (weasyprint/pdf/__init__.py, ColorProfile(files(...).open('rb'))); CPython
            # closes it on collection, but with warnings as errors the ResourceWarning would
            # surface as an unraisable exception. Ignore exactly that category, only here.
            warnings.simplefilter("ignore", ResourceWarning)
            return document.write_pdf(pdf_variant=PDF_VARIANT, uncompressed_pdf=False)
    except RenderError:
        raise
    except Exception as exc:  # WeasyPrint raises many unrelated types; translate where it enters.
        raise RenderError(f"PDF rendering failed: {exc}", hint="report this with the input package") from exc


def render_pdf(report: ReportInput, *, page_size: str = "A4", fetcher: AllowListFetcher | None = None) -> bytes:
    """The report as PDF bytes: same input, same bytes.

    ``fetcher`` exists for tests that count refused URLs; it must be an :class:`AllowListFetcher`.
    This report's chart images are added to its allow-list.
    """
    document_input = render_print_document(report, page_size=page_size)
    if fetcher is None:
        fetcher = report_fetcher()
    fetcher.allow(document_input.assets)
    epoch = int(parse_timestamp(report.generated_at).timestamp())  # checked by ReportInput
    pin = contextlib.nullcontext() if harfbuzz_subset_available() else source_date_epoch(epoch)
    with layout_collector():
        data = _write_pdf(document_input.html, fetcher, pin)
    if not isinstance(data, bytes):  # pragma: no cover - write_pdf() without target returns bytes
        raise RenderError("WeasyPrint returned no PDF bytes")
    return data
