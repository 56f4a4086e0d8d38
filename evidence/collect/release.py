"""When was a release's model version registered? The start of a ``--kind release`` window.

The lookup makes the requests the model versions collector makes anyway (``models.list()`` for
the names, then ``models.list(name=...)``, archived versions included), on its own tap channel.
The registration it finds is in the package's own records (``model_versions.jsonl``,
``created_at``), so the auditor can check the window start against the collected evidence.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from evidence.clock import parse_timestamp
from evidence.errors import PackageError, UsageError

if TYPE_CHECKING:
    from evidence.azure.clients import AzureClients
    from evidence.azure.tap import EvidenceTap
    from evidence.domain import Scope

CHANNEL = "release"


def registered_at(clients: AzureClients, tap: EvidenceTap, scope: Scope, model: str, version: str) -> datetime:
    """The earliest registration of ``model`` version ``version`` in the scope's workspaces.

    Raises UsageError when no workspace has that version, and PackageError when a workspace could
    not be asked (the window cannot be known; ``--since`` gives it explicitly).
    """
    from azure.ai.ml.constants import ListViewType
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    found: list[datetime] = []
    with tap.channel(CHANNEL):
        for workspace in scope.workspaces:
            ml = clients.ml(workspace)
            try:
                # The collector's own two requests: the names first, so a workspace without the
                # model is not asked about it (and a recording made by the collector answers).
                if model not in {c.name for c in ml.models.list(list_view_type=ListViewType.ALL)}:
                    continue
                for item in ml.models.list(name=model, list_view_type=ListViewType.ALL):
                    if str(getattr(item, "version", "")) == version:
                        created = _created(item)
                        if created is not None:
                            found.append(created)
            except ResourceNotFoundError:
                continue  # the model is not in this workspace
            except (AzureError, ValueError, KeyError, TypeError) as exc:
                raise PackageError(
                    f"could not look up {model} version {version} in {workspace.name}: {type(exc).__name__}: {exc}",
                    hint="pass --since TIMESTAMP to give the release window's start",
                ) from None
    if not found:
        raise UsageError(
            f"model {model} version {version} is not registered in the scope's workspaces",
            hint="check --model/--version and the scope, or pass --since TIMESTAMP",
        )
    return min(found)


def _created(item: Any) -> datetime | None:
    context = getattr(item, "creation_context", None)
    value = getattr(context, "created_at", None)
    if isinstance(value, datetime):
        return parse_timestamp(value.isoformat())
    if isinstance(value, str) and value:
        return parse_timestamp(value)
    return None
