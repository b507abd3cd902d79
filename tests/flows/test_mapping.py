"""Map worker processes: no token or state URL in the worker, and the engine's ordering guarantees
(commits in chunk order, the watermark never past an undelivered row) with chunks mapped in another
process. That a worker's own connection returns the same children and payloads, on every database, is
in test_shop_db. One worker start costs a few seconds, so these tests share the work."""

from __future__ import annotations

import pytest

from altcraft_sync.config import load_config
from altcraft_sync.errors import AltcraftUnavailable
from connectors.state import StateStore
from engine.coordinator import Syncer
from engine.mapping import ChunkMapper, worker_config
from runner.runtime import open_runtime
from tests.conftest import TOKEN
from tests.helpers import build_shop, orders_behind, orders_down_after, run_all, shop_config


@pytest.fixture
def shop(tmp_path):
    url = f"sqlite:///{tmp_path}/shop.db"
    return url, build_shop(url, orders=300)


def test_worker_config_carries_no_token_and_no_state_url(tmp_path, shop, emulator):
    cfg = load_config(shop_config(tmp_path, shop[0], emulator, TOKEN))
    clean = worker_config(cfg)
    assert clean.altcraft.token.get_secret_value() == "" and clean.state.url.get_secret_value() == ""
    assert TOKEN not in clean.model_dump_json() and "state.db" not in clean.model_dump_json()
    assert clean.source.url.get_secret_value() == cfg.source.url.get_secret_value()  # it reads the children
    # everything a transform reads is unchanged
    assert clean.streams == cfg.streams and clean.sync == cfg.sync and clean.source.timezone == cfg.source.timezone


@pytest.mark.parametrize("first_sync_order", ["key", "cursor"])
def test_engine_with_map_workers_commits_in_order_and_resumes_after_an_outage(tmp_path, shop, emulator, first_sync_order):
    cfg = load_config(shop_config(tmp_path, shop[0], emulator, TOKEN, map_workers=1, chunk_size=25,
                                  first_sync_order=first_sync_order))
    cfg.altcraft.max_attempts = 2
    cfg.altcraft.backoff_initial = 0.01
    run_all(cfg, streams=["categories", "products", "skus"])
    original = orders_down_after(emulator, 5)
    rt = open_runtime(cfg)
    try:
        syncer = Syncer(cfg, rt.source, rt.state, rt.client, run_id="with-workers")
        syncer.mapper.start()
        assert syncer.mapper.wait_ready(120)  # so that the small test shop's chunks go to the worker
        with pytest.raises(AltcraftUnavailable, match="maintenance"):
            syncer.sync_stream("orders")
    finally:
        rt.close()
    state = StateStore(cfg.state)
    delivered = set(emulator.store.orders)
    assert 0 < len(delivered) < 300
    with shop[1].connect() as conn:
        upto = orders_behind(state, conn, first_sync_order)
    assert upto
    quarantined = {r["external_id"] for r in state.quarantine_rows() if r["entity"] == "order"}
    assert set(upto) <= delivered | quarantined  # nothing at or below the watermark was lost

    emulator.handle = original
    rt = open_runtime(cfg)
    try:
        syncer = Syncer(cfg, rt.source, rt.state, rt.client, run_id="resume-with-workers")
        syncer.mapper.start()
        assert syncer.mapper.wait_ready(120)
        stats = syncer.sync_stream("orders")
    finally:
        rt.close()
    assert stats.mapped_in_workers > 0 and stats.failed == stats.rejected == 0
    quarantined = {r["external_id"] for r in state.quarantine_rows() if r["entity"] == "order"}
    assert set(emulator.store.orders) | quarantined == {str(i) for i in range(1, 301)}
    assert set(emulator.store.orders).isdisjoint(quarantined)


def test_map_workers_start_only_for_runs_of_many_pages(tmp_path, shop, emulator, monkeypatch):
    started: list[str] = []
    monkeypatch.setattr(ChunkMapper, "start", lambda self: started.append("start"))
    few = load_config(shop_config(tmp_path, shop[0], emulator, TOKEN, map_workers=1, chunk_size=150))
    run_all(few, streams=["categories", "products", "skus", "orders"])  # at most 2 full pages per cursor
    assert started == []
    (tmp_path / "state.db").unlink()
    many = load_config(shop_config(tmp_path, shop[0], emulator, TOKEN, map_workers=1, chunk_size=40))
    stats = run_all(many, streams=["categories", "products", "skus", "orders"])
    assert started and stats["orders"].delivered > 250  # 300 orders in pages of 40
