"""Dependencies before dependents: an order whose line product or buyer's profile, a SKU whose product or a
product whose category Altcraft does not hold yet waits as deferred instead of being sent to be rejected as
unknown, but only while what it names can still arrive, and for at most ``sync.max_defer`` (the rules:
:mod:`engine.waiting`). What will never arrive (deleted in the shop, refused for good) blocks nothing: the
record goes out, after a stand-in product for it (:mod:`transforms.stand_ins`). A buyer's profile is
waited for the same bounded time (:meth:`Dependencies.owner_waits`).

The delivered ids of what a stream depends on are loaded once per stream and run (earlier streams are
finished when a later one reads); the coordinator calls :meth:`Dependencies.forget` when a stream starts."""

from __future__ import annotations

from collections.abc import Collection, Container, Sequence
from datetime import UTC, datetime

import numpy as np

from altcraft_sync import streams as registry
from connectors.state.id_index import IdIndex, held_among
from engine.context import RunContext
from engine.waiting import Decision, WaitingDesk, missing_refs
from transforms.payload import Mapped
from transforms.stand_ins import ENTITY as STAND_IN
from transforms.stand_ins import STANDS_FOR

_OWNERS, _HELD_BACK = "owners:", "held-back owners:"
"""Prefixes of the indexes of a stream's owners (the profiles its records are sent for): those Altcraft
holds, and those the ledger or the quarantine holds back."""


