"""Dependencies before dependents: an order whose line product, a SKU whose product or a product whose
category Altcraft does not hold yet waits as deferred instead of being sent to be rejected as unknown.

The delivered ids of what a stream depends on are loaded once per stream and run (earlier streams are
finished when a later one reads); the coordinator calls :meth:`Dependencies.forget` when a stream starts."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from altcraft_sync import streams as registry
from engine.context import RunContext
from transforms.payload import Mapped


class Dependencies:
    """``blocked``: which payloads of a chunk refer to something not delivered."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def forget(self, stream: str) -> None:
        """Load again what ``stream`` depends on: what earlier streams delivered since it was loaded counts."""
        self.ctx.memory.delivered_refs.pop(stream, None)

    def blocked(self, stream: str, mapped: Mapped, sending: Collection[str] = (),
                 only: list[int] | None = None) -> dict[int, str]:
        """Payloads (by position) that refer to a record of an earlier stream Altcraft does not hold yet
        (held back by the safety margin, quarantined, rejected or failing), each with the first such
        reference. Altcraft would reject them as unknown; they wait in the ledger as deferred instead.
        Only streams this config syncs count: an orders-only config trusts Altcraft's catalogue. ``sending``
        are references that travel in the same request (the categories a carrier product goes with)."""
        deps = [registry.get(s).entity for s in registry.get(stream).depends_on if s in self.ctx.source.entities]
        if not deps or mapped.refs is None or not self.ctx.config.sync.wait_for_dependencies:
            return {}
        values, offsets = mapped.refs
        if only is not None and len(only) < len(offsets) - 1:  # the refs of these payloads only
            if not only:
                return {}
            keep = np.zeros(len(offsets) - 1, dtype=bool)
            keep[only] = True
            values = values.filter(pa.array(np.repeat(keep, np.diff(offsets))))
            counts = np.diff(offsets)[keep]
            index = np.flatnonzero(keep)
            offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        else:
            index = None
        held = self.index(stream, deps)
        missing = [v for v in pc.unique(values).to_pylist() if v is not None and v not in held and v not in sending]
        if not missing:
            return {}
        present = pc.fill_null(pc.invert(pc.is_in(values, value_set=pa.array(missing, pa.string()))), True)
        hits = np.flatnonzero(~present.to_numpy(zero_copy_only=False))
        owners = np.searchsorted(offsets, hits, side="right") - 1
        if index is not None:
            owners = index[owners]  # back to positions among all payloads
        out: dict[int, str] = {}
        for owner, ref in zip(owners.tolist(), values.take(pa.array(hits)).to_pylist()):
            out.setdefault(owner, ref)
        return out

    def index(self, stream: str, deps: list[str]) -> set[str]:
        """The ids of ``deps`` Altcraft holds (the ledger's delivered records, plus what a dry run would
        have sent), loaded once per stream and run: earlier streams are finished when a later one reads.
        One read of the catalogue's ledger rows (100,000 SKUs: ~0.1 s, ~10 MB), then each chunk checks its
        distinct references against the set. Measured before: point lookups cost ~1 s per 25,000
        references, and Arrow's ``is_in`` against the whole set rebuilt its hash table every chunk
        (~19 ms a chunk, 3.7 s of a 1M-order sync)."""
        memory = self.ctx.memory
        if stream not in memory.delivered_refs:
            ids: set[str] = set()
            for entity in deps:
                ids.update(self.ctx.state.delivered_set(entity))
                if self.ctx.dry_run:
                    ids.update(memory.would_send.get(entity, ()))
            memory.delivered_refs[stream] = ids
        return memory.delivered_refs[stream]
