"""The collect stage's one interface: a ``Collector`` drives SDK calls and normalises raw responses.

A collector has two halves, kept apart on purpose:

* ``collect(session)`` makes the SDK calls. The evidence tap under every client keeps each raw
  response with its provenance; the collector does not need to keep anything itself. Failed calls
  are turned into gap records by ``session.attempt(...)``, never swallowed.
* ``parts(session)`` (optional) splits ``collect`` into independent parts, e.g. one per workspace,
  that the runner may run concurrently; the default is one part, the whole ``collect``.
* ``normalise(responses)`` is a pure function from the raw responses (as stored in the package)
  to record rows. Because it reads only what the package keeps, ``evidence verify --rebuild`` can
  re-derive every record from the raw evidence and prove the derived views follow from it.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from evidence.clock import Clock, isoformat
from evidence.domain import Gap, Provenance, Scope, Window

if TYPE_CHECKING:
    from evidence.azure.clients import AzureClients

Record = dict[str, Any]


@dataclass(frozen=True)
class RawResponse:
    """One stored raw response: its provenance and its body parsed as JSON (None if not JSON)."""

    provenance: Provenance
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.provenance.status < 300

    def path_matches(self, pattern: str) -> re.Match[str] | None:
        """Match ``pattern`` (a regex, case-insensitive) against the URL path, whole."""
        from urllib.parse import unquote, urlsplit

        return re.fullmatch(pattern, unquote(urlsplit(self.provenance.url).path), flags=re.IGNORECASE)


@dataclass
class CollectSession:
    """What a collector gets: the clients, the scope and window, and a way to record gaps."""

    clients: AzureClients
    scope: Scope
    window: Window
    clock: Clock
    collector: str
    gaps: list[Gap] = field(default_factory=list)

    @contextmanager
    def attempt(self, scope: str) -> Iterator[None]:
        """Run SDK calls; any failure becomes a gap for ``scope`` and the run goes on.

        azure-core raises ``AzureError`` subclasses for HTTP failures, but some clients let a raw
        ``json.JSONDecodeError`` (a ``ValueError``) escape on an HTML or truncated body, and
        azure-ai-ml's converters raise ``KeyError``/``TypeError`` on bodies they do not expect.
        All of these mean the same thing to an auditor: this evidence is missing, and here is why.
        """
        from evidence.collect.gaps import gap_from_exception

        try:
            yield
        except Exception as exc:  # translated into a recorded gap, see docstring
            gap = gap_from_exception(self.collector, scope, exc, at=isoformat(self.clock.now()))
            if gap is None:
                raise
            self.gaps.append(gap)


@dataclass(frozen=True)
class Part:
    """One independent piece of a collector's calls; ``run(session)`` makes them.

    Each part gets its own ``CollectSession`` (same scope and window as ``collect`` got), so gaps
    never interleave. A part may run concurrently with any other part of the run, except the
    parts of the same collector it names in ``after`` (indices into that collector's parts, all
    earlier ones): e.g. role-definition look-ups after the role-assignment lists that name them.
    ``subscription`` and ``label`` are for progress reporting. ``start_early`` marks a long chain
    of pages (one request after another): the pool starts such parts before the others, so they
    overlap with the short ones instead of becoming the run's tail. It changes when a part runs,
    never the order of the package's raw files.
    """

    run: Callable[[CollectSession], None]
    subscription: str = ""
    label: str = ""
    after: tuple[int, ...] = ()
    start_early: bool = False


def run_parts(parts: Sequence[Part], session: CollectSession) -> None:
    """Run parts one after another in one session: what ``collect`` does for a collector with parts."""
    for part in parts:
        part.run(session)


class Collector(ABC):
    """Collects one kind of evidence across the scope."""

    #: Stable name: the raw folder ``data/raw/<name>/`` and the channel in ``collection.json``.
    name: ClassVar[str]
    #: Record files this collector's ``normalise`` produces, e.g. ``("model_versions",)``.
    record_kinds: ClassVar[tuple[str, ...]]

    @abstractmethod
    def collect(self, session: CollectSession) -> None:
        """Make the SDK calls for the whole scope; record failures through ``session.attempt``."""

    def parts(self, session: CollectSession) -> Sequence[Part]:
        """``collect`` as independent parts, listed in the order ``collect`` makes their calls.

        Running the parts one after another, in list order, must make exactly the calls
        ``collect`` makes, in the same order: the package then does not depend on concurrency.
        Collectors that can split their work override this; the default is one part.
        """
        subscriptions = session.scope.subscriptions
        return (Part(self.collect, subscription=subscriptions[0] if len(subscriptions) == 1 else ""),)

    @abstractmethod
    def normalise(self, responses: Sequence[RawResponse]) -> Mapping[str, list[Record]]:
        """Derive record rows per record kind from raw responses. Pure: no I/O, no clock."""
