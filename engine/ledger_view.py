"""The run's view of the ledger beyond one chunk's ``known``: what is quarantined, what dead runs may have
sent, whether an entity has records, and which deletes are due. Each look-up is loaded once per run (in
:class:`engine.context.RunMemory`) and kept current; only the state store is read."""

from __future__ import annotations

from collections.abc import Sequence

from altcraft_sync import streams as registry
from engine.context import Key, RunContext
from transforms.payload import Payload


class LedgerView:
    """Cached ledger look-ups shared by the decider (run thread) and the dispatcher (push thread)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def renamed(self, stream: str, new: list[Payload]) -> list[tuple[str, Key]]:
        """Records whose external id changed for the same source key (a SKU code edited in the shop): the
        old id is deleted in Altcraft with the chunk, or it would stay there for good. A first sync (the
        ledger holds nothing of the entity) skips the lookup."""
        spec = self.ctx.config.streams.section(stream)
        assert spec is not None
        entity = registry.get(stream).entity
        if not new or spec.columns.get("external_id") == spec.primary_key:  # an id that is the key never changes
            return []
        has = self.ctx.memory.ledger_has
        if entity not in has:
            has[entity] = self.ctx.state.has_records(entity)
        if not has[entity]:
            return []
        return list(self.ctx.state.former_ids(entity, [(p.external_id, p.source_pk) for p in new]))

    def delete_targets(self, entity: str, deletions: Sequence[tuple[str, Key]]) -> list[tuple[str, Key]]:
        """The soft-deleted records Altcraft may hold: the ledger's, not yet deleted, and those a dead
        run's in-flight note names (rows never sent need no delete)."""
        if not deletions:
            return []
        known = self.ctx.state.known(entity, [ext for ext, _ in deletions])
        maybe_sent = self.maybe_sent(entity)
        return [(ext, pk) for ext, pk in deletions
                if (known[ext].status != "deleted" if ext in known else ext in maybe_sent)]

    def maybe_sent(self, entity: str) -> set[str]:
        """Ids named by in-flight notes of runs that died between Altcraft's answer and the commit (loaded
        once per run): Altcraft may hold them though the ledger does not, so a soft delete reaches them."""
        notes = self.ctx.memory.in_flight_ids
        if entity not in notes:
            notes[entity] = {ext for ext, _ in self.ctx.state.unsettled(entity)[1]}
        return notes[entity]

    def skippable(self, stream: str, external_ids: list[str]) -> dict[str, tuple[str, int]]:
        """What the ledger holds for records of ``stream`` a re-read may skip mapping for (``LedgerStore.
        raw_digests``); nothing when the run re-sends everything. An entity the state held nothing of when
        the run started (a first sync) is not looked up. A record quarantined earlier in this run is left
        out: today's count calls it invalid again, not still invalid, and its quarantine row may not be
        committed yet. A dry run maps every quarantined record: its table shows each invalid record it
        reads with its reasons."""
        ctx = self.ctx
        spec = registry.get(stream)
        if ctx.options.resend:
            return {}
        if not self.held_at_start(spec.entity) or not external_ids:
            return {}
        now = ctx.memory.quarantined_now.get(spec.entity, set())
        known = ctx.state.raw_digests(spec.entity, external_ids)
        return {e: k for e, k in known.items() if not (k[0] == "invalid" and (ctx.dry_run or e in now))}

    def held_at_start(self, entity: str) -> bool:
        """Whether the state held any record of ``entity`` when the run started (asked once per run). The
        coordinator asks for every stream before the first one sends its definitions, whose carriers are
        records (an order; a product for categories): asked after, a first sync would look up every
        record's digest in vain."""
        holds = self.ctx.memory.holds_digests
        if entity not in holds:
            holds[entity] = self.ctx.state.has_records(entity) or bool(self.quarantined(entity))
        return holds[entity]

    def quarantined(self, entity: str) -> set[str]:
        """The entity's quarantined external_ids (loaded once per run, kept current): only those need a
        delete when they turn valid, instead of a delete per valid record."""
        ids = self.ctx.memory.quarantine_ids
        if entity not in ids:
            ids[entity] = self.ctx.state.quarantined_ids(entity)
        return ids[entity]
