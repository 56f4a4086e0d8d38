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


#: Young-generation threshold while WeasyPrint runs (CPython's default is 700).
LAYOUT_GC_THRESHOLD = 10_000


@contextlib.contextmanager
def layout_collector() -> Iterator[None]:
    """Keep the cycle collector off the caller's heap while WeasyPrint runs, then restore it.

    WeasyPrint allocates millions of short-lived objects; with CPython's default thresholds the
    collector ran ~520 young, ~48 middle and 3 full collections during the demo report's render,
    and each full one walked the whole process heap: in ``evidence demo`` that heap holds the
    collected tenant (~420,000 objects), which made garbage collection 0.9 s of a 3.5 s render.
    ``gc.freeze()`` moves the objects that exist now out of the collector's sight (CPython's own
    answer for large long-lived heaps), and a larger young threshold collects the render's
    garbage in fewer passes. On the way out, one collection while the caller's heap is still
    frozen frees the render's own cyclic garbage (it walks only the objects made since), so
    back-to-back renders do not pile up garbage; cyclic garbage the caller left behind is freed
    after ``unfreeze``, not during the render. A freeze someone else holds is left alone.
    """
    threshold = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(max(threshold[0], LAYOUT_GC_THRESHOLD), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if freeze:
            gc.collect()
            gc.unfreeze()


def _write_pdf(html: str, fetcher: AllowListFetcher, pin: contextlib.AbstractContextManager[None]) -> object:
    """WeasyPrint's layout and PDF output. Its document dies with this frame, so the collection at
    the end of :func:`layout_collector` can free it."""
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
