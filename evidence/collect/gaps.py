"""Turning failed calls into gap records, in one place.

Exception types are not uniform across the Azure SDKs (measured: ``DecodeError`` vs
``DeserializationError`` vs a raw ``json.JSONDecodeError``; Logs answers 404 with a plain
``HttpResponseError``), so everything is translated here where it enters, and the rest of the tool
only ever sees ``Gap`` values.
"""

from __future__ import annotations

import json

from evidence.domain import Gap
from evidence.errors import ReplayError


def gap_from_exception(collector: str, scope: str, exc: BaseException, *, at: str) -> Gap | None:
    """Return the gap ``exc`` stands for, or None when ``exc`` is not a collection failure.

    A ``ReplayError`` (the recording has no answer) is not evidence about the tenant: it means the
    recording does not fit this run, so it is re-raised and stops the run with a clear message.
    """
    if isinstance(exc, ReplayError):
        return None
    try:
        from azure.core.exceptions import (
            AzureError,
            DecodeError,
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )
    except ImportError:  # pragma: no cover - azure-core is a hard dependency
        raise
    status: int | None = None
    code: str | None = None
    if isinstance(exc, HttpResponseError):
        status = exc.status_code
        error = getattr(exc, "error", None)
        code = getattr(error, "code", None) or _code_from_response(exc)
        message = _first_line(getattr(error, "message", None) or exc.message or str(exc))
        if isinstance(exc, DecodeError) or (status is not None and 200 <= status < 300):
            code = code or "MalformedResponse"
    elif isinstance(exc, ServiceRequestError | ServiceResponseError):
        code = "Timeout" if "timeout" in str(exc).lower() else "ConnectionError"
        message = _first_line(str(exc))
    elif isinstance(exc, AzureError):
        code = type(exc).__name__
        message = _first_line(str(exc))
    elif isinstance(exc, json.JSONDecodeError | ValueError):
        code = "MalformedResponse"
        message = f"response body could not be decoded: {_first_line(str(exc))}"
    elif isinstance(exc, KeyError | TypeError | AttributeError):
        # azure-ai-ml's entity converters fail this way on bodies they do not expect.
        code = "UnexpectedResponseShape"
        message = f"the SDK could not read the response: {type(exc).__name__}: {_first_line(str(exc))}"
    else:
        return None
    return Gap(collector=collector, scope=scope, status=status, error_code=code, message=message, at=at)


def _code_from_response(exc: object) -> str | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    try:
        body = json.loads(response.text())
    except (ValueError, TypeError, AttributeError):
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
        return str(code) if code else None
    return None


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:500]
