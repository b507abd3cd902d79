"""The waiting rules: whether a record that names something Altcraft does not hold waits for it or goes.

A dependent waits only while its dependency can still arrive, and for at most ``sync.max_defer``:

- it **can still arrive** when the shop has it (held back by the safety margin, not read yet, its stream not
  run yet), when it failed transiently or is itself waiting, or when it is quarantined in the shop (a fix
  there sends it);
- it **will never arrive** when the shop deleted it (its ``deleted_flag`` is set, or it is no longer in
  the source when looked up by its external id) or Altcraft refused it for good (a permanent rejection).
  Such a dependency blocks nothing: the record goes out with a stand-in for it
  (:mod:`transforms.stand_ins`).

Past ``max_defer`` the record goes out as it is: Altcraft's answer (delivered, or rejected with its
reason) is what the ledger then says. Pure: the engine gathers the facts (ledger, quarantine, source
lookups) and asks these functions."""

from __future__ import annotations

from collections.abc import Collection, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from altcraft_sync import streams as registry
from altcraft_sync.cursor import Cursor
from altcraft_sync.durations import describe
from connectors.state.id_index import held_among
from connectors.state.schema import Known
from transforms.payload import Refs

Fate = Literal["arriving", "gone", "refused"]
Shop = Literal["live", "deleted", "absent"]


@dataclass(frozen=True)
class Dependency:
    """What is known about one referenced id Altcraft does not hold."""

    fate: Fate
    why: str
    """Why, in words a user can act on (``quarantined in the shop: name: str_length``)."""


@dataclass(frozen=True)
class LedgerFact:
    """A dependency's ledger row (any of the entities a reference may be)."""

    status: str
    permanent: bool = False
    error: str | None = None


@dataclass(frozen=True)
class Decision:
    wait: bool
    reason: str = ""
    """Why it waits; or, for a record that goes, why it goes without what it names (empty: nothing missing)."""
    stand_ins: tuple[str, ...] = ()
    """References that will never arrive: an unavailable stand-in is sent for each before the record."""


def classify(ledger: Iterable[LedgerFact], quarantined: str | None, shop: Shop,
             never_ran: tuple[str, ...] = ()) -> Dependency:
    """The fate of one missing reference. ``ledger``: its rows in the entities it may be (a SKU or a
    product); ``quarantined``: the reason it is quarantined, if it is; ``shop``: whether the shop has it
    (``live``), has it marked deleted, or has it no more (``absent``, looked up by external id);
    ``never_ran``: the dependency streams that never ran (none of their records can have been sent)."""
    facts = list(ledger)
    if quarantined is not None:
        return Dependency("arriving", f"quarantined in the shop ({quarantined})")
    for f in facts:
        if f.status in ("failed", "deferred") or (f.status == "rejected" and not f.permanent):
            what = "itself waiting" if f.status == "deferred" else "not delivered yet"
            return Dependency("arriving", f"{what}{': ' + f.error if f.error else ''}")
    refused = [f for f in facts if f.status == "rejected" and f.permanent]
    if refused:
        return Dependency("refused", f"refused by Altcraft for good{': ' + refused[0].error if refused[0].error else ''}")
    if shop == "live":
        if never_ran:
            names = " and ".join(never_ran) if len(never_ran) < 3 else \
                ", ".join(never_ran[:-1]) + " and " + never_ran[-1]
            run = " ".join(f"--stream {n}" for n in never_ran)
            return Dependency("arriving", f"the {names} stream{'s' if len(never_ran) > 1 else ''} never ran: run "
                                          f"{'them' if len(never_ran) > 1 else 'it'} first (altcraft-sync sync {run})")
        return Dependency("arriving", "in the shop, not sent yet (changed within the safety margin, or its "
                                      "stream has not reached it)")
    if shop == "deleted":
        return Dependency("gone", "marked deleted in the shop")
    if any(f.status == "deleted" for f in facts):
        return Dependency("gone", "deleted in the shop")
    return Dependency("gone", "not in the shop any more (deleted)")


