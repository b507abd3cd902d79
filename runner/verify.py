"""``verify``: proof that Altcraft holds what the shop holds, and ``--repair`` when it does not.

A sync trusts Altcraft's answers; after an incident on Altcraft's side (a restore, a manual edit, a
purge) only reading Altcraft back can tell whether it still holds what the ledger says it was sent. The
verifier pages through Altcraft's list methods (``next_from_id``) and, page by page, looks each listed
record up in the ledger and re-reads and maps its source row, so memory is bounded by a page (plus the set
of listed ids, to find the missing ones). Each record lands in one bucket:

- ``ok``: the listed fields equal the mapped source record (:mod:`transforms.compare`);
- ``different``: the source is unchanged since it was delivered, yet Altcraft holds other values;
- ``pending``: the source changed since it was delivered (or was never delivered): the next sync sends
  it, so it is not a difference;
- ``rejected``: Altcraft rejected this very version for good: no sync re-sends it until its data changes
  in the shop (``altcraft-sync quarantine`` shows why), so it is neither pending nor a difference;
- ``missing``: the ledger says delivered, Altcraft does not list it;
- ``deleted_present``: deleted in the shop (and in the ledger), still in Altcraft;
- ``extra``: Altcraft holds it, the shop does not (hard-deleted); ``extra_not_ours``: the ledger never
  sent it (created by someone else): reported, never deleted.

``repair`` re-sends exactly the missing and different records (orders with ``skip_triggers``: no customer
hears of a repair) and deletes the extras and deleted-but-present records altcraft-sync sent, recording
every outcome in the ledger under the stream's lock. Categories cannot be verified: Altcraft has no list
method for them. Profiles are listed from their database (``profiles/list``), keyed as the stream keys
them, and compared on what altcraft-sync sends (:func:`transforms.compare.profile_differences`); a profile
is never deleted by verify (only ``forget`` deletes people).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from altcraft_sync import jitter
from altcraft_sync import streams as registry
from altcraft_sync.batching import batched
from altcraft_sync.config import Config
from altcraft_sync.sources import ProfilesStream
from connectors.altcraft import AltcraftClient
from connectors.altcraft_profiles import ProfileClient
from connectors.shop_db import ShopSource
from connectors.state import LedgerEntry, StateStore, lock_owner
from engine.carriers import Carriers
from engine.commit import Committer
from engine.context import Key, RunContext, RunOptions
from engine.dependencies import Dependencies
from engine.dispatch import Dispatcher
from engine.ledger_view import LedgerView
from engine.outcomes import sent_entry
from engine.reader import RecordReader
from engine.stats import StreamStats
from runner.reporting import mask
from transforms.compare import differing_fields, profile_differences
from transforms.payload import Payload
from transforms.profiles import listed_key
from transforms.stand_ins import ENTITY as STAND_IN
from transforms.stand_ins import STANDS_FOR

SAMPLES = 5
COLUMNS = ("listed", "ok", "different", "missing", "deleted_present", "extra", "extra_not_ours", "stand_ins",
           "pending", "rejected", "resent", "deleted")
"""The figures of a verify table, in order."""


@dataclass
class VerifyStats:
    """What verify found in one stream (the row of its table)."""

    stream: str
    listed: int = 0
    compared: int = 0
    ok: int = 0
    different: int = 0
    pending: int = 0
    rejected: int = 0
    """Listed, but the shop's current version was rejected for good: nothing re-sends it until it changes."""
    missing: int = 0
    deleted_present: int = 0
    extra: int = 0
    extra_not_ours: int = 0
    stand_ins: int = 0
    """Unavailable products altcraft-sync made for orders naming items that never reach Altcraft
    (:mod:`transforms.stand_ins`): ours, never compared with the shop, never deleted."""
    resent: int = 0
    deleted: int = 0
    note: str = ""
    total: int | None = None
    """Records the ledger holds as delivered: about what Altcraft lists (a progress bar's total)."""
    fields: dict[str, int] = field(default_factory=dict)
    """How often each field differed."""
    samples: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def differences(self) -> int:
        return self.different + self.missing + self.deleted_present + self.extra

    def figures(self) -> dict[str, Any]:
        out = asdict(self)
        out["differences"] = self.differences
        return out


