"""What a run shows while it runs, and its last lines: progress bars on a terminal (records and chunks
per stream, rate, ETA when the total is known), nothing when piped; one line on Ctrl-C saying what was
committed; the figures table; the exit code of the run's outcome."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from altcraft_sync.wording import plural
from cli.app import console, err_console

EXIT_OK, EXIT_WARNINGS, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 130
"""The exit codes of a run (README: Exit codes): 0 nothing held back by this run and no backlog, 1 done
with warnings (a backlog waits, or a few records of this run were held back below the failure floor),
2 failed, 130 interrupted (Ctrl-C; the next run resumes from the last committed chunk)."""


class _RateAndEta(ProgressColumn):
    """``1,234 rec/s · ETA 0:42``: the rate of records read, and the time left when the total is known."""

    def render(self, task: Task) -> Text:
        speed = task.fields.get("rate")
        rate = f"{speed:,.0f} rec/s" if speed else ""
        eta = ""
        if task.total and speed and not task.finished:
            left = max(0.0, (task.total - task.completed) / speed)
            eta = f" · ETA {int(left // 60)}:{int(left % 60):02d}"
        return Text(rate + eta, style="progress.data.speed")


class Watcher:
    """Follows a run's progress events (a stream's figures after each committed chunk, and when the stream
    ends): draws them when stderr is a terminal, and keeps the last figures per stream for the Ctrl-C line."""

    def __init__(self, draw: bool | None = None, describe: Callable[[Any], str] | None = None,
                 count: Callable[[Any], int] | None = None) -> None:
        self.draw = err_console.is_terminal if draw is None else draw
        self.shows_totals = self.draw  # the bars' ETA needs each stream's total
        self.describe = describe or sync_text
        self.count = count or (lambda stats: stats.extracted)
        self.last: dict[str, Any] = {}
        self.done: set[str] = set()
        self._bars: Progress | None = None
        self._tasks: dict[str, Any] = {}
        self._began: dict[str, float] = {}

    def __enter__(self) -> Watcher:
        if self.draw:
            self._bars = Progress(SpinnerColumn(), TextColumn("{task.fields[stream]:<12}"), BarColumn(bar_width=20),
                                  TextColumn("{task.description}"), _RateAndEta(), TimeElapsedColumn(),
                                  console=err_console, transient=False)
            self._bars.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bars is not None:
            self._bars.stop()

    def start(self, n_streams: int) -> None:
        """The host's progress interface (``runner.runs.ProgressDisplay``): bars appear per stream as it starts."""

    def update(self, stats: Any, stream_done: bool = False) -> None:
        self(stats, stream_done)

    def __call__(self, stats: Any, done: bool = False) -> None:
        self.last[stats.stream] = stats
        if done:
            self.done.add(stats.stream)
        if self._bars is None:
            return
        total = getattr(stats, "total", None)
        if stats.stream not in self._tasks:
            self._tasks[stats.stream] = self._bars.add_task("", stream=stats.stream, total=total, rate=None)
            self._began[stats.stream] = time.monotonic()
        text, n = self.describe(stats), self.count(stats)
        task = self._tasks[stats.stream]
        # The rate is ours (records since the stream's first event), not Rich's sampled speed: Rich drops its
        # samples whenever the total changes, so a fast stream, or one finishing, would show no rate at all.
        spent = time.monotonic() - self._began[stats.stream]
        rate = n / spent if n and spent > 0 else None
        if done:
            self._bars.update(task, description=text, completed=n, total=n or 1, rate=rate)
        else:
            self._bars.update(task, description=text, completed=n, total=max(total, n) if total else None, rate=rate)

    def committed(self) -> str:
        """What the run had committed when it stopped: per stream, done or its committed chunks."""
        from runner.outcome import committed

        return committed(self.last, self.done)


def sync_text(stats: Any) -> str:
    return (f"{stats.extracted:,} read · {plural(stats.chunks, 'chunk')} · {stats.delivered:,} delivered · "
            f"{stats.unchanged:,} unchanged" + (f" · {stats.invalid} invalid" if stats.invalid else "")
            + (f" · {stats.rejected} rejected" if stats.rejected else ""))


def verify_text(stats: Any) -> str:
    return (f"{stats.listed:,} listed · {stats.ok:,} ok · {stats.differences:,} differ · {stats.pending:,} pending"
            + (f" · {stats.rejected:,} rejected" if stats.rejected else "")
            + (f" · {stats.resent} re-sent · {stats.deleted} deleted" if stats.resent or stats.deleted else ""))


def interrupted_line(watcher: Watcher) -> str:
    return (f"interrupted: committed {watcher.committed()}; the watermarks stay at the last committed chunk and "
            "the next run resumes from there")


def print_figures(figures: dict[str, Any], dry_run: bool = False, out: Console | None = None) -> None:
    """The run's table; a dry run's counts what a real run would do (it sends and records nothing)."""
    if dry_run:
        from runner.reporting import DRY_RUN_COLUMNS

        title, cols = "altcraft-sync dry run: nothing sent or recorded", dict(DRY_RUN_COLUMNS)
    else:
        title = "altcraft-sync run"
        cols = {c: c for c in ("extracted", "unchanged", "invalid", "delivered", "rejected", "failed", "deferred",
                               "deleted", "retried")}
    rows = [[name, *[str(f.get(field, 0)) for field in cols.values()]] for name, f in figures.items()]
    print_table(title, ["stream", *cols], rows, out)


def print_table(title: str, headers: list[str], rows: list[list[str]], out: Console | None = None) -> None:
    """A table of figures, one row per stream, whose numbers and names are never wrapped nor cut: as it is
    when it fits the terminal; else turned (one column per stream); else one small table per stream."""
    out = out or console
    for heads, cells in _layouts(headers, rows):
        if _width(heads, cells) <= out.width:
            out.print(_table(title, heads, cells))
            return
    out.print(title, justify="center", highlight=False)  # the narrowest: every stream on its own, a figure a line
    for row in rows:
        out.print(_table(row[0], ["figure", "value"], [[h, v] for h, v in zip(headers[1:], row[1:])]))


def _layouts(headers: list[str], rows: list[list[str]]) -> list[tuple[list[str], list[list[str]]]]:
    """The table as it is, then turned: a figure a row, a stream a column."""
    turned = [[h, *(row[i] for row in rows)] for i, h in enumerate(headers) if i]
    return [(headers, rows), (["figure", *(row[0] for row in rows)], turned)]


def _width(headers: list[str], rows: list[list[str]]) -> int:
    """The table's width with no cell wrapped: each column as wide as its widest cell, plus one space each
    side and a rule between columns and at both edges (Rich's default box and padding)."""
    widths = [max(cell_len(c) for c in column) for column in zip(headers, *rows)]
    return sum(w + 3 for w in widths) + 1


def _table(title: str, headers: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title)
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


def print_json(document: dict[str, Any]) -> None:
    """The ``--json`` document on stdout, unstyled (a script parses it)."""
    print(json.dumps(document, indent=2, default=str))


def exit_code(ok: bool, warnings: list[str]) -> int:
    if not ok:
        return EXIT_FAILED
    return EXIT_WARNINGS if warnings else EXIT_OK


Listener = Callable[[Any, bool], None]
