"""Issue 18: what the people who run altcraft-sync see. ``verify`` (and ``--repair``), dry runs that count,
progress and run names that tell the truth, masks that keep ids and times, ``quarantine``, a demo that can
be run any number of times, and one-line errors that keep their cause."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from altcraft_sync.config import load_config
from altcraft_sync.errors import ConfigError, StateError
from cli.main import app
from connectors.state import StateStore
from sandbox import demo_shop as D
from tests.conftest import TOKEN
from tests.helpers import build_shop, just_before, mapped_source, run_all, shop_config


@pytest.fixture
def synced(tmp_path, emulator):
    url = f"sqlite:///{tmp_path}/shop.db"
    engine = build_shop(url, orders=80)
    cfg_path = shop_config(tmp_path, url, emulator, TOKEN)
    run_all(load_config(cfg_path))
    return engine, cfg_path


def _verify(cfg_path: Any, **kw: Any) -> dict[str, Any]:
    from runner.runtime import open_runtime
    from runner.verify import verify_streams

    rt = open_runtime(cfg_path)
    try:
        return verify_streams(rt.config, rt.source, rt.state, rt.client, run_id="verify-test", page_size=7, **kw)
    finally:
        rt.close()


# --- verify ---------------------------------------------------------------------------------------------
def test_verify_finds_and_repairs_what_changed_behind_its_back(synced, emulator):
    engine, cfg_path = synced
    clean = _verify(cfg_path)
    assert all(s.differences == 0 and s.extra_not_ours == 0 for s in clean.values())
    assert clean["orders"].ok == clean["orders"].listed == len(emulator.store.orders) > 7  # paged, 7 a page
    assert clean["categories"].note.startswith("Altcraft has no list method")

    orders = sorted(emulator.store.orders, key=int)
    gone, altered, hard_deleted, soft_deleted = orders[:4]
    with emulator.lock:
        del emulator.store.orders[gone]                                  # missing
        emulator.store.orders[altered] = {**emulator.store.orders[altered], "status": "canceled"}
        emulator.store.orders[altered]["lines"] = [{**emulator.store.orders[altered]["lines"][0], "count": 99}] + \
            emulator.store.orders[altered]["lines"][1:]
        product = next(iter(emulator.store.products))
        emulator.store.products[product] = {**emulator.store.products[product], "name": "Renamed by hand"}
        emulator.store.internal_id("order", "not-ours-1")
        emulator.store.orders["not-ours-1"] = {"external_id": "not-ours-1", "status": "new", "lines": []}
    with engine.begin() as conn:
        conn.execute(D.order_lines.delete().where(D.order_lines.c.order_id == int(hard_deleted)))
        conn.execute(D.orders.delete().where(D.orders.c.id == int(hard_deleted)))
        conn.execute(
            D.orders.update().where(D.orders.c.id == int(soft_deleted)).values(is_deleted=True, updated_at=just_before(engine))
        )
    run_all(load_config(cfg_path), streams=["orders"], run_id="deletes")  # the soft delete reaches Altcraft
    assert soft_deleted not in emulator.store.orders
    with emulator.lock:  # ... and comes back behind our back
        emulator.store.orders[soft_deleted] = {"external_id": soft_deleted, "status": "new", "lines": []}

    found = _verify(cfg_path)
    o = found["orders"]
    assert (o.missing, o.different, o.extra, o.deleted_present, o.extra_not_ours) == (1, 1, 1, 1, 1)
    assert o.samples["missing"] == [{"external_id": gone}]
    assert o.samples["different"] == [
        {"external_id": altered, "fields": [f"lines[{_first_line_id(engine, altered)}].count", "status"]}
    ]
    assert o.samples["extra"][0]["external_id"] == hard_deleted
    assert found["products"].different == 1 and found["products"].fields == {"name": 1}

    imports = sum(emulator.import_counts.values())
    repaired = _verify(cfg_path, repair=True)
    assert repaired["orders"].resent == 2 and repaired["orders"].deleted == 2 and repaired["products"].resent == 1
    assert sum(emulator.import_counts.values()) == imports + 3  # exactly the differing records, nothing else
    after = _verify(cfg_path)
    assert all(s.differences == 0 for s in after.values())
    assert after["orders"].extra_not_ours == 1 and "not-ours-1" in emulator.store.orders  # never deleted
    expected = mapped_source(cfg_path)["orders"]
    assert {k: v for k, v in emulator.store.orders.items() if k != "not-ours-1"} == expected


def _first_line_id(engine: sa.Engine, order_id: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(sa.select(sa.func.min(D.order_lines.c.id)).where(D.order_lines.c.order_id == int(order_id))).scalar()
        )


def test_verify_sample_checks_a_random_subset(synced, emulator):
    _, cfg_path = synced
    victim = sorted(emulator.store.orders, key=int)[0]
    with emulator.lock:
        emulator.store.orders[victim] = {**emulator.store.orders[victim], "status": "canceled"}
    sampled = _verify(cfg_path, streams=["orders"], sample=10)["orders"]
    assert sampled.compared == 10 and sampled.listed == len(emulator.store.orders)
    assert sampled.ok + sampled.different == 10


def test_verify_cli_exits_1_with_differences_and_0_after_repair(synced, emulator):
    _, cfg_path = synced
    victim = sorted(emulator.store.orders, key=int)[-1]
    with emulator.lock:
        del emulator.store.orders[victim]
    runner = CliRunner()
    found = runner.invoke(app, ["verify", "--config", str(cfg_path), "--stream", "orders"])
    assert found.exit_code == 1 and "differs from the shop in 1 record;" in found.output  # issue: plural agreement
    assert "missing" in found.output and victim in found.output
    fixed = runner.invoke(app, ["verify", "--config", str(cfg_path), "--stream", "orders", "--repair"])
    assert fixed.exit_code == 0, fixed.output
    assert victim in emulator.store.orders
    assert runner.invoke(app, ["verify", "--config", str(cfg_path)]).exit_code == 0


@pytest.mark.prefect
def test_verify_flow_fails_on_differences_and_publishes_artifacts(synced, emulator, prefect_harness):
    from flows.verify_flow import verify_flow
    from tests.helpers import run_artifacts

    _, cfg_path = synced
    with emulator.lock:
        del emulator.store.orders[sorted(emulator.store.orders, key=int)[0]]
    state = verify_flow(config_path=str(cfg_path), return_state=True)
    assert state.is_failed() and "orders: " in state.message and "1 differences" in state.message
    artifacts = {a["key"]: a for a in run_artifacts(state.state_details.flow_run_id)}
    rows = {r["stream"]: r for r in json.loads(artifacts["verify-streams"]["data"])}
    assert rows["orders"]["missing"] == 1
    assert verify_flow(config_path=str(cfg_path), repair=True, return_state=True).is_completed()
    assert verify_flow(config_path=str(cfg_path), return_state=True).is_completed()


# --- dry runs that count ----------------------------------------------------------------------------------
def test_a_dry_run_counts_what_a_real_run_would_do(synced, emulator):
    engine, cfg_path = synced
    cfg = load_config(cfg_path)
    state = StateStore(cfg.state)
    before = state.all_watermarks()
    orders = sorted(emulator.store.orders, key=int)
    at = just_before(engine)
    with engine.begin() as conn:
        conn.execute(D.orders.update().where(D.orders.c.id == int(orders[0])).values(state="completed", updated_at=at))
        conn.execute(D.orders.update().where(D.orders.c.id == int(orders[1])).values(is_deleted=True, updated_at=at))
        sku = conn.execute(sa.select(D.skus.c.id).order_by(D.skus.c.id).limit(1)).scalar()
        conn.execute(D.skus.update().where(D.skus.c.id == sku).values(stock=D.skus.c.stock + 3, updated_at=at))
    requests = emulator.stats["api_requests"]
    dry = run_all(cfg, dry_run=True, run_id="dry")
    assert emulator.stats["api_requests"] == requests and state.all_watermarks() == before
    o = dry["orders"]
    assert (o.changed, o.new, o.deleted, o.deferred) == (1, 0, 1, 0)
    assert o.unchanged == o.extracted - o.changed - o.invalid - 1  # the soft-deleted one is not a record
    assert dry["skus"].changed == 1
    assert o.watermark_after == o.watermark_before  # a dry run's watermark never moves
    from runner.reporting import stream_line

    line = stream_line(o, dry_run=True)
    assert "would update 1" in line and "would delete 1" in line and "watermark stays" in line and "->" not in line


@pytest.mark.prefect
def test_backfill_dry_run_gives_its_counts(synced, emulator, prefect_harness):
    from flows.backfill import BackfillParams, backfill

    _, cfg_path = synced
    params = BackfillParams(since="2020-01-01", until="2030-01-01", streams=["orders"], window_days=3660, dry_run=True)
    state = backfill(params=params, config_path=str(cfg_path), return_state=True)
    assert state.is_completed(), state.message
    figures = state.result()["orders"]
    assert figures["unchanged"] == len(emulator.store.orders) and figures["invalid"] > 0
    result = CliRunner().invoke(app, ["backfill", "--config", str(cfg_path), "--since", "2020-01-01", "--until",
                                      "2030-01-01", "--stream", "orders", "--window-days", "3660", "--dry-run"])
    assert result.exit_code == 1, result.output  # issue 27: a dry run's exit code predicts the run's (invalid: 1)
    assert "would create" in result.output and "would update" in result.output and "unchanged" in result.output
    # nothing is recorded, so nothing says it was, nor sends to the (empty) quarantine
    assert "recorded in the state database" not in result.output and "would not go" in result.output
    assert "altcraft-sync quarantine" not in result.output, result.output


# --- truthful monitoring ---------------------------------------------------------------------------------
@pytest.mark.prefect
def test_progress_of_a_one_stream_run_ends_at_100(synced, emulator, prefect_harness):
    from flows.sync import nightly_sync
    from tests.helpers import run_artifacts

    _, cfg_path = synced
    state = nightly_sync(config_path=str(cfg_path), streams=["orders"], return_state=True)
    assert state.is_completed()
    progress = [a for a in run_artifacts(state.state_details.flow_run_id) if a["type"] == "progress"]
    assert progress and progress[0]["data"] == 100


def test_masks_keep_ids_and_times_and_hide_emails_and_phones_in_their_fields():
    from runner.reporting import mask

    record = {"external_id": "100000123", "create_time": "2026-12-01T14:57:43.000Z", "email": "ivan.petrov@example.com",
              "phone": "+7 912 345-67-89", "lines": [{"external_id": "55555555", "product": "S0000001"}],
              "comment": "call +7 912 345 67 89"}
    masked = mask(record)
    assert masked["external_id"] == "100000123" and masked["create_time"] == "2026-12-01T14:57:43.000Z"
    assert masked["lines"] == record["lines"] and masked["comment"] == record["comment"]
    assert masked["email"] == "iv***@example.com" and "petrov" not in json.dumps(masked)
    assert masked["phone"] == "+7 ***89"
    reason = mask({"field": "email", "check": "email is an address", "value": "ivan@@example.com"})
    assert reason["value"].startswith("iv***") and "ivan" not in reason["value"]
    assert mask({"field": "total_price", "value": "12.345"})["value"] == "12.345"


def test_run_names_carry_time_kind_and_streams():
    from datetime import UTC, datetime

    from flows.backfill import backfill_run_name
    from flows.sync import nightly_run_name

    at = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    assert nightly_run_name(at, None, False) == "nightly-sync 2026-12-01 02:00"
    assert nightly_run_name(at, ["orders"], True) == "nightly-sync 2026-12-01 02:00 [orders] (dry run)"
    assert backfill_run_name("2024-01-01T00:00:00", "2024-04-01T00:00:00", ["orders"], False) == \
        "backfill orders 2024-01-01..2024-04-01"
    assert backfill_run_name(datetime(2024, 1, 1, 6, 30), datetime(2024, 1, 2), None, True) == \
        "backfill all streams 2024-01-01 06:30..2024-01-02 (dry run)"


def test_quarantine_command_lists_reasons_and_values(synced, emulator):
    engine, cfg_path = synced
    victim = sorted(emulator.store.orders, key=int)[0]
    emulator.faults.reject = {victim: [409, "busy"]}
    with engine.begin() as conn:
        conn.execute(D.orders.update().where(D.orders.c.id == int(victim)).values(tags="again", updated_at=just_before(engine)))
    run_all(load_config(cfg_path), streams=["orders"], run_id="rejecting")
    state = StateStore(load_config(cfg_path).state)
    quarantined = {r["external_id"] for r in state.quarantine_rows() if r["entity"] == "order"}
    runner = CliRunner()
    out = runner.invoke(app, ["quarantine", "--config", str(cfg_path), "--stream", "orders", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert {r["external_id"] for r in rows if r["kind"] == "quarantined"} == quarantined
    assert all(r["entity"] == "order" and r["reasons"] for r in rows)
    rejected = [r for r in rows if r["kind"] == "rejected"]
    assert [r["external_id"] for r in rejected] == [victim]
    assert rejected[0]["reasons"] == [{"field": None, "check": "Altcraft 409", "value": "busy"}]
    some = rows[0]["reasons"][0]
    narrowed = json.loads(runner.invoke(app, ["quarantine", "--config", str(cfg_path), "--reason", some["check"][:12],
                                              "--json"]).output)
    assert narrowed and all(any(some["check"][:12].lower() in str(x["check"]).lower() for x in r["reasons"]) for r in narrowed)
    table = runner.invoke(app, ["quarantine", "--config", str(cfg_path)])
    assert table.exit_code == 0 and "quarantined" in table.output
    assert runner.invoke(app, ["quarantine", "--config", str(cfg_path), "--stream", "nope"]).exit_code == 2


# --- the first hour --------------------------------------------------------------------------------------
@pytest.mark.prefect
def test_the_demo_can_run_twice_and_sends_what_it_announces_even_on_its_smallest_shop(tmp_path, prefect_harness):
    from rich.console import Console

    from cli.demo import run_demo

    for _ in range(2):
        out = run_demo(orders=20, home=tmp_path, console=Console(file=open(tmp_path / "demo.log", "a")))
        changed = out["changed"]
        second = out["second"]
        assert second["orders"]["delivered"] == len(set(changed["orders"]) | {changed["line_order"]})
        assert second["skus"]["delivered"] == 1
        assert second["products"]["delivered"] == second["categories"]["delivered"] == 0
    assert "Using the demo shop in" in (tmp_path / "demo.log").read_text()  # the second demo says it reused it


def test_yaml_errors_keep_the_parsers_reason(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("source:\n  url: x\n chunk_size: 5\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    text = str(err.value)
    assert "line 3" in text and "not valid YAML:" in text and len(text.split(": ", 2)[-1]) > 5 and "\n" not in text


def test_a_missing_sqlite_shop_is_an_error_but_a_missing_state_file_is_created(tmp_path, emulator):
    from connectors.shop_db import ShopSource

    cfg_path = shop_config(tmp_path, f"sqlite:///{tmp_path}/typo-shop.db", emulator, TOKEN)
    cfg = load_config(cfg_path)
    with pytest.raises(ConfigError, match=r"source\.url: SQLite file .*typo-shop\.db does not exist"):
        ShopSource(cfg)
    assert not (tmp_path / "typo-shop.db").exists()
    cfg.state.url = cfg.state.url.__class__(f"sqlite:///{tmp_path}/new-dir/state.db")
    StateStore(cfg.state).close()
    assert (tmp_path / "new-dir" / "state.db").exists()


def test_state_database_errors_keep_their_cause(tmp_path):
    from pydantic import SecretStr

    from altcraft_sync.config import StateSettings

    with pytest.raises(StateError) as err:
        StateStore(StateSettings(url=SecretStr("postgresql://u:pw-secret@127.0.0.1:1/db"),
                                 retry={"max_attempts": 1}))
    text = str(err.value)
    assert "pw-secret" not in text and "\n" not in text
    assert "refused" in text.lower() or "connect" in text.lower()


def test_lowercase_currency_is_quarantined(tmp_path, emulator):
    url = f"sqlite:///{tmp_path}/shop.db"
    engine = build_shop(url, orders=30)
    with engine.begin() as conn:
        oid = conn.execute(sa.select(sa.func.max(D.orders.c.id))).scalar()
        conn.execute(D.orders.update().where(D.orders.c.id == oid).values(currency="rub"))
    stats = run_all(
        load_config(shop_config(tmp_path, url, emulator, TOKEN)), streams=["categories", "products", "skus", "orders"]
    )
    state = StateStore(load_config(tmp_path / "config.yaml").state)
    reasons = {r["external_id"]: r["reasons"] for r in state.quarantine_rows() if r["entity"] == "order"}
    assert str(oid) in reasons and str(oid) not in emulator.store.orders
    assert any(x["field"] == "currency" and "ISO 4217" in x["check"] for x in reasons[str(oid)])
    assert stats["orders"].invalid >= 1


def test_a_changed_sku_code_deletes_the_old_sku(synced, emulator):
    engine, cfg_path = synced
    with engine.begin() as conn:
        sku_id, code = conn.execute(sa.select(D.skus.c.id, D.skus.c.sku_code).order_by(D.skus.c.id).limit(1)).one()
        conn.execute(D.skus.update().where(D.skus.c.id == sku_id).values(sku_code="S-RENAMED", updated_at=just_before(engine)))
    assert code in emulator.store.skus
    stats = run_all(load_config(cfg_path), streams=["skus"], run_id="renamed")
    assert stats["skus"].deleted == 1 and stats["skus"].delivered == 1
    assert code not in emulator.store.skus and "S-RENAMED" in emulator.store.skus
    assert StateStore(load_config(cfg_path).state).known("sku", [code])[code].status == "deleted"


def test_config_errors_are_reported_before_any_prefect_server_starts(tmp_path, emulator, monkeypatch):
    import flows.sync

    url = f"sqlite:///{tmp_path}/shop.db"
    build_shop(url, orders=10)
    cfg_path = shop_config(tmp_path, url, emulator, TOKEN)
    cfg_path.write_text(cfg_path.read_text().replace("total_price: total", "total_price: total_amount"))

    def no_flow(*a: Any, **k: Any) -> Any:
        raise AssertionError("the flow (and a Prefect server) must not start for a config error")

    monkeypatch.setattr(flows.sync, "nightly_sync", no_flow)
    started = time.monotonic()
    result = CliRunner().invoke(app, ["sync", "--config", str(cfg_path)])
    assert result.exit_code == 2 and "total_amount" in result.output and time.monotonic() - started < 5


def test_check_fails_fast_when_altcraft_is_unreachable(synced):
    _, cfg_path = synced
    raw = yaml.safe_load(cfg_path.read_text())
    raw["altcraft"]["api_url"] = "http://127.0.0.1:9/api/v1.1/"
    cfg_path.write_text(yaml.safe_dump(raw))
    started = time.monotonic()
    result = CliRunner().invoke(app, ["check", "--config", str(cfg_path)])
    assert result.exit_code == 2 and "Altcraft" in result.output
    assert time.monotonic() - started < 5


def test_check_names_a_missing_sqlite_shop_in_one_line_and_goes_on(tmp_path, emulator):
    cfg_path = shop_config(tmp_path, f"sqlite:///{tmp_path}/nosuch.db", emulator, TOKEN)
    result = CliRunner().invoke(app, ["check", "--config", str(cfg_path)])
    assert result.exit_code == 2, result.output
    assert "source.url: SQLite file" in result.output and "nosuch.db does not exist" in result.output
    assert "Traceback" not in result.output and "state database" in result.output  # the other checks still ran
    assert not (tmp_path / "nosuch.db").exists()


def test_check_leaves_a_missing_state_file_uncreated_and_says_a_first_sync_sends_everything(tmp_path, emulator):
    """``check`` used to create the SQLite state file it was asked about: a typo in state.url passed, and
    the next sync started from no state. Now the file stays absent and the check names it (a warning: a
    first setup has no state yet); once a sync created it, the check opens it."""
    url = f"sqlite:///{tmp_path}/shop.db"
    build_shop(url, orders=10)
    cfg_path = shop_config(tmp_path, url, emulator, TOKEN)
    state_file = tmp_path / "state.db"

    def checks() -> dict[str, bool]:
        result = CliRunner().invoke(app, ["check", "--config", str(cfg_path), "--json"])
        assert result.exit_code == 0, result.output
        return {c["check"]: c["ok"] for c in json.loads(result.stdout)["checks"]}

    first = checks()
    assert not state_file.exists()
    assert [c for c in first if c.startswith("warning: state database")] == [
        f"warning: state database sqlite:///{state_file}: {state_file} does not exist yet; the first sync creates "
        "it and, with no state, sends every record (if this shop was synced before, check state.url)"]
    run_all(cfg_path, streams=["categories"])
    assert state_file.exists() and f"state database sqlite:///{state_file}" in checks()


def test_status_and_quarantine_leave_a_missing_state_file_uncreated_and_say_so(tmp_path, emulator):
    """They used to create the SQLite state file they were asked about and show an empty backlog: a typo in
    state.url read as "nothing waits". Now the file stays absent and both say there is no state yet."""
    url = f"sqlite:///{tmp_path}/shop.db"
    build_shop(url, orders=10)
    cfg_path = shop_config(tmp_path, url, emulator, TOKEN)
    state_file = tmp_path / "state.db"
    said = f"state database sqlite:///{state_file}: {state_file} does not exist yet: no sync has recorded anything"

    status = CliRunner().invoke(app, ["status", "--config", str(cfg_path), "--json"])
    assert status.exit_code == 0, status.output
    report = json.loads(status.stdout)
    assert report["state_note"].startswith(said) and report["runs"] == [] and report["backlog"] == {}
    assert {r["stream"] for r in report["streams"]} >= {"orders", "categories"}  # the shop is still read
    plain = CliRunner().invoke(app, ["status", "--config", str(cfg_path)])
    assert plain.exit_code == 0 and "does not exist yet" in plain.output
    problems = CliRunner().invoke(app, ["quarantine", "--config", str(cfg_path)])
    assert problems.exit_code == 0, problems.output
    assert "does not exist yet" in " ".join(problems.output.split()) and "0 records" in problems.output
    assert not state_file.exists() and not (tmp_path / "state.db.in-flight").exists()

    run_all(cfg_path, streams=["categories"])
    report = json.loads(CliRunner().invoke(app, ["status", "--config", str(cfg_path), "--json"]).stdout)
    assert report["state_note"] is None and any(r["watermark"] for r in report["streams"] if r["stream"] == "categories")


def test_an_unreachable_prefect_api_is_one_line_not_a_traceback(tmp_path, emulator, monkeypatch):
    from tests.flows.test_prefect_server import free_port

    url = f"sqlite:///{tmp_path}/shop.db"
    build_shop(url, orders=10)
    cfg_path = shop_config(tmp_path, url, emulator, TOKEN)
    api = f"http://127.0.0.1:{free_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", api)
    for command in (["sync"], ["retry"]):
        result = CliRunner().invoke(app, [*command, "--config", str(cfg_path)])
        assert result.exit_code == 2, result.output
        assert f"the Prefect API at {api} does not answer" in result.output and "--local" in result.output
        assert "Traceback" not in result.output and TOKEN not in result.output


def test_status_and_check_answer_in_seconds_when_the_state_database_is_down(tmp_path, emulator):
    from tests.flows.test_prefect_server import free_port

    url = f"sqlite:///{tmp_path}/shop.db"
    build_shop(url, orders=10)
    cfg_path = shop_config(tmp_path, url, emulator, TOKEN)
    raw = yaml.safe_load(cfg_path.read_text())
    raw["state"]["url"] = f"postgresql://altcraft:s3cret-pw@127.0.0.1:{free_port()}/nowhere"
    cfg_path.write_text(yaml.safe_dump(raw))
    for command in (["check"], ["status"], ["quarantine"]):
        started = time.monotonic()
        result = CliRunner().invoke(app, [*command, "--config", str(cfg_path)])
        assert result.exit_code == 2 and "state database" in result.output, (command, result.output)
        assert "s3cret-pw" not in result.output and time.monotonic() - started < 10, command  # one attempt


def test_status_survives_a_missing_shop_and_masks_a_guests_watermark(tmp_path, caplog):
    """A guest is keyed by an e-mail or a phone, so the guests stream's watermark key is a person's: status,
    the run's summary line and its debug log show it masked, never whole."""
    from runner.reporting import stream_line
    from runner.status import collect_status
    from sandbox.emulator import AltcraftEmulator
    from tests.helpers import ALL_STREAMS

    url = f"sqlite:///{tmp_path}/shop.db"
    build_shop(url, orders=60, people=True)
    with sa.create_engine(url).connect() as conn:
        contacts = {v for row in conn.execute(sa.select(D.orders.c.guest_email, D.orders.c.guest_phone)) for v in row if v}
    assert contacts
    caplog.set_level(logging.DEBUG, logger="altcraft_sync.engine")  # earlier CLI runs set its parent INFO
    with AltcraftEmulator(token=TOKEN, strict_data=True) as emu:
        cfg_path = shop_config(tmp_path, url, emu, TOKEN, people=True)
        stats = run_all(cfg_path, ALL_STREAMS)
    line = stream_line(stats["guests"], dry_run=False)
    assert "***" in line and "cursor guests at" in caplog.text
    leaked = [c for c in contacts if c in line or c in caplog.text]
    assert not leaked, leaked
    guests = next(r for r in collect_status(cfg_path)["streams"] if r["stream"] == "guests")
    assert guests["watermark_pk"] and "***" in guests["watermark_pk"]  # an e-mail or a phone, masked either way
    (tmp_path / "shop.db").rename(tmp_path / "moved.db")
    status = collect_status(cfg_path)
    assert "does not exist" in status["source_error"] and status["streams"]  # the state still answers


