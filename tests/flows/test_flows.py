"""The nightly-sync flow and the CLI under the Prefect test harness, against the emulator."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from altcraft_sync.config import load_config
from cli.main import app
from connectors.state import StateStore
from flows.sync import nightly_sync
from sandbox import demo_shop
from tests.conftest import TOKEN
from tests.helpers import build_shop, deliverable_orders, just_before, mapped_source, shop_config

pytestmark = pytest.mark.prefect


@pytest.fixture
def setup(tmp_path, emulator, prefect_harness):
    url = f"sqlite:///{tmp_path}/shop.db"
    engine = build_shop(url, orders=150)
    return engine, shop_config(tmp_path, url, emulator, TOKEN)


def test_flow_end_to_end(setup, emulator):
    engine, cfg = setup
    state = nightly_sync(config_path=str(cfg), return_state=True)
    assert state.is_completed(), state.message
    expected = mapped_source(cfg)
    assert emulator.store.orders == expected["orders"]
    assert emulator.store.skus == expected["skus"]
    assert emulator.store.products == expected["products"]
    assert emulator.store.categories == expected["categories"]
    # independent of the transforms: a few values straight from SQL
    with engine.connect() as conn:
        total, email = conn.execute(sa.text(
            "SELECT o.total, c.email FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = 77")).one()
    assert emulator.store.orders["77"]["email"] == email
    assert emulator.store.orders["77"]["total_price"] == f"{total:.2f}".rstrip("0").rstrip(".")

    # second run: nothing changed, nothing imported
    counts = dict(emulator.import_counts)
    second = nightly_sync(config_path=str(cfg), return_state=True)
    assert second.is_completed() and dict(emulator.import_counts) == counts
    figures = second.result()
    assert figures["orders"]["delivered"] == 0 and figures["orders"]["unchanged"] > 0

    # one changed order line re-sends exactly its order
    with engine.connect() as conn:
        line_id = conn.execute(
            sa.select(demo_shop.order_lines.c.id).where(demo_shop.order_lines.c.order_id == 99).limit(1)
        ).scalar()
    demo_shop.touch(engine, order_ids=[], line_id=line_id, at=just_before(engine))
    third = nightly_sync(config_path=str(cfg), return_state=True)
    assert third.is_completed()
    assert {k for k, v in emulator.import_counts.items() if v != counts.get(k, 0)} == {("order", "99")}
    assert emulator.store.orders == mapped_source(cfg)["orders"]

    # the run published its figures to the Prefect UI
    from tests.helpers import run_artifacts

    found = {a["type"]: a for a in run_artifacts(third.state_details.flow_run_id)}
    assert {"table", "markdown", "progress"} <= set(found)
    rows = json.loads(found["table"]["data"])
    orders_row = next(r for r in rows if r["stream"] == "orders")
    assert orders_row["delivered"] == 1 and orders_row["unchanged"] >= 0
    assert found["progress"]["data"] == 100
    first_summary = next(a for a in run_artifacts(state.state_details.flow_run_id) if a["type"] == "markdown")["data"]
    assert "Top quarantine reasons" in first_summary and "matching 'email' needs email" in first_summary
    assert "@example.com" not in first_summary.replace("***@example.com", "")  # emails masked


def _watermarks(cfg):
    return StateStore(load_config(cfg).state).all_watermarks()


def test_failures_end_failed_with_one_line_and_watermarks_unchanged(setup, emulator, tmp_path):
    _engine, cfg = setup
    assert nightly_sync(config_path=str(cfg), streams=["categories", "products"], return_state=True).is_completed()
    before = _watermarks(cfg)
    raw = yaml.safe_load(cfg.read_text())

    def variant(name, **changes):
        data = yaml.safe_load(yaml.safe_dump(raw))
        for path, value in changes.items():
            section, key = path.split(".")
            data[section][key] = value
        p = tmp_path / name
        p.write_text(yaml.safe_dump(data))
        return p

    bad_token = variant("bad-token.yaml", **{"altcraft.token": "not-the-token"})
    no_db = variant("no-db.yaml", **{"source.url": "postgresql://shop:hunter2-secret@127.0.0.1:9/shop"})
    broken = tmp_path / "broken.yaml"
    broken.write_text(cfg.read_text().replace("total_price: total", "total_price: total_amount"))
    cases = [
        (bad_token, "refused the API token"),
        (no_db, "is unreachable"),
        (broken, "streams.orders.columns.total_price: column 'total_amount' is not in the query's result"),
    ]
    runner = CliRunner()
    for path, message in cases:
        state = nightly_sync(config_path=str(path), return_state=True)
        assert state.is_failed() and message in state.message and "\n" not in state.message
        result = runner.invoke(app, ["sync", "--config", str(path)])
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
        assert "hunter2-secret" not in result.output and "not-the-token" not in result.output
        assert _watermarks(cfg) == before


def test_cli_sync_status_check(setup, emulator):
    _, cfg = setup
    runner = CliRunner()
    result = runner.invoke(app, ["sync", "--config", str(cfg), "--stream", "categories", "--stream", "products"])
    assert result.exit_code == 1, result.output  # issue 27: the planted invalid product is a warning (exit 1)
    assert "categories" in result.output and "delivered" in result.output
    status = runner.invoke(app, ["status", "--config", str(cfg), "--json"])
    report = json.loads(status.stdout)
    cursors = {r["cursor"]: r for r in report["streams"]}
    assert cursors["products"]["watermark"] is not None and cursors["orders"]["watermark"] is None
    assert report["backlog"]["product"]["quarantined"] == 1
    assert report["runs"][0]["status"] == "completed"
    check = runner.invoke(app, ["check", "--config", str(cfg)])
    assert check.exit_code == 0 and "accepts the token" in check.output
    emulator.token = "rotated"
    check = runner.invoke(app, ["check", "--config", str(cfg)])
    assert check.exit_code == 2 and "refused the API token" in check.output


def test_dry_run_flow_sends_nothing(setup, emulator):
    _, cfg = setup
    state = nightly_sync(config_path=str(cfg), dry_run=True, return_state=True)
    assert state.is_completed()
    assert emulator.stats["api_requests"] == 0 and _watermarks(cfg) == {}
    assert state.result()["orders"]["new"] > 0


def test_run_fails_when_too_many_records_are_bad(tmp_path, emulator, prefect_harness):
    url = f"sqlite:///{tmp_path}/shop.db"
    build_shop(url, orders=150)
    # the floor is lowered: how many of 150 orders are planted invalid depends on the generator's draw
    cfg = shop_config(tmp_path, url, emulator, TOKEN, failure_threshold=0.02, failure_floor=3)
    state = nightly_sync(config_path=str(cfg), return_state=True)
    assert state.is_failed() and "above sync.failure_threshold 2% and sync.failure_floor 3" in state.message
    # everything valid was still delivered and recorded: the failure is about the share, not a loss
    assert len(emulator.store.orders) > 0 and _watermarks(cfg)


def test_retry_command_resends_what_was_rejected(setup, emulator):
    _, cfg = setup
    locked = str(deliverable_orders(cfg, 2)[-1])  # not the first: that one carries the definitions
    emulator.faults.update({"reject": {locked: [409, "profile is locked"]}})
    assert nightly_sync(config_path=str(cfg), return_state=True).is_completed()
    assert locked not in emulator.store.orders
    emulator.faults.update({"reject": {}})
    result = CliRunner().invoke(app, ["retry", "--config", str(cfg), "--stream", "orders"])
    assert result.exit_code == 0, result.output
    assert locked in emulator.store.orders
    assert StateStore(load_config(cfg).state).pending("order") == []
    last = StateStore(load_config(cfg).state).last_runs(1)[0]  # recorded like any run, under Prefect too
    assert last["kind"] == "retry" and last["status"] == "completed" and "orders" in last["streams"]
