"""Redaction: remove secrets from URLs, headers and JSON before anything is written to disk.

One module for the recorder (cassettes) and the package writer (raw evidence), so both remove the
same things for the same reasons. Every function returns what it removed, so each redaction can be
listed in ``collection.json`` (file, RFC 6901 pointer, reason).

What counts as a secret, and the judgement calls:

* **Query parameters** that are credentials on their own (``sig``, ``code``, ``client_secret``,
  ``token``, ``access_token``, ...) are always redacted. The other SAS fields (``se``, ``st``,
  ``sv``, ``sp``, ``sr``, ``skoid``, ``sktid``, ...) are redacted only in a query that also
  carries ``sig``: alone they are ordinary parameter names (``sp`` or ``st`` could be anything),
  and ARM paging tokens (``$skiptoken``) must survive verbatim or paging stops replaying.
* **Key names.** A string value is redacted when its key's last word is ``secret``, ``password``,
  ``passwd``, ``pwd`` or ``token``, or ``key`` after another word (``primaryKey``,
  ``accountKey``, ``instrumentationKey``), or the name ends in ``connectionString``. Not
  redacted: a key named just ``key`` (tag lists are ``[{"key": ..., "value": ...}]``), names
  ending in other words (``keyVault``, ``keyName``, ``primaryKeyName``, ``keyVaultArmId``,
  ``tokenType``), paging tokens (``skipToken``, ``continuationToken``, ``nextPageToken``) and
  non-secret keys (``partitionKey``, ``rowKey``, ``publicKey``, ``idempotencyKey``). Non-string
  values under a secret name (``"hasPassword": true``, nested objects) are walked, not blanked.
  ``{"keyName": ..., "value": ...}`` pairs (storage ``listKeys``) have their ``value`` redacted.
* **Anywhere in any string** (including JSON text nested in a string, such as the Activity Log's
  ``properties.requestbody``): bearer tokens, JWT-shaped strings, secret query parameters of
  URLs, connection-string secrets (``AccountKey=``, ``SharedAccessKey=``, ``Password=``, ...)
  and ``"password": "..."``-style pairs.
* Dictionary *keys* are never rewritten: they are schema, and rewriting them would change the
  shape of the evidence.

The marker is ``REDACTED``. Redacting redacted output changes nothing and reports nothing, so the
recorder and the package writer can both run over the same data.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote_plus

REDACTED = "REDACTED"

# Reason codes: short and stable, they end up in collection.json and in tests.
SAS_SIGNATURE = "sas-signature"
SAS_FIELD = "sas-field"
SECRET_QUERY_PARAMETER = "secret-query-parameter"  # noqa: S105 - a reason code, not a secret
JWT = "jwt"
BEARER_TOKEN = "bearer-token"  # noqa: S105 - a reason code, not a secret
SECRET_KEY_NAME = "secret-key-name"  # noqa: S105 - a reason code, not a secret
CONNECTION_STRING = "connection-string"
PASSWORD = "password"  # noqa: S105 - a reason code, not a secret

#: Query parameters that are credentials by themselves.
SECRET_QUERY_PARAMS = frozenset({
    "sig", "code", "client_secret", "token", "access_token", "refresh_token", "id_token",
    "password", "pwd", "secret", "api_key", "apikey", "api-key", "subscription-key",
    "client_assertion", "assertion", "sas", "sastoken", "sharedaccesssignature",
})  # fmt: skip

#: The other fields of a SAS token; redacted only next to a ``sig``. ``skoid``/``sktid`` name the
#: user and tenant behind a user-delegation key; the rest pin down what the signature grants.
SAS_QUERY_FIELDS = frozenset({
    "se", "st", "sv", "sp", "sr", "spr", "si", "sip", "ss", "srt", "sdd", "skoid", "sktid", "skt",
    "ske", "sks", "skv", "saoid", "suoid", "scid", "ses",
})  # fmt: skip

#: Response headers worth keeping: they drive retries, long-running operations and provenance.
#: Everything else (Set-Cookie, tokens, ``x-ms-client-*`` echoes, server fingerprints) is dropped.
RESPONSE_HEADER_ALLOWLIST = frozenset({
    "content-type", "retry-after", "x-ms-retry-after-ms", "location", "azure-asyncoperation",
    "x-ms-request-id", "x-ms-ratelimit-remaining-subscription-reads",
})  # fmt: skip

#: Request headers kept in recordings: never Authorization, cookies or client ids.
REQUEST_HEADER_ALLOWLIST = frozenset({"accept", "content-type"})

_SECRET_LAST_WORDS = frozenset({"secret", "password", "passwd", "pwd", "token"})
_NON_SECRET_KEY_QUALIFIERS = frozenset({"partition", "row", "sort", "public", "idempotency", "foreign"})
_NON_SECRET_TOKEN_QUALIFIERS = frozenset({
    "skip", "continuation", "next", "page", "paging", "sync", "resume", "cancellation", "max", "num",
})  # fmt: skip
_SINGLE_WORD_SECRETS = frozenset({"secret", "password", "passwd", "pwd", "token", "sastoken", "apikey"})


def _words(name: str) -> list[str]:
    """Split ``primaryKey`` / ``primary_key`` / ``primary-key`` / ``$skipToken`` into lower words."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return [w for w in re.split(r"[\s_\-.$]+", spaced.lower()) if w]


