"""Render stage: golden HTML, PDF structure, determinism, and hostile tenant values.

Regenerate the golden file after an intended template change with:

    EVIDENCE_UPDATE_GOLDEN=1 pytest tests/test_render.py -k golden

and review the diff of tests/golden/report.html like any other code change.
"""

from __future__ import annotations

import dataclasses
import gc
import io
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from evidence.render import RenderError, ReportInput, charts, render_html, render_pdf
from evidence.render.context import OTHER_CHART_CAP, ROW_CAP, build_context, model_ref, pointer_label, scope_label
from evidence.render.fetcher import AllowListFetcher, bundled_resources, report_fetcher
from evidence.render.html import render_document, render_print_document
from evidence.render.interface import ASSET_BASE
from evidence.render.pdf import LAYOUT_GC_THRESHOLDS, layout_collector, source_date_epoch
from evidence.render.sample import EP, WS, sample_report
from evidence.render.templates import template_dirs
from evidence.sign.package_signature import verify_instructions

GOLDEN = Path(__file__).parent / "golden" / "report.html"


# -- fixtures -------------------------------------------------------------------------------------
class _Counter(BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.end_headers()
        self.wfile.write(b"body{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def counting_server() -> Iterator[ThreadingHTTPServer]:
    """A local HTTP server that counts every request made to it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    server.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def sample() -> ReportInput:
    return sample_report()


@pytest.fixture(scope="module")
def sample_pdf(sample: ReportInput) -> bytes:
    return render_pdf(sample)


def _pages(pdf: bytes) -> list[str]:
    return [page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages]


def _squash(text: str) -> str:
    """Text without whitespace: table cells wrap long values across lines."""
    return re.sub(r"\s+", "", text)


def empty_report(**overrides: Any) -> ReportInput:
    base: dict[str, Any] = {
        "kind": "access-review",
        "title": "Empty",
        "organisation": "Contoso Ltd",
        "scope": {"subscriptions": [], "workspaces": [], "registries": []},
        "window": {"start": "2025-01-01T00:00:00Z", "end": "2025-04-01T00:00:00Z"},
        "generated_at": "2025-04-01T00:00:00Z",
        "tool_version": "0.1.0",
        "package_id": "ab" * 32,
        "signer": None,
        "records": {},
    }
    base.update(overrides)
    return ReportInput(**base)


# -- HTML -----------------------------------------------------------------------------------------
def test_golden_html(sample: ReportInput) -> None:
    html = render_html(sample)
    if os.environ.get("EVIDENCE_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(html, encoding="utf-8")
    assert GOLDEN.is_file(), "no golden file: run with EVIDENCE_UPDATE_GOLDEN=1"
    assert html == GOLDEN.read_text(encoding="utf-8")


def test_html_is_self_contained_and_deterministic(sample: ReportInput) -> None:
    html = render_html(sample)
    assert html == render_html(sample)
    assert "default-src 'none'; style-src 'unsafe-inline'; img-src data:" in html, "the CSP must forbid remote loads"
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()
    assert "@font-face" not in html  # fonts are served only to WeasyPrint; the CSP would block them
    # No attribute points anywhere but an in-page anchor (the XSS sample's URL is escaped text).
    assert not re.search(r"""<[^<>]*\s(?:src|href|action|data)\s*=\s*(?!["']?#)""", html)
    assert set(re.findall(r'xmlns="([^"]+)"', html)) == {"http://www.w3.org/2000/svg"}
    # serving timeline + requests and 5xx share for blue (from its RequestsPerMinute) + endpoint P99
    assert html.count("<svg") == 4


def test_html_shows_sections_in_auditor_order(sample: ReportInput) -> None:
    html = render_html(sample)
    order = [
        'id="cover"',
        'id="summary"',
        'id="control-index"',
        'id="controls"',
        'id="control-AC-1"',
        'id="inventory"',
        'id="inv-models"',
        'id="inv-roles"',
        'id="inv-activity"',
        'id="inv-metrics"',
        'id="appendix"',
        "sha256sum -c manifest-sha256.txt",
    ]
    positions = [html.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert "Signed with the public INSECURE demo key" in html
    assert "data/records/role_assignments.jsonl" in html and "09" * 32 in html


@pytest.mark.parametrize("attack", ["<img src=http://127.0.0.1:1/x>", "<script>alert(1)</script>"])
def test_xss_in_tags_is_text_in_html(sample: ReportInput, attack: str) -> None:
    html = render_html(sample)
    assert attack not in html
    assert attack.replace("<", "&lt;").replace(">", "&gt;") in html


def test_empty_input_says_not_collected_never_pass() -> None:
    html = render_html(empty_report())
    assert html.count("Not collected") >= 5
    assert "No controls were assessed" in html
    assert "not assessed" in html
    assert "Unsigned." in html
    assert "<tbody>\n    </tbody>" not in html and "<tbody></tbody>" not in html


def test_collected_but_empty_kind_says_zero_records() -> None:
    html = render_html(empty_report(records={"role_assignments": []}))
    assert "Collected, with no role assignments in scope (0 records)." in html


def test_findings_for_an_undeclared_control_are_shown(sample: ReportInput) -> None:
    report = dataclasses.replace(
        sample,
        controls=(),
        findings=[{"control_id": "X-9", "status": "error", "severity": "low", "subject": "s", "message": "m"}],
    )
    html = render_html(report)
    assert 'id="control-X-9"' in html and "No description was supplied" in html


def test_long_tables_are_capped_in_print_with_a_pointer_to_the_csv(sample: ReportInput) -> None:
    roles = [
        {
            "assignment_id": f"/ra/{i}",
            "scope": WS,
            "inherited": False,
            "principal_id": f"p-{i:04d}",
            "principal_type": "User",
            "role_name": "Reader" if i % 10 else "Owner",
            "created_on": "2025-01-01T00:00:00Z",
        }
        for i in range(250)
    ]
    flagged = {"control_id": "AC-1", "status": "fail", "severity": "high", "subject": "/ra/249", "message": "x"}
    records = {**sample.records, "role_assignments": roles}
    report = dataclasses.replace(
        sample,
        records=records,
        findings=[*sample.findings, flagged],
        evidence_files=[("data/records/role_assignments.csv", "cd" * 32)],
    )
    ctx = build_context(report, "print")
    table = ctx["role_assignments"]
    assert len(table.rows) == ROW_CAP["print"] and table.total == 250
    # the finding's subject first, then privileged (Owner) rows, then the rest
    assert table.rows[0]["principal_id"] == "p-0249" and table.rows[0]["flagged"]
    assert [r["role_name"] for r in table.rows[1:26]] == ["Owner"] * 25
    html = render_document(report, media="print")
    cap = ROW_CAP["print"]
    hidden = 250 - cap
    csv = "<code>data/records/role_assignments.csv</code>"
    assert f"Showing {cap} of 250 role assignments; {hidden} more are in {csv}" in html
    assert "cd" * 32 in html
    # the summary says up front that the PDF's table is an excerpt, and which table
    assert ctx["shortened"] == [{"label": "Role assignments", "shown": cap, "total": 250}]
    assert f"1 table in this PDF lists only its first rows:</strong>\nRole assignments ({cap} of 250)." in html
    assert len(build_context(report, "screen")["role_assignments"].rows) == 250
    assert build_context(report, "screen")["shortened"] == []
    assert "only its first rows" not in render_document(report, media="screen")


def test_summary_names_no_cut_table_when_nothing_is_cut(sample: ReportInput) -> None:
    for media in ("print", "screen"):
        assert build_context(sample, media)["shortened"] == []
        assert "first rows:" not in render_document(sample, media=media)


def test_bad_input_is_a_render_error(sample: ReportInput) -> None:
    with pytest.raises(RenderError, match="unknown report kind"):
        dataclasses.replace(sample, kind="quarterly")
    with pytest.raises(RenderError, match="page size"):
        render_pdf(sample, page_size="A3")
    with pytest.raises(RenderError, match="window"):
        dataclasses.replace(sample, window={"start": "2025-01-01T00:00:00Z"})


def test_templates_are_found() -> None:
    assert template_dirs(), "templates/ must be found next to or inside the package"


# -- PDF ------------------------------------------------------------------------------------------
def test_pdf_structure(sample_pdf: bytes, sample: ReportInput) -> None:
    pages = _pages(sample_pdf)
    n = len(pages)
    assert n >= 6
    assert _squash(sample.title) in _squash(pages[0])
    assert "INSECURE demo key" in pages[0] and sample.package_id in pages[0]
    assert "Contents" in pages[1]
    for i, text in enumerate(pages, start=1):
        assert f"Page {i} of {n}" in text
        if i > 1:  # running header carries the package ID on every page after the cover
            assert f"Package {sample.package_id}" in text
    joined = "\n".join(pages)
    for heading in ("1. Summary", "2. Control index", "3. Controls", "4. Inventory", "5. Appendix"):
        assert heading in joined
    # The control index gives the page each control's section starts on (target-counter).
    index_page = next(t for t in pages if "2. Control index" in t and "Page" in t and "MG-1" in t)
    for control_id, title in (("AC-1", "No direct user Owner"), ("MG-2", "Deployments are written")):
        row = re.search(rf"{control_id} .*?(\d+)\s*$", index_page, re.M)
        assert row, index_page
        target = int(row.group(1))
        assert f"{control_id} {title}" in pages[target - 1]


def test_pdf_is_deterministic_and_pdfa(sample: ReportInput, sample_pdf: bytes) -> None:
    assert render_pdf(sample) == sample_pdf
    reader = PdfReader(io.BytesIO(sample_pdf))
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data()
    assert b'pdfaid:part="3" pdfaid:conformance="B"' in xmp
    assert reader.metadata is not None and reader.metadata["/CreationDate"].startswith("D:20250401060000")


def test_pdf_letter_size(sample: ReportInput) -> None:
    box = PdfReader(io.BytesIO(render_pdf(sample, page_size="Letter"))).pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (612, 792)


def test_pdf_makes_no_requests_and_xss_stays_text(sample: ReportInput, counting_server: ThreadingHTTPServer) -> None:
    port = counting_server.server_address[1]
    attack_img = f"<img src=http://127.0.0.1:{port}/img.png>"
    attack_css = f'<link rel=stylesheet href="http://127.0.0.1:{port}/a.css">'
    models = [dict(r) for r in sample.records["model_versions"]]
    models[0] = {**models[0], "tags": {"note": attack_img, "x": attack_css, "y": "<script>alert(1)</script>"}}
    report = dataclasses.replace(sample, records={**sample.records, "model_versions": models})
    fetcher = report_fetcher()
    text = _squash("\n".join(_pages(render_pdf(report, fetcher=fetcher))))
    assert counting_server.hits == []  # type: ignore[attr-defined]
    assert fetcher.refused == []  # nothing even tried to load
    assert _squash("<script>alert(1)</script>") in text
    assert _squash(attack_img) in text and _squash(attack_css) in text


def test_fetcher_refuses_hostile_html(counting_server: ThreadingHTTPServer, tmp_path: Path) -> None:
    """Second wall: even raw hostile HTML (not our escaped templates) cannot fetch or attach."""
    import weasyprint

    port = counting_server.server_address[1]
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    hostile = (
        f'<link rel=stylesheet href="http://127.0.0.1:{port}/a.css">'
        f'<style>@import url("http://127.0.0.1:{port}/b.css");'
        f' body {{ background: url("http://127.0.0.1:{port}/bg.png") }}</style>'
        f'<img src="http://127.0.0.1:{port}/i.png"><img src="{secret.as_uri()}">'
        f'<link rel="attachment" href="{secret.as_uri()}">'
        '<p style="font-family: Report Sans">x</p>'
    )
    css = '@font-face { font-family: "Report Sans"; src: url("https://assets.evidence.invalid/fonts/DejaVuSans.ttf"); }'
    fetcher = report_fetcher()
    pdf = weasyprint.HTML(
        string=f"<style>{css}</style>{hostile}", base_url="about:blank", url_fetcher=fetcher
    ).write_pdf()
    assert counting_server.hits == []  # type: ignore[attr-defined]
    assert b"TOP-SECRET" not in pdf
    assert any(u.startswith("file:") for u in fetcher.refused)
    assert sum(u.startswith("http://127.0.0.1") for u in fetcher.refused) == 4
    assert fetcher.served == ["https://assets.evidence.invalid/fonts/DejaVuSans.ttf"]


def test_fetcher_serves_only_the_allow_list() -> None:
    fetcher = AllowListFetcher(bundled_resources())
    url = next(iter(bundled_resources()))
    assert fetcher.fetch(url).read()[:4] == b"\x00\x01\x00\x00"  # a TrueType file
    with pytest.raises(ValueError, match="refused"):
        fetcher.fetch("data:text/plain,hello")
    assert fetcher.refused == ["data:text/plain,hello"]


def test_pdf_charts_are_images_served_only_from_memory(sample: ReportInput) -> None:
    """Print charts are <img>s of in-memory SVGs (cheaper for WeasyPrint); the HTML keeps them inline."""
    document = render_print_document(sample)
    assert "<svg" not in document.html and document.assets
    for url, (data, mime) in document.assets.items():
        assert url.startswith(f"{ASSET_BASE}charts/") and data.startswith(b"<svg") and mime == "image/svg+xml"
        assert f'src="{url}"' in document.html
    assert render_html(sample).count("<svg") == len(document.assets)
    fetcher = report_fetcher()
    render_pdf(sample, fetcher=fetcher)
    assert fetcher.refused == [] and set(document.assets) <= set(fetcher.served)
    with pytest.raises(ValueError, match="not an asset URL"):
        fetcher.allow({"http://127.0.0.1/x.svg": (b"<svg/>", "image/svg+xml")})


def test_empty_report_renders_to_pdf() -> None:
    text = "\n".join(_pages(render_pdf(empty_report())))
    assert "Not collected" in text and "Unsigned" in text


def test_pdf_renders_to_png(sample_pdf: bytes, tmp_path: Path) -> None:
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    (tmp_path / "r.pdf").write_bytes(sample_pdf)
    subprocess.run(
        ["pdftoppm", "-r", "40", "-png", "-f", "1", "-l", "3", str(tmp_path / "r.pdf"), str(tmp_path / "p")],
        check=True,
        timeout=60,
    )
    pngs = sorted(tmp_path.glob("p-*.png"))
    assert len(pngs) == 3 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_source_date_epoch_context_restores_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    with source_date_epoch(42):
        assert os.environ["SOURCE_DATE_EPOCH"] == "42"
    assert "SOURCE_DATE_EPOCH" not in os.environ
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "7")
    with source_date_epoch(42):
        pass
    assert os.environ["SOURCE_DATE_EPOCH"] == "7"


def test_layout_collector_restores_the_collector_thresholds() -> None:
    threshold = gc.get_threshold()
    with layout_collector():
        during = gc.get_threshold()
        assert all(d >= max(t, m) for d, t, m in zip(during, threshold, LAYOUT_GC_THRESHOLDS, strict=True))
    assert gc.get_threshold() == threshold
    with pytest.raises(RuntimeError), layout_collector():
        raise RuntimeError("render failed")
    assert gc.get_threshold() == threshold


# -- charts and helpers ---------------------------------------------------------------------------
def test_line_chart_is_deterministic_escaped_and_downsampled() -> None:
    points = [(f"2025-03-01T{h:02d}:{m:02d}:00Z", float((h * 60 + m) % 97)) for h in range(24) for m in range(60)]
    kwargs: dict[str, Any] = {
        "title": "<b>p99</b>",
        "unit": "ms",
        "start": "2025-03-01T00:00:00Z",
        "end": "2025-03-02T00:00:00Z",
        "markers": [charts.Marker("2025-03-01T12:00:00Z", "<script>x</script>")],
    }
    svg = charts.line_chart(points, **kwargs)
    assert svg == charts.line_chart(list(reversed(points)), **kwargs)
    assert "<b>" not in svg and "<script>" not in svg and "&lt;script&gt;" in svg
    polyline = re.search(r'points="([^"]+)"', svg)
    assert polyline and len(polyline.group(1).split()) <= charts.MAX_POINTS
    assert "no data points" in charts.line_chart([], **kwargs)


def test_timeline_chart_lanes() -> None:
    bars = [
        charts.Bar("ep/blue", "2025-03-01T00:00:00Z", "2025-03-20T00:00:00Z", "m:3", 100),
        charts.Bar("ep/green", "2025-03-20T00:00:00Z", None, "m:4", 10),
    ]
    svg = charts.timeline_chart(bars, title="t", start="2025-03-01T00:00:00Z", end="2025-04-01T00:00:00Z")
    assert svg.count("<rect") == 2 and "m:4 10%" in svg


def test_helpers() -> None:
    assert model_ref(f"{WS}/models/credit-score/versions/4") == "credit-score:4"
    assert scope_label(WS) == "workspace mlw-contoso-prod"
    assert scope_label("/subscriptions/s/resourceGroups/rg") == "resource group rg"
    assert scope_label("/subscriptions/s") == "subscription s"
    assert scope_label(f"{EP}") == "onlineEndpoints credit-score"


def test_access_review_lists_access_changes_and_sign_off(sample: ReportInput) -> None:
    grant = {
        "event_id": "ev-ra",
        "timestamp": "2025-03-15T09:00:00Z",
        "operation": "Microsoft.Authorization/roleAssignments/delete",
        "status": "Succeeded",
        "caller": "alice@contoso.example",
        "resource_id": f"{WS}/providers/Microsoft.Authorization/roleAssignments/ra-owner-alice",
    }
    records = {**sample.records, "activity_events": [*sample.records["activity_events"], grant]}
    html = render_html(dataclasses.replace(sample, kind="access-review", records=records))
    assert html.index('id="inv-roles"') < html.index('id="inv-models"')  # access first in an access review
    assert "workspace mlw-contoso-prod / ra-owner-alice" in html and "removed" in html
    assert 'id="inv-signoff"' in html
    assert 'id="inv-signoff"' not in render_html(sample)


def test_unparsable_timestamps_are_refused_or_skipped(sample: ReportInput) -> None:
    with pytest.raises(RenderError, match="generated_at is not an ISO 8601"):
        dataclasses.replace(sample, generated_at="yesterday")
    svg = charts.line_chart(
        [("not a time", 1.0), ("2025-03-02T00:00:00Z", float("nan")), ("2025-03-03T00:00:00Z", 2.0)],
        title="t",
        unit="",
        start="2025-03-01T00:00:00Z",
        end="2025-04-01T00:00:00Z",
        markers=[charts.Marker("garbage", "x")],
    )
    assert svg.count("<circle") == 1 and "stroke-dasharray" not in svg


def test_weasyprint_logs_nothing_for_our_templates(caplog: pytest.LogCaptureFixture) -> None:
    """An unsupported CSS property or a refused asset shows up as a WeasyPrint log line."""
    with caplog.at_level("WARNING", logger="weasyprint"):
        render_pdf(empty_report())
    assert [r.getMessage() for r in caplog.records if r.name.startswith("weasyprint")] == []


# -- audit of issue #5: what the report shows ------------------------------------------------------
def test_serving_timeline_unknown_share_and_model_are_not_drawn_as_zero() -> None:
    svg = charts.timeline_chart(
        [
            charts.Bar("ep/blue", "2025-03-01T00:00:00Z", "2025-03-02T00:00:00Z", "", None),
            charts.Bar("ep/blue", "2025-03-02T00:00:00Z", None, "credit-score:3", 90.0),
        ],
        title="t",
        start="2025-03-01T00:00:00Z",
        end="2025-04-01T00:00:00Z",
    )
    assert "model ? share ?" not in svg  # one day of 31 is ~12 px: too narrow for any label
    assert " 0%" not in svg and "credit-score:3 90%" in svg
    assert 'fill="#8a8f99"' in svg  # the unknown segment is grey


def test_timeline_labels_are_cut_to_their_bar() -> None:
    long = "a-model-with-a-very-long-name:12"
    svg = charts.timeline_chart(
        [
            charts.Bar("ep/blue", "2025-03-01T00:00:00Z", "2025-03-05T00:00:00Z", long, 10.0),
            charts.Bar("ep/blue", "2025-03-05T00:00:00Z", None, "m:2", 90.0),
        ],
        title="t",
        start="2025-03-01T00:00:00Z",
        end="2025-04-01T00:00:00Z",
    )
    assert long not in svg and "…" in svg  # cut with an ellipsis, never printed over the next bar
    assert "m:2 90%" in svg


def _metric(deployment: str, metric: str, value: float, status: str | None = None) -> dict[str, Any]:
    dims = {"deployment": deployment, **({"statusCodeClass": status} if status else {})}
    return {
        "resource_id": EP,
        "metric": metric,
        "aggregation": "Average",
        "unit": "Count",
        "interval": "PT1H",
        "dimensions": dims,
        "points": [{"timestamp": f"2025-03-{d:02d}T00:00:00Z", "value": value} for d in range(1, 11)],
    }


def test_metrics_chart_requests_5xx_share_and_p99_per_deployment_first(sample: ReportInput) -> None:
    rows = [
        _metric("blue", "RequestsPerMinute", 90.0, "2xx"),
        _metric("blue", "RequestsPerMinute", 10.0, "5xx"),
        _metric("blue", "RequestLatency_P99", 120.0),
        {**_metric("blue", "CpuUtilizationPercentage", 40.0), "resource_id": f"{EP}/deployments/blue"},
    ]
    ctx = build_context(dataclasses.replace(sample, records={**sample.records, "metrics": rows}), "print")
    titles = [c["title"] for c in ctx["metrics"]["charts"]]
    assert titles[:3] == [
        "credit-score/blue: requests per minute",
        "credit-score/blue: 5xx share of requests",
        "credit-score/blue: P99 latency",
    ]
    assert [c["group"] for c in ctx["metrics"]["charts"]] == ["service"] * 3 + ["other"]
    share = ctx["metrics"]["charts"][1]["svg"]
    assert ">10</text>" in share  # 10 of 100 requests per minute: the axis tops out at 10 %
    requests = ctx["metrics"]["charts"][0]["svg"]
    assert ">100</text>" in requests  # the status classes are summed
    assert ctx["metrics"]["series_total"] == 4


def test_5xx_share_without_a_status_class_split_is_unknown_not_zero(sample: ReportInput) -> None:
    rows = [_metric("blue", "RequestsPerMinute", 90.0)]
    ctx = build_context(dataclasses.replace(sample, records={**sample.records, "metrics": rows}), "print")
    share = next(c for c in ctx["metrics"]["charts"] if "5xx" in c["title"])
    assert share["points"] == 0 and "no data points in the window" in share["svg"]


def test_role_assignments_name_the_workspace_an_inherited_assignment_reaches(sample: ReportInput) -> None:
    base = {
        "assignment_id": "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/ra-1",
        "principal_id": "p-1",
        "principal_type": "Group",
        "role_name": "Owner",
        "scope": "/subscriptions/s",
        "inherited": True,
    }
    rows = [{**base, "workspace_id": f"{WS}-a"}, {**base, "workspace_id": f"{WS}-b"}]
    html = render_html(dataclasses.replace(sample, records={**sample.records, "role_assignments": rows}))
    roles = html[html.index('id="inv-roles"') : html.index('id="inv-access-changes"')]
    assert "mlw-contoso-prod-a" in roles and "mlw-contoso-prod-b" in roles
    assert roles.count("(inherited)") == 2


def test_evidence_pointers_are_shortened_for_the_table() -> None:
    arm = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ML/workspaces/w/models/m/versions/3"
    assert pointer_label(f"asset_id={arm}", arm) == "asset_id = subject"
    assert pointer_label(f"deployment_id={arm}", "other") == "deployment_id=…/models/m/versions/3"
    assert pointer_label("/controls/0", "x") == "/controls/0"


def test_verify_steps_are_the_commands_of_verify_txt(sample: ReportInput) -> None:
    signer = {**dict(sample.signer or {}), "algorithm": "ed25519"}
    html = render_html(dataclasses.replace(sample, signer=signer))
    appendix = html[html.index('id="app-verify"') :]
    verify_txt = verify_instructions("PACKAGE", str(signer["fingerprint"]), algorithm="ed25519")
    commands = [
        line.replace("&lt;", "<").replace("&#34;", '"')
        for block in re.findall(r'<pre class="commands">(.*?)</pre>', appendix, re.S)
        for line in block.splitlines()
    ]
    assert "evidence verify PACKAGE.zip --trust SIGNER_CERT_OR_KEY" in appendix
    package_id_and_fingerprint = {
        "grep -v '  data/report/' manifest-sha256.txt | sha256sum",
        'cut -d" " -f3- signature/allowed_signers | ssh-keygen -l -f -',
    }
    for command in commands:
        if command.replace("&#39;", "'") in package_id_and_fingerprint:
            continue
        assert command in verify_txt, command
    assert any(c.startswith("openssl pkeyutl -verify") for c in commands)  # the Ed25519 form
    assert any(c.startswith("ssh-keygen -Y verify") and "-I evidence-signer -n evidence-package" in c for c in commands)


def test_unsigned_report_has_no_signature_steps(sample: ReportInput) -> None:
    html = render_html(dataclasses.replace(sample, signer=None))
    appendix = html[html.index('id="app-verify"') :]
    assert "This package is unsigned" in appendix and "ssh-keygen" not in appendix


def test_window_coverage_flags_a_window_older_than_retention(sample: ReportInput) -> None:
    old = dataclasses.replace(sample, window={"start": "2024-10-01T00:00:00Z", "end": sample.window["end"]})
    rows = {c["source"]: c for c in build_context(old, "screen")["coverage"]}
    assert rows["Activity Log"]["covered"] == "no" and rows["Activity Log"]["retention_days"] == "90"
    fresh = {c["source"]: c for c in build_context(sample, "screen")["coverage"]}
    assert fresh["Activity Log"]["covered"] == "yes"


def test_capped_findings_name_the_csv_and_its_digest(sample: ReportInput) -> None:
    many = [
        {"control_id": "EV-01", "status": "pass", "severity": "info", "subject": f"/x/{i}", "message": "ok"}
        for i in range(ROW_CAP["print"] + 5)
    ]
    report = dataclasses.replace(
        sample, findings=many, evidence_files=[*sample.evidence_files, ("data/findings.csv", "ef" * 32)]
    )
    html = render_document(report, media="print")
    assert f"Showing {ROW_CAP['print']} of {ROW_CAP['print'] + 5} findings" in html
    assert 'data/findings.csv</code> (SHA-256 <code class="id">' + "ef" * 32 in html


def test_release_markers_come_from_the_serving_timeline_inside_the_window(sample: ReportInput) -> None:
    timeline = [
        {"endpoint_id": EP, "deployment_name": "blue", "traffic_percent": 100, "from": "2024-12-01T00:00:00Z"},
        {"endpoint_id": EP, "deployment_name": "green", "traffic_percent": None, "from": "2025-03-10T00:00:00Z"},
        {"endpoint_id": EP, "deployment_name": "blue", "traffic_percent": 80, "from": "2025-03-12T00:00:00Z"},
    ]
    report = dataclasses.replace(sample, records={**sample.records, "serving_timeline": timeline})
    svg = "".join(c["svg"] for c in build_context(report, "print")["metrics"]["charts"])
    assert ">green</text>" in svg and ">blue 80%</text>" in svg
    assert "None" not in svg and "blue 100%" not in svg  # unknown share unlabelled; pre-window start skipped


@pytest.mark.parametrize("kind", ["audit", "release", "access-review"])
def test_every_contents_entry_points_at_a_section(sample: ReportInput, kind: str) -> None:
    html = render_html(dataclasses.replace(sample, kind=kind))
    toc = html[html.index('id="contents"') : html.index("</nav>")]
    targets = re.findall(r'href="#([^"]+)"', toc)
    assert {"inv-models", "inv-roles", "inv-metrics", "app-verify"} <= set(targets)
    for target in targets:
        assert html.count(f'id="{target}"') == 1, target


def test_release_cover_names_the_model_and_version(sample: ReportInput) -> None:
    scope = {**dict(sample.scope), "model": "credit-score", "version": "4"}
    html = render_html(dataclasses.replace(sample, kind="release", scope=scope))
    cover = html[: html.index('id="contents"')]
    assert "Release close-out" in cover and "credit-score version 4" in cover


def test_inventory_counts_the_policys_privileged_roles(sample: ReportInput) -> None:
    default = build_context(sample, "screen")
    custom = build_context(dataclasses.replace(sample, privileged_roles=("Reader", "Owner")), "screen")
    assert "AzureML Data Scientist" in default["privileged_roles"]
    assert custom["privileged_roles"] == ["Owner", "Reader"]
    roles = {r["role_name"]: r["privileged"] for r in custom["role_assignments"].rows}
    assert roles.get("AzureML Data Scientist") is False and roles.get("Owner") is True


def test_print_keeps_every_service_chart_and_caps_the_other_series(sample: ReportInput) -> None:
    others = [
        {**_metric("blue", f"Series{i:02d}", 1.0), "resource_id": f"{EP}/deployments/blue", "dimensions": {}}
        for i in range(OTHER_CHART_CAP["print"] + 4)
    ]
    rows = [_metric("blue", "RequestsPerMinute", 90.0, "2xx"), _metric("blue", "RequestLatency_P99", 1.0), *others]
    report = dataclasses.replace(
        sample,
        records={**sample.records, "metrics": rows},
        evidence_files=[*sample.evidence_files, ("data/records/metrics.csv", "ab" * 32)],
    )
    printed = build_context(report, "print")["metrics"]
    assert [c["group"] for c in printed["charts"]] == ["service"] * 3 + ["other"] * OTHER_CHART_CAP["print"]
    assert printed["hidden"] == 4 and printed["series_total"] == len(rows)
    html = render_document(report, media="print")
    assert f"Showing {3 + OTHER_CHART_CAP['print']} of {3 + len(others)} charts" in html and "ab" * 32 in html
    assert build_context(report, "screen")["metrics"]["hidden"] == 0


def test_pdf_is_the_same_on_a_machine_without_system_fonts(sample_pdf: bytes, tmp_path: Path) -> None:
    # Only the bundled fonts may reach the PDF: a face the machine happens to have (an italic, a
    # fallback) would make the bytes depend on the machine. Render in a process whose fontconfig
    # knows no font at all, as in a slim container image, and compare.
    config = tmp_path / "fonts.conf"
    config.write_text(
        f'<?xml version="1.0"?><fontconfig><cachedir>{tmp_path / "cache"}</cachedir></fontconfig>', encoding="utf-8"
    )
    out = tmp_path / "report.pdf"
    script = (
        "import sys\n"
        "from evidence.render import render_pdf\n"
        "from evidence.render.sample import sample_report\n"
        "open(sys.argv[1], 'wb').write(render_pdf(sample_report()))\n"
    )
    env = {**os.environ, "FONTCONFIG_FILE": str(config)}
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script, str(out)], env=env, capture_output=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert out.read_bytes() == sample_pdf
