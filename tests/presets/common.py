"""What every preset test shares: the shop URL fixture's dialects and ``init --preset`` followed by what
``check`` does."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from altcraft_sync.config import load_config
from cli.main import app
from connectors.shop_db import ShopSource
from tests.conftest import TOKEN
from tests.helpers import ALL_STREAMS, run_all, shop_url_for


@pytest.fixture(params=["sqlite", "mysql"])  # the platforms run on MySQL/MariaDB; SQLite where their SQL allows
def shop_url(request, tmp_path):
    return shop_url_for(request.param, tmp_path)


def init_and_check(preset: str, url: str, tmp_path: Path, emulator, table_prefix: str | None = None, **env: str):
    """``init --preset`` (with ``--table-prefix`` when given) into a fresh file, loaded with the test's URLs,
    then what ``check`` does: bind every stream, run each page query as a sync builds it, and check the status
    values."""
    path = tmp_path / "altcraft-sync.yaml"
    prefix = [] if table_prefix is None else ["--table-prefix", table_prefix]
    result = CliRunner().invoke(app, ["init", "--preset", preset, "--output", str(path), *prefix])
    assert result.exit_code == 0, result.output
    cfg = load_config(path, environ={"SHOP_DB_URL": url, "ALTCRAFT_API_URL": emulator.url, "ALTCRAFT_TOKEN": TOKEN,
                                     "SYNC_STATE_URL": f"sqlite:///{tmp_path}/state.db", **env})
    source = ShopSource(cfg)
    source.bind()
    source.probe_reads()
    source.check_values()
    source.close()
    return cfg




def line_tuples(order: dict[str, Any]) -> list[tuple[Any, ...]]:
    """An order's lines as the emulator holds them: (product, count, final price per item, status)."""
    return [(ln["product"], ln["count"], Decimal(ln["final_price_per_item"]), ln["status"]) for ln in order["lines"]]


def assert_totals_exact(orders: dict[str, dict[str, Any]]) -> None:
    """Exact to the minor unit: every order's lines and delivery add up to its total."""
    for number, order in orders.items():
        lines = sum(Decimal(ln["final_price_per_item"]) * ln["count"] for ln in order["lines"])
        assert lines + Decimal(order.get("delivery_cost", 0)) == Decimal(order["total_price"]), number


def sync_cleanly(cfg: Any, runs: int = 1) -> None:
    """Run every stream the config maps (the people before the orders) ``runs`` times; the last run has nothing
    rejected, failed, invalid or waiting."""
    streams = [s for s in ALL_STREAMS if cfg.streams.section(s) is not None]
    for _ in range(runs):
        stats = run_all(cfg, streams)
    assert all(s.rejected == s.failed == s.invalid == s.deferred == 0 for s in stats.values()), stats


def profile_key(profile: dict[str, Any]) -> str:
    """A stored profile's key as the sync keys it: its e-mail, else its first phone."""
    return f"email:{profile['email']}" if profile.get("email") else f"phone:{profile['phones'][0]}"