def test_json_commands_print_json_on_stdout_even_when_they_fail(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    for command in (["status"], ["quarantine"], ["verify"]):
        result = CliRunner().invoke(app, [*command, "--json", "--config", str(missing)])
        assert result.exit_code == 2, (command, result.output)
        first = json.loads(result.output.splitlines()[0])
        assert first["outcome"] == "failed" and "nowhere.yaml" in first["error"], command


def test_verify_counts_a_permanent_rejection_apart_from_pending(synced, emulator):
    """A record whose current version Altcraft rejected for good is not re-sent by the next sync (it waits
    for its data to change): verify counts it ``rejected``, never ``pending`` nor a difference."""
    engine, cfg_path = synced
    refused, changed = sorted(emulator.store.orders, key=int)[:2]
    with engine.begin() as conn:
        conn.execute(D.orders.update().where(D.orders.c.id == int(refused))
                     .values(gift_wrap=True, updated_at=just_before(engine)))
    emulator.faults.update({"reject": {refused: [422, "gift wrap not allowed"]}})
    run_all(load_config(cfg_path), streams=["orders"], run_id="refused")
    emulator.faults.update({"reject": {}})
    with engine.begin() as conn:  # changed after the run: the next sync sends it (pending)
        conn.execute(D.orders.update().where(D.orders.c.id == int(changed))
                     .values(gift_wrap=True, updated_at=just_before(engine)))
    o = _verify(cfg_path, streams=["orders"])["orders"]
    assert (o.rejected, o.pending, o.differences) == (1, 1, 0), o.figures()
    assert o.samples["rejected"] == [{"external_id": refused}] and o.figures()["rejected"] == 1
    shown = CliRunner().invoke(app, ["verify", "--config", str(cfg_path), "--stream", "orders", "--json"])
    assert json.loads(shown.stdout)["orders"]["rejected"] == 1
