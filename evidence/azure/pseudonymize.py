"""Pseudonymisation of recordings shared outside the company (``--pseudonymize``).

Personal data in a cassette (callers' e-mail addresses and UPNs, client IP addresses, the object
IDs of principals) is replaced by pseudonyms derived with HMAC-SHA256 under a secret salt: the same
input always gives the same pseudonym, so joins across collectors still hold, and without the salt
the originals cannot be recovered by hashing guesses.

Consistency is what keeps a cassette replayable: every rewrite is textual and applied alike to
request URLs (plain and percent-encoded), request and response bodies and kept header values, so a
``nextLink`` or a ``$filter=caller eq '...'`` still matches the entry that answers it. Anything a
collector is *configured* with must go through the same ``Pseudonymizer`` at replay time
(``email()``, ``guid()``).

Choices:

* **Object IDs.** Not every GUID is personal: role definition IDs of built-in roles must stay as
  they are (controls recognise Owner by its well-known GUID), and role assignment names are not
  people. So GUIDs are rewritten only if they appear, anywhere in the cassette, as the value of an
  identity field (``principalId``, ``objectId``, ``oid``, a ``caller`` or ``createdBy`` that is a
  GUID, the ``objectidentifier`` claim, ...); every occurrence of such a GUID is then rewritten
  everywhere.
* **Subscription and tenant IDs are left alone**, everywhere. They identify the organisation, not
  a person, they are in every ARM URL and ``nextLink``, and the package's scope names them; a
  recipient of a shared cassette is expected to know whose tenant it is. (Rewriting them would
  need the same map applied to the configuration and every ``id`` field; leaving them is simpler
  and cannot break replay.)
* Display names in Activity Log claims (``name``, ``givenname``, ``surname``) are rewritten too;
  free-text personal names elsewhere are not detected.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from evidence.azure.cassette import Entry
from evidence.azure.replay import Cassette

_H = "[0-9A-Fa-f]"
_AFTER_ESCAPE = "(?<=%[0-9A-Fa-f]{2})"  # percent-escapes end in hex digits, e.g. %27 before a quoted id
_GUID = re.compile(
    rf"(?:{_AFTER_ESCAPE}|(?<![0-9A-Fa-f-])){_H}{{8}}-{_H}{{4}}-{_H}{{4}}-{_H}{{4}}-{_H}{{12}}(?![0-9A-Fa-f-])"
)
# The local part may follow a percent-escape (``eq%20%27alice%40contoso.com%27`` in a $filter).
_EMAIL = re.compile(
    rf"(?:{_AFTER_ESCAPE}|(?<![\w.%+-]))([\w.+-]{{1,64}})(@|%40)([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{{2,}})(?![\w-])"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\d.])(?:{_OCTET}\.){{3}}{_OCTET}(?![\d.])")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:])(?=[0-9A-Fa-f:]*:[0-9A-Fa-f]*:)[0-9A-Fa-f:]{2,39}(?![0-9A-Fa-f:])")

#: Member names whose GUID value is a person's (or workload's) object ID.
_IDENTITY_KEYS = frozenset({
    "principalid", "objectid", "oid", "caller", "createdby", "lastmodifiedby", "delegatedmanagedidentityresourceid",
    "http://schemas.microsoft.com/identity/claims/objectidentifier", "appid", "userid", "requestorid",
})  # fmt: skip
#: Activity Log claim names that carry a person's name.
_NAME_CLAIMS = ("/name", "/givenname", "/surname", "name", "given_name", "family_name")

_PSEUDO_DOMAIN = "pseudonym.invalid"  # RFC 2606: can never be a real mailbox


class Pseudonymizer:
    """Maps personal identifiers to stable pseudonyms under ``secret_salt`` (keep the salt private)."""

    def __init__(self, secret_salt: bytes | str, object_ids: Iterable[str] = ()) -> None:
        salt = secret_salt.encode("utf-8") if isinstance(secret_salt, str) else bytes(secret_salt)
        if not salt:
            raise ValueError("a pseudonymisation salt must not be empty")
        self._salt = salt
        self._object_ids: set[str] = {o.lower() for o in object_ids}

    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self._salt, f"{kind}\0{value}".encode(), hashlib.sha256).digest()

    # -- single values ---------------------------------------------------------------------------
    def guid(self, value: str) -> str:
        h = self._digest("guid", value.lower()).hex()
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"

    def email(self, value: str) -> str:
        return f"user-{self._digest('email', value.lower()).hex()[:12]}@{_PSEUDO_DOMAIN}"

    def ip(self, value: str) -> str:
        address = ipaddress.ip_address(value)
        d = self._digest("ip", address.compressed)
        if address.version == 4:
            # 198.18.0.0/15 is reserved for benchmarking: a pseudonym never collides with a real host.
            return str(ipaddress.IPv4Address(bytes([198, 18 + (d[0] & 1), d[1], d[2]])))
        # 2001:db8::/32 is the documentation prefix.
        return str(ipaddress.IPv6Address(bytes([0x20, 0x01, 0x0D, 0xB8]) + d[:12]))

    def name(self, value: str) -> str:
        return f"person-{self._digest('name', value).hex()[:8]}"

    def add_object_ids(self, ids: Iterable[str]) -> None:
        self._object_ids.update(i.lower() for i in ids)

    # -- text and JSON -------------------------------------------------------------------------
    def text(self, value: str) -> str:
        """Rewrite every e-mail, IP address and known object ID inside ``value``, nothing else."""

        def email(match: re.Match[str]) -> str:
            local, at, domain = match.groups()
            if domain.lower() == _PSEUDO_DOMAIN:
                return match.group(0)  # already a pseudonym
            pseudonym = self.email(f"{local}@{domain}")
            return pseudonym.replace("@", at)

        def ipv6(match: re.Match[str]) -> str:
            try:
                address = ipaddress.IPv6Address(match.group(0))
            except ValueError:
                return match.group(0)
            if address in ipaddress.IPv6Network("2001:db8::/32"):
                return match.group(0)
            return self.ip(match.group(0))

        def ipv4(match: re.Match[str]) -> str:
            if ipaddress.IPv4Address(match.group(0)) in ipaddress.IPv4Network("198.18.0.0/15"):
                return match.group(0)
            return self.ip(match.group(0))

        def guid(match: re.Match[str]) -> str:
            return self.guid(match.group(0)) if match.group(0).lower() in self._object_ids else match.group(0)

        out = _EMAIL.sub(email, value)
        out = _IPV6.sub(ipv6, out)
        out = _IPV4.sub(ipv4, out)
        return _GUID.sub(guid, out)

    def json(self, value: Any) -> Any:
        """Rewrite a parsed JSON value (a new value; the input is left as it was)."""
        return self._json(value, "", in_claims=False)

    def _json(self, value: Any, key: str, *, in_claims: bool) -> Any:
        if isinstance(value, dict):
            # Only the members of a "claims" object are claims; "name" elsewhere is a resource name.
            claims = key.lower() == "claims"
            return {k: self._json(v, str(k), in_claims=claims) for k, v in value.items()}
        if isinstance(value, list):
            return [self._json(v, key, in_claims=in_claims) for v in value]
        if isinstance(value, str):
            named = in_claims and key.lower().endswith(_NAME_CLAIMS)
            if named and "@" not in value and not _GUID.fullmatch(value):
                return self.name(value) if not value.startswith("person-") else value
            return self.text(value)
        return value

    def body(self, value: Any) -> Any:
        """Rewrite a ``RequestBody``/``ResponseBody``: parsed JSON, or JSON kept as text.

        A recording keeps a JSON body as its text when re-serialising it would change the bytes
        (see ``evidence.azure.recording``); as text, claims such as ``name`` would not be known as
        claims, so such a body is parsed and rewritten as JSON (its exact bytes cannot survive
        pseudonymisation anyway).
        """
        if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
            try:
                parsed = json.loads(value)
            except ValueError:
                return self.text(value)
            return self.json(parsed)
        return self.json(value)

    def entry(self, entry: Entry) -> Entry:
        return replace(
            entry,
            request_uri=self.text(entry.request_uri),
            request_body=self.body(entry.request_body),
            response_body=self.body(entry.response_body),
            request_headers={k: self.text(v) for k, v in entry.request_headers.items()},
            response_headers={k: self.text(v) for k, v in entry.response_headers.items()},
        )


def identity_object_ids(values: Iterable[Any]) -> set[str]:
    """Every GUID that appears as the value of an identity field in ``values`` (parsed JSON)."""
    found: set[str] = set()

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and key.lower() in _IDENTITY_KEYS and _GUID.fullmatch(value):
            found.add(value.lower())
        elif isinstance(value, str) and value[:1] in "{[":
            # JSON inside a string (Activity Log requestbody names the principal being granted a role).
            with contextlib.suppress(ValueError):
                walk(json.loads(value), key)

    for item in values:
        walk(item, "")
    return found


def pseudonymize_cassette(cassette: Cassette, secret_salt: bytes | str) -> tuple[Cassette, Pseudonymizer]:
    """Rewrite a whole cassette consistently; return it and the pseudonymizer (for the config).

    Object IDs are collected from the whole cassette first, so an ID is rewritten in a URL even
    when only a later response body reveals that it is a principal's.
    """
    bodies = [b for e in cassette.entries for b in (e.request_body, e.response_body)]
    pseudonymizer = Pseudonymizer(secret_salt, identity_object_ids(bodies))
    entries = tuple(pseudonymizer.entry(e) for e in cassette.entries)
    return Cassette(entries=entries, variables=dict(cassette.variables), files=cassette.files), pseudonymizer


#: The environment variable holding the pseudonymisation salt. Set it (to the same secret) when two
#: shared recordings must use the same pseudonyms; unset, every run draws a fresh random salt.
SALT_ENV = "EVIDENCE_PSEUDONYM_SALT"


def pseudonymization_salt(environ: Mapping[str, str] | None = None) -> tuple[bytes, bool]:
    """(salt, taken from ``SALT_ENV``). Without the variable: 32 random bytes, held in memory only.

    The salt is never written anywhere (recording, package, log): whoever has it can test guesses
    ("is user-3f2a... alice@contoso.com?") against the pseudonyms.
    """
    value = (os.environ if environ is None else environ).get(SALT_ENV, "")
    if value:
        return value.encode("utf-8"), True
    return secrets.token_bytes(32), False


def pseudonymize_recording(source: Path, target: Path, secret_salt: bytes | str) -> list[Path]:
    """Write a pseudonymised copy of the recording ``source`` (a file or a cassette folder) to ``target``.

    The file layout is kept (one output file per input file, same relative names), and the object
    IDs to rewrite are gathered from the whole recording first, so a principal named in one file
    is rewritten in every other file too. Each file is written atomically.
    """
    from evidence.azure.recording import write_recording
    from evidence.azure.replay import load_cassette
    from evidence.errors import UsageError

    source, target = Path(source), Path(target)
    if target.resolve() == source.resolve() or (source.is_dir() and target.resolve().is_relative_to(source.resolve())):
        raise UsageError(
            f"the pseudonymised copy cannot be written to {target}, inside the original recording",
            hint="choose an OUT folder outside IN; the original is never overwritten",
        )
    whole = load_cassette(source)
    _, pseudonymizer = pseudonymize_cassette(whole, secret_salt)
    written: list[Path] = []
    for label in whole.files:
        part = load_cassette(source / label if source.is_dir() else source)
        relative = Path(label)
        written.append(
            write_recording(
                [pseudonymizer.entry(e) for e in part.entries],
                target / relative.parent,
                relative.name,
                part.variables,
            )
        )
    return written
