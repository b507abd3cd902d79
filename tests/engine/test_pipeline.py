"""The pipeline's order of work with a dict ledger, a recording client and a mapper that hands back ready
chunks: decide -> push -> commit, in chunk order, with the cursor each chunk carries."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import timedelta

import pandas as pd

from altcraft_sync.cursor import Cursor
from connectors.altcraft import Outcome
from engine.carriers import Carriers
from engine.commit import Committer
from engine.decide import Decider
from engine.dependencies import Dependencies
from engine.dispatch import Dispatcher
from engine.ledger_view import LedgerView
from engine.mapping import MapResult
from engine.pipeline import Pipeline
from engine.stats import StreamStats
from tests.engine.fakes import (
    T0,
    DictReader,
    DictState,
    ListSource,
    RecordingClient,
    Table,
    context,
    demo_config,
    mapped,
    payload,
)


class ReadyMapper:
    """Maps a chunk of keys to the payloads ``records`` holds for them, in this process."""

    depth = 0

    def __init__(self, records) -> None:
        self.records = records

    def submit(self, m, parents: pd.DataFrame, child, known=None) -> Future[MapResult]:
        done: Future[MapResult] = Future()
        done.set_result(MapResult(mapped("order", [self.records[k] for k in parents["_pk"]]), 0.0, 0.0, 0, {}, {}))
        return done

    def start(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


def pipeline(tmp_path, state, client, records, **options):
    source = ListSource({name: Table([]) for name in ("skus", "orders")})
    ctx = context(demo_config(tmp_path), state, source, client, **options)
    deps, ledger, committer = Dependencies(ctx), LedgerView(ctx), Committer(ctx)
    dispatcher = Dispatcher(ctx, Carriers(ctx, deps, DictReader({}), committer), ledger)
    p = Pipeline(ctx, Decider(ctx, deps, ledger), dispatcher, committer)
    p.mapper = ReadyMapper(records)
    return p


def chunk(*keys):
    return pd.DataFrame({"_pk": list(keys)})


def test_chunks_are_sent_and_committed_in_order_with_their_cursor(tmp_path) -> None:
    state = DictState()
    client = RecordingClient({"2": Outcome("2", "rejected", 400, "bad")})
    records = {k: payload(str(k), pk=k) for k in (1, 2, 3)}
    p = pipeline(tmp_path, state, client, records)
    stats = StreamStats("orders")
    try:
        p.process_commit("orders", chunk(1, 2), stats, Cursor(T0, 2), "orders")
        p.process_commit("orders", chunk(3), stats, Cursor(T0 + timedelta(seconds=1), 3), "orders")
        p.drain()
    finally:
        p.close()
    assert [ids for _, _, ids, _ in client.calls] == [["1", "2"], ["3"]]
    assert [c["cursors"] for c in state.commits] == [{"orders": Cursor(T0, 2)}, {"orders": Cursor(T0 + timedelta(seconds=1), 3)}]
    assert state.status("order", "1") == "delivered" and state.status("order", "2") == "rejected"
    assert state.notes == {}  # every in-flight note settled after its commit
    assert (stats.delivered, stats.rejected, stats.chunks) == (2, 1, 2)


def test_an_empty_chunk_still_moves_the_cursor_and_a_dry_run_moves_nothing(tmp_path) -> None:
    state = DictState()
    p = pipeline(tmp_path, state, RecordingClient(), {})
    try:
        p.process_commit("orders", chunk(), StreamStats("orders"), Cursor(T0, 9), "orders")
        p.drain()
    finally:
        p.close()
    assert state.watermarks == {("orders", "orders"): Cursor(T0, 9)}
    dry_state, client = DictState(), RecordingClient()
    dry = pipeline(tmp_path, dry_state, client, {1: payload("1", pk=1)}, dry_run=True)
    try:
        dry.process_commit("orders", chunk(1), StreamStats("orders"), Cursor(T0, 1), "orders")
        dry.drain()
    finally:
        dry.close()
    assert client.calls == [] and dry_state.commits == [] and dry_state.watermarks == {}