def decide(refs: Iterable[str], missing: Mapping[str, Dependency], waited: float, max_defer: float) -> Decision:
    """Wait or go, for one record naming ``refs``; ``missing`` has the fate of each one Altcraft does not
    hold, ``waited`` is how long the record has waited already (seconds since its first deferral)."""
    named = [r for r in dict.fromkeys(refs) if r in missing]
    if not named:
        return Decision(False)
    arriving = [r for r in named if missing[r].fate == "arriving"]
    never = tuple(r for r in named if missing[r].fate != "arriving")
    if arriving and waited < max_defer:
        first = arriving[0]
        left = f"; goes anyway after {describe(max_defer)}" if max_defer > 0 else ""
        return Decision(True, f"waiting for {first!r}: {missing[first].why}{left}")
    parts = [f"{r!r} {missing[r].why}" for r in never[:1]]
    if arriving:
        parts.append(f"waited {describe(max_defer)} (sync.max_defer) for {arriving[0]!r}: {missing[arriving[0]].why}")
    return Decision(False, "; ".join(parts), never)


class Facts(Protocol):
    """What the desk reads: the shop (by external id) and the state (ledger, quarantine, waits)."""

    def find_external_ids(self, entity: str, external_ids: Sequence[str]) -> dict[str, bool]: ...


class StateFacts(Protocol):
    def known(self, entity: str, external_ids: Sequence[str]) -> Mapping[str, Known]: ...
    def quarantined_ids(self, entity: str) -> set[str]: ...
    def has_records(self, entity: str) -> bool: ...
    def get_watermark(self, stream: str, cursor: str) -> Cursor | None: ...
    def waiting_since(self, entity: str, external_ids: Sequence[str]) -> dict[str, datetime]: ...
    def errors(self, entity: str, external_ids: Sequence[str]) -> dict[str, str]: ...