class Dependencies:
    """``blocked``: which payloads of a chunk refer to something not delivered."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.desk = WaitingDesk(ctx.source, ctx.state, ctx.source.entities, ctx.config.sync.max_defer)

    def forget(self, stream: str) -> None:
        """Load again what ``stream`` depends on: what earlier streams delivered since it was loaded counts."""
        self.ctx.memory.delivered_refs.pop(stream, None)
        self.desk.forget(stream)
        for prefix in (_OWNERS, _HELD_BACK):
            self.ctx.memory.delivered_refs.pop(prefix + stream, None)

    def waits(self, stream: str, mapped: Mapped, only: list[int]) -> dict[int, Decision]:
        """For the payloads at ``only`` that name something Altcraft does not hold (a stand-in sent counts
        as held), or whose buyer has no profile there yet: whether each waits, or goes and which references
        need a stand-in first. A record whose references let it go still waits for its buyer's profile."""
        if not self.ctx.config.sync.wait_for_dependencies or not only:
            return {}
        ids = {i: mapped.payloads[i].external_id for i in only}
        now = datetime.now(UTC)
        out: dict[int, Decision] = {}
        deps = self._deps(stream)
        if deps and mapped.refs is not None:
            held = self.index(stream, deps)
            missing = missing_refs(mapped.refs, _Either(held, self.ctx.memory.standing_in), only)
            if missing:
                out = self.desk.decide(stream, missing, ids, now)
        owners = self.by_owner(stream, mapped, [i for i in only if not (i in out and out[i].wait)])
        for i, decision in self.desk.decide_owners(stream, owners, ids, now).items():
            # a buyer's wait holds the record back; once over, the record goes as its references decided
            # (with the stand-ins they need)
            out[i] = decision if i not in out or decision.wait else out[i]
        return out

    def _deps(self, stream: str) -> list[str]:
        """The entities ``stream``'s records may name that this config syncs (none when waiting is off)."""
        if not self.ctx.config.sync.wait_for_dependencies:
            return []
        return [registry.get(s).entity for s in registry.get(stream).depends_on if s in self.ctx.source.entities]

    def blocked(self, stream: str, mapped: Mapped, sending: Collection[str] = (),
                only: list[int] | None = None) -> dict[int, str]:
        """Payloads (by position) that refer to anything Altcraft does not hold, each with what it waits for,
        whatever its fate: the first reference Altcraft does not hold (:meth:`by_refs`), else the profile of
        the person it is sent for (:meth:`by_owner`). A carrier of definitions or categories must need
        nothing; records themselves go through :meth:`waits`."""
        if not self.ctx.config.sync.wait_for_dependencies:
            return {}
        out = self.by_refs(stream, mapped, sending, only)
        for i, owner in self.by_owner(stream, mapped, only).items():
            out.setdefault(i, owner)
        return out

    def by_owner(self, stream: str, mapped: Mapped, only: list[int] | None = None) -> dict[int, str]:
        """Payloads whose person (an order's buyer, ``Payload.owner``) has no delivered profile in the
        profile streams this config syncs: Altcraft may refuse an order of an unknown buyer
        (docs/altcraft-profiles.md), so it waits, like an order for its product."""
        spec = registry.get(stream)
        owners = [registry.get(s).entity for s in spec.owned_by if s in self.ctx.source.entities]
        if not owners:
            return {}
        held = self.index(_OWNERS + stream, owners)
        # with every profile stream synced, an unknown buyer is one not sent yet; with some left out (guests
        # not mapped), only a buyer the synced streams hold back waits: the others are Altcraft's to know
        coming = None if len(owners) == len(spec.owned_by) else self._held_back(stream, owners)
        positions = range(len(mapped.payloads)) if only is None else only
        named = [(i, owner) for i in positions if (owner := mapped.payloads[i].owner) is not None]
        found = held_among(held, [owner for _, owner in named])  # one vectorised lookup a chunk
        return {i: f"profile {owner}" for (i, owner), there in zip(named, found.tolist())
                if not there and (coming is None or owner in coming)}

    def _held_back(self, stream: str, entities: list[str]) -> Container[str]:
        """Profiles of ``entities`` the ledger holds back (failed, rejected, deferred) or the shop's
        quarantine holds, loaded once per stream and run like :meth:`index`."""
        memory = self.ctx.memory
        key = _HELD_BACK + stream
        if key not in memory.delivered_refs:
            ids: set[str] = set()
            for entity in entities:
                ids.update(ext for ext, _ in self.ctx.state.ids_with_status(entity, ("failed", "rejected", "deferred")))
                ids.update(self.ctx.state.quarantined_ids(entity))
            memory.delivered_refs[key] = ids
        return memory.delivered_refs[key]

    def by_refs(self, stream: str, mapped: Mapped, sending: Collection[str] = (),
                only: list[int] | None = None) -> dict[int, str]:
        """Payloads (by position) that refer to a record of an earlier stream Altcraft does not hold yet
        (held back by the safety margin, quarantined, rejected or failing), each with the first such
        reference. Altcraft would reject them as unknown; they wait in the ledger as deferred instead.
        Only streams this config syncs count: an orders-only config trusts Altcraft's catalogue. ``sending``
        are references that travel in the same request (the categories a carrier product goes with)."""
        deps = self._deps(stream)
        if not deps or mapped.refs is None:
            return {}
        held = _Either(self.index(stream, deps), set(sending))
        return {i: refs[0] for i, refs in missing_refs(mapped.refs, held, only).items()}

    def index(self, stream: str, deps: list[str]) -> Container[str]:
        """The ids of ``deps`` Altcraft holds (the ledger's delivered records, plus what a dry run would
        have sent), loaded once per stream and run: earlier streams are finished when a later one reads.
        One read of the catalogue's (or the customers') ledger rows, kept as sorted 64-bit hashes
        (:class:`connectors.state.id_index.IdIndex`, 8 bytes an id, not a set of strings that grows with
        the shop); each chunk checks only its distinct references, in one vectorised lookup."""
        memory = self.ctx.memory
        if stream not in memory.delivered_refs:
            entities = list(deps) + ([STAND_IN] if set(deps) & STANDS_FOR else [])  # a product may be a stand-in
            parts = [self.ctx.state.delivered_index(entity) for entity in entities]
            index = parts[0] if len(parts) == 1 else IdIndex.union(parts)
            if self.ctx.dry_run:
                index = index.with_ids(i for entity in deps for i in memory.would_send.get(entity, ()))
            memory.delivered_refs[stream] = index
        return memory.delivered_refs[stream]


class _Either(Container[str]):
    """Membership in either of two sets, without building their union (the catalogue's ids are many)."""

    def __init__(self, first: Container[str], second: Container[str]) -> None:
        self.first, self.second = first, second

    def __contains__(self, item: object) -> bool:
        return item in self.first or item in self.second

    def contains(self, ids: Sequence[str]) -> np.ndarray:
        return held_among(self.first, ids) | held_among(self.second, ids)