@functools.lru_cache(maxsize=8192)
def is_secret_key(name: str) -> bool:
    """Whether a JSON member called ``name`` holds a secret (see the module docstring).

    Cached: a pure function of the name, and an Activity Log page repeats the same few dozen member
    names for every event (issue 7: redaction was most of a large collection's CPU).
    """
    words = _words(name)
    if not words:
        return False
    if len(words) == 1:
        return words[0] in _SINGLE_WORD_SECRETS
    last, qualifiers = words[-1], set(words[:-1])
    if words[-2:] == ["connection", "string"]:
        return True
    if last == "key":
        return not qualifiers & _NON_SECRET_KEY_QUALIFIERS
    if last == "token":
        return not qualifiers & _NON_SECRET_TOKEN_QUALIFIERS
    return last in _SECRET_LAST_WORDS


# ------------------------------------------------------------------------------------- queries
def _redact_query(query: str) -> tuple[str, list[str]]:
    """Redact secret parameters of a raw query string, leaving every other byte as it was."""
    if not query:
        return query, []
    pairs = query.split("&")
    names = [_unquote_name(p.partition("=")[0]) for p in pairs]
    is_sas = "sig" in names
    reasons: list[str] = []
    out: list[str] = []
    for pair, name in zip(pairs, names, strict=True):
        raw_name, has_value, value = pair.partition("=")
        reason: str | None = None
        if name == "sig":
            reason = SAS_SIGNATURE
        elif name in SECRET_QUERY_PARAMS:
            reason = SECRET_QUERY_PARAMETER
        elif is_sas and name in SAS_QUERY_FIELDS:
            reason = SAS_FIELD
        if reason is None or not has_value or value in ("", REDACTED):
            out.append(pair)
            continue
        out.append(f"{raw_name}={REDACTED}")
        reasons.append(reason)
    return "&".join(out), reasons


def _unquote_name(name: str) -> str:
    return unquote_plus(name).strip().lower()


def redact_url(url: str) -> tuple[str, list[str]]:
    """Redact secret query parameters of ``url``; return the URL and one reason per redaction.

    Only the values of redacted parameters change: the rest of the URL stays byte-identical (no
    re-encoding), because replay matches on it and paging links must stay verbatim.
    """
    head, sep, rest = url.partition("?")
    if not sep:
        return url, []
    query, hash_sep, fragment = rest.partition("#")
    new_query, reasons = _redact_query(query)
    # OAuth implicit-flow fragments carry access_token=...; treat them like a query.
    new_fragment, fragment_reasons = _redact_query(fragment) if hash_sep else (fragment, [])
    if not reasons and not fragment_reasons:
        return url, []
    return f"{head}?{new_query}{hash_sep}{new_fragment}", reasons + fragment_reasons