class WaitingDesk:
    """Gathers the facts of :func:`classify` for a stream's missing references (once per reference and
    run: the streams a stream depends on have finished when it reads) and decides each record's wait."""

    def __init__(self, source: Facts, state: StateFacts, streams: Collection[str], max_defer: float) -> None:
        self.source, self.state, self.max_defer = source, state, max_defer
        self.streams = set(streams)
        """The streams this config syncs (only their records can be waited for)."""
        self._fates: dict[str, dict[str, Dependency]] = {}
        self._quarantined: dict[str, set[str]] = {}
        self._ran: dict[str, bool] = {}

    def forget(self, stream: str) -> None:
        """Start ``stream`` afresh (a new stream run: what earlier streams did since counts)."""
        self._fates.pop(stream, None)
        self._fates.pop(stream + "#within", None)
        self._quarantined.clear()
        self._ran.clear()

    def decide(self, stream: str, missing: Mapping[int, list[str]], ids: Mapping[int, str],
               now: datetime, within: bool = False, quarantined_now: Collection[str] = ()) -> dict[int, Decision]:
        """Each record (by position) naming references Altcraft does not hold: wait, or go (with the
        references that need a stand-in). ``ids``: the records' external ids, for how long each waited.
        ``within``: the references are records of ``stream`` itself (a category's parent), whose fates
        also count ``quarantined_now`` (what this run quarantined, not committed yet) (:meth:`fates`)."""
        if not missing:
            return {}
        refs = list(dict.fromkeys(r for refs in missing.values() for r in refs))
        fates = self.fates(stream, refs, within=within, quarantined_now=quarantined_now)
        waited = self._waited(stream, missing, ids, now)
        return {i: decide(refs, fates, waited[i], self.max_defer) for i, refs in missing.items()}

    def decide_owners(self, stream: str, owners: Mapping[int, str], ids: Mapping[int, str],
                      now: datetime) -> dict[int, Decision]:
        """Each record (by position) whose person has no profile in Altcraft yet (``owners``: what it waits
        for). A profile not delivered can still come (its stream sends it, or a fix in the shop does), so it
        waits like any dependency that can still arrive: for at most ``max_defer``."""
        waited = self._waited(stream, owners, ids, now)
        coming = {owner: Dependency("arriving", "no profile in Altcraft yet") for owner in owners.values()}
        return {i: decide([owner], coming, waited[i], self.max_defer) for i, owner in owners.items()}

    def _waited(self, stream: str, records: Collection[int], ids: Mapping[int, str], now: datetime) -> dict[int, float]:
        """Seconds each record (by position) has waited since its first deferral (0 when it never waited)."""
        since = (self.state.waiting_since(registry.get(stream).entity, [ids[i] for i in records])
                 if self.max_defer > 0 else {})
        return {i: (now - since[ids[i]]).total_seconds() if ids[i] in since else 0.0 for i in records}

    def fates(self, stream: str, refs: list[str], within: bool = False,
              quarantined_now: Collection[str] = ()) -> dict[str, Dependency]:
        """The fate of each reference of ``stream``'s records: to records of the streams it depends on, or,
        ``within``, to records of its own ("its stream never ran" cannot apply to those)."""
        known = self._fates.setdefault(stream + ("#within" if within else ""), {})
        todo = [r for r in refs if r not in known]
        if todo:
            deps = ([registry.get(stream)] if within else
                    [registry.get(s) for s in registry.get(stream).depends_on if s in self.streams])
            ledger: dict[str, list[LedgerFact]] = {}
            shop: dict[str, Shop] = {}
            live_in: dict[str, list[str]] = {}
            for dep in deps:
                known_here = self.state.known(dep.entity, todo)
                failing = [e for e, k in known_here.items() if k.status in ("failed", "rejected")]
                errors = self.state.errors(dep.entity, failing) if failing else {}
                for ext, k in known_here.items():
                    ledger.setdefault(ext, []).append(LedgerFact(k.status, k.permanent, errors.get(ext)))
                for ext, deleted in self.source.find_external_ids(dep.name, todo).items():
                    if not deleted:
                        live_in.setdefault(ext, []).append(dep.name)
                    if not deleted or ext not in shop:
                        shop[ext] = "deleted" if deleted else "live"
            for ref in todo:
                quarantined = next((f"see altcraft-sync quarantine --stream {d.name}" for d in deps
                                    if ref in self._quarantine(d.entity) or ref in quarantined_now), None)
                known[ref] = classify(ledger.get(ref, []), quarantined, shop.get(ref, "absent"),
                                      () if within else self._never_ran(live_in.get(ref, [])))
        return {r: known[r] for r in refs}

    def _never_ran(self, streams: list[str]) -> tuple[str, ...]:
        """When a stream whose source holds a reference never ran (no ledger record, no watermark): it and
        the streams it needs that never ran either, in sync order (what to run first). Else none."""
        todo = [s for s in streams if not self._has_run(s)]
        found: set[str] = set()
        while todo:
            name = todo.pop()
            if name in found or name not in self.streams or self._has_run(name):
                continue
            found.add(name)
            todo.extend(registry.get(name).depends_on)
        return tuple(s.name for s in registry.all_specs() if s.name in found)

    def _has_run(self, name: str) -> bool:
        if name not in self._ran:
            self._ran[name] = (self.state.has_records(registry.get(name).entity)
                               or self.state.get_watermark(name, name) is not None)
        return self._ran[name]

    def _quarantine(self, entity: str) -> set[str]:
        if entity not in self._quarantined:
            self._quarantined[entity] = self.state.quarantined_ids(entity)
        return self._quarantined[entity]


def missing_refs(refs: Refs, held: Container[str], only: Sequence[int] | None = None) -> dict[int, list[str]]:
    """Per payload (by position; only those in ``only`` when given), the references not in ``held``, in
    order. The distinct references of the chunk are looked up once (Arrow's ``unique``); only a chunk with
    some missing goes through its payloads, and then only the hits (a chunk of 4,000 orders names ~15,000
    lines: a Python pass over all of them would cost every chunk of a full sync)."""
    values, offsets = refs.values, refs.offsets
    distinct = [v for v in pc.unique(values).to_pylist() if v is not None]
    absent = [v for v, there in zip(distinct, held_among(held, distinct).tolist()) if not there]
    if not absent:
        return {}
    hit = pc.fill_null(pc.is_in(values, value_set=pa.array(absent, pa.string())), False)
    hits = np.flatnonzero(hit.to_numpy(zero_copy_only=False))
    owners = np.searchsorted(offsets, hits, side="right") - 1
    wanted = None if only is None else set(only)
    out: dict[int, list[str]] = {}
    for owner, ref in zip(owners.tolist(), values.take(pa.array(hits, pa.int64())).to_pylist()):
        if wanted is None or owner in wanted:
            named = out.setdefault(owner, [])
            if ref not in named:
                named.append(ref)
    return out
