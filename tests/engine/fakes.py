"""Fakes the engine's parts are built with in unit tests: a dict ledger (:class:`DictState`), a list source
(:class:`ListSource`), a recording client (:class:`RecordingClient`), a record reader over a dict, and a
feed that records what reaches the pipeline. No HTTP, no database server, no threads of their own."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

from altcraft_sync.config import Config, load_config
from altcraft_sync.cursor import Cursor
from connectors.altcraft import ImportReport, Outcome
from connectors.state import Known, LedgerEntry
from connectors.state.id_index import IdIndex
from engine.context import RunContext, RunOptions
from engine.stats import StreamStats
from sandbox.demo import write_demo_config
from transforms.payload import Mapped, Payload, Refs, canonical, fingerprint


def demo_config(tmp: Path, **sync: Any) -> Config:
    """The demo mapping (every stream, its custom fields and line status); nothing is opened."""
    import yaml

    path = write_demo_config("sqlite:///unused.db", f"sqlite:///{tmp}/state.db", "http://127.0.0.1:9", "t", tmp / "c.yaml",
                             margin_seconds=60)
    raw = yaml.safe_load(path.read_text())
    raw["sync"].update(sync)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_config(path)


def payload(ext: str, body: dict[str, Any] | None = None, pk: Any = None) -> Payload:
    data = canonical(body or {"external_id": ext})
    return Payload(ext, data, fingerprint(data), pk if pk is not None else ext)


def mapped(entity: str, payloads: list[Payload], refs: list[list[str]] | None = None,
           deletions: list[tuple[str, Any]] | None = None) -> Mapped:
    """A mapped chunk; ``refs`` are the ids each payload refers to."""
    import numpy as np
    import pyarrow as pa

    out = Mapped(entity, payloads, deletions=deletions or [])
    if refs is not None:
        flat = [r for rs in refs for r in rs]
        out.refs = Refs(pa.array(flat, pa.string()), np.concatenate(([0], np.cumsum([len(r) for r in refs]))).astype(np.int64))
    return out


@dataclass
class Row:
    fingerprint: str | None
    status: str
    permanent: bool = False
    source_pk: str | None = None


@dataclass
class DictState:
    """The state store's reads and the chunk transaction over dicts; ``commits`` records every commit."""

    ledger: dict[tuple[str, str], Row] = field(default_factory=dict)
    quarantine: dict[tuple[str, str], str | None] = field(default_factory=dict)
    watermarks: dict[tuple[str, str], Cursor] = field(default_factory=dict)
    notes: dict[str, tuple[str, list[tuple[str, str]]]] = field(default_factory=dict)
    commits: list[dict[str, Any]] = field(default_factory=list)
    locks: dict[str, str] = field(default_factory=dict)
    since: dict[tuple[str, str], datetime] = field(default_factory=dict)
    """(entity, id) -> when it started waiting (the ``waiting`` table)."""
    digests: dict[tuple[str, str], int] = field(default_factory=dict)
    """(entity, id) -> the raw digest a delivered ledger row keeps."""
    quarantine_digests: dict[tuple[str, str], int] = field(default_factory=dict)

    def put(self, entity: str, ext: str, status: str = "delivered", fingerprint: str | None = None,
            pk: Any = None, permanent: bool = False) -> None:
        self.ledger[(entity, ext)] = Row(fingerprint, status, permanent, str(pk if pk is not None else ext))

    def status(self, entity: str, ext: str) -> str | None:
        row = self.ledger.get((entity, ext))
        return row.status if row else None

    # reads
    def known(self, entity: str, ids: Sequence[str]) -> dict[str, Known]:
        return {e: Known(r.fingerprint, r.status, r.permanent, 0, r.source_pk) for e in ids
                if (r := self.ledger.get((entity, e))) is not None}

    def _of(self, entity: str) -> Iterator[tuple[str, Row]]:
        return ((e, r) for (ent, e), r in self.ledger.items() if ent == entity)

    def delivered_index(self, entity: str) -> IdIndex:
        return IdIndex.of(e for e, r in self._of(entity) if r.status == "delivered")

    def has_records(self, entity: str) -> bool:
        return any(True for _ in self._of(entity))

    def former_ids(self, entity: str, records: Sequence[tuple[str, Any]]) -> list[tuple[str, str]]:
        by_pk = {str(pk): ext for ext, pk in records}
        return [(e, r.source_pk) for e, r in self._of(entity)
                if r.source_pk in by_pk and r.status != "deleted" and by_pk[r.source_pk] != e]

    def pending(self, entity: str) -> list[tuple[str, str]]:
        return sorted((e, r.source_pk) for e, r in self._of(entity)
                      if r.status in ("failed", "rejected", "deferred") and (r.status == "failed" or not r.permanent))

    def delivered_keys(self, entity: str, limit: int) -> list[str]:
        return [r.source_pk for _, r in self._of(entity) if r.status == "delivered" and r.source_pk][:limit]

    def ids_with_status(self, entity: str, statuses: Sequence[str]):
        return [(e, r.source_pk) for e, r in self._of(entity) if r.status in statuses]

    def raw_digests(self, entity: str, ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        out: dict[str, tuple[str, int]] = {}
        for e in ids:
            row, d, q = self.ledger.get((entity, e)), self.digests.get((entity, e)), self.quarantine_digests.get((entity, e))
            if (entity, e) in self.quarantine:
                if q is not None and (row is None or row.status not in ("failed", "rejected", "deferred")):
                    out[e] = ("invalid", q)
            elif row is not None and row.status == "delivered" and d is not None:
                out[e] = ("delivered", d)
        return out

    def quarantined_ids(self, entity: str) -> set[str]:
        return {e for (ent, e) in self.quarantine if ent == entity}

    def quarantined_keys(self, entity: str) -> list[tuple[str, str | None]]:
        return [(e, pk) for (ent, e), pk in self.quarantine.items() if ent == entity]

    def unsettled(self, entity: str) -> tuple[list[str], list[tuple[str, str]]]:
        batches = [b for b, (ent, _) in self.notes.items() if ent == entity]
        return batches, [r for b in batches for r in self.notes[b][1]]

    def get_watermark(self, stream: str, cursor: str) -> Cursor | None:
        return self.watermarks.get((stream, cursor))

    def errors(self, entity: str, ids: Sequence[str]) -> dict[str, str]:
        return {}

    def waiting_since(self, entity: str, ids: Sequence[str]) -> dict[str, datetime]:
        return {e: t for (ent, e), t in self.since.items() if ent == entity and e in ids}

    # writes
    def begin_send(self, batch: str, entity: str, records: Sequence[tuple[str, Any]]) -> None:
        self.notes[batch] = (entity, [(e, str(pk)) for e, pk in records])

    def settle(self, batches: Sequence[str]) -> None:
        for b in batches:
            self.notes.pop(b, None)

    def commit_chunk(self, *, stream: str, cursors: dict[str, Cursor] | None = None, entries: Sequence[LedgerEntry] = (),
                     quarantined: Sequence[Any] = (), cleared: Sequence[tuple[str, str]] = (), run_id: str | None = None,
                     lock_owner: str | None = None, digests: dict[tuple[str, str], int] | None = None,
                     redigested: Sequence[tuple[str, str, int]] = (), seen_invalid: Sequence[tuple[str, str]] = (),
                     forgotten: Sequence[str] = ()) -> None:
        self.commits.append({"stream": stream, "cursors": dict(cursors or {}), "entries": list(entries),
                             "quarantined": list(quarantined), "cleared": list(cleared)})
        digests = digests or {}
        for e in entries:
            key = (e.entity, e.external_id)
            self.ledger[key] = Row(e.fingerprint, e.status, e.permanent, None if e.source_pk is None else str(e.source_pk))
            self.digests.pop(key, None)
            if e.status == "delivered" and key in digests:
                self.digests[key] = digests[key]
        for entity, ext, pk, _ in quarantined:
            self.quarantine[(entity, ext)] = None if pk is None else str(pk)
            self.quarantine_digests.pop((entity, ext), None)
            if (entity, ext) in digests:
                self.quarantine_digests[(entity, ext)] = digests[(entity, ext)]
        for entity, ext, d in redigested:
            self.digests[(entity, ext)] = d
        for key in cleared:
            self.quarantine.pop(key, None)
            self.quarantine_digests.pop(key, None)
        for name, cur in (cursors or {}).items():
            self.watermarks[(stream, name)] = cur
        for name in forgotten:
            self.watermarks.pop((stream, name), None)

    def acquire_lock(self, stream: str, owner: str, wait_seconds: float = 0) -> None:
        assert stream not in self.locks, f"{stream} is locked"
        self.locks[stream] = owner

    def release_lock(self, stream: str, owner: str) -> None:
        assert self.locks.pop(stream) == owner


T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Table:
    """A source table: rows of (pk, ts, external_id); ``has_ts`` False: read in full, by key."""

    rows: list[tuple[int, datetime, str]]
    has_ts: bool = True
    parent: str | None = None
    parents_of: dict[int, int] = field(default_factory=dict)
    """For a child table: child pk -> parent pk."""
    deleted: set[str] = field(default_factory=set)
    """External ids of rows marked deleted (``deleted_flag``)."""

    @property
    def meta(self) -> SimpleNamespace:
        return SimpleNamespace(pk=SimpleNamespace(type=SimpleNamespace(python_type=int)), ts=object() if self.has_ts else None)


class ListSource:
    """The shop source's reads over lists of rows, ordered by (updated_at, pk); the clock is ``now``."""

    tz = UTC

    def __init__(self, tables: dict[str, Table], now: datetime = T0 + timedelta(days=1)) -> None:
        self.tables, self.now = tables, now
        self.entities = {name: t.meta for name, t in tables.items()}
        self.reads: list[tuple[str, Cursor | None, Any]] = []
        self.key_ordered: list[bool] = []
        """Per read, whether it was asked in key order (a first sync)."""

    def db_now(self) -> datetime:
        return self.now

    def upper_bound(self, name: str, margin: float, now: datetime) -> datetime:
        return now - timedelta(seconds=margin)

    def lookback_start(self, name: str, wm: Cursor, seconds: float) -> Cursor:
        return Cursor(wm.ts - timedelta(seconds=seconds), None)

    def to_native(self, name: str, value: datetime) -> datetime:
        return value

    def _after(self, name: str, start: Cursor | None, upper: Any) -> list[tuple[int, datetime, str]]:
        rows = sorted(self.tables[name].rows, key=lambda r: (r[1], r[0]))
        if start is not None:
            rows = [r for r in rows if (r[1] > start.ts if start.pk is None else (r[1], r[0]) > (start.ts, start.pk))]
        return [r for r in rows if upper is None or r[1] <= upper]

    def _frame(self, name: str, rows: list[tuple[int, datetime, str]]) -> pd.DataFrame:
        frame = pd.DataFrame({"_pk": [r[0] for r in rows], "_ts": [r[1] for r in rows],
                              "external_id": [r[2] for r in rows]})
        parents = self.tables[name].parents_of
        if parents:
            frame["_parent"] = [parents[r[0]] for r in rows]
        return frame

    def read_changes(self, name: str, start: Cursor | None, upper: Any, chunk_size: int, keys_only: bool = False,
                     skip_parents_in: Any = None, by_key: bool = False) -> Iterator[tuple[pd.DataFrame, Cursor]]:
        self.reads.append((name, start, upper))
        self.key_ordered.append(by_key)
        if by_key:  # every row up to the bound, keys after start's
            rows = sorted((r for r in self._after(name, None, upper) if start is None or r[0] > start.pk),
                          key=lambda r: r[0])
        else:
            rows = self._after(name, start, upper)
        if skip_parents_in is not None:  # leave out child rows whose parent the parent cursor reads
            parent, p_start, p_upper, p_by_key = skip_parents_in
            if p_by_key:
                read = {r[0] for r in self._after(parent, None, p_upper) if p_start is None or r[0] > p_start.pk}
            else:
                read = {r[0] for r in self._after(parent, p_start, p_upper)}
            rows = [r for r in rows if self.tables[name].parents_of[r[0]] not in read]
        for i in range(0, len(rows), chunk_size):
            page = rows[i:i + chunk_size]
            yield self._frame(name, page), Cursor(page[-1][1], page[-1][0])

    def fetch_by_keys(self, name: str, keys: list[Any], by_parent: bool = False) -> pd.DataFrame:
        wanted = set(keys)
        return self._frame(name, [r for r in self.tables[name].rows if r[0] in wanted])

    def iter_keys(self, name: str, limit: int | None = None) -> Iterator[pd.DataFrame]:
        rows = sorted(self.tables[name].rows)[:limit]
        if rows:
            yield self._frame(name, rows)

    def last_cursor(self, name: str, upper: Any) -> Cursor | None:
        rows = self._after(name, None, upper)
        return Cursor(rows[-1][1], rows[-1][0]) if rows else None

    def has_rows_between(self, name: str, last: Cursor | None, upper: Any) -> bool:
        return bool(self._after(name, last, upper))

    def count_between(self, name: str, start: Cursor | None, upper: Any) -> int:
        return len(self._after(name, start, upper))

    def find_external_ids(self, name: str, ids: Sequence[str]) -> dict[str, bool]:
        table = self.tables.get(name)
        wanted = set(ids)
        return {r[2]: r[2] in table.deleted for r in table.rows if r[2] in wanted} if table else {}

    def max_cursor_ts(self, name: str) -> datetime | None:
        rows = self.tables[name].rows
        return max(r[1] for r in rows) if rows else None


class RecordingClient:
    """Answers every call with the outcome ``answers`` names for an id (default: delivered) and records it."""

    def __init__(self, answers: dict[str, Outcome] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[tuple[str, str, list[str], dict[str, Any]]] = []

    def _outcome(self, ext: str) -> Outcome:
        return self.answers.get(ext, Outcome(ext, "delivered"))

    def import_records(self, method: str, records: Sequence[Payload], *, root: dict[str, Any] | None = None) -> ImportReport:
        self.calls.append(("import", method, [p.external_id for p in records], dict(root or {})))
        return ImportReport({p.external_id: self._outcome(p.external_id) for p in records}, requests=1)

    def import_groups(self, method: str, groups: Sequence[tuple[Sequence[Payload], dict[str, Any]]]) -> ImportReport:
        report = ImportReport()
        for records, root in groups:
            if records:
                report.merge(self.import_records(method, records, root=root))
        return report

    def import_with_roots(self, method: str, carrier: Payload, roots: dict[str, Any]) -> Outcome:
        self.calls.append(("roots", method, [carrier.external_id], roots))
        return self._outcome(carrier.external_id)

    def import_categories(self, categories: Sequence[Payload], *, carrier: Payload, method: str,
                          roots: dict[str, Any] | None = None) -> ImportReport:
        extra = {"roots": roots} if roots else {}
        self.calls.append(("categories", method, [p.external_id for p in categories],
                           {"carrier": carrier.external_id, **extra}))
        return ImportReport({p.external_id: self._outcome(p.external_id) for p in categories}, requests=1,
                            carrier=self._outcome(carrier.external_id))

    def delete_records(self, method: str, ids: Sequence[str], *, one_by_one: bool = False) -> ImportReport:
        ids = list(ids)
        self.calls.append(("delete", method, ids, {"one_by_one": one_by_one}))
        return ImportReport({e: self._outcome(e) for e in ids}, requests=len(ids) if one_by_one else 1)


class DictReader:
    """A record reader over ready payloads: per stream, source key -> payload (and its references)."""

    def __init__(self, records: dict[str, dict[Any, tuple[Payload, list[str]]]]) -> None:
        self.records = records

    def by_ledger_keys(self, stream: str, keys: Sequence[str]) -> Mapped | None:
        return self.mapped(stream, [int(k) for k in keys])

    def mapped(self, stream: str, keys: Sequence[Any]) -> Mapped | None:
        from altcraft_sync import streams as registry

        found = [self.records.get(stream, {}).get(k) for k in keys]
        hits = [f for f in found if f is not None]
        if not hits:
            return None
        return mapped(registry.get(stream).entity, [p for p, _ in hits], [r for _, r in hits])


class RecordingFeed:
    """The pipeline operations repair and the planner call, recorded (each chunk's keys and cursor)."""

    def __init__(self) -> None:
        self.chunks: list[tuple[str, list[Any], Cursor | None, str]] = []
        self.drains = 0
        self.mapper = SimpleNamespace(starts=0)
        self.mapper.start = lambda: setattr(self.mapper, "starts", self.mapper.starts + 1)

    def process_commit(self, stream: str, parents: pd.DataFrame, stats: StreamStats, cursor: Cursor | None,
                       cursor_name: str) -> None:
        self.chunks.append((stream, parents["_pk"].tolist(), cursor, cursor_name))

    def drain(self) -> None:
        self.drains += 1


def context(config: Config, state: DictState | None = None, source: ListSource | None = None,
            client: RecordingClient | None = None, **options: Any) -> RunContext:
    """A run context over fakes (they stand in for the typed connections)."""
    options.setdefault("run_id", "unit")
    return RunContext(config, source or ListSource({}), state or DictState(), client or RecordingClient(),  # type: ignore[arg-type]
                      RunOptions(**options))
