"""A deny-by-default URL fetcher for WeasyPrint: the renderer never touches the network or disk.

Threat model: report fields come from a tenant (tags, descriptions, caller names) and are attacker
controlled. Jinja autoescaping keeps them text, and this fetcher is the second wall: with
WeasyPrint's default fetcher, hostile HTML made 7 HTTP requests and embedded a local file as a PDF
attachment (``<link rel=attachment href=file:...>``; see
/work/shared/research/pdf-sign-bag-feasibility.md §1.5). Here every URL not in an in-memory
allow-list is refused, ``file:`` and ``data:`` included, and counted so tests can assert on it.

WeasyPrint 70 needs a ``URLFetcher`` subclass (old-style fetcher functions break), and segfaults
when no font is available at all (§5.1), so the bundled DejaVu fonts are served from memory here.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from weasyprint.urls import URLFetcher, URLFetcherResponse

from evidence.render.interface import ASSET_BASE

FONT_DIR = Path(__file__).resolve().parent.parent / "assets" / "fonts"

#: CSS family name -> (weight, file) of the fonts the print stylesheet declares.
BUNDLED_FONTS: tuple[tuple[str, str, str], ...] = (
    ("Report Sans", "normal", "DejaVuSans.ttf"),
    ("Report Sans", "bold", "DejaVuSans-Bold.ttf"),
    ("Report Mono", "normal", "DejaVuSansMono.ttf"),
)


class FetchRefused(ValueError):
    """Raised for every URL outside the allow-list (WeasyPrint logs it and carries on)."""


class AllowListFetcher(URLFetcher):  # type: ignore[misc]  # weasyprint ships no type hints
    """Serve only the given in-memory resources; refuse and record everything else."""

    def __init__(self, resources: Mapping[str, tuple[bytes, str]] | None = None) -> None:
        # allowed_protocols=() is belt and braces: even the base class would refuse every scheme.
        super().__init__(allowed_protocols=(), allow_redirects=False, timeout=1)
        self._resources = dict(resources or {})
        self.served: list[str] = []
        self.refused: list[str] = []

    def allow(self, resources: Mapping[str, tuple[bytes, str]]) -> None:
        """Add in-memory resources made for one report (its chart images) to the allow-list."""
        for url in resources:
            if not url.startswith(ASSET_BASE):  # our own URLs only: never widen to another origin
                raise ValueError(f"not an asset URL: {url[:200]}")
        self._resources.update(resources)

    def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
        resource = self._resources.get(url)
        if resource is None:
            self.refused.append(url)
            raise FetchRefused(f"fetch refused (not a bundled asset): {url[:200]}")
        body, mime = resource
        self.served.append(url)
        return URLFetcherResponse(url, body, {"Content-Type": mime})


@cache
def _font_bytes(name: str) -> bytes:
    return (FONT_DIR / name).read_bytes()


def font_url(file_name: str) -> str:
    return f"{ASSET_BASE}fonts/{file_name}"


def bundled_resources() -> dict[str, tuple[bytes, str]]:
    """The allow-list: the bundled fonts, by the URLs the print stylesheet uses."""
    return {font_url(name): (_font_bytes(name), "font/ttf") for _, _, name in BUNDLED_FONTS}


def report_fetcher() -> AllowListFetcher:
    return AllowListFetcher(bundled_resources())
