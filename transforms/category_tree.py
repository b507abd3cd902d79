"""A category tree's order: parents before children, within a page (the mapping) and across pages (the
request that joins a cursor page with categories waiting in the ledger). Pure, and free of pandas and
pandera: a run that sends nothing new must not import the contract."""

from __future__ import annotations

from collections.abc import Collection, Container

import numpy as np


def parents_first(ids: list[str], parents: list[str | None], held: Container[str]
                  ) -> tuple[list[int], dict[int, str]]:
    """Categories (by position) in an order that puts every parent before its children, and those whose
    parent is neither in ``held`` (what Altcraft holds) nor earlier in that order, each with that parent.
    Altcraft is taken to refuse a category whose parent it does not hold (docs/altcraft-api.md, inferred),
    so a caller holds those back rather than see them refused. Categories on a cycle come last: their
    parent is never before them."""
    depth = depths(list(ids), parents)
    depth[depth < 0] = len(ids)
    order = np.argsort(depth, kind="stable").tolist()
    seen: set[str] = set()
    orphans: dict[int, str] = {}
    for i in order:
        parent = parents[i]
        if parent is not None and parent not in seen and parent not in held:
            orphans[i] = parent
        seen.add(ids[i])
    return order, orphans


def under_waiting(order: list[int], ids: list[str], parents: list[str | None], waiting: Collection[int]
                  ) -> dict[int, str]:
    """The categories (by position, ``order`` as :func:`parents_first` gave it) below one in ``waiting``,
    each with its parent: a child cannot go before its parent does."""
    held_back = {ids[i] for i in waiting}
    out: dict[int, str] = {}
    for i in order:
        parent = parents[i]
        if i not in waiting and parent is not None and parent in held_back:
            out[i] = parent
            held_back.add(ids[i])
    return out


def depths(ids: list[str | None], parents: list[str | None]) -> np.ndarray:
    """Depth of each category within the batch (0 = its parent is not in the batch); -1 when the category
    is on, or descends from, a parent cycle (it can never be created)."""
    index = {e: i for i, e in enumerate(ids) if e is not None}
    depth: list[int | None] = [None] * len(ids)
    for i in range(len(ids)):
        path: list[int] = []
        on_path: dict[int, int] = {}
        j: int | None = i
        while j is not None and depth[j] is None and j not in on_path:
            on_path[j] = len(path)
            path.append(j)
            parent = parents[j]
            j = index.get(parent) if parent is not None else None
        if j is None:  # reached a root of the batch
            above = -1
        elif j in on_path:  # a cycle: it and everything leading to it are unplaceable
            above = None
        else:
            above = depth[j] if depth[j] != -1 else None
        for k, node in enumerate(reversed(path)):
            depth[node] = -1 if above is None else above + 1 + k
    return np.array(depth, dtype=np.int64)
