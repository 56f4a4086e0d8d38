"""Progress renderings: plain lines off a terminal, nothing when quiet, rich live on a terminal."""

from __future__ import annotations

import io
import threading

from evidence.collect.pool import Task, WorkerPool
from evidence.progress import LiveProgress, PlainProgress, Progress, QuietProgress, make_progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_per_pair_when_planned_and_messages_verbatim() -> None:
    out = io.StringIO()
    progress = make_progress(stream=out)
    assert isinstance(progress, PlainProgress)
    progress("collecting model_versions")
    progress.planned("model_versions", "sub-1", 2)
    for _ in range(2):
        progress.started("model_versions", "sub-1")
        progress.advanced("model_versions", "sub-1", 3)
        progress.finished("model_versions", "sub-1")
    assert out.getvalue() == "collecting model_versions\nmodel_versions [sub-1]: done (2 task(s))\n"


def test_plain_lines_count_tasks_without_a_plan() -> None:
    out = io.StringIO()
    progress = PlainProgress(out)
    progress.finished("activity_log", "")
    progress.finished("activity_log", "")
    assert out.getvalue() == "activity_log: 1 task(s) done\nactivity_log: 2 task(s) done\n"


def test_quiet_prints_nothing_even_on_a_terminal() -> None:
    out = _Tty()
    progress = make_progress(quiet=True, stream=out)
    assert type(progress) is QuietProgress is Progress
    with progress:
        progress("collecting")
        progress.planned("rbac", "s", 1)
        progress.started("rbac", "s")
        progress.finished("rbac", "s")
    assert out.getvalue() == ""


def test_pool_drives_plain_progress_from_worker_threads_without_interleaving() -> None:
    out = io.StringIO()
    progress = PlainProgress(out)
    subs = [f"sub-{i}" for i in range(4)]
    for sub in subs:
        progress.planned("endpoints", sub, 5)
    tasks = [Task(threading.get_ident, channel="endpoints", subscription=s) for s in subs * 5]
    WorkerPool(8, observer=progress).run(tasks)
    lines = out.getvalue().splitlines()
    assert sorted(lines) == [f"endpoints [{s}]: done (5 task(s))" for s in subs]


def test_terminal_gets_the_live_display() -> None:
    out = _Tty()
    progress = make_progress(stream=out)
    assert isinstance(progress, LiveProgress)
    with progress:
        progress.planned("metrics", "sub-1", 1)
        progress.started("metrics", "sub-1")
        progress("a message")
        progress.finished("metrics", "sub-1")
    text = out.getvalue()
    assert "a message" in text and "metrics [sub-1]" in text
