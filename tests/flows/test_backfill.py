"""The backfill flow (under the Prefect test harness): windows, resume, no-op re-runs, skip_triggers,
dry runs, and the nightly watermark left alone. Also the stale-watermark check of the nightly run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from altcraft_sync.config import load_config
from connectors.state import StateStore
from flows.backfill import BackfillParams, backfill
from flows.sync import nightly_sync
from tests.conftest import TOKEN
from tests.helpers import build_shop, orders_down_after, shop_config

pytestmark = pytest.mark.prefect


@pytest.fixture
def setup(tmp_path, emulator, prefect_harness):
    url = f"sqlite:///{tmp_path}/shop.db"
    engine = build_shop(url, orders=200)
    return engine, shop_config(tmp_path, url, emulator, TOKEN)


def orders_between(engine, since, until):
    with engine.connect() as conn:
        return {str(r[0]) for r in conn.execute(sa.text(
            "SELECT id FROM orders WHERE updated_at > :a AND updated_at <= :b"),
            {"a": since.strftime("%Y-%m-%d %H:%M:%S.%f"), "b": until.strftime("%Y-%m-%d %H:%M:%S.%f")})}


def test_backfill_windows_resume_and_leave_the_nightly_watermark(setup, emulator):
    engine, cfg = setup
    since, until = datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC)
    params = BackfillParams(since=since, until=until, window_days=90)
    assert len(params.windows()) == 7
    # Altcraft goes down for good while the fourth orders window is being sent
    original = orders_down_after(emulator, 3)
    state = backfill(params=params, config_path=str(cfg), return_state=True)
    assert state.is_failed() and "maintenance" in state.message
    store = StateStore(load_config(cfg).state)
    done = store.window_status(params.backfill_id(), "orders")
    assert 0 < len(done) < 7
    emulator.handle = original
    sent_before = dict(emulator.import_counts)
    state = backfill(params=params, config_path=str(cfg), return_state=True)
    assert state.is_completed(), state.message
    assert len(store.window_status(params.backfill_id(), "orders")) == 7
    expected = orders_between(engine, since, until)
    assert expected and expected <= set(emulator.store.orders) | {r["external_id"] for r in store.quarantine_rows()}
    # finished windows were not run again
    resent = {k for k, v in emulator.import_counts.items() if k[0] == "order" and sent_before.get(k, 0) and v > sent_before[k]}
    assert not resent
    # historical orders arrived with triggers skipped; the nightly watermark was never written
    assert all(emulator.skip_triggers[o] for o in expected if o in emulator.store.orders)
    assert store.all_watermarks() == {}
    # a finished backfill is a no-op; forced, it runs again (the ledger still skips unchanged records)
    requests = emulator.stats["api_requests"]
    assert backfill(params=params, config_path=str(cfg), return_state=True).is_completed()
    assert emulator.stats["api_requests"] - requests <= 1  # at most the definitions call
    forced = backfill(params=params.model_copy(update={"force": True, "resend": True}), config_path=str(cfg),
                      return_state=True)
    assert forced.is_completed() and forced.result()["orders"]["delivered"] >= len(expected & set(emulator.store.orders))


def test_backfill_dry_run_reports_and_records_nothing(setup, emulator):
    _, cfg = setup
    params = BackfillParams(since=datetime(2024, 1, 1), until=datetime(2030, 1, 1), window_days=365, dry_run=True)
    state = backfill(params=params, config_path=str(cfg), return_state=True)
    assert state.is_completed(), state.message
    figures = state.result()
    assert figures["orders"]["new"] > 0 and figures["orders"]["invalid"] > 0
    from tests.helpers import run_artifacts

    summary = next(a for a in run_artifacts(state.state_details.flow_run_id) if a["type"] == "markdown")["data"]
    assert "orders: sample of new" in summary and "orders: sample of invalid" in summary
    assert emulator.stats["api_requests"] == 0
    store = StateStore(load_config(cfg).state)
    assert store.window_status(params.backfill_id(), "orders") == {} and store.summary()["ledger"] == {}


def test_params_model_rejects_a_reversed_range():
    with pytest.raises(ValueError, match="until must be after since"):
        BackfillParams(since=datetime(2025, 1, 1), until=datetime(2024, 1, 1))


def test_stale_watermark_fails_the_run(setup, emulator, monkeypatch):
    _, cfg = setup
    from engine.planner import Planner

    def stuck(self, plan, stats):
        return plan.watermark  # a broken reader that never gets anywhere

    monkeypatch.setattr(Planner, "run_cursor", stuck)
    state = nightly_sync(config_path=str(cfg), streams=["orders"], return_state=True)
    assert state.is_failed() and "watermark did not advance" in state.message
