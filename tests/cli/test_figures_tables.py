"""The figures tables (the run's and verify's) on narrow and wide terminals: a number is never wrapped
onto the next line nor cut, nor is a stream's name or a header; a terminal too narrow for one row per
stream gets the table turned (a stream a column) or one small table per stream."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from cli.checks import print_verify_table
from cli.progress import print_figures
from runner.verify import COLUMNS, VerifyStats

STREAMS = ("categories", "products", "skus", "orders")
RUN_COLUMNS = ("extracted", "unchanged", "invalid", "delivered", "rejected", "failed", "deferred", "deleted", "retried")


def _recorded(width: int, draw) -> str:
    out = Console(width=width, record=True, file=io.StringIO())
    draw(out)
    return out.export_text()


def _cells(text: str) -> list[str]:
    return [c.strip() for line in text.splitlines() for c in re.split("[│┃]", line) if c.strip()]


@pytest.mark.parametrize("width", [40, 80, 120, 200])
def test_the_runs_figures_are_whole_at_any_width(width):
    figures = {s: {c: 19_999 + i for i, c in enumerate(RUN_COLUMNS)} for s in STREAMS}
    text = _recorded(width, lambda out: print_figures(figures, out=out))
    assert max(len(line) for line in text.splitlines()) <= width
    cells = _cells(text)
    for i, c in enumerate(RUN_COLUMNS):
        assert c in cells, (c, text)
        assert cells.count(str(19_999 + i)) == len(STREAMS), text  # every number whole, never 1999|9
    for s in STREAMS:
        assert s in text
    if width >= 120:
        assert "stream" in cells and "extracted" in cells  # wide enough: one row per stream, as before


@pytest.mark.parametrize("width", [80, 120])
def test_the_verify_table_cuts_no_stream_name_nor_header(width):
    results = {}
    for s in STREAMS:
        st = VerifyStats(s)
        for i, c in enumerate(COLUMNS):
            setattr(st, c, 123_456 + i)
        results[s] = st
    text = _recorded(width, lambda out: print_verify_table(results, repair=False, out=out))
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= width
    cells = _cells(text)
    for s in STREAMS:
        assert s in cells, text
    for i, c in enumerate(COLUMNS):
        assert c.replace("_", " ") in cells, (c, text)
        assert cells.count(str(123_456 + i)) == len(STREAMS), text
