"""Dependencies before dependents: an order whose line product, a SKU whose product or a product whose
category Altcraft does not hold yet waits as deferred instead of being sent to be rejected as unknown,
but only while what it names can still arrive, and for at most ``sync.max_defer`` (the rules:
:mod:`engine.waiting`). What will never arrive (deleted in the shop, refused for good) blocks nothing: the
record goes out, after a stand-in product for it (:mod:`transforms.stand_ins`).

The delivered ids of what a stream depends on are loaded once per stream and run (earlier streams are
finished when a later one reads); the coordinator calls :meth:`Dependencies.forget` when a stream starts."""

from __future__ import annotations

from collections.abc import Collection, Container
from datetime import UTC, datetime

from altcraft_sync import streams as registry
from engine.context import RunContext
from engine.waiting import Decision, WaitingDesk, missing_refs
from transforms.payload import Mapped
from transforms.stand_ins import ENTITY as STAND_IN
from transforms.stand_ins import STANDS_FOR


class Dependencies:
    """``blocked``: which payloads of a chunk refer to something not delivered."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.desk = WaitingDesk(ctx.source, ctx.state, ctx.source.entities, ctx.config.sync.max_defer)

    def forget(self, stream: str) -> None:
        """Load again what ``stream`` depends on: what earlier streams delivered since it was loaded counts."""
        self.ctx.memory.delivered_refs.pop(stream, None)
        self.desk.forget(stream)

    def waits(self, stream: str, mapped: Mapped, only: list[int]) -> dict[int, Decision]:
        """For the payloads at ``only`` that name something Altcraft does not hold (a stand-in sent counts
        as held): whether each waits, or goes and which references need a stand-in first."""
        deps = self._deps(stream)
        if not deps or mapped.refs is None or not only:
            return {}
        held = self.index(stream, deps)
        missing = missing_refs(mapped.refs, _Either(held, self.ctx.memory.standing_in), only)
        if not missing:
            return {}
        ids = {i: mapped.payloads[i].external_id for i in missing}
        return self.desk.decide(stream, missing, ids, datetime.now(UTC))

    def _deps(self, stream: str) -> list[str]:
        """The entities ``stream``'s records may name that this config syncs (none when waiting is off)."""
        if not self.ctx.config.sync.wait_for_dependencies:
            return []
        return [registry.get(s).entity for s in registry.get(stream).depends_on if s in self.ctx.source.entities]

    def blocked(self, stream: str, mapped: Mapped, sending: Collection[str] = (),
                 only: list[int] | None = None) -> dict[int, str]:
        """Payloads (by position) that refer to anything Altcraft does not hold, each with the first such
        reference, whatever its fate: a carrier of definitions or categories must need nothing (records
        themselves go through :meth:`waits`). Only streams this config syncs count: an orders-only config
        trusts Altcraft's catalogue. ``sending`` are references that travel in the same request (the
        categories a carrier product goes with)."""
        deps = self._deps(stream)
        if not deps or mapped.refs is None:
            return {}
        held = _Either(self.index(stream, deps), set(sending))
        return {i: refs[0] for i, refs in missing_refs(mapped.refs, held, only).items()}

    def index(self, stream: str, deps: list[str]) -> set[str]:
        """The ids of ``deps`` Altcraft holds (the ledger's delivered records, plus what a dry run would
        have sent), loaded once per stream and run: earlier streams are finished when a later one reads.
        One read of the catalogue's ledger rows (a catalogue's size, not the orders'), then each chunk
        checks only its distinct references against the set: cheaper than point lookups per reference or
        a hash table rebuilt against the whole set every chunk."""
        memory = self.ctx.memory
        if stream not in memory.delivered_refs:
            ids: set[str] = set()
            for entity in deps:
                ids.update(self.ctx.state.delivered_set(entity))
                if self.ctx.dry_run:
                    ids.update(memory.would_send.get(entity, ()))
            if set(deps) & STANDS_FOR:  # a record naming a product may name a stand-in
                ids.update(self.ctx.state.delivered_set(STAND_IN))
            memory.delivered_refs[stream] = ids
        return memory.delivered_refs[stream]


class _Either(Container[str]):
    """Membership in either of two sets, without building their union (the catalogue's ids are many)."""

    def __init__(self, first: Container[str], second: Container[str]) -> None:
        self.first, self.second = first, second

    def __contains__(self, item: object) -> bool:
        return item in self.first or item in self.second
