"""The decision step of a chunk: what the ledger says is unchanged, what waits (deferred), what is new or
changed, what must be deleted (soft deletes, renamed ids), and what leaves the quarantine.

Pure of network I/O: only the state store is read (through :class:`engine.ledger_view.LedgerView`). Runs
on the run thread; the pipeline's push thread then sends and commits what it returns."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from altcraft_sync import streams as registry
from connectors.state import Known, LedgerEntry
from engine.context import Key, RunContext
from engine.dependencies import Dependencies
from engine.ledger_view import LedgerView
from engine.outcomes import deferred_entry
from engine.stats import StreamStats
from engine.waiting import Decision
from transforms.payload import Mapped, Payload
from transforms.stand_ins import stand_ins

Reasons = list[dict[str, object]]
"""Why a record is quarantined: one ``{"check", "field", "value"}`` per failed check."""
Quarantined = tuple[str, str, Key, Reasons]
"""A quarantined record: (entity, external_id, source_pk, reasons)."""


@dataclass
class Prepared:
    """A mapped chunk, ready for the pipeline thread to push and commit."""

    entries: list[LedgerEntry]
    quarantined: list[Quarantined]
    cleared: list[tuple[str, str]]
    send: list[Payload]
    deletions: list[tuple[str, Key]]
    stand_ins: list[Payload] = field(default_factory=list)
    """Unavailable products to send before ``send``: what some of its records name will never arrive."""
    quiet: set[str] = field(default_factory=set)
    """Ids in ``send`` whose change is older than ``sync.trigger_window``: sent with ``skip_triggers``."""
    digests: dict[tuple[str, str], int] = field(default_factory=dict)
    """(entity, external_id) -> raw digest of each mapped record: kept with a delivery or a quarantine row."""
    seen_invalid: list[tuple[str, str]] = field(default_factory=list)
    """Quarantined records re-read unchanged and not mapped: still invalid, seen by this run."""
    redigested: list[tuple[str, str, int]] = field(default_factory=list)
    """Delivered records re-read and mapped to the payload the ledger holds, whose digest it lacks or
    differs (rows changed outside the payload, or delivered before digests): the digest alone is updated."""


class Decider:
    """``process``: a mapped chunk against the ledger."""

    def __init__(self, ctx: RunContext, dependencies: Dependencies, ledger: LedgerView) -> None:
        self.ctx, self.dependencies, self.ledger = ctx, dependencies, ledger

    def process(self, stream: str, mapped: Mapped, stats: StreamStats, *, digests: dict[str, int] | None = None,
                skipped: dict[str, str] | None = None) -> Prepared:
        """Decide what of a mapped chunk to send (the ledger says what is unchanged). Runs on the run
        thread; its figures are added in one step, as the push thread counts into the same stats.

        ``skipped``: records of the chunk that were not mapped because their raw rows are those the ledger's
        outcome came from (``engine.mapping.unchanged``): ``"delivered"`` ones count as unchanged,
        ``"invalid"`` ones as still invalid, and nothing else happens to them. ``digests``: the raw digest
        of each mapped record, kept with its delivery or quarantine row."""
        ctx = self.ctx
        entity = registry.get(stream).entity
        digests, skipped = digests or {}, skipped or {}
        for w in mapped.warnings:
            ctx.log.warning("%s: %s", stream, w)
            stats.warnings.append(w)
        quarantined = group_quarantine(mapped.quarantine)
        self._count_quarantine(quarantined, stats)
        self._note_seen(entity, mapped, quarantined, skipped)
        before = self._quarantined_before(entity, quarantined)
        counts: Counter[str] = Counter(invalid=len(quarantined) - before, still_invalid=before)
        seen_invalid = self._count_skipped(entity, skipped, counts, stats)
        payloads = mapped.payloads
        t = time.perf_counter()
        known = ctx.state.known(entity, [p.external_id for p in payloads]) if payloads else {}
        redigested: list[tuple[str, str, int]] = []
        candidates = self._changed(entity, payloads, known, counts, stats, digests, redigested)
        waits = self.dependencies.waits(stream, mapped, candidates)  # only what would be sent needs checking
        stats.timed("ledger", t)
        entries: list[LedgerEntry] = []
        send: list[Payload] = []
        needs: set[str] = set()
        for i in candidates:
            p = payloads[i]
            decision = waits.get(i)
            if decision is not None and decision.wait:
                entries.append(self._defer(entity, p, decision.reason, stats))
                continue
            if decision is not None:
                self._goes_without(stream, p, decision, stats)
                needs.update(decision.stand_ins)
            send.append(p)
            k = known.get(p.external_id)
            counts["new" if k is None or k.status == "deleted" else "changed"] += 1
        stand_ins = self._stand_ins(mapped, needs, stats)
        quiet = self._quiet(mapped, send)
        deletions = mapped.deletions + self.ledger.renamed(stream, [p for p in payloads if p.external_id not in known])
        cleared = [(entity, ext) for ext, _ in mapped.deletions] + self._requarantine(entity, payloads, quarantined)
        if ctx.dry_run:
            counts["deleted"] += len(self.ledger.delete_targets(entity, deletions))  # would delete
            if entity in registry.depended_on():
                ctx.memory.would_send.setdefault(entity, set()).update(p.external_id for p in send)
            ctx.sample(stats, "new", [p for p in send if p.external_id not in known])
            ctx.sample(stats, "changed", [p for p in send if p.external_id in known])
            send, deletions, stand_ins = [], [], []
        stats.add(**counts)
        return Prepared(entries, quarantined, cleared, send, deletions, stand_ins, quiet,
                        {(entity, e): d for e, d in digests.items()}, seen_invalid, redigested)

    def _count_skipped(self, entity: str, skipped: dict[str, str], counts: Counter[str], stats: StreamStats
                       ) -> list[tuple[str, str]]:
        """Records not mapped, their rows unchanged: counted as their re-read would have been. The invalid
        ones are quarantined again by this run, as if mapped (the quarantine re-read leaves them alone);
        returned to be marked seen."""
        if not skipped:
            return []
        same = [e for e, held in skipped.items() if held == "delivered"]
        invalid = [e for e, held in skipped.items() if held == "invalid"]
        counts["unchanged"] += len(same)
        counts["still_invalid"] += len(invalid)
        counts["unmapped"] += len(skipped)
        if self.ctx.dry_run and same:
            self.ctx.sample(stats, "unchanged", same)
        self.ctx.memory.quarantined_now.setdefault(entity, set()).update(invalid)
        return [(entity, e) for e in invalid]

    def _goes_without(self, stream: str, p: Payload, decision: Decision, stats: StreamStats) -> None:
        """A record naming something Altcraft does not hold goes anyway: what it names will never arrive
        (a stand-in goes first) or it waited ``sync.max_defer``. Said in the log and the samples."""
        self.ctx.log.debug("%s %s goes without waiting: %s", stream, p.external_id, decision.reason)
        self.ctx.sample(stats, "sent_without_dependency", [{"external_id": p.external_id, "reason": decision.reason}])

    def _stand_ins(self, mapped: Mapped, needs: set[str], stats: StreamStats) -> list[Payload]:
        """Stand-in products for references that will never arrive, each once a run (only records whose
        lines say what they name, orders, get them; others go as they are)."""
        standing = self.ctx.memory.standing_in
        if not needs or mapped.ref_lines is None:
            return []
        made = stand_ins(mapped, needs - standing)
        standing.update(p.external_id for p in made)
        stats.add(stand_ins=len(made))
        return made

    def _quiet(self, mapped: Mapped, send: list[Payload]) -> set[str]:
        """The records to send whose change is older than the trigger window (an unknown time counts as
        old: history must not fire triggers)."""
        cutoff = self.ctx.memory.trigger_cutoff
        if cutoff is None or mapped.changed_at is None or not send:
            return set()
        at = dict(zip((p.external_id for p in mapped.payloads), mapped.changed_at.tolist()))
        return {p.external_id for p in send if not at.get(p.external_id, float("nan")) >= cutoff}

    def _note_seen(self, entity: str, mapped: Mapped, quarantined: list[Quarantined], skipped: dict[str, str]) -> None:
        """In a full read (a stream without ``updated_at``), every record the source has, mapped or not:
        what the pass never sees has left the source."""
        seen = self.ctx.memory.seen.get(entity)
        if seen is not None:
            seen.add(p.external_id for p in mapped.payloads)
            seen.add(ext for _, ext, _, _ in quarantined)
            seen.add(iter(skipped))

    def _count_quarantine(self, quarantined: list[Quarantined], stats: StreamStats) -> None:
        for _, _, _, reasons in quarantined:
            for r in reasons:
                key = f"{r['field'] or '*'}: {r['check']}"
                stats.quarantine_reasons[key] = stats.quarantine_reasons.get(key, 0) + 1
        if quarantined:
            self.ctx.sample(stats, "invalid", [{"external_id": ext, "reasons": reasons} for _, ext, _, reasons in quarantined])

    def _changed(self, entity: str, payloads: list[Payload], known: dict[str, Known], counts: Counter[str],
                 stats: StreamStats, digests: dict[str, int], redigested: list[tuple[str, str, int]]) -> list[int]:
        """Positions of payloads to send: new, changed, or not delivered yet. What the ledger holds with the
        same fingerprint is counted (unchanged, a carrier delivered this run, a permanent rejection that
        stays visible until its data changes) and skipped, unless the run re-sends everything. A delivered
        one whose raw digest the ledger lacks gets it (``redigested``): the next re-read skips mapping."""
        ctx = self.ctx
        carried = ctx.memory.carried
        candidates: list[int] = []
        for i, p in enumerate(payloads):
            k = known.get(p.external_id)
            if ctx.options.resend or k is None or k.fingerprint != p.fingerprint or not (k.status == "delivered" or k.permanent):
                candidates.append(i)
            elif (entity, p.external_id) in carried:  # new, delivered this run as a carrier
                carried.discard((entity, p.external_id))
                counts["delivered"] += 1
                counts["new"] += 1
                self._redigest(entity, p.external_id, k, digests, redigested)
            elif k.status == "delivered":
                counts["unchanged"] += 1
                self._redigest(entity, p.external_id, k, digests, redigested)
                if ctx.dry_run:
                    ctx.sample(stats, "unchanged", [p.external_id])
            else:  # rejected for good before this run, re-read unchanged: the backlog, not news
                counts["still_rejected"] += 1
        return candidates

    @staticmethod
    def _redigest(entity: str, ext: str, k: Known, digests: dict[str, int], redigested: list[tuple[str, str, int]]) -> None:
        d = digests.get(ext)
        if d is not None and d != k.raw_digest:
            redigested.append((entity, ext, d))

    def _quarantined_before(self, entity: str, quarantined: list[Quarantined]) -> int:
        """How many of a chunk's invalid records were quarantined before this run (re-read by a lookback
        or by key): the backlog, counted ``still_invalid``, not again as this run's news. A dry run counts
        every invalid record it reads: its table says what the data holds."""
        if not quarantined or self.ctx.dry_run:
            return 0
        known = self.ledger.quarantined(entity)
        now = self.ctx.memory.quarantined_now.get(entity, set())
        return sum(1 for _, ext, _, _ in quarantined if ext in known and ext not in now)

    def _requarantine(self, entity: str, payloads: list[Payload], quarantined: list[Quarantined]) -> list[tuple[str, str]]:
        """Keep the run's view of the quarantine current: records of this chunk that were quarantined and
        are valid now are cleared (returned), those quarantined now are added."""
        in_quarantine = self.ledger.quarantined(entity)
        cleared: list[tuple[str, str]] = []
        if in_quarantine:
            cleared = [(entity, p.external_id) for p in payloads if p.external_id in in_quarantine]
            in_quarantine.difference_update(ext for _, ext in cleared)
        in_quarantine.update(ext for _, ext, _, _ in quarantined)
        self.ctx.memory.quarantined_now.setdefault(entity, set()).update(ext for _, ext, _, _ in quarantined)
        return cleared

    def _defer(self, entity: str, p: Payload, why: str, stats: StreamStats) -> LedgerEntry:
        """A record that waits (``why`` names what for and why it can still arrive): not sent, not a
        rejection; re-read on every run (the ledger's pending records) until it can go."""
        stats.add(deferred=1)
        general = why.split(": ", 1)[-1]  # the reason without the reference: one count per kind
        stats.deferred_reasons[general] = stats.deferred_reasons.get(general, 0) + 1
        if "never ran" in general and general not in stats.warnings:
            stats.warnings.append(general)
        self.ctx.memory.attempted.add((entity, p.external_id))
        self.ctx.sample(stats, "deferred", [{"external_id": p.external_id, "reason": why}])
        return deferred_entry(entity, p, why)


def group_quarantine(q: pd.DataFrame) -> list[Quarantined]:
    """Quarantine rows grouped per record: (entity, external_id, source_pk, [reasons])."""
    if q.empty:
        return []
    out: dict[tuple[str, str], Quarantined] = {}
    for entity, ext, pk, check, fld, value in zip(q["entity"], q["external_id"], q["source_pk"], q["check"],
                                                  q["field"], q["value"]):
        key = (entity, str(ext))
        if key not in out:
            out[key] = (entity, str(ext), pk, [])
        out[key][3].append({"check": check, "field": fld, "value": None if value is None or value != value else value})
    return list(out.values())
