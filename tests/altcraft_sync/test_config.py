"""The settings model without a database: ``${VAR}`` interpolation, the cross-checks, and the cursor and
window planning the engine relies on. Each error is one line naming the setting."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from altcraft_sync.config import load_config, parse_config
from altcraft_sync.cursor import Cursor
from altcraft_sync.errors import ConfigError
from altcraft_sync.interpolation import interpolate_env
from engine.planner import newest_cursor as _max
from runner.windows import BackfillParams

BASE: dict[str, Any] = {
    "sync": {"endpoint": "shop", "default_currency": "RUB"},
    "custom_fields": [{"external_id": "gift", "name": "Gift", "entity_type": "order", "value_type": "bool"}],
    "custom_line_statuses": [{"external_id": "pickup", "name": "Pickup", "type": "in_process"}],
    "streams": {
        "orders": {
            "table": "orders", "primary_key": "id", "updated_at": "updated_at",
            "columns": {"external_id": "number", "status": "state", "total_price": "total"},
            "status_map": {"n": "new"},
            "matching": {"mode": "email", "columns": {"email": "email"}},
            "custom_fields": {"gift": "is_gift"},
            "lines": {"table": "lines", "primary_key": "id", "updated_at": "updated_at", "parent_key": "order_id",
                      "columns": {"external_id": "id", "product": "sku", "final_price_per_item": "price",
                                  "count": "qty"},
                      "default_status": "pickup"},
        },
    },
}


def config_error(mutate: Any) -> str:
    raw = copy.deepcopy(BASE)
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_the_base_config_is_valid() -> None:
    cfg = parse_config(copy.deepcopy(BASE))
    assert cfg.enabled_streams() == ["orders"]


@pytest.mark.parametrize("mutate, expected", [
    (lambda c: c["streams"]["orders"]["columns"].pop("total_price"),
     "streams.orders.columns.total_price: required mapping is missing"),
    (lambda c: c["streams"]["orders"]["columns"].update(colour="c"),
     "streams.orders.columns.colour: not an Altcraft field"),
    (lambda c: c["streams"]["orders"]["lines"]["columns"].update(weight="w"),
     "streams.orders.lines.columns.weight: not an Altcraft field"),
    (lambda c: c["custom_fields"][0].update(entity_type="product"),
     "streams.orders.custom_fields.gift: no custom field with that external_id and entity_type 'order'"),
    (lambda c: c["sync"].pop("default_currency"),
     "streams.orders.columns.currency: map a column or set sync.default_currency"),
    (lambda c: c["sync"].pop("endpoint"), "streams.orders.columns.endpoint: map a column or set sync.endpoint"),
    (lambda c: c["streams"]["orders"]["status_map"].update(x="shipped"),
     "streams.orders.status_map.x: 'shipped' is not an Altcraft order status"),
    (lambda c: c["streams"]["orders"]["lines"].update(default_status="lost"),
     "streams.orders.lines.default_status: 'lost' is not a line status"),
    (lambda c: c["streams"]["orders"]["lines"].update(table=None),
     "streams.orders.lines: set exactly one of 'table' or 'query'"),
    (lambda c: c["streams"]["orders"]["matching"].update(mode="telepathy"), "mode 'telepathy' is not one of"),
    (lambda c: c.update(altcraft={"api_url": "http://altcraft.example.com/api/v1.1/"}),
     "plain http to a non-loopback host"),
    (lambda c: c["custom_fields"].append({"external_id": "size", "name": "S", "entity_type": "sku",
                                          "value_type": "enum"}), "value_type 'enum' needs enum_values"),
    (lambda c: c.update(source={"timezone": "Mars/Olympus"}), "unknown timezone 'Mars/Olympus'"),
    (lambda c: c["streams"]["orders"].update(stauts_map={}),
     "streams.orders.stauts_map: not a known setting (did you mean 'status_map'?)"),
    (lambda c: c["streams"]["orders"]["lines"].update(defualt_status="new"),
     "streams.orders.lines.defualt_status: not a known setting (did you mean 'default_status'?)"),
])
def test_cross_checks_name_the_setting_in_one_line(mutate: Any, expected: str) -> None:
    assert expected in config_error(mutate)


def test_a_custom_line_status_satisfies_the_line_status_checks() -> None:
    raw = copy.deepcopy(BASE)
    raw["streams"]["orders"]["lines"]["status_map"] = {"p": "pickup", "d": "delivered"}
    assert parse_config(raw).streams.section("orders") is not None
    raw["custom_line_statuses"] = []
    with pytest.raises(ConfigError, match=r"streams\.orders\.lines\.default_status: 'pickup' is not a line status"):
        parse_config(raw)


def test_interpolation_takes_the_value_then_the_default_and_refuses_an_unset_variable() -> None:
    env = {"HOST": "db.local", "EMPTY": ""}
    assert interpolate_env("pg://${HOST}:${PORT:-5432}/x", env) == "pg://db.local:5432/x"
    assert interpolate_env("${EMPTY:-fallback}", env) == "fallback"  # empty counts as unset
    with pytest.raises(ConfigError, match="environment variable PASSWORD is referenced in the config but not set"):
        interpolate_env("pg://u:${PASSWORD}@h/db", env)


def test_interpolation_reaches_only_values_and_cannot_inject_structure(tmp_path: Path) -> None:
    raw = copy.deepcopy(BASE)
    raw["sync"]["endpoint"] = "${ENDPOINT}"
    raw["altcraft"] = {"token": "${TOKEN}"}
    path = tmp_path / "c.yaml"
    path.write_text("# ${NOT_SET} in a comment is never read\n" + yaml.safe_dump(raw))
    cfg = load_config(path, environ={"ENDPOINT": "shop: {evil: 1}", "TOKEN": "s3cret"})
    assert cfg.sync.endpoint == "shop: {evil: 1}"  # a string, not a mapping
    assert cfg.altcraft.token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(cfg) and "s3cret" not in str(cfg)


def test_environment_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(copy.deepcopy(BASE)))
    cfg = load_config(path, environ={"SHOP_DB_URL": "sqlite:///other.db", "ALTCRAFT_TOKEN": "t0k"})
    assert cfg.source.url.get_secret_value() == "sqlite:///other.db"
    assert cfg.altcraft.token.get_secret_value() == "t0k"


# --- cursors and windows ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cursor", [
    Cursor(datetime(2026, 3, 29, 2, 30, 0, 123456), 17),
    Cursor(datetime(2026, 3, 29, 2, 30, tzinfo=UTC), "SKU-9"),
    Cursor(date(2026, 1, 31), None),
    Cursor(1767225600, 3),
    Cursor(Decimal("12.5"), "x"),
])
def test_a_cursor_survives_its_json_round_trip(cursor: Cursor) -> None:
    back = Cursor.from_json(cursor.to_json())
    assert (back.ts if not isinstance(cursor.ts, Decimal) else Decimal(back.ts)) == cursor.ts
    assert back.pk == cursor.pk and type(back.pk) is type(cursor.pk)


def test_the_newest_cursor_orders_by_time_then_key() -> None:
    t = datetime(2026, 1, 1)
    a, b, c = Cursor(t, 5), Cursor(t, 9), Cursor(t + timedelta(microseconds=1), 1)
    assert _max(a, b) is b and _max(b, a) is b
    assert _max(b, c) is c
    assert _max(None, a) is a and _max(a, None) is a and _max(None, None) is None


def test_backfill_windows_tile_the_range_without_gap_or_overlap() -> None:
    since, until = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 20, 6, tzinfo=UTC)
    windows = BackfillParams(since=since, until=until, window_days=7).windows()
    assert windows[0][0] == since and windows[-1][1] == until
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    assert [e - s for s, e in windows] == [timedelta(days=7), timedelta(days=7), timedelta(days=5, hours=6)]


@pytest.mark.parametrize("written, seconds", [
    ("1d", 86400), ("36h", 129600), ("90m", 5400), ("45s", 45), ("1h30m", 5400), (3600, 3600), ("P1D", 86400),
    ("PT24H", 86400), ("0", 0), (0, 0), ("02:00:00", 7200),
])
def test_max_defer_and_trigger_window_take_durations(written, seconds):
    raw = copy.deepcopy(BASE)
    raw["sync"].update(max_defer=written, trigger_window=written)
    cfg = parse_config(raw)
    assert cfg.sync.max_defer == seconds and cfg.sync.trigger_window == seconds


def test_durations_default_to_a_day_and_the_trigger_window_can_be_off():
    cfg = parse_config(copy.deepcopy(BASE))
    assert (cfg.sync.max_defer, cfg.sync.trigger_window) == (86400, 86400)
    for off in ("off", None, False):
        raw = copy.deepcopy(BASE)
        raw["sync"]["trigger_window"] = off
        assert parse_config(raw).sync.trigger_window is None


@pytest.mark.parametrize("written, expected", [
    ("soon", "sync.max_defer: 'soon' is not a duration (write e.g. 1d, 24h, 90m, P1D, or a number of seconds)"),
    (-5, "sync.max_defer: -5 is negative"),
    (True, "sync.max_defer: True is not a duration"),
])
def test_a_bad_duration_is_one_line_naming_the_setting(written, expected):
    assert expected in config_error(lambda c: c["sync"].update(max_defer=written))


def test_a_bad_backfill_option_is_named_as_typed_on_the_command_line() -> None:
    from altcraft_sync.errors import SyncError
    from runner.windows import params_from_cli

    with pytest.raises(SyncError, match=r"^backfill --window-days: Input should be greater than 0$"):
        params_from_cli("2024-01-01", "2024-02-01", None, window_days=0)
    with pytest.raises(SyncError, match=r"^backfill: until must be after since"):
        params_from_cli("2024-02-01", "2024-01-01", None)
