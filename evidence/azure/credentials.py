"""Credentials: a static one for offline runs, and the live ones built only when asked for.

Offline (replay) runs must never construct ``DefaultAzureCredential``: its managed-identity leg
probes IMDS at 169.254.169.254 and other legs may call Entra ID, so merely building it can touch
the network. ``StaticCredential`` satisfies both azure-core token protocols (``TokenCredential``
and ``SupportsTokenInfo``) without any I/O, and ``azure.identity`` is imported only inside
``live_credential``.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions

from evidence.errors import UsageError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from evidence.clock import Clock

#: 2100-01-01T00:00:00Z. A constant, not ``time.time() + 3600``: the token is never sent anywhere
#: real, and a fixed expiry keeps azure-core's bearer policy from refreshing mid-run on a slow
#: machine (which would make the number of ``get_token`` calls depend on wall time).
FAR_FUTURE_EXPIRY = 4102444800

#: Sent as ``Authorization: Bearer offline-token``; deliberately not JWT-shaped so redaction tests
#: can tell a planted JWT from the fake credential.
OFFLINE_TOKEN = "offline-token"  # noqa: S105 - a placeholder sent only to replays and stubs

#: The ``--credential`` choices and the azure-identity class each one builds.
CREDENTIAL_KINDS: dict[str, str] = {
    "default": "DefaultAzureCredential",
    "cli": "AzureCliCredential",
    "managed-identity": "ManagedIdentityCredential",
    "environment": "EnvironmentCredential",
}


class StaticCredential:
    """A token credential that never touches the network: always the same fake token.

    ``clock`` (optional) makes the expiry ``clock.now() + lifetime`` instead of the far-future
    constant, for tests that want a realistic expiry; it is still deterministic under a fixed clock.
    ``scopes_seen`` lists the scopes each request asked for, in order, so tests can check which
    audiences the SDKs used (for example a sovereign cloud's ARM scope).
    """

    def __init__(
        self,
        token: str = OFFLINE_TOKEN,
        *,
        clock: Clock | None = None,
        lifetime: timedelta = timedelta(hours=1),
    ) -> None:
        self._token = token
        self._clock = clock
        self._lifetime = lifetime
        self._lock = threading.Lock()
        self._scopes_seen: list[tuple[str, ...]] = []

    @property
    def scopes_seen(self) -> list[tuple[str, ...]]:
        with self._lock:
            return list(self._scopes_seen)

    def _expires_on(self) -> int:
        if self._clock is None:
            return FAR_FUTURE_EXPIRY
        return int((self._clock.now().astimezone(UTC) + self._lifetime).timestamp())

    def expires_at(self) -> datetime:
        """When the tokens handed out now expire, as an aware UTC datetime."""
        return datetime.fromtimestamp(self._expires_on(), UTC)

    def _note(self, scopes: tuple[str, ...]) -> None:
        with self._lock:
            self._scopes_seen.append(scopes)

    # -- azure.core.credentials.TokenCredential ------------------------------------------------
    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self._note(scopes)
        return AccessToken(self._token, self._expires_on())

    # -- azure.core.credentials.SupportsTokenInfo (preferred by azure-core >= 1.31) --------------
    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        self._note(scopes)
        return AccessTokenInfo(self._token, self._expires_on())

    def close(self) -> None:
        """Nothing to release; present because ``SupportsTokenInfo`` is a context manager."""

    def __enter__(self) -> StaticCredential:
        return self

    def __exit__(self, *args: Any) -> None:
        self.close()


def live_credential(kind: str | None = None) -> TokenCredential:
    """Build the azure-identity credential for ``--credential KIND`` (``None`` means ``default``).

    azure-identity is imported here and nowhere else, so offline runs never load it, let alone
    construct ``DefaultAzureCredential``.
    """
    chosen = "default" if kind is None else kind.strip().lower()
    if chosen not in CREDENTIAL_KINDS:
        raise UsageError(
            f"unknown credential kind {kind!r}",
            hint=f"use one of: {', '.join(CREDENTIAL_KINDS)}",
        )
    from azure import identity

    if chosen == "default":
        return identity.DefaultAzureCredential()
    if chosen == "cli":
        return identity.AzureCliCredential()
    if chosen == "managed-identity":
        return identity.ManagedIdentityCredential()
    return identity.EnvironmentCredential()
