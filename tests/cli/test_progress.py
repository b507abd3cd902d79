"""The progress bars' own figures, without a terminal: the rate is shown while a stream runs and kept when it
ends, even when the stream ends in one event (Rich's sampled speed is dropped when a task's total changes)."""

from __future__ import annotations

import time
from types import SimpleNamespace

from rich.console import Console

from cli.progress import Watcher, _RateAndEta


def _stats(stream: str, extracted: int, chunks: int, total: int | None = None) -> SimpleNamespace:
    return SimpleNamespace(stream=stream, extracted=extracted, chunks=chunks, delivered=extracted, unchanged=0,
                           invalid=0, rejected=0, total=total)


def _rate_text(watcher: Watcher, stream: str) -> str:
    bars = watcher._bars
    assert bars is not None
    task = next(t for t in bars.tasks if t.id == watcher._tasks[stream])
    return _RateAndEta().render(task).plain


def test_the_rate_is_shown_while_running_and_kept_at_the_end(monkeypatch):
    monkeypatch.setattr("cli.progress.err_console", Console(file=open("/dev/null", "w"), force_terminal=True))
    with Watcher(draw=True) as watcher:
        watcher(_stats("orders", 40, 1, total=150))
        time.sleep(0.02)
        watcher(_stats("orders", 80, 2, total=160))  # a total that moves: Rich would forget its samples
        running = _rate_text(watcher, "orders")
        time.sleep(0.02)
        watcher(_stats("orders", 150, 4), done=True)
        finished = _rate_text(watcher, "orders")
        watcher(_stats("categories", 6, 1), done=True)  # a stream that ends in its first event
        single = _rate_text(watcher, "categories")
    assert "rec/s" in running and "ETA" in running, running
    assert "rec/s" in finished and "ETA" not in finished, finished
    assert "rec/s" in single, single
    assert 0 < float(finished.split(" rec/s")[0].replace(",", "")) < 150 / 0.04 + 1


def test_nothing_is_drawn_when_not_on_a_terminal():
    with Watcher(draw=False) as watcher:
        watcher(_stats("orders", 40, 1), done=True)
    assert watcher._bars is None and watcher.done == {"orders"} and watcher.last["orders"].extracted == 40
    assert not watcher.shows_totals and Watcher(draw=True).shows_totals  # no bar, no ETA: no count asked