# ------------------------------------------------------------------------------------- text
_VALUE = r"[^&#\s\"'<>\\]*"
# A run of name=value pairs joined by '&', starting after '?' or '#' or at the start of the text.
_QUERY_RUN = re.compile(rf"(?:(?<=[?#])|^)[A-Za-z0-9_.~%$+\-]+={_VALUE}(?:&[A-Za-z0-9_.~%$+\-]+={_VALUE})*")
# Token-shaped only (12+ characters with a digit or punctuation), so prose such as "Bearer
# authentication is required" in an error message stays readable.
_BEARER = re.compile(r"(?i)\b(bearer\s+)((?=[A-Za-z]*[0-9\-._~+/=])[A-Za-z0-9\-._~+/]{12,}=*)")
_JWT_RE = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
# Connection-string members; SharedAccessSignature values contain '&' and '=', so they run to ';'.
_CONN_SAS = re.compile(r"(?i)(?<![A-Za-z0-9])(SharedAccessSignature\s*=\s*)([^;\"'\s\\]+)")
_CONN_SECRET = re.compile(
    r"(?i)(?<![A-Za-z0-9_])((?:AccountKey|SharedAccessKey|AccessKey|Password|Pwd|ClientSecret|"
    r"client_secret|SharedSecret|Secret)\s*=\s*)([^;&\"'\s\\]+)"
)
# "name": "value" with optional backslash escapes (JSON inside a JSON string, inside a string...).
_JSON_PAIR = re.compile(r"(\\*\"([A-Za-z0-9_$.\-]+)\\*\"\s*:\s*\\*\")((?:[^\"\\]|\\[^\"\\])*)(\\*\")")
# password: value (YAML, logs, free text).
_PASSWORD_TEXT = re.compile(r"(?i)(?<![A-Za-z0-9_])((?:password|passwd|pwd)\s*:\s*)([^\s\"',;\\]+)")


def _sub(pattern: re.Pattern[str], text: str, reason: str, reasons: list[str], group: int = 2) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(group) in ("", REDACTED):
            return match.group(0)
        reasons.append(reason)
        start, end = match.span(group)
        base = match.start(0)
        whole = match.group(0)
        return whole[: start - base] + REDACTED + whole[end - base :]

    return pattern.sub(replace, text)


def _cannot_hold_secret(text: str) -> bool:
    """True when no pattern of ``redact_text`` can match ``text`` (so it is returned as is).

    Each pattern needs a marker: ``=`` (query runs, connection strings), ``"`` and ``:`` (JSON
    pairs), ``eyJ`` (JWTs), ``bearer`` (tokens), ``:`` with ``pwd``/``passw`` (passwords). Only for
    ASCII text: case-insensitive matching of non-ASCII letters (``ſ`` matches ``s``) is left to the
    patterns themselves. Most strings in a response (IDs, names, timestamps) have no marker, and
    skipping seven regex passes for them is what makes redacting 150,000 events affordable.
    """
    if not text.isascii() or "=" in text or "eyJ" in text:
        return False
    lowered = text.lower()
    if "bearer" in lowered:
        return False
    return not (":" in text and ('"' in text or "pwd" in lowered or "passw" in lowered))


def redact_text(text: str) -> tuple[str, list[str]]:
    """Redact every secret pattern inside free text; return the text and the reasons found."""
    if _cannot_hold_secret(text):
        return text, []
    return _redact_text_patterns(text)


def _redact_text_patterns(text: str) -> tuple[str, list[str]]:
    """Every pattern in turn, skipping those whose marker ``text`` lacks (ASCII text only).

    A pattern cannot match without its marker: ``"`` (JSON pairs), ``=`` (query runs, connection
    strings), ``eyJ`` (JWTs), ``bearer`` (tokens), ``:`` with ``pwd``/``passw`` (passwords). A
    substitution only replaces a value with ``REDACTED``, which adds no marker, so markers
    absent from ``text`` are absent at every step. The Activity Log's ``requestbody`` JSON
    strings have quotes and colons but rarely anything else: one pattern runs instead of seven.
    Non-ASCII text runs them all (case-insensitive matching of ``ſ``, ``K``, ...).
    """
    reasons: list[str] = []

    def query_run(match: re.Match[str]) -> str:
        new, found = _redact_query(match.group(0))
        reasons.extend(found)
        return new

    every = not text.isascii()
    lowered = text.lower()
    equals = every or "=" in text
    out = text
    if every or '"' in text:
        out = _JSON_PAIR.sub(lambda m: _json_pair(m, reasons), out)
    if equals:
        out = _QUERY_RUN.sub(query_run, out)
    if every or "eyJ" in text:
        out = _JWT_RE.sub(lambda m: _whole(m, JWT, reasons), out)
    if every or "bearer" in lowered:
        out = _sub(_BEARER, out, BEARER_TOKEN, reasons)
    if equals:
        out = _sub(_CONN_SAS, out, CONNECTION_STRING, reasons)
        out = _sub(_CONN_SECRET, out, CONNECTION_STRING, reasons)
    if every or (":" in text and ("pwd" in lowered or "passw" in lowered)):
        out = _sub(_PASSWORD_TEXT, out, PASSWORD, reasons)
    return out, reasons


def _whole(match: re.Match[str], reason: str, reasons: list[str]) -> str:
    reasons.append(reason)
    return REDACTED


