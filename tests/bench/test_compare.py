"""The benchmark's comparison with drt and dlt (``bench/compare.py``) is only fair if the peers' SQL model
sends what altcraft-sync sends, and only honest if its content check and targets say what they measure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from sandbox.emulator_digest import digest
from tests.conftest import TOKEN
from tests.helpers import build_shop, run_all, shop_config, shop_url_for

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import compare  # a script's module, beside its own helpers


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_peers_model_sends_what_altcraft_sync_sends(dialect, tmp_path, emulator):
    """Same demo shop, same emulator: each order altcraft-sync delivers, the peers' SQL model delivers with
    the same canonical content; the peers' extra orders are exactly what altcraft-sync quarantined."""
    url = shop_url_for(dialect, tmp_path)
    engine = build_shop(url, orders=300)
    run_all(shop_config(tmp_path, url, emulator, TOKEN))
    ours = digest(emulator.store.orders)
    quarantined = {ext for ext in map(str, range(1, 301)) if ext not in ours}
    assert quarantined and len(ours) > 250
    emulator.reset(["orders"])
    with engine.connect() as conn:
        docs = [json.loads(doc) for (doc,) in conn.execute(sa.text(f"SELECT doc FROM ({compare.model_sql(dialect)}) AS m"))]
    answer = emulator.handle("market/orders/import", {"token": TOKEN, "data": docs}, None)
    refused = {r["external_id"] for r in answer["result"] if r["error"]}
    theirs = digest(emulator.store.orders)
    assert {k: v for k, v in theirs.items() if k in ours} == ours
    assert set(theirs) - set(ours) == quarantined - refused  # sent by the peers, kept back by the contract
    assert refused <= quarantined  # what Altcraft refuses, altcraft-sync never sent


def test_content_check_names_what_differs():
    reference = {"1": "a", "2": "b", "3": "c"}
    out = compare.compare_content(reference, {"2": "b", "3": "x", "9": "z"}, n=10)
    assert (out["stored"], out["identical"], out["differ"], out["missing"], out["extra"]) == (3, 1, 1, 1, 1)
    assert out["not_stored_of_shop"] == 7 and out["examples"] == {"differ": ["3"], "missing": ["1"], "extra": ["9"]}


def test_targets_and_ratios_follow_the_figures():
    def tool(full_wall, full_cpu, rss, nochange, inc):
        return {"full": {"wall_s": full_wall, "cpu_s": full_cpu, "peak_rss_mb": rss},
                "nochange": {"wall_s": nochange, "cpu_s": nochange, "peak_rss_mb": rss},
                "incremental": {"wall_s": inc, "cpu_s": inc, "peak_rss_mb": rss},
                "content": {"stored": 10, "summary": "10 stored"}}

    # full wall 15 s against drt's 20 s: 0.75x, within the 0.8x
    tools = {"altcraft-sync": tool(15, 20, 240, 1.0, 0.4), "drt": tool(20, 18, 60, 2.0, 2.0), "dlt": tool(40, 30, 150, 3, 3)}
    run = {"dialect": "sqlite", "orders": 10, "changed": 1, "tools": tools}
    met = {name: ok for name, ok, _ in compare.targets(run)}
    assert met == {"full CPU <= drt": False, "full wall <= 0.8 x drt": True, "no-change wall <= drt": True,
                   "1% run <= 5% of full": True, "peak RSS <= 250 MB": True}
    table = compare.markdown({"when": "now", "machine": "m", "runs": [run]})
    assert "| altcraft-sync ÷ drt | 0.75 | 1.11 | 4.00 | 0.50 | 0.20 | | |" in table
    assert "| altcraft-sync ÷ fastest peer | 0.75 | 1.11 | 4.00 | 0.50 | 0.20 | | |" in table


def test_the_bench_byte_compiles_the_packages_pyproject_ships(tmp_path):
    """What an installed copy has (``pip install`` compiles it): without it, a workplace that sets
    PYTHONDONTWRITEBYTECODE would time every run compiling our modules."""
    from measure import compile_sources

    (tmp_path / "pyproject.toml").write_text('[tool.setuptools.packages.find]\ninclude = ["shipped*"]\n')
    for package in ("shipped", "left_out"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("VALUE = 1\n")
    compile_sources(tmp_path)
    assert [p.name.split(".")[:2] for p in (tmp_path / "shipped" / "__pycache__").iterdir()] == [
        ["__init__", sys.implementation.cache_tag]]
    assert not (tmp_path / "left_out" / "__pycache__").exists()
