"""Watermarks, the chunk transaction, the ledger and the quarantine: what a sync reads and writes per chunk."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from altcraft_sync.batching import batched
from altcraft_sync.cursor import Cursor
from altcraft_sync.masking import mask, mask_tree
from connectors.state.base import _aware, _pk, _retried, now
from connectors.state.id_index import IdIndex
from connectors.state.schema import RETRYABLE, Known, LedgerEntry, ledger, locks, quarantine, watermarks
from connectors.state.waits import WaitingRecords


def _masked(entry: LedgerEntry) -> LedgerEntry:
    """The entry with Altcraft's error text masked: an answer may echo the token or a password."""
    if not entry.error_text:
        return entry
    text = mask(entry.error_text)
    return entry if text == entry.error_text else replace(entry, error_text=text)


class LedgerStore(WaitingRecords):
    """Per chunk: one transaction of outcomes, quarantine changes and watermarks; the ledger reads the
    decisions need; the backlog figures ``status`` shows."""

    # --- watermarks ------------------------------------------------------------------------------
    @_retried("watermark read")
    def get_watermark(self, stream: str, cursor: str) -> Cursor | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(watermarks.c.value).where(watermarks.c.stream == stream, watermarks.c.cursor == cursor)
            ).scalar()
        return Cursor.from_json(value) if value else None

    @_retried("watermark read")
    def all_watermarks(self) -> dict[tuple[str, str], tuple[Cursor, datetime | None]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(watermarks)).all()
        return {(r.stream, r.cursor): (Cursor.from_json(r.value), _aware(r.updated_at)) for r in rows}

    # --- the chunk commit --------------------------------------------------------------------------
    @_retried("chunk commit")
    def commit_chunk(
        self,
        *,
        stream: str,
        cursors: dict[str, Cursor] | None = None,
        entries: Sequence[LedgerEntry] = (),
        quarantined: Sequence[tuple[str, str, Any, list[dict[str, Any]]]] = (),
        cleared: Sequence[tuple[str, str]] = (),
        run_id: str | None = None,
        lock_owner: str | None = None,
        digests: Mapping[tuple[str, str], int] | None = None,
        redigested: Sequence[tuple[str, str, int]] = (),
        seen_invalid: Sequence[tuple[str, str]] = (),
        forgotten: Sequence[str] = (),
    ) -> None:
        """One transaction: ledger outcomes, quarantine changes, the stream's new watermark(s), and a
        refresh of the stream lock (the heartbeat that tells a live run from a dead one). ``forgotten``:
        cursor rows of the stream to delete (a finished first sync's key position).

        ``digests`` gives the raw-row digest (``transforms.digest``) of the chunk's records by (entity,
        external_id): a delivered entry and a quarantine row keep theirs; any other outcome, and a record
        without one, gets NULL (a write without a digest clears one that no longer holds). ``redigested``
        sets the digest alone of ledger rows whose record was re-read and mapped to the payload they hold;
        ``seen_invalid`` are quarantined records re-read unchanged (not mapped): seen again by this run."""
        digests = digests or {}
        ts = now()
        with self.engine.begin() as conn:
            if lock_owner:
                conn.execute(locks.update().where(locks.c.stream == stream, locks.c.owner == lock_owner).values(acquired_at=ts))
            if entries:
                self._upsert_ledger(conn, [_masked(e) for e in entries], ts, digests)
                self._track_waiting(conn, entries, ts)
            if quarantined:
                rows = [
                    {"entity": e, "external_id": x, "source_pk": _pk(pk), "reasons": orjson.dumps(mask_tree(r)).decode(),
                     "first_seen": ts, "last_seen": ts, "run_id": run_id, "raw_digest": digests.get((e, x))}
                    for e, x, pk, r in quarantined
                ]
                self._upsert(conn, quarantine, rows, ["entity", "external_id"],
                             ["source_pk", "reasons", "last_seen", "run_id", "raw_digest"])
            if redigested:
                conn.execute(ledger.update()
                             .where(ledger.c.entity == sa.bindparam("e"), ledger.c.external_id == sa.bindparam("x"))
                             .values(raw_digest=sa.bindparam("d")), [{"e": e, "x": x, "d": d} for e, x, d in redigested])
            for part in batched(seen_invalid, 500):
                conn.execute(quarantine.update().where(sa.tuple_(quarantine.c.entity, quarantine.c.external_id).in_(part))
                             .values(last_seen=ts, run_id=run_id))
            for part in batched(cleared, 500):
                conn.execute(quarantine.delete().where(sa.tuple_(quarantine.c.entity, quarantine.c.external_id).in_(part)))
            for name, cur in (cursors or {}).items():
                self._upsert(conn, watermarks, [{"stream": stream, "cursor": name, "value": cur.to_json(), "updated_at": ts}],
                             ["stream", "cursor"], ["value", "updated_at"])
            for name in forgotten:
                conn.execute(watermarks.delete().where(watermarks.c.stream == stream, watermarks.c.cursor == name))

    def _upsert_ledger(self, conn: sa.Connection, entries: Sequence[LedgerEntry], ts: datetime,
                       digests: Mapping[tuple[str, str], int]) -> None:
        """Upsert outcomes; ``attempts`` counts sends since the last delivery (reset on delivery)."""
        if self.sql.has_fast_ledger_upsert:
            return self._upsert_ledger_fast(conn, entries, ts, digests)
        rows = [
            {"entity": e.entity, "external_id": e.external_id, "source_pk": _pk(e.source_pk), "fingerprint": e.fingerprint,
             "status": e.status, "error_code": e.error_code, "error_text": e.error_text, "permanent": e.permanent,
             "attempts": 0 if e.status in ("delivered", "deleted") else 1, "updated_at": ts,
             "delivered_at": ts if e.status == "delivered" else None, "altcraft_id": e.altcraft_id, "owner": e.owner,
             "raw_digest": digests.get((e.entity, e.external_id)) if e.status == "delivered" else None}
            for e in entries
        ]
        self._upsert(conn, ledger, rows, ["entity", "external_id"],
                     ["source_pk", "fingerprint", "status", "error_code", "error_text", "permanent", "updated_at",
                      "raw_digest"],
                     extra=lambda ins: {
                         "attempts": sa.case((sa.or_(ins.status == "delivered", ins.status == "deleted"), 0),
                                     else_=ledger.c.attempts + 1),
                         "delivered_at": sa.func.coalesce(ins.delivered_at, ledger.c.delivered_at),
                         "altcraft_id": sa.func.coalesce(ins.altcraft_id, ledger.c.altcraft_id),
                         "owner": sa.func.coalesce(ins.owner, ledger.c.owner),
                     })

    def _upsert_ledger_fast(self, conn: sa.Connection, entries: Sequence[LedgerEntry], ts: datetime,
                            digests: Mapping[tuple[str, str], int]) -> None:
        """The same upsert as one hand-written statement on the DBAPI cursor: the per-row parameter
        processing of a Core executemany cost ~40 us a record, as much as the insert itself. The SQL
        names only this module's own tables and columns; every value is a bound parameter."""
        mark, stamp, new = self.sql.placeholder, self.sql.ledger_stamp(ts), self.sql.incoming
        replaced = ("source_pk", "fingerprint", "status", "error_code", "error_text", "permanent", "updated_at",
                    "raw_digest")
        sql = (
            "INSERT INTO ledger (entity, external_id, source_pk, fingerprint, status, error_code, error_text, "
            "permanent, attempts, updated_at, delivered_at, altcraft_id, owner, raw_digest) VALUES ("
            + ", ".join([mark] * 14) + ") "
            + self.sql.on_conflict(["entity", "external_id"]) + " "
            + ", ".join(f"{c} = {new(c)}" for c in replaced) + ", "
            f"attempts = CASE WHEN {new('status')} IN ('delivered', 'deleted') THEN 0 ELSE ledger.attempts + 1 END, "
            f"delivered_at = COALESCE({new('delivered_at')}, ledger.delivered_at), "
            f"altcraft_id = COALESCE({new('altcraft_id')}, ledger.altcraft_id), owner = COALESCE({new('owner')}, ledger.owner)"
        )
        rows = [
            (e.entity, e.external_id, _pk(e.source_pk), e.fingerprint, e.status, e.error_code, e.error_text,
             bool(e.permanent), 0 if e.status in ("delivered", "deleted") else 1, stamp,
             stamp if e.status == "delivered" else None, e.altcraft_id, e.owner,
             digests.get((e.entity, e.external_id)) if e.status == "delivered" else None)
            for e in entries
        ]
        conn.exec_driver_sql(sql, rows)

    @_retried("quarantine read")
    def quarantined_keys(self, entity: str) -> list[tuple[str, str | None]]:
        """(external_id, source_pk) of the entity's quarantined records."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(quarantine.c.external_id, quarantine.c.source_pk)
                                .where(quarantine.c.entity == entity)).all()
        return [(r.external_id, r.source_pk) for r in rows]

    @_retried("quarantine read")
    def quarantined_ids(self, entity: str) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(quarantine.c.external_id).where(quarantine.c.entity == entity)).scalars())

    # --- ledger reads ------------------------------------------------------------------------------
    @_retried("ledger read")
    def known(self, entity: str, external_ids: Sequence[str]) -> dict[str, Known]:
        out: dict[str, Known] = {}
        with self.engine.connect() as conn:
            for ext, fp, status, permanent, attempts, source_pk, digest in self._by_ids(
                    conn, "ledger", "fingerprint, status, permanent, attempts, source_pk, raw_digest", entity, external_ids):
                out[ext] = Known(fp, status, bool(permanent), attempts, source_pk, digest)
        return out

    @_retried("ledger read")
    def raw_digests(self, entity: str, external_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """What a re-read of unchanged source rows would lead to, for the records that may skip mapping:
        ``("delivered", digest)`` for a record delivered from rows with that digest, ``("invalid", digest)``
        for one quarantined from them (the quarantine wins: it is the record's current state), unless the
        ledger holds it as failed, rejected or deferred (those always get a fresh decision). Records
        without a digest (written before schema version 3, or not delivered) are left out."""
        out: dict[str, tuple[str, int]] = {}
        with self.engine.connect() as conn:
            status: dict[str, str] = {}
            for ext, st, digest in self._by_ids(conn, "ledger", "status, raw_digest", entity, external_ids):
                status[ext] = st
                if st == "delivered" and digest is not None:
                    out[ext] = ("delivered", digest)
            for ext, digest in self._by_ids(conn, "quarantine", "raw_digest", entity, external_ids):
                if digest is not None and status.get(ext) not in RETRYABLE:
                    out[ext] = ("invalid", digest)
                else:
                    out.pop(ext, None)
        return out

    def _by_ids(self, conn: sa.Connection, table: str, columns: str, entity: str,
                external_ids: Sequence[str]) -> Iterable[tuple[Any, ...]]:
        """``(external_id, *columns)`` of the entity's rows of ``table`` (``ledger`` or ``quarantine``) among
        ``external_ids``, 900 ids a statement. Hand-written on the DBAPI cursor, as the ledger's upsert is:
        a Core ``IN`` of 900 expanding parameters is compiled again on every call, which cost ~8 ms a chunk,
        five times the database's own look-up, on every chunk of a full sync. Only this module's table and
        column names are spliced in; the entity and the ids are bound parameters."""
        mark = self.sql.placeholder
        for part in batched(external_ids, 900):
            sql = (f"SELECT external_id, {columns} FROM {table} WHERE entity = {mark} AND external_id IN ("
                   + ", ".join([mark] * len(part)) + ")")
            yield from conn.exec_driver_sql(sql, (entity, *part))

    @_retried("ledger read")
    def pending(self, entity: str, limit: int = 100_000) -> list[tuple[str, str]]:
        """(external_id, source_pk) of records to retry: failed, deferred (waiting for what they depend
        on), or rejected with a non-permanent error."""
        # No ORDER BY in SQL: with one, SQLite walks the whole (entity, external_id) key to avoid a sort
        # instead of using the (entity, status) index, 2 s per stream at 1M ledger rows; the few pending
        # rows are sorted here.
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(ledger.c.external_id, ledger.c.source_pk)
                .where(ledger.c.entity == entity, ledger.c.status.in_(("failed", "rejected", "deferred")),
                       sa.or_(ledger.c.status == "failed", sa.not_(ledger.c.permanent)))
                .limit(limit)
            ).all()
        return sorted((r.external_id, r.source_pk) for r in rows)

    @_retried("ledger read")
    def delivered_index(self, entity: str, batch: int = 50_000) -> IdIndex:
        """The external ids of every record of ``entity`` Altcraft holds according to the ledger, as hashes
        (for dependency checks): read ``batch`` at a time, so the ids are never all in memory at once."""
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(sa.select(ledger.c.external_id).where(
                ledger.c.entity == entity, ledger.c.status == "delivered"))
            return IdIndex.from_batches(list(part) for part in result.scalars().partitions())

    @_retried("ledger read")
    def has_records(self, entity: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.literal(1)).where(ledger.c.entity == entity).limit(1)).first() is not None

    @_retried("ledger read")
    def former_ids(self, entity: str, records: Sequence[tuple[str, Any]]) -> list[tuple[str, str]]:
        """(old external_id, source_pk) of records the ledger knows under another external_id for the same
        source key (a renamed SKU code): Altcraft still holds them under the old id. There is no index on
        ``source_pk`` (a second random-key index cost 6 CPU-s per 1M ledger writes, measured): this reads
        the entity's range of the ledger, so callers ask only for new records of streams whose external
        id is not their primary key."""
        by_pk = {_pk(pk): ext for ext, pk in records}
        out: list[tuple[str, str]] = []
        with self.engine.connect() as conn:
            for part in batched(by_pk, 900):
                rows = conn.execute(sa.select(ledger.c.external_id, ledger.c.source_pk).where(
                    ledger.c.entity == entity, ledger.c.source_pk.in_(part),
                    ledger.c.status != "deleted")).all()
                out += [(r.external_id, r.source_pk) for r in rows if r.external_id != by_pk[r.source_pk]]
        return out

    @_retried("ledger read")
    def delivered_keys(self, entity: str, limit: int) -> list[str]:
        """Source keys of up to ``limit`` records Altcraft holds according to the ledger (carriers)."""
        with self.engine.connect() as conn:
            return list(conn.execute(
                sa.select(ledger.c.source_pk).where(ledger.c.entity == entity, ledger.c.status == "delivered",
                                                    ledger.c.source_pk.is_not(None)).limit(limit)).scalars())

    def ids_with_status(self, entity: str, statuses: Sequence[str]) -> Iterable[tuple[str, str]]:
        """(external_id, source_pk) of the entity's records with one of ``statuses`` (reconcile asks for
        :data:`MAY_HOLD`). Streamed: memory stays flat in the ledger's size."""
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=10_000).execute(
                sa.select(ledger.c.external_id, ledger.c.source_pk)
                .where(ledger.c.entity == entity, ledger.c.status.in_(list(statuses))))
            for part in result.partitions():
                yield from ((r.external_id, r.source_pk) for r in part)

    @_retried("backlog read")
    def summary(self) -> dict[str, Any]:
        """Backlog figures for ``status``: ledger by entity and status, quarantine by entity."""
        with self.engine.connect() as conn:
            led = conn.execute(
                sa.select(ledger.c.entity, ledger.c.status, ledger.c.permanent, sa.func.count())
                .group_by(ledger.c.entity, ledger.c.status, ledger.c.permanent)
            ).all()
            quar = conn.execute(sa.select(quarantine.c.entity, sa.func.count()).group_by(quarantine.c.entity)).all()
        ledger_counts: dict[str, dict[str, int]] = {}
        for entity, status, permanent, count in led:
            key = f"{status}-permanent" if status == "rejected" and permanent else status
            ledger_counts.setdefault(entity, {})[key] = ledger_counts.get(entity, {}).get(key, 0) + count
        return {"ledger": ledger_counts, "quarantine": dict(quar)}

    @_retried("backlog read")
    def backlog(self) -> dict[str, dict[str, Any]]:
        """What waits, per entity: ``quarantined``, ``rejected`` (permanently: waits for its data to change),
        ``retrying`` (rejected retryably or failed), ``deferred``, and ``since``, when the oldest of them
        started waiting (a quarantine's first sighting, a ledger row's last change): the backlog line and its
        alert (size and age), apart from what one run did."""
        waiting = ("rejected", "failed", "deferred")
        with self.engine.connect() as conn:
            led = conn.execute(
                sa.select(ledger.c.entity, ledger.c.status, ledger.c.permanent, sa.func.count(), sa.func.min(ledger.c.updated_at))
                .where(ledger.c.status.in_(waiting))
                .group_by(ledger.c.entity, ledger.c.status, ledger.c.permanent)
            ).all()
            quar = conn.execute(sa.select(quarantine.c.entity, sa.func.count(), sa.func.min(quarantine.c.first_seen))
                                .group_by(quarantine.c.entity)).all()
        out: dict[str, dict[str, Any]] = {}

        def add(entity: str, key: str, n: int, since: Any) -> None:
            row = out.setdefault(entity, {"quarantined": 0, "rejected": 0, "retrying": 0, "deferred": 0, "since": None})
            row[key] += n
            since = _aware(since)
            if since is not None and (row["since"] is None or since < row["since"]):
                row["since"] = since

        for entity, status, permanent, n, since in led:
            add(entity, "rejected" if status == "rejected" and permanent else "deferred" if status == "deferred"
                else "retrying", n, since)
        for entity, n, since in quar:
            add(entity, "quarantined", n, since)
        return out

    @_retried("quarantine read")
    def quarantine_rows(self, limit: int = 100_000, entity: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(quarantine).order_by(quarantine.c.last_seen.desc()).limit(limit)
        if entity is not None:
            query = query.where(quarantine.c.entity == entity)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [{**r._asdict(), "reasons": orjson.loads(r.reasons), "last_seen": _aware(r.last_seen)} for r in rows]

    @_retried("ledger read")
    def rejected_rows(self, limit: int = 100_000, entity: str | None = None) -> list[dict[str, Any]]:
        """Ledger rows not delivered: rejected, failed and deferred, newest first."""
        query = sa.select(ledger).where(ledger.c.status.in_(RETRYABLE)).order_by(ledger.c.updated_at.desc()).limit(limit)
        if entity is not None:
            query = query.where(ledger.c.entity == entity)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [{**r._asdict(), "updated_at": _aware(r.updated_at)} for r in rows]