def _json_pair(match: re.Match[str], reasons: list[str]) -> str:
    if not is_secret_key(match.group(2)) or match.group(3) in ("", REDACTED):
        return match.group(0)
    reasons.append(SECRET_KEY_NAME)
    return f"{match.group(1)}{REDACTED}{match.group(4)}"


# ------------------------------------------------------------------------------------- JSON
def _escape_pointer_token(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def redact_json(value: Any) -> tuple[Any, list[tuple[str, str]]]:
    """Redact secrets anywhere in a parsed JSON value.

    Returns a new value (the input is not modified) and ``(pointer, reason)`` pairs, with RFC 6901
    pointers into the returned document, in document order, one per distinct pair.
    """
    found: list[tuple[str, str]] = []
    result = _walk(value, "", found)
    unique = list(dict.fromkeys(found))
    return result, unique


def needs_redaction(value: Any) -> bool:
    """Whether ``redact_json(value)`` would redact anything: the same rules, without copying.

    Stops at the first secret, and builds no pointers or new containers: most responses hold
    none, and the store then keeps the body byte for byte (issue 7: walking 150,000 Activity Log
    events to rebuild them unchanged was the largest part of the client's CPU).
    """
    if isinstance(value, str):
        return _text_needs_redaction(value)
    if isinstance(value, dict):
        pairs_with_key_name = "keyName" in value and isinstance(value.get("value"), str)
        for key, item in value.items():
            if isinstance(item, str):
                if is_secret_key(str(key)) or (pairs_with_key_name and key == "value"):
                    if item not in ("", REDACTED):
                        return True
                elif item not in _CLEAN_TEXTS and _text_needs_redaction(item):
                    return True
                continue
            if needs_redaction(item):
                return True
        return False
    if isinstance(value, list):
        for item in value:
            if needs_redaction(item):
                return True
    return False


#: Strings already found to need no redaction. An Activity Log page repeats the same values
#: (operations, callers, scopes, claims) event after event: 87% of the strings of a simulated
#: 90-day log were repeats, and a dictionary lookup costs a fraction of ``_cannot_hold_secret``.
#: Bounded (emptied when full) so a long run does not keep every distinct string; a pure
#: function's results, so sharing them between threads is safe.
_CLEAN_TEXTS: dict[str, None] = {}
_CLEAN_TEXTS_MAX = 65_536


def _text_needs_redaction(text: str) -> bool:
    if text in _CLEAN_TEXTS:
        return False
    if not _cannot_hold_secret(text) and _redact_text_patterns(text)[1]:
        return True
    if len(_CLEAN_TEXTS) >= _CLEAN_TEXTS_MAX:
        _CLEAN_TEXTS.clear()
    _CLEAN_TEXTS[text] = None
    return False


def _walk(value: Any, pointer: str, found: list[tuple[str, str]]) -> Any:
    if isinstance(value, dict):
        pairs_with_key_name = "keyName" in value and isinstance(value.get("value"), str)
        out: dict[str, Any] = {}
        for key, item in value.items():
            child = f"{pointer}/{_escape_pointer_token(str(key))}"
            secret_slot = is_secret_key(str(key)) or (pairs_with_key_name and key == "value")
            if secret_slot and isinstance(item, str):
                if item in ("", REDACTED):
                    out[key] = item
                else:
                    out[key] = REDACTED
                    found.append((child, SECRET_KEY_NAME))
                continue
            out[key] = _walk(item, child, found)
        return out
    if isinstance(value, list):
        return [_walk(item, f"{pointer}/{index}", found) for index, item in enumerate(value)]
    if isinstance(value, str):
        text, reasons = redact_text(value)
        found.extend((pointer, reason) for reason in reasons)
        return text
    return value


# ------------------------------------------------------------------------------------- headers
def redact_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    allow: Iterable[str] = RESPONSE_HEADER_ALLOWLIST,
) -> dict[str, str]:
    """Keep only allow-listed headers (case-insensitively), with secrets removed from their values.

    ``Location`` and ``Azure-AsyncOperation`` are URLs and may carry SAS tokens, so every kept
    value also goes through ``redact_text``.
    """
    allowed = {name.lower() for name in allow}
    items = headers.items() if isinstance(headers, Mapping) else headers
    kept: dict[str, str] = {}
    for name, value in items:
        if name.lower() in allowed:
            kept[name] = redact_text(str(value))[0]
    return kept


def redact_request_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """``redact_headers`` with the request allow-list (never ``Authorization``)."""
    return redact_headers(headers, REQUEST_HEADER_ALLOWLIST)
