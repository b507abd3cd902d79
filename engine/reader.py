"""Reading records by key and mapping them like a sync does, in the run's own process: a carrier record,
and the records verify compares. Chunks of a sync go through the pipeline's map workers instead
(:mod:`engine.mapping`)."""

from __future__ import annotations

from collections.abc import Sequence

from engine.context import Key, RunContext
from engine.mapping import fetch_and_map
from transforms.payload import Mapped


class RecordReader:
    """``mapped``: the source's current records for ledger keys."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def by_ledger_keys(self, stream: str, keys: Sequence[str]) -> Mapped | None:
        """:meth:`mapped` for source keys as the ledger keeps them (text)."""
        cast = self.ctx.pk_cast(stream)
        return self.mapped(stream, [cast(k) for k in keys])

    def mapped(self, stream: str, keys: Sequence[Key]) -> Mapped | None:
        """The records of ``stream`` whose source keys are ``keys``, mapped with their children; None when
        the source has none of them."""
        ctx = self.ctx
        if not keys:
            return None
        parents = ctx.source.fetch_by_keys(stream, list(keys))
        if parents.empty:
            return None
        return fetch_and_map(ctx.mapping_spec(stream), parents, ctx.child_entity(stream), ctx.source).mapped
