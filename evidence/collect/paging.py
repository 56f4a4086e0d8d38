"""Paging an SDK list operation without building its objects: each page as a parsed JSON object.

A generated list operation (``role_assignments.list_for_scope``, azure-ai-ml's
``models.list``, ``online_deployments.list``, ...) returns an ``ItemPaged`` built from two
functions: ``get_next(link)``, which makes the request for a page (the operation's own request
builder, api-version, ``nextLink`` handling, client pipeline and error map), and
``extract_data``, which turns the page into model objects (azure-ai-ml then builds its entities
from those). The collectors keep the raw responses (the tap) and normalise records from them, so
the objects were built only to be thrown away: on the large benchmark profile about a fifth of
the client's CPU (issue 7). ``raw_pages`` drives ``get_next`` the way ``ItemPaged`` does, and
skips ``extract_data``: the same requests, in the same order, failing with the same exceptions.

The page is the JSON the pipeline's ``ContentDecodePolicy`` already parsed, so nothing is parsed
twice. ``ItemPaged`` keeps its functions in ``_args`` (azure-core 1.x); if that moves, the
``AttributeError`` becomes an ``UnexpectedResponseShape`` gap, never silence.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

#: Where azure-core's ``ContentDecodePolicy`` leaves the parsed body (its ``CONTEXT_NAME``).
_DESERIALIZED = "deserialized_data"


def raw_pages(pager: Any) -> Iterator[dict[str, Any]]:
    """Every page of ``pager`` (an SDK ``ItemPaged``), first to last, as parsed JSON objects.

    Stops at a page without ``nextLink``, as ``ItemPaged`` does. A ``nextLink`` seen before (the
    SDK would ask for it forever) raises ``TypeError`` after the pages read so far: the list may be
    incomplete, so it must be a gap, not a quiet stop. A page that is not a JSON object, or whose
    ``value`` is not a list, raises ``TypeError`` too (the SDK's deserializer fails on it), which
    the collector's attempt turns into an ``UnexpectedResponseShape`` gap.
    """
    get_next = pager._args[0]
    link: str | None = None
    seen: set[str] = set()
    while True:
        pipeline_response = get_next(link)
        page = page_json(pipeline_response)
        items = page.get("value")
        if items is not None and not isinstance(items, list):
            raise TypeError(f"a list page's value is a {type(items).__name__}, not a list")
        yield page
        next_link = page.get("nextLink") or None
        if next_link is None:
            return
        if next_link in seen:
            raise TypeError(f"the service returned the same nextLink again after {len(seen) + 1} pages: {next_link}")
        seen.add(next_link)
        link = next_link


def raw_items(pager: Any) -> Iterator[dict[str, Any]]:
    """The objects in ``value`` on every page of ``pager`` (anything else in the list is skipped)."""
    for page in raw_pages(pager):
        for item in page.get("value") or ():
            if isinstance(item, dict):
                yield item


def page_json(pipeline_response: Any) -> dict[str, Any]:
    """The response body as a JSON object: the pipeline's parse when it made one, else parsed here.

    The pipeline skips parsing for a body it does not take for JSON (no or another content type);
    such a body is parsed here and, if it is not JSON, raises ``ValueError`` (a
    ``MalformedResponse`` gap), as the SDK's own ``response.json()`` would.
    """
    from evidence.collect.store import parse_json

    page = pipeline_response.context.get(_DESERIALIZED)
    if not isinstance(page, dict):
        response = pipeline_response.http_response
        body = response.read() if hasattr(response, "read") else response.body()
        page = parse_json(bytes(body or b""))
    if not isinstance(page, dict):
        raise TypeError(f"a list page is a JSON {type(page).__name__}, not an object")
    return page
