"""Sending a chunk to Altcraft: the import and delete method of each stream, with their figures. Runs on
the pipeline's push thread; every outcome becomes its ledger entry in :mod:`engine.outcomes`."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from altcraft_sync import streams as registry
from altcraft_sync.sources import ProfilesStream
from altcraft_sync.streams import StreamSpec
from connectors.altcraft import ImportReport
from connectors.altcraft_profiles import ProfileClient
from connectors.state import LedgerEntry
from engine.carriers import Carriers
from engine.context import Key, RunContext
from engine.ledger_view import LedgerView
from engine.outcomes import deleted_entry, sent_entry
from engine.stats import StreamStats
from transforms.payload import Payload
from transforms.stand_ins import ENTITY as STAND_IN
from transforms.stand_ins import IMPORT_METHOD as STAND_IN_METHOD


def import_root(spec: StreamSpec, skip_triggers: bool) -> dict[str, bool]:
    """The root options of the stream's import request."""
    return {"skip_triggers": skip_triggers} if spec.takes_skip_triggers else {}


class Dispatcher:
    """``push`` (imports) and ``delete`` (deletes)."""

    def __init__(self, ctx: RunContext, carriers: Carriers, ledger: LedgerView) -> None:
        self.ctx, self.carriers, self.ledger = ctx, carriers, ledger

    def import_records(self, stream: str, send: list[Payload], *, skip_triggers: bool) -> ImportReport:
        """One import of ``send`` through the stream's import method (no figures, no ledger)."""
        return self.import_groups(stream, [(send, skip_triggers)])

    def import_groups(self, stream: str, groups: list[tuple[list[Payload], bool]]) -> ImportReport:
        """Imports of each ``(records, skip_triggers)`` group through the stream's import method, their
        requests overlapping (no figures, no ledger)."""
        spec = registry.get(stream)
        assert spec.import_method is not None, f"{stream} is carried, not imported"
        if spec.profiles:  # profiles/import_batch: results by position, one mode a request
            section = self.ctx.config.streams.section(stream)
            assert isinstance(section, ProfilesStream), f"{stream} has no profile settings"
            report = ImportReport()
            for send, skip_triggers in groups:
                if send:
                    report.merge(ProfileClient(self.ctx.need_client()).import_profiles(
                        send, root={**section.import_root(), **import_root(spec, skip_triggers)},
                        mode_of=section.mode_for, method=spec.import_method))
            return report
        return self.ctx.need_client().import_groups(
            spec.import_method, [(send, import_root(spec, skip_triggers)) for send, skip_triggers in groups])

    def push(self, stream: str, send: list[Payload], stats: StreamStats,
             quiet: Collection[str] = ()) -> list[LedgerEntry]:
        """Send ``send`` and return each record's ledger entry. Records in ``quiet`` (older than the trigger
        window) go in a request of their own with ``skip_triggers: true``: the flag is per request."""
        ctx = self.ctx
        spec = registry.get(stream)
        entity = spec.entity
        if spec.import_method is None:  # carried at the root of another stream's import (categories)
            return self.carriers.push_categories(stream, send, stats)
        loud = ctx.options.skip_triggers or not quiet or not spec.takes_skip_triggers
        if loud:
            report = self.import_records(stream, send, skip_triggers=ctx.options.skip_triggers)
        else:
            history = [p for p in send if p.external_id in quiet]
            fresh = [p for p in send if p.external_id not in quiet]
            report = self.import_groups(stream, [(history, True), (fresh, False)])
            stats.add(without_triggers=len(history))
        counts = {"delivered": 0, "rejected": 0, "failed": 0}
        entries = []
        for p in send:
            o = report.outcomes[p.external_id]
            if o.status != "delivered":  # only what may be pending: memory stays flat in N
                ctx.memory.attempted.add((entity, p.external_id))
            entries.append(sent_entry(entity, p, o))
            counts[o.status if o.status in counts else "failed"] += 1
            if o.status == "rejected":
                ctx.log.warning("%s %s rejected by Altcraft: %s %s", entity, p.external_id, o.code, o.text)
        stats.add(requests=report.requests, **counts)
        if counts["rejected"] or counts["failed"]:
            ctx.sample(stats, "rejected", [
                {"external_id": e.external_id, "code": e.error_code, "error": e.error_text}
                for e in entries if e.status != "delivered"])
        return entries

    def push_stand_ins(self, stand_ins: list[Payload], stats: StreamStats) -> list[LedgerEntry]:
        """Send stand-in products (:mod:`transforms.stand_ins`) and return their ledger entries. A stand-in
        Altcraft refuses is logged; the order naming it still goes (Altcraft's answer to it is recorded)."""
        ctx = self.ctx
        report = ctx.need_client().import_records(STAND_IN_METHOD, stand_ins)
        entries = [sent_entry(STAND_IN, p, report.outcomes[p.external_id]) for p in stand_ins]
        for e in entries:
            if e.status != "delivered":
                ctx.memory.standing_in.discard(e.external_id)  # tried again with the next order naming it
                ctx.log.warning("stand-in product %s not taken by Altcraft: %s %s", e.external_id, e.error_code,
                                e.error_text)
        stats.add(requests=report.requests)
        return entries

    def delete(self, stream: str, deletions: Sequence[tuple[str, Key]], stats: StreamStats,
               only_known: bool = True) -> list[LedgerEntry]:
        """Delete in Altcraft what the ledger says is there; rows never sent need nothing. Reconcile and
        verify also delete what may have been sent unknown to the ledger (``only_known=False``): a delete of
        an id Altcraft does not hold counts as done."""
        ctx = self.ctx
        spec = registry.get(stream)
        targets = self.ledger.delete_targets(spec.entity, deletions) if only_known else deletions
        if not targets or ctx.dry_run:
            return []
        if spec.erase_method is not None and spec.delete_method is None:
            self._report_people(stream, targets, stats)
            return []
        if spec.delete_method is None:
            return []  # Altcraft cannot delete them (categories have no delete method, docs/altcraft-api.md §1.2)
        report = ctx.need_client().delete_records(spec.delete_method, [ext for ext, _ in targets],
                                                  one_by_one=spec.delete_one_by_one)
        out = [deleted_entry(spec.entity, ext, pk, report.outcomes[ext]) for ext, pk in targets]
        stats.add(requests=report.requests, deleted=sum(e.status == "deleted" for e in out))
        return out

    def _report_people(self, stream: str, targets: Sequence[tuple[str, Key]], stats: StreamStats) -> None:
        """People deleted or anonymised in the shop, or whose key changed: a sync never deletes a profile;
        each is reported with the command that does."""
        for ext, pk in targets:
            line = (f"{ext} (shop key {pk}) was deleted, anonymised or re-keyed in the shop; its profile stays in "
                    f"Altcraft: `altcraft-sync forget --customer {pk if pk is not None else ext}` deletes it")
            self.ctx.log.warning("%s: %s", stream, line)
            stats.warnings.append(line)
        self.ctx.sample(stats, "erased", [ext for ext, _ in targets])