class Verifier:
    """Compares Altcraft with the ledger and the mapped source, stream by stream; ``sample`` compares a
    random subset of the delivered records (Altcraft is still listed whole: it has no get-by-id)."""

    def __init__(self, config: Config, source: ShopSource, state: StateStore, client: AltcraftClient, *,
                 run_id: str, repair: bool = False, sample: int | None = None, page_size: int = 500,
                 log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
                 on_progress: Callable[[VerifyStats], None] | None = None) -> None:
        self.config, self.source, self.state, self.client = config, source, state, client
        self.on_progress = on_progress or (lambda stats: None)
        """Called after each compared page (the CLI draws a progress bar with it)."""
        self.run_id, self.repair, self.sample, self.page_size = run_id, repair, sample, page_size
        self.log = log or logging.getLogger("altcraft_sync.verify")
        # the engine's own context and dispatcher: one way to read a key, map a record, send and delete
        self.ctx = RunContext(config, source, state, client, RunOptions(run_id=run_id), log=self.log)
        self.reader = RecordReader(self.ctx)
        self.committer = Committer(self.ctx)
        carriers = Carriers(self.ctx, Dependencies(self.ctx), self.reader, self.committer)
        self.dispatcher = Dispatcher(self.ctx, carriers, LedgerView(self.ctx))

    def close(self) -> None:
        """Nothing to stop: verify runs no threads (kept for callers that close what they open)."""

    def verify(self, stream: str) -> VerifyStats:
        stats = VerifyStats(stream)
        if registry.get(stream).list_method is None:
            stats.note = f"Altcraft has no list method for {stream}: not verifiable"
            return stats
        entity = registry.get(stream).entity
        chosen = self._sampled(entity)
        stats.total = self.state.summary()["ledger"].get(entity, {}).get("delivered", 0)
        owner = lock_owner(self.run_id)
        if self.repair:
            self.state.acquire_lock(stream, owner)
        try:
            seen: set[str] = set()
            page: list[dict[str, Any]] = []
            for record in self._listing(stream):
                ext = str(record.get("external_id"))
                seen.add(ext)
                stats.listed += 1
                if chosen is None or ext in chosen:
                    page.append(record)
                if len(page) >= self.page_size:
                    self._check_page(stream, page, stats)
                    page = []
                    self.on_progress(stats)
            self._check_page(stream, page, stats)
            self.on_progress(stats)
            self._missing(stream, seen, chosen, stats)
        finally:
            if self.repair:
                self.state.release_lock(stream, owner)
        return stats

    # --- reading ------------------------------------------------------------------------------------------
    def _listing(self, stream: str) -> Any:
        spec = registry.get(stream)
        method = spec.list_method
        assert method is not None, f"{stream} is not verifiable"
        if spec.profiles:  # a profile database, each profile keyed as the stream keys its records
            section = self.config.streams.section(stream)
            assert isinstance(section, ProfilesStream)
            return ({**p, "external_id": listed_key(p, section.matching.modes)}
                    for p in ProfileClient(self.client).list_profiles(section.db_id, limit=self.page_size))
        return self.client.list_records(method, limit=self.page_size)

    def _sampled(self, entity: str) -> set[str] | None:
        if not self.sample:
            return None
        delivered = [ext for ext, _ in self.state.ids_with_status(entity, ("delivered", "deleted"))]
        return set(jitter.sample(delivered, min(self.sample, len(delivered))))

    def _mapped(self, stream: str, pks: list[str]) -> tuple[dict[str, Payload], set[str]]:
        """The source's current records for these keys (mapped like a sync maps them), and the ids of the
        keys' rows that are soft-deleted."""
        mapped = self.reader.by_ledger_keys(stream, pks)
        if mapped is None:
            return {}, set()
        return {p.external_id: p for p in mapped.payloads}, {ext for ext, _ in mapped.deletions}

    # --- comparing ----------------------------------------------------------------------------------------
    def _check_page(self, stream: str, page: list[dict[str, Any]], stats: VerifyStats) -> None:
        if not page:
            return
        spec = registry.get(stream)
        entity = spec.entity
        ids = [str(r.get("external_id")) for r in page]
        known = self.state.known(entity, ids)
        standing = self.state.known(STAND_IN, ids) if entity in STANDS_FOR else {}
        # a profile database holds every profile stream's people: another stream's are not this one's extras
        theirs = {ext for other in registry.profile_streams() if other.entity != entity and spec.profiles
                  for ext in self.state.known(other.entity, ids)}
        current, soft_deleted = self._mapped(stream, [k.source_pk for k in known.values() if k.source_pk is not None])
        resend: list[Payload] = []
        remove: list[tuple[str, Any]] = []
        for record, ext in zip(page, ids):
            k = known.get(ext)
            payload = current.get(ext)
            if k is None and ext in theirs:
                continue
            stats.compared += 1
            if ext in standing and payload is None:  # a stand-in: orders in Altcraft name it
                stats.stand_ins += 1
            elif k is None:
                stats.extra_not_ours += 1
                self._sample(stats, "extra_not_ours", {"external_id": ext})
            elif k.status == "deleted" or ext in soft_deleted:
                stats.deleted_present += 1
                self._sample(stats, "deleted_present", {"external_id": ext})
                remove.append((ext, k.source_pk))
            elif payload is None:
                stats.extra += 1  # ours, but the shop no longer has it (hard-deleted, or now invalid)
                self._sample(stats, "extra", {"external_id": ext, "ledger": k.status})
                remove.append((ext, k.source_pk))
            elif k.status == "rejected" and k.permanent and k.fingerprint == payload.fingerprint:
                stats.rejected += 1  # refused for good as it is: not re-sent until its data changes
                self._sample(stats, "rejected", {"external_id": ext})
            elif k.status != "delivered" or k.fingerprint != payload.fingerprint:
                stats.pending += 1  # changed since it was delivered: the next sync sends it
            else:
                sent = orjson.loads(payload.data)
                fields = profile_differences(sent, record) if spec.profiles else differing_fields(entity, sent, record)
                if not fields:
                    stats.ok += 1
                    continue
                stats.different += 1
                for f in fields:
                    stats.fields[f] = stats.fields.get(f, 0) + 1
                self._sample(stats, "different", {"external_id": ext, "fields": fields})
                resend.append(payload)
        self._repair(stream, resend, remove, stats)

    def _missing(self, stream: str, seen: set[str], chosen: set[str] | None, stats: VerifyStats) -> None:
        entity = registry.get(stream).entity
        absent: list[tuple[str, str]] = []
        for ext, pk in self.state.ids_with_status(entity, ("delivered",)):
            if ext not in seen and (chosen is None or ext in chosen):
                absent.append((ext, pk))
        for part in batched(absent, self.page_size):
            current, _ = self._mapped(stream, [pk for _, pk in part if pk is not None])
            stats.missing += len(part)
            for ext, _ in part[: max(0, SAMPLES - len(stats.samples.get("missing", [])))]:
                self._sample(stats, "missing", {"external_id": ext})
            self._repair(stream, [current[ext] for ext, _ in part if ext in current], [], stats)

    # --- repairing ----------------------------------------------------------------------------------------
    def _repair(self, stream: str, resend: list[Payload], remove: list[tuple[str, Key]], stats: VerifyStats) -> None:
        if not self.repair or not (resend or remove):
            return
        entity = registry.get(stream).entity
        entries: list[LedgerEntry] = []
        if resend:  # orders with skip_triggers: no customer hears of a repair
            report = self.dispatcher.import_records(stream, resend, skip_triggers=True)
            for p in resend:
                o = report.outcomes[p.external_id]
                entries.append(sent_entry(entity, p, o))
                stats.resent += o.status == "delivered"
        if remove:
            done = self.dispatcher.delete(stream, remove, StreamStats(stream), only_known=False)
            entries += done
            stats.deleted += sum(e.status == "deleted" for e in done)
        self.committer.commit(stream, entries=entries)
        self.log.info("%s: repaired: %d re-sent, %d deleted", stream, len(resend), len(remove))

    @staticmethod
    def _sample(stats: VerifyStats, kind: str, item: dict[str, Any]) -> None:
        bucket = stats.samples.setdefault(kind, [])
        if len(bucket) < SAMPLES:
            bucket.append(mask(item))


def verify_streams(config: Config, source: ShopSource, state: StateStore, client: AltcraftClient, *, run_id: str,
                   streams: list[str] | None = None, repair: bool = False, sample: int | None = None,
                   page_size: int = 500, on_progress: Callable[[VerifyStats], None] | None = None,
                   ) -> dict[str, VerifyStats]:
    """Verify the chosen (default: every configured) streams; see :class:`Verifier`."""
    chosen = [s for s in config.enabled_streams() if not streams or s in streams]
    verifier = Verifier(config, source, state, client, run_id=run_id, repair=repair, sample=sample, page_size=page_size,
                        on_progress=on_progress)
    try:
        return {s: verifier.verify(s) for s in chosen}
    finally:
        verifier.close()
