"""Progress for the CLI: the observer the library is handed, rendered three ways.

The library never prints; it calls ``observer(message)`` (a plain callable is still a valid
observer). Concurrent collection adds structured events, which an observer opts into by having
the methods (``evidence.collect.pool`` looks them up with ``getattr``):

* ``planned(collector, subscription, tasks)``: how many tasks a (collector, subscription) pair has;
* ``started(collector, subscription)`` / ``finished(collector, subscription)``: one task;
* ``advanced(collector, subscription, n)``: n more units (e.g. pages) done inside a task.

Renderings, chosen by ``make_progress``: a live ``rich`` display per collector and subscription
when stderr is a terminal; plain lines when it is not (CI logs, pipes); nothing with ``--quiet``.
Every method is thread-safe: pool workers call them concurrently.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass
class _Pair:
    planned: int | None = None
    started: int = 0
    finished: int = 0
    units: int = 0


class Progress:
    """The observer interface with do-nothing defaults (and the ``--quiet`` rendering)."""

    def __call__(self, message: str) -> None:
        return None

    def planned(self, collector: str, subscription: str, tasks: int) -> None:
        return None

    def started(self, collector: str, subscription: str) -> None:
        return None

    def advanced(self, collector: str, subscription: str, n: int = 1) -> None:
        return None

    def finished(self, collector: str, subscription: str) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *args: Any) -> None:
        self.close()


QuietProgress = Progress


class _Counting(Progress):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pairs: dict[tuple[str, str], _Pair] = {}

    def _pair(self, collector: str, subscription: str) -> _Pair:
        # Caller holds the lock.
        return self._pairs.setdefault((collector, subscription), _Pair())


def _label(collector: str, subscription: str) -> str:
    return f"{collector} [{subscription}]" if subscription else collector


class PlainProgress(_Counting):
    """One line per message, and one per (collector, subscription) when its last task ends.

    Without a plan, every finished task gets a line with a running count instead.
    """

    def __init__(self, stream: TextIO, prefix: str = "") -> None:
        super().__init__()
        self.stream = stream
        self.prefix = prefix

    def _line(self, text: str) -> None:
        # Caller holds the lock, so lines from different workers never interleave.
        self.stream.write(self.prefix + text + "\n")
        self.stream.flush()

    def __call__(self, message: str) -> None:
        with self._lock:
            self._line(message)

    def planned(self, collector: str, subscription: str, tasks: int) -> None:
        with self._lock:
            self._pair(collector, subscription).planned = tasks

    def started(self, collector: str, subscription: str) -> None:
        with self._lock:
            self._pair(collector, subscription).started += 1

    def advanced(self, collector: str, subscription: str, n: int = 1) -> None:
        with self._lock:
            self._pair(collector, subscription).units += n

    def finished(self, collector: str, subscription: str) -> None:
        with self._lock:
            pair = self._pair(collector, subscription)
            pair.finished += 1
            if pair.planned is None:
                self._line(f"{_label(collector, subscription)}: {pair.finished} task(s) done")
            elif pair.finished == pair.planned:
                self._line(f"{_label(collector, subscription)}: done ({pair.planned} task(s))")


class LiveProgress(_Counting):
    """A ``rich`` live display: one bar per (collector, subscription), messages printed above it."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self._console = Console(file=stream)
        self._rich = RichProgress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self._console,
            transient=False,
        )
        self._ids: dict[tuple[str, str], Any] = {}
        self._rich.start()

    def _task(self, collector: str, subscription: str) -> Any:
        # Caller holds the lock.
        key = (collector, subscription)
        if key not in self._ids:
            self._ids[key] = self._rich.add_task(_label(collector, subscription), total=None)
        return self._ids[key]

    def __call__(self, message: str) -> None:
        with self._lock:
            self._rich.console.print(message, markup=False, highlight=False)

    def planned(self, collector: str, subscription: str, tasks: int) -> None:
        with self._lock:
            self._pair(collector, subscription).planned = tasks
            self._rich.update(self._task(collector, subscription), total=tasks)

    def started(self, collector: str, subscription: str) -> None:
        with self._lock:
            self._pair(collector, subscription).started += 1
            self._task(collector, subscription)

    def advanced(self, collector: str, subscription: str, n: int = 1) -> None:
        with self._lock:
            self._pair(collector, subscription).units += n

    def finished(self, collector: str, subscription: str) -> None:
        with self._lock:
            self._pair(collector, subscription).finished += 1
            self._rich.advance(self._task(collector, subscription), 1)

    def close(self) -> None:
        self._rich.stop()


def make_progress(*, quiet: bool = False, stream: TextIO | None = None, prefix: str = "") -> Progress:
    """The rendering for this run: nothing when quiet, live on a terminal, plain lines otherwise."""
    out = sys.stderr if stream is None else stream
    if quiet:
        return QuietProgress()
    isatty = getattr(out, "isatty", None)
    if callable(isatty) and isatty():
        try:
            return LiveProgress(out)
        except ImportError:  # rich is optional at run time: fall back to lines
            return PlainProgress(out, prefix)
    return PlainProgress(out, prefix)
